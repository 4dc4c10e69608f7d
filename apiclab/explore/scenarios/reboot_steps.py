"""The `reboot` family as a transition system, for `apiclab explore --exhaustive`.

`reboot.run` draws all its choices first (how many interrupts, each one's vector and slot, the
busy handler) and applies them afterwards, so its states only exist after the reset. Here the same
variations are single steps taken in the order they happen, each applied to the model at once, so
the search sees the model's state between any two choices and can merge equal ones:

  run     Windows runs: one more interrupt arrives (handled and EOI'd), or Windows reboots
  busy    Windows reboots from no handler, or from inside the handler of a vector (in service)
  cli     after the shutdown's CLI: one more interrupt arrives (pending), or the reset port is
          written (the tail of 1 ms from CLI to the write is kept, as in `reboot.run`)
  exit    QEMU handles the reset-port exit: one more interrupt arrives (vCPU outside the guest),
          or the system reset happens
  after   after the reset: one more interrupt arrives (dropped), or the firmware starts
  boot    the phase-0 clock source and whether early boot EOIs unexpected vectors (four runs
          from the reset vector to the end of the clock wait)

At most `reboot.MAX_ARRIVALS` interrupts arrive in all, as in `reboot.run`, and the timings are
the same (100 us apart while Windows runs and after the CLI, 50 us after the reset), so a path
here is one run of `reboot.run`: `to_choices` gives its choice sequence there.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import replace

from apiclab.engine import events as ev
from apiclab.engine.choices import Choices
from apiclab.engine.trace import Trace
from apiclab.explore import inplace
from apiclab.explore.choices import normalize
from apiclab.explore.scenarios import reboot
from apiclab.explore.scenarios.state import vcpu_state_key
from apiclab.guest.windows7 import BootOutcome, Windows7, Windows7Config
from apiclab.hypervisor.profiles import Profile

US = reboot.US
STAGES = ("run", "busy", "cli", "exit", "after", "boot", "end")
_SLOT_OF_STAGE = {"run": 0, "cli": 1, "exit": 2, "after": 3}
_GAP_NS = {"run": 100 * US, "cli": 100 * US, "after": 50 * US}


class RebootWorld:
    """One run of the family, advanced one step at a time."""

    def __init__(self, profile: Profile, apicv: bool) -> None:
        self.trace = Trace()
        self.machine = reboot._ResetExitMachine(profile, apicv=apicv, tsc_hz=reboot.TSC_HZ,
                                                trace=self.trace)
        self.machine.during_exit = []
        self.guest = Windows7(self.machine, Windows7Config())
        self.stage = "run"
        self.left = reboot.MAX_ARRIVALS
        self.arrivals: list[tuple[int, int]] = []  # (vector, slot), in the order they happened
        self.busy = 0
        self.boot_choice = 0
        self.cli_arrivals = 0
        self.accepted_since_reset: frozenset[int] = frozenset()
        self.machine.vcpu.vm_entry()
        self.guest.run_os()

    # --- the transition system -------------------------------------------------------------

    def actions(self) -> int:
        """How many steps are enabled here; 0 at the end. Step 0 is always the simplest (move on
        without another interrupt; no busy handler; HPET and no EOI at boot)."""
        if self.stage in _SLOT_OF_STAGE:
            return 1 + (len(reboot.VECTORS) if self.left else 0)
        if self.stage == "busy":
            return 1 + len(reboot.VECTORS)
        if self.stage == "boot":
            return len(reboot.CLOCK_SOURCES) * 2
        return 0

    def step(self, action: int) -> None:
        if self.stage in _SLOT_OF_STAGE and action > 0:
            self._arrive(reboot.VECTORS[action - 1])
            return
        match self.stage:
            case "run":
                self._sleep(_GAP_NS["run"])  # the gap after the last arrival
                self.stage = "busy"
            case "busy":
                self._busy(action)
            case "cli":
                self._reset_port()
            case "exit":
                # what QEMU does for the reset-port write (ModelVm.io_out of 0x06 to 0xCF9): the
                # system reset; the exit itself happened already, at the `cli` stage's end
                self.machine.system_reset()
                self.accepted_since_reset = frozenset()
                self.stage = "after"
            case "after":
                self._sleep(_GAP_NS["after"])
                self.stage = "boot"
            case "boot":
                self._boot(action)

    def key(self) -> Hashable:
        """The state but for the interrupts still allowed (`allowance`): the stage and the vCPU
        (`vcpu_state_key`). Times are left out, as at `reboot.run`'s checkpoint: every later step
        is relative to now."""
        return (self.stage, vcpu_state_key(self.machine.vcpu))

    def allowance(self) -> int:
        """Interrupts that may still arrive: a state with more allowed can do all that the same
        state with fewer can, so the search keeps only the larger (subsumption)."""
        return self.left if self.stage in _SLOT_OF_STAGE else 0

    def history(self) -> Hashable:
        """What `no-delivery-across-reset` reads of the past: the vectors accepted since the
        reset (the other built-in properties read nothing of it that the vCPU state lacks)."""
        return self.accepted_since_reset

    def describe(self, action: int) -> str:
        if self.stage in _SLOT_OF_STAGE and action > 0:
            slot = _SLOT_OF_STAGE[self.stage]
            return f"vector {reboot.VECTORS[action - 1]:#04x} arrives {reboot.SLOTS[slot]}"
        if self.stage == "busy":
            return ("Windows reboots from no handler" if action == 0 else
                    f"Windows reboots from inside the handler of "
                    f"{reboot.VECTORS[action - 1]:#04x} (in service)")
        if self.stage == "boot":
            clock, eoi = divmod(action, 2)
            return (f"clock source {reboot.CLOCK_SOURCES[clock]}; early boot "
                    f"{'EOIs' if eoi else 'does not EOI'} unexpected vectors")
        return {"run": "Windows reboots", "cli": "the reset port is written",
                "exit": "QEMU resets the system", "after": "the firmware starts"}[self.stage]

    def to_choices(self) -> list[int]:
        """The same run as a choice sequence of `reboot.run` (its draw order), in the canonical
        form `apiclab explore` prints (trailing zeros dropped)."""
        seq = [len(self.arrivals)]
        for vector, slot in self.arrivals:
            seq += [reboot.VECTORS.index(vector), slot]
        seq.append(self.busy)
        clock, eoi = divmod(self.boot_choice, 2)
        return normalize([*seq, clock, eoi])

    def record_registers(self, on: bool) -> None:
        """Whether the trace's events carry the vCPU's register snapshot (IRR, ISR, RVI, ...), as
        they do by default. A search whose property reads none of it turns it off: building the
        snapshot is a good part of a step's cost. Off, the vCPU's `registers()` answers an empty
        snapshot to every recorder of the model (`Cpu.record`, the system reset, KVM_SET_LAPIC),
        so the same events are recorded, at the same indices, without those fields."""
        self.machine.vcpu.registers_recorded = on

    def snapshot(self) -> inplace.Snapshot:
        """This state, to come back to with `restore` (apiclab.explore.inplace)."""
        return inplace.save(self._stateful())

    def restore(self, snapshot: inplace.Snapshot) -> None:
        inplace.restore(snapshot)

    def _stateful(self) -> list[object]:
        """Every object of the run whose attributes can change between two steps: the world,
        its trace, QEMU's machine and devices, the engine and its scheduled handles (whose
        `cancelled` flag can change), the vCPU with its APIC, VMX state and timer, the guest.
        Objects a step replaces (the IOAPIC at the reset, the PIT's counters) are taken as they
        are now: the references to them are restored with their owners. A state with steps left
        has no process running (the steps before the boot run none, and the boot is the last
        step), so no generator or closure holds state of its own."""
        machine, vcpu = self.machine, self.machine.vcpu
        engine, pit = machine.engine, machine.pit
        objects: list[object] = [
            self, self.trace, self.guest, machine, engine, machine.tsc, machine.ioapic,
            machine.hpet, pit, *pit.counters, vcpu, vcpu.delivered, vcpu.lapic, vcpu.timer]
        objects += [v for v in (vcpu.vapic, vcpu._parked_vapic) if v is not None]
        # the engine's queue entries are (time, sequence, handle) tuples
        handles = [entry[-1] for entry in engine._queue]
        handles += [h for h in (machine.hpet._pending, vcpu.timer._pending, *pit._pending)
                    if h is not None and h not in handles]
        return objects + handles

    # --- the steps, as `reboot.run` performs them ------------------------------------------

    def _sleep(self, ns: int) -> None:
        """What `engine.run_process` of a process that only sleeps `ns` does — its wake-up
        scheduled at now + ns as the next event, everything due before it run — without the
        generator machinery (a transition replays several of these)."""
        engine = self.machine.engine
        woke: list[bool] = []
        engine.after(ns, lambda: woke.append(True))
        while not woke and engine.step():
            pass

    def _arrive(self, vector: int) -> None:
        slot = _SLOT_OF_STAGE[self.stage]
        self.left -= 1
        self.arrivals.append((vector, slot))
        self.trace.record(0, ev.Choice, text=f"vector {vector:#04x} arrives {reboot.SLOTS[slot]}")
        vcpu = self.machine.vcpu
        if slot == 1:
            self.cli_arrivals += 1
        if slot == 2:
            vcpu.accept_irq(vector, source=reboot._source(vector))
            return
        self._sleep(_GAP_NS[self.stage])
        vcpu.accept_irq(vector, source=reboot._source(vector))
        if slot == 3:
            self.accepted_since_reset |= {vector}

    def _busy(self, action: int) -> None:
        self.busy = action
        vcpu = self.machine.vcpu
        if action:
            vector = reboot.VECTORS[action - 1]
            self.trace.record(0, ev.Choice, text=f"Windows reboots from inside the handler of "
                              f"{vector:#04x} (in service)")
            vcpu.idt = lambda vector: None
            vcpu.accept_irq(vector, source=reboot._source(vector))
        # Windows7.shutdown up to its tail: CLI, then the interrupts of the `cli` stage
        vcpu.cli()
        self.trace.record(self.machine.engine.now, ev.GuestNote, text="shutdown: interrupts disabled")
        self.stage = "cli"

    def _reset_port(self) -> None:
        """The rest of the 1 ms tail, then the reset-port write: an I/O exit (`exit` stage)."""
        self._sleep(reboot.SHUTDOWN_TAIL_US * US - self.cli_arrivals * _GAP_NS["cli"])
        vcpu = self.machine.vcpu
        self.trace.record(self.machine.engine.now, ev.Reboot, text="reset port written",
                          **vcpu.registers())
        vcpu.vm_exit()
        self.stage = "exit"

    def _boot(self, action: int) -> None:
        self.boot_choice = action
        clock, eoi = reboot.CLOCK_SOURCES[action // 2], action % 2 == 1
        engine = self.machine.engine
        self.trace.record(engine.now, ev.Choice, text=self.describe(action))
        self.guest.cfg = replace(self.guest.cfg, clock_source=clock,
                                 early_boot_eoi_unexpected=eoi)
        engine.run_process(self.guest.boot(Choices(replay=[]), BootOutcome(ok=False)))
        self.trace.record(engine.now, ev.End, **self.machine.vcpu.registers())
        self.stage = "end"
