"""The `win7-reboot-0x5c` scenario: a storm of Windows 7 reboots on one VM.

Each cycle: Windows runs with clock, IPI and device traffic; it reboots (interrupts off, then the
reset port); QEMU resets the machine and pushes the reset APIC image; firmware and boot loader
run; phase-0 HAL init waits up to 3 s for a clock tick. After a bugcheck the guest restarts at
once (automatic restart), so the next cycle begins with the reset.

The run is a pure function of (profile, APICv, seed, config): every random choice is drawn from
one `Choices`, and the trace of every cycle is folded into one digest.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from apiclab.engine.choices import Choices
from apiclab.engine.core import Handle, Process, Sleep
from apiclab.engine.holding import hold, poll, release
from apiclab.engine.trace import Event, Trace
from apiclab.guest.linux import Linux, LinuxConfig
from apiclab.guest.windows7 import BootOutcome, Windows7, Windows7Config
from apiclab.hypervisor.machine import ModelVm
from apiclab.hypervisor.profiles import Profile

NAME = "win7-reboot-0x5c"
DEFAULT_TSC_HZ: Final = 2_600_000_000
MS: Final = 1_000_000
DEVICE_VECTORS = (0x51, 0x61, 0x71, 0x81, 0x91, 0xA1, 0xB1)  # assumed device vectors


@dataclass
class StormResult:
    profile: str
    apicv: bool
    reboots: int
    bsods: int = 0
    bsods_after_clean_boot: int = 0
    clean_boot_reboots: int = 0
    first_failure: list[Event] | None = None
    first_failure_index: int | None = None
    first_success: list[Event] | None = None  # one healthy cycle, to set beside the failure
    first_success_index: int | None = None
    bugcheck: tuple[int, tuple[int, int, int, int]] | None = None
    digest: str = ""
    outcomes: list[bool] = field(default_factory=list)


_NOTHING = Handle(0, lambda: None)  # a placeholder until the first arrival is scheduled


class Traffic:
    """Interrupts from outside the vCPU while Windows runs: IPIs from other processors (0xE1)
    and device interrupts. Inter-arrival times are drawn from the run's choices (assumed 1-40 ms
    for IPIs, 1-30 ms for devices)."""

    def __init__(
        self,
        machine: ModelVm,
        choices: Choices,
        ipi_vector: int,
        device_vectors: tuple[int, ...] = DEVICE_VECTORS,
    ) -> None:
        self.m = machine
        self.choices = choices
        self.ipi_vector = ipi_vector
        self.device_vectors = device_vectors
        self._device_keys = {v: (v, "device") for v in device_vectors}  # `QuietSteps` inputs
        self.on = False
        self._generation = 0
        self._pending: list[Handle] = []

    def start(self) -> None:
        self.on = True
        self._generation += 1
        generation = self._generation
        self._pending = [_NOTHING, _NOTHING]
        self._schedule_ipi(generation)
        self._schedule_device(generation)

    def stop(self) -> None:
        """No more arrivals: the two scheduled ones are cancelled (they would fire, see the
        traffic off, and do nothing)."""
        self.on = False
        for handle in self._pending:
            handle.cancel()

    # The arrivals call the machine's objects by attribute, not through bound methods kept in
    # locals: compiled (`apiclab.native`), an attribute's method is a direct call and a bound
    # method a generic one.

    def _schedule_ipi(self, generation: int) -> None:
        """The IPIs of one traffic generation: each arrival draws when the next one comes."""
        m, choices, vector = self.m, self.choices, self.ipi_vector
        accept, key = m.accept, (self.ipi_vector, "ipi")

        def fire() -> None:
            if self.on and generation == self._generation:
                m.quiet.run(key, accept, vector, "ipi")  # m.interrupt, inlined
                self._pending[0] = m.engine.after(choices.between(1, 40) * MS, fire)

        self._pending[0] = m.engine.after(choices.between(1, 40) * MS, fire)

    def _schedule_device(self, generation: int) -> None:
        """The device interrupts of one traffic generation: each arrival draws the vector of the
        next one, then when it comes."""
        m, choices, accept, keys = self.m, self.choices, self.m.accept, self._device_keys
        vector = choices.pick(self.device_vectors)

        def fire() -> None:
            nonlocal vector
            if self.on and generation == self._generation:
                m.quiet.run(keys[vector], accept, vector, "device")
                vector = choices.pick(self.device_vectors)
                self._pending[1] = m.engine.after(choices.between(1, 30) * MS, fire)

        self._pending[1] = m.engine.after(choices.between(1, 30) * MS, fire)


def run_storm(
    profile: Profile,
    *,
    apicv: bool,
    reboots: int,
    seed: int,
    config: Windows7Config | None = None,
    tsc_hz: int = DEFAULT_TSC_HZ,
    progress: Callable[[int], None] | None = None,
    linux: LinuxConfig | None = None,
    power_cycle_after_bsod: bool = False,
    device_vectors: tuple[int, ...] = DEVICE_VECTORS,
    tracing: bool = True,
) -> StormResult:
    """Reboot the guest `reboots` times and count the boots that fail (Windows 7 by default; with
    `linux`, a Linux guest with the same traffic and firmware).

    After a failure the guest restarts on the same VM (Windows' automatic restart), unless
    `power_cycle_after_bsod`: then the VM is destroyed and created anew (fresh VMCS, RVI = 0), and
    the next cycle starts from a healthy running guest — which measures the odds per reboot of a
    healthy system. (The cold boot itself is not modelled: with nothing pending, it cannot fail.)

    With `tracing` off the storm records nothing and skips clock ticks that cannot change the
    state (`apiclab.engine.idle`): the counts are the same, `digest` is empty, and the events of
    the first failure and first success come from running the storm again up to them, recording
    only those cycles.
    """
    storm = _Storm(
        profile, apicv, seed, config or Windows7Config(), tsc_hz, linux,
        power_cycle_after_bsod, device_vectors,
    )
    if tracing:
        return storm.run(reboots, recorded=lambda index: True, progress=progress)
    result = storm.run(reboots, recorded=lambda index: False, progress=progress)
    firsts = (result.first_failure_index, result.first_success_index)
    wanted = {index for index in firsts if index is not None}
    if wanted:
        again = storm.run(max(wanted) + 1, recorded=lambda index: index in wanted, progress=None)
        result.first_failure, result.first_success = again.first_failure, again.first_success
    return result


@dataclass(frozen=True)
class _Storm:
    """One storm's settings; every `run` starts from a new VM and the same seed."""

    profile: Profile
    apicv: bool
    seed: int
    config: Windows7Config
    tsc_hz: int
    linux: LinuxConfig | None
    power_cycle_after_bsod: bool
    device_vectors: tuple[int, ...]

    def run(
        self,
        reboots: int,
        *,
        recorded: Callable[[int], bool],
        progress: Callable[[int], None] | None,
    ) -> StormResult:
        """Run `reboots` cycles, recording (and hashing) the trace of the cycles `recorded`
        names; ticks that change nothing are skipped in the others."""
        trace = Trace()
        choices = Choices(self.seed)
        digest = hashlib.sha256()
        result = StormResult(self.profile.name, self.apicv, reboots)

        def new_vm() -> tuple[ModelVm, Windows7, Traffic]:
            machine = ModelVm(self.profile, apicv=self.apicv, tsc_hz=self.tsc_hz, trace=trace)
            guest = (
                Windows7(machine, self.config) if self.linux is None else Linux(machine, self.linux)
            )
            machine.vcpu.vm_entry()
            traffic = Traffic(machine, choices, self.config.ipi_vector, self.device_vectors)
            return machine, guest, traffic

        machine, guest, traffic = new_vm()
        # a SIGINT/SIGTERM is held while the model runs and raised between two reboots
        # (apiclab.engine.holding: compiled code cannot take it in the middle of its arithmetic)
        hold()
        try:
            last_ok = True
            for index in range(reboots):
                poll()
                trace.recording = recorded(index)
                machine.skip_quiet(not trace.recording, (guest,))
                if last_ok:
                    guest.run_os()
                    traffic.start()
                    machine.engine.run_process(_sleep(choices.between(20, 200) * MS))
                machine.engine.run_process(guest.shutdown(choices))
                traffic.stop()
                outcome = BootOutcome(ok=False)
                machine.engine.run_process(guest.boot(choices, outcome))
                result.outcomes.append(outcome.ok)
                if last_ok:
                    result.clean_boot_reboots += 1
                if outcome.ok and result.first_success_index is None:
                    result.first_success = list(trace.events) if trace.recording else None
                    result.first_success_index = index
                if not outcome.ok:
                    result.bsods += 1
                    if last_ok:
                        result.bsods_after_clean_boot += 1
                    if result.first_failure_index is None:
                        result.first_failure = list(trace.events) if trace.recording else None
                        result.first_failure_index = index
                        result.bugcheck = outcome.bugcheck
                if trace.recording:
                    digest.update(trace.to_jsonl().encode())
                    trace.events.clear()
                last_ok = outcome.ok
                if not outcome.ok and self.power_cycle_after_bsod:
                    machine, guest, traffic = new_vm()
                    last_ok = True
                if progress is not None:
                    progress(index + 1)
        finally:
            release()
        hashed_every_cycle = all(recorded(index) for index in range(reboots))
        result.digest = digest.hexdigest() if hashed_every_cycle else ""
        return result


def _sleep(ns: int) -> Process:
    yield Sleep(ns)
