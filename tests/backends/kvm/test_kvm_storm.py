"""`apiclab kvm storm`: one VM rebooted in place on the real /dev/kvm, beside the model's storm."""

import json
import os
import threading
from typing import Any

import pytest

from apiclab.backends.kvm.profile_match import kernel_version, matching_profile
from apiclab.backends.kvm.storm import (
    deviations,
    lapic_summary,
    run_host_storm,
    run_model_storm,
)
from apiclab.backends.kvm.storm_guest import storm_program
from apiclab.backends.kvm.system import Kvm
from apiclab.cli.main import main
from apiclab.explore.catalogue import CATALOGUE
from apiclab.guest.program import Cli, End, Handler, Hlt, Pause, Program, Read, Step
from apiclab.hypervisor.profiles import PROFILES, RESET_RVI, get_profile

TSC_HZ = 2_000_000_000
SEED = next(e for e in CATALOGUE if e.commit == RESET_RVI.commit)
Capture = pytest.CaptureFixture[str]


def fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_every_reboot_is_accounted_for(kvm: Kvm) -> None:
    storm = run_host_storm(kvm, storm_program(TSC_HZ), 25)
    assert sum(storm.outcomes.values()) == 25
    assert set(storm.outcomes) <= {"tick", "0x5C", "hang"}
    assert sum(n for _, _, n in storm.runs) == 25
    assert sum(storm.lapic_at_reboot.values()) == sum(storm.lapic_after_reset.values()) == 25


def test_vector_pending_at_the_reset_is_gone_after_it(kvm: Kvm) -> None:
    """The guest self-IPIs 0xE1 with IF = 0 just before it reboots: KVM_GET_LAPIC shows it in
    IRR at the reboot, and the reset image pushed with KVM_SET_LAPIC leaves IRR and ISR empty."""
    storm = run_host_storm(kvm, storm_program(TSC_HZ, pending=[0xE1]), 10)
    for key in storm.lapic_at_reboot:
        assert 0xE1 in lapic_summary(storm.lapic_pages[key])["irr"]
    for key in storm.lapic_after_reset:
        summary = lapic_summary(storm.lapic_pages[key])
        assert summary["irr"] == [] and summary["isr"] == []


def test_storm_leaks_no_fd(kvm: Kvm) -> None:
    program = storm_program(TSC_HZ)
    run_host_storm(kvm, program, 5)  # warm up
    before = fds()
    during: list[int] = []
    run_host_storm(kvm, program, 60, progress=lambda i: during.append(fds()) if i % 10 == 0
                   else None)
    assert fds() == before
    assert len(set(during)) == 1  # one VM all along: nothing opened per reboot


def test_deviations_carry_the_evidence(kvm: Kvm) -> None:
    """The model before the seed's fix, with APICv, turns the pending 0xE1 into a stale RVI and
    0x5C; this host does not (no APICv), so the storms differ, with evidence."""
    program = storm_program(TSC_HZ, pending=[0xE1])
    host = run_host_storm(kvm, program, 6)
    model = run_model_storm(program, get_profile(SEED.buggy), apicv=True, reboots=6,
                            tsc_hz=TSC_HZ)
    assert model.outcomes["0x5C"] > 0
    found = deviations(host, model, program)
    if host.outcomes.get("0x5C", 0) == 6:
        pytest.skip("every host reboot failed too: no deviation to look at")
    assert found["reboots"] > 0
    kind = found["kinds"][0]
    assert {"reboots", "first_reboot", "evidence", "host_trace", "model_trace"} <= set(kind)
    evidence = kind["evidence"]
    assert {"outcomes", "first_difference", "summary", "host_lapic_at_end"} <= set(evidence)
    assert evidence["outcomes"]["model"] == "bugcheck"
    assert "tracepoints_unavailable" in evidence


def test_model_storm_repeats_its_period() -> None:
    """Before the fix, with APICv, a reboot after a 0x5C starts clean: the model alternates, and
    simulates only until its post-reset state repeats."""
    program = storm_program(TSC_HZ, pending=[0xE1])
    model = run_model_storm(program, get_profile(SEED.buggy), apicv=True, reboots=1001,
                            tsc_hz=TSC_HZ)
    assert sum(model.outcomes.values()) == 1001
    assert model.simulated <= 4
    assert model.outcomes["0x5C"] in (500, 501)
    fixed = run_model_storm(program, get_profile(SEED.fixed), apicv=True, reboots=100,
                            tsc_hz=TSC_HZ)
    assert dict(fixed.outcomes) == {"tick": 100}


