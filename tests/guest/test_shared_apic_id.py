"""An xAPIC ID written by software on the model, seen through whole programs on several CPUs:
who an IPI reaches (SDM §10.6.2.1) and when the hardware's ID comes back (§10.4.3, §10.12.5.1)."""

from apiclab.guest.program import (
    Handler,
    MmioWrite,
    Mode,
    Out,
    Pause,
    Program,
    Rdmsr,
    Read,
    Step,
    Sti,
    Write,
    Wrmsr,
)
from apiclab.hypervisor.program_run import run_program

ID, SVR, ICR = 0x20, 0xF0, 0x300
APIC_BASE = 0x1B
X2APIC_ID_MSR = 0x802
EN, EXTD, DEFAULT_BASE = 1 << 11, 1 << 10, 0xFEE00000


def _events(program: Program) -> list[tuple[str, int | None, int | None, int | None]]:
    return [(e.kind, e.cpu, getattr(e, "vector", None), getattr(e, "value", None))
            for e in run_program(program).guest_visible() if e.kind != "end"]


def test_both_apics_of_an_aliased_id_take_a_physical_ipi() -> None:
    """CPU 1 takes ID 0: a fixed IPI to physical 0 runs the handler on both CPUs, and one to
    physical 1 runs it nowhere (nobody answers to the ID CPU 1 gave up)."""
    program = Program((
        Write(SVR, 0x1FF, cpu=0),
        Write(SVR, 0x1FF, cpu=1),
        Write(ID, 0, cpu=1),
        Sti(cpu=0),
        Sti(cpu=1),
        Write(ICR, 0x4045, cpu=0),
        Pause(200_000),
        Write(ICR, (1 << 56) | 0x4046, cpu=0),
        Pause(200_000),
    ), {0x45: Handler(eoi=True, log=True), 0x46: Handler(eoi=True, log=True)},
        mode=Mode.XAPIC_PM32, cpus=2)
    taken = sorted((cpu, vector) for kind, cpu, vector, _ in _events(program)
                   if kind == "interrupt")
    assert taken == [(0, 0x45), (1, 0x45)]


def test_without_the_id_write_only_apic_0_takes_it() -> None:
    """The same IPI with IDs as the hardware set them reaches CPU 0 only (the control)."""
    program = Program((
        Write(SVR, 0x1FF, cpu=0),
        Write(SVR, 0x1FF, cpu=1),
        Write(ICR, 0x4045, cpu=0),
        Pause(200_000),
        Read(0x220, cpu=0),
        Read(0x220, cpu=1),
    ), mode=Mode.XAPIC_PM32, cpus=2)
    assert [(cpu, value) for _, cpu, _, value in _events(program)] == [(0, 0x20), (1, 0)]


def test_global_disable_and_x2apic_bring_back_the_hardware_id() -> None:
    """After a global disable and re-enable the APIC is as after power-up (§10.4.3, the branch
    the model takes), its ID the hardware's again; entering x2APIC mode the APIC answers to the
    x2APIC ID the hardware set, not to the ID written in xAPIC mode (§10.12.5.1)."""
    program = Program((
        Write(ID, 0x07000000, cpu=1),
        Read(ID, cpu=1),
        Wrmsr(APIC_BASE, DEFAULT_BASE, cpu=1),
        Wrmsr(APIC_BASE, DEFAULT_BASE | EN, cpu=1),
        Read(ID, cpu=1),
        Write(ID, 0x07000000, cpu=1),
        Wrmsr(APIC_BASE, DEFAULT_BASE | EN | EXTD, cpu=1),
        Rdmsr(X2APIC_ID_MSR, cpu=1),
    ), mode=Mode.XAPIC_PM32, cpus=2)
    values = [value for _, _, _, value in _events(program)]
    assert values == [0x07000000, 0x01000000, 1]


IOAPIC_SEL, IOAPIC_WIN, LINE_14 = 0xFEC00000, 0xFEC00010, 0x200E  # pc-testdev line 14


def _route_and_pulse(vector: int, dest: int) -> tuple[Step, ...]:
    """IOAPIC input 14 as an unmasked edge entry to physical `dest`, then one pulse (82093AA
    §3.2.4)."""
    return (MmioWrite(IOAPIC_SEL, 0x2D), MmioWrite(IOAPIC_WIN, dest << 24),
            MmioWrite(IOAPIC_SEL, 0x2C), MmioWrite(IOAPIC_WIN, vector),
            Out(LINE_14, 1), Out(LINE_14, 0), Pause(200_000))


def test_ioapic_messages_go_to_the_apics_of_their_destination() -> None:
    """With several CPUs, the IOAPIC's physical destination picks the APICs by their current ID
    (§10.6.2.1): input 14 to ID 1 reaches CPU 1 only; once CPU 1 has taken ID 0, to ID 0 it
    reaches both. (IRR3: bit 0 is 0x60, bit 1 is 0x61.)"""
    program = Program((
        Write(SVR, 0x1FF, cpu=0), Write(SVR, 0x1FF, cpu=1),
        Out(0x21, 0xFF), Out(0xA1, 0xFF),  # the 8259s masked: the line reaches the IOAPIC only
        *_route_and_pulse(0x60, 1),
        Read(0x230, cpu=0), Read(0x230, cpu=1),
        Write(ID, 0, cpu=1),
        *_route_and_pulse(0x61, 0),
        Read(0x230, cpu=0), Read(0x230, cpu=1),
    ), mode=Mode.XAPIC_PM32, cpus=2)
    assert [(cpu, value) for _, cpu, _, value in _events(program)] == [
        (0, 0), (1, 1), (0, 2), (1, 3)]
