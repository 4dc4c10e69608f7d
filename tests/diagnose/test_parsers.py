"""Each evidence parser on text captured from real runs (fixtures/make_fixtures.py), on the
forms the tools print, and on broken input: one EvidenceError, never anything else."""

from __future__ import annotations

import pytest
from conftest import FIXTURES

from apiclab.arch.registers import Reg
from apiclab.arch.vectors import vectors_of
from apiclab.diagnose import detect, lapic_image, qemu_text, replay, trace_evidence, windbg
from apiclab.diagnose.errors import EvidenceError

WINDBG = """0: kd> !apic
Apic @ fffe0000  ID:0 (50014)  LogDesc:01000000  DestFmt:ffffffff  TPR 20
TimeCnt: 00000000clk  SpurVec:1f  FaultVec:e3  error:0
Ipi Cmd: 01000000`000000e1  Vec:E1  FixedDel  Ph:01000000  edg high
Timer..: 00000000`000300d1  Vec:D1  FixedDel  Dest=Self  edg high  m
Linti0.: 00000000`0001003f  Vec:3F  FixedDel  Dest=Self  edg high  m
Linti1.: 00000000`000004ff  Vec:FF  NMI  Dest=Self  edg high
TMR: 51-52, 62, A3
IRR: 41, D1
ISR: E1
0: kd> !idt
Dumping IDT: fffff80000b95080
d1:\tfffff80002a2c9f0 hal!HalpHpetClockInterruptStub (KINTERRUPT fffff80002a2c960)
e1: nt!KiUnexpectedInterrupt177
"""


def test_qemu_tcg_text_of_the_stuck_guest_reads_e1_in_service_and_d1_pending() -> None:
    ev = qemu_text.parse((FIXTURES / "qemu-tcg-stuck.txt").read_text(), "fixture")
    [c] = ev.cpus
    assert vectors_of(c.isr) == [0xE1] and vectors_of(c.irr) == [0xD1]
    assert c.ppr_read == 0xE0 and c.svr == 0x1FF and c.if_flag is True and c.shadow is False
    assert c.lvt[int(Reg.LVT_TIMER)] == 0x200D1 and c.timer_initial == 1_000_000


def test_qemu_text_of_two_cpus_at_reset_gives_two_cpus() -> None:
    ev = qemu_text.parse((FIXTURES / "qemu-tcg-reset-2cpu.txt").read_text(), "fixture")
    assert [c.cpu for c in ev.cpus] == [0, 1]
    assert all(c.svr == 0xFF and c.if_flag is False and c.halted is not None for c in ev.cpus)


def test_qemu_text_level_vectors_and_the_x2apic_icr2_form() -> None:
    text = (FIXTURES / "qemu-tcg-stuck.txt").read_text()
    text = text.replace("IRR\t 209 ", "IRR\t 49(level) 209 ").replace(
        "ICR2\t 0x00000000", "ICR2\t 0x00000001 cpu 1 (X2APIC ID)")
    [c] = qemu_text.parse(text, "t").cpus
    assert vectors_of(c.irr) == [49, 209] and vectors_of(c.tmr) == [49] and c.x2apic is True


def test_qemu_text_cut_before_the_priority_line_is_refused() -> None:
    text = (FIXTURES / "qemu-tcg-stuck.txt").read_text()
    with pytest.raises(EvidenceError, match="truncated"):
        qemu_text.parse(text[:text.index("APR")], "cut.txt")


def test_windbg_apic_with_idt_names_handlers_and_ranges() -> None:
    ev = windbg.parse(WINDBG, "kd.txt")
    [c] = ev.cpus
    assert (c.cpu, c.apic_id, c.tpr) == (0, 0, 0x20)
    assert vectors_of(c.tmr) == [0x51, 0x52, 0x62, 0xA3]
    assert vectors_of(c.irr) == [0x41, 0xD1] and vectors_of(c.isr) == [0xE1]
    assert c.handlers[0xD1] == "hal!HalpHpetClockInterruptStub"
    assert c.lvt[int(Reg.LVT_TIMER)] & 0x10000 and c.svr is None


def test_windbg_apic_of_two_processors() -> None:
    second = WINDBG.split("0: kd> !idt")[0].replace("0: kd>", "1: kd>").replace("ID:0 ", "ID:1 ")
    ev = windbg.parse(WINDBG.split("0: kd> !idt")[0] + second, "kd.txt")
    assert [(c.cpu, c.apic_id) for c in ev.cpus] == [(0, 0), (1, 1)]


@pytest.mark.parametrize("cut", ["ISR: E1\n", "IRR: 41, D1\nISR: E1\n"])
def test_windbg_apic_without_its_vector_lists_is_refused(cut: str) -> None:
    text = WINDBG.split("0: kd> !idt")[0].replace(cut, "")
    with pytest.raises(EvidenceError, match="truncated"):
        windbg.parse(text, "kd.txt")