def test_profile_for_a_host_kernel() -> None:
    assert kernel_version("6.18.44-fc-v1045") == (6, 18)
    not_newer = [p for p in PROFILES.values() if (kernel_version(p.kernel) or (0, 0)) <= (6, 18)]
    newest = max(not_newer, key=lambda p: kernel_version(p.kernel) or (0, 0))
    assert matching_profile("6.18.44-fc-v1045")[0] == newest
    # a profile first released after the host's kernel is never chosen for it
    later = [p for p in PROFILES.values() if (kernel_version(p.kernel) or (0, 0)) > (6, 18)]
    assert all(matching_profile("6.18.44-fc-v1045")[0] != p for p in later)
    chosen, why = matching_profile("3.18.2")
    assert kernel_version(chosen.kernel) == (3, 18) and "3.18" in why
    # an unknown kernel gets the newest profile of all
    assert matching_profile(None)[0] == max(
        PROFILES.values(), key=lambda p: kernel_version(p.kernel) or (0, 0))


@pytest.mark.usefixtures("kvm")
def test_cli_json(capsys: Capture) -> None:
    assert main(["kvm", "storm", "--reboots", "8", "--pending", "0xe1", "--json"]) == 0
    doc: Any = json.loads(capsys.readouterr().out)
    assert doc["reboots"] == 8
    assert sum(doc["host"]["outcomes"].values()) == 8
    assert sum(doc["model"]["outcomes"].values()) == 8
    assert doc["model"]["profile"] in PROFILES
    assert doc["reboots_per_s"] > 0
    assert doc["guest"]["pending"] == [0xE1]
    assert {"reboots", "kinds"} <= set(doc["deviations"])


@pytest.mark.parametrize("args", [["--reboots", "0"], ["--pending", "0x5"],
                                  ["--pending", "zz"], ["--pending", "0xd1"],
                                  ["--wait-ms", "0"]])
def test_bad_input_is_one_line_and_exit_2(capsys: Capture, args: list[str]) -> None:
    assert main(["kvm", "storm", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err


@pytest.mark.usefixtures("kvm")
def test_unknown_profile_is_one_line_and_exit_2(capsys: Capture) -> None:
    assert main(["kvm", "storm", "--reboots", "1", "--profile", "kvm-0.1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "kvm-0.1" in err


@pytest.mark.parametrize("hang", [Cli(), Pause(1 << 50)],
                         ids=["halted-with-if-0", "spinning-in-the-guest"])
def test_a_cycle_that_never_ends_is_stopped_and_the_next_one_runs(kvm: Kvm, hang: Step) -> None:
    """The cycle's time-out is a kernel timer signalling the thread in KVM_RUN (no watchdog
    thread): it stops a guest blocked in HLT with interrupts off and a guest spinning without
    exits alike, the VM is reset and the next cycle runs (and is stopped) too."""
    steps = (hang, Hlt(), End()) if isinstance(hang, Cli) else (hang, End())
    program = Program(steps, {}, Handler(eoi=False, log=False))
    threads = threading.active_count()
    seen: list[int] = []
    storm = run_host_storm(kvm, program, 2, cycle_timeout_s=0.2,
                           progress=lambda i: seen.append(threading.active_count()))
    assert dict(storm.outcomes) == {"hang": 2}
    assert seen == [threads, threads]  # nothing started a thread to watch the cycles
    assert threading.active_count() == threads


def _records(kvm: Kvm, program: Program, *, coalesce: bool) -> tuple[list[bytes], int, bool]:
    from apiclab.backends.kvm.inplace import InPlaceVm
    from apiclab.guest.agent.image import build_image

    with InPlaceVm(build_image(program), kvm, coalesce_log=coalesce) as vm:
        vm.reset()
        cycle = vm.run_cycle()
        assert cycle.stop == "exit"
        lines = [line[:2] + line[18:] for line in cycle.output.split(b"\n") if line]
        return lines, cycle.exits, vm.coalesced_log


def test_coalesced_log_port_gives_the_same_records_in_order(kvm: Kvm) -> None:
    """The log port registered with KVM_REGISTER_COALESCED_MMIO: the same records, in the same
    order, as when every byte is an exit -- also past the ring's 170 entries, where KVM falls
    back to exits and the loop must take the ring's bytes before the exit's."""
    from apiclab.arch.registers import Reg
    from apiclab.backends.kvm import ioctls as nr

    if not kvm.check_extension(nr.KVM_CAP_COALESCED_PIO):
        pytest.skip("this host's KVM has no KVM_CAP_COALESCED_PIO")
    regs = [Reg.TPR, Reg.SVR, Reg.LVT_TIMER, Reg.TIMER_DIVIDE, Reg.PPR] * 6  # ~1,300 log bytes
    program = Program((*(Read(int(r)) for r in regs), End()), {},
                      Handler(eoi=False, log=False))
    plain, plain_exits, plain_coalesced = _records(kvm, program, coalesce=False)
    queued, queued_exits, coalesced = _records(kvm, program, coalesce=True)
    assert not plain_coalesced and coalesced
    assert len(plain) == len(regs) + 2  # "@S", a "@R" per read, "@E"
    assert queued == plain
    assert plain_exits > 1000 and queued_exits < plain_exits // 50