def test_windbg_garbled_vector_list_is_refused() -> None:
    with pytest.raises(EvidenceError, match="not a hex vector"):
        windbg.parse(WINDBG.replace("IRR: 41, D1", "IRR: 41, ZZ"), "kd.txt")


def test_image_of_the_wrong_size_is_refused() -> None:
    with pytest.raises(EvidenceError, match="1024 bytes, this one is 1000"):
        lapic_image.parse_images([("short", bytes(1000))])


def test_image_read_back_from_kvm_after_the_stale_isr_restore() -> None:
    ev = lapic_image.parse_images([("img", (FIXTURES / "kvm-stale-isr.lapic").read_bytes())])
    [c] = ev.cpus
    assert vectors_of(c.isr) == [0xE1] and 0xD1 in vectors_of(c.irr) and c.svr == 0x1FF


def test_trace_replay_of_a_real_kvm_run_reaches_the_state_kvm_read_back() -> None:
    """The stuck guest on this host's KVM (its deviation EOIs 0xE1 as it injects it): the trace
    replays to exactly the registers KVM_GET_LAPIC gave at the end of the same run."""
    ev = trace_evidence.parse((FIXTURES / "kvm-stuck.trace").read_text(), "trace")
    image = lapic_image.parse_images([("img", (FIXTURES / "kvm-stuck.lapic").read_bytes())])
    [got], [want] = ev.cpus, image.cpus
    assert (got.irr, got.isr, got.tpr) == (want.irr, want.isr, want.tpr)
    assert ev.trace["events"] > 100


TRACE = """# tracer: nop
 CPU 0/KVM-4242  [001] d..1.   100.000001: kvm_entry: vcpu 0, rip 0x1000 intr_info 0x00000000 error_code 0x00000000
 CPU 0/KVM-4242  [001] .....   100.000002: kvm_apic_accept_irq: apicid 0 vec 225 (Fixed|edge)
 CPU 0/KVM-4242  [001] .....   100.000003: kvm_inj_virq: IRQ 0xe1
 CPU 0/KVM-4242  [001] .....   100.000004: kvm_apic_accept_irq: apicid 0 vec 209 (Fixed|edge)
 CPU 0/KVM-4242  [001] .....   100.000005: kvm_apic: apic_write APIC_TASKPRI = 0x0
"""


def test_trace_with_injections_reconstructs_the_seed_state_and_when_it_stuck() -> None:
    ev = trace_evidence.parse(TRACE, "t")
    [c] = ev.cpus
    assert vectors_of(c.isr) == [0xE1] and vectors_of(c.irr) == [0xD1]
    assert c.isr_since[0xE1] == pytest.approx(100.000003)
    assert c.irr_since[0xD1] == pytest.approx(100.000004)


def test_trace_cmd_report_lines_without_the_flags_column_read_the_same() -> None:
    report = "cpus=2\n" + "\n".join(
        line.replace(" d..1. ", " ").replace(" ..... ", " ") for line in TRACE.splitlines()[1:])
    assert trace_evidence.parse(report, "r").cpus[0].isr == trace_evidence.parse(TRACE, "t").cpus[0].isr


def test_a_reset_in_the_trace_restores_a_reset_apic() -> None:
    text = TRACE + (" CPU 0/KVM-4242  [001] d..1.   100.000009: kvm_entry: vcpu 0, rip 0xfff0 "
                    "intr_info 0x00000000 error_code 0x00000000\n")
    ev = trace_evidence.parse(text, "t")
    assert ev.cpus[0].isr == 0 and ev.cpus[0].svr == 0xFF
    assert ev.trace["resets"][0]["isr"] == 1 << 0xE1


def test_trace_garbled_in_the_middle_is_refused_with_its_line() -> None:
    text = TRACE.replace("kvm_inj_virq: IRQ 0xe1", "kvm_inj_virq: ???")
    with pytest.raises(EvidenceError, match=r"t:4: kvm_inj_virq"):
        trace_evidence.parse(text, "t")


def test_trace_cut_mid_line_is_refused() -> None:
    with pytest.raises(EvidenceError, match="not a trace event line"):
        trace_evidence.parse(TRACE + " CPU 0/KVM-4242  [001] ..", "t")


def test_unknown_text_is_refused_by_detection() -> None:
    with pytest.raises(EvidenceError, match="unknown evidence format"):
        detect.guess(b"hello\nworld\n", "x.txt")


def test_the_replay_can_hand_its_history_to_timelines_as_observations() -> None:
    r = replay.replay(TRACE, "t", observations=True)
    assert r.observations is not None
    kinds = [(e.kind, e.vector, e.isr, e.ppr) for e in r.observations[0]]
    assert kinds[:3] == [("accept", 0xE1, [], 0), ("deliver", 0xE1, [0xE1], 0xE0),
                         ("accept", 0xD1, [0xE1], 0xE0)]
    assert r.observations[0].events[1].time == 100_000_003_000
