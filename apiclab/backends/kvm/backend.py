"""`KvmBackend`: run a guest `Program` on the host's /dev/kvm through the bare-metal agent.

One run: build the ROM with the program (apiclab.guest.agent.image), create a VM with the ROM
and RAM, an in-kernel irqchip and one vCPU in the reset state; optionally KVM_SET_LAPIC an image
(the reboot path, docs/design.md §3); run until the agent writes its exit port, under a
wall-clock time-out; read the LAPIC back with KVM_GET_LAPIC; decode the agent's port-0xE9 log
into a Trace.
"""

from __future__ import annotations

import errno
import os
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager, nullcontext, suppress
from dataclasses import dataclass, field

from apiclab.arch.lapic_state import LapicState
from apiclab.backends.base import Availability, BackendUnavailable, RunResult
from apiclab.backends.emulator import ChildrenStopped, children_stopping
from apiclab.backends.kvm import ioctls as nr
from apiclab.backends.kvm.deadline import KICK_SIGNAL, RunDeadline, ensure_kick_handler
from apiclab.backends.kvm.exits import (
    FailEntry,
    InternalError,
    Interrupted,
    IoIn,
    IoOut,
    MmioRead,
    MmioWrite,
    Shutdown,
    VcpuExit,
)
from apiclab.backends.kvm.ioctls import KvmError
from apiclab.backends.kvm.machine import KvmPc
from apiclab.backends.kvm.reuse import ReusedPc
from apiclab.backends.kvm.system import DEV_KVM, KVM_API_VERSION, Kvm
from apiclab.backends.kvm.tracefs import TraceCapture, own_thread
from apiclab.backends.kvm.vcpu import Vcpu
from apiclab.engine import events as ev
from apiclab.guest.agent import log
from apiclab.guest.agent.image import build_image
from apiclab.guest.program import LOG_PORT_AP, MAX_CPUS, TESTDEV_IRQ, Program, testdev_line

PORT_LOG = 0xE9
# The most one run of a batch may take: a run still going then (a guest halted for an interrupt
# this host's KVM never injects, seen once taking 67 s of a batch) ends there and runs again
# alone with a run's own time-out, instead of taking the rest of the batch's time from the runs
# after it. The suite's programs end in milliseconds.
BATCH_RUN_LIMIT_S = 5.0
EXIT_PORTS = (0x501, 0x8900)  # QEMU isa-debug-exit, Bochs shutdown port (agent.S `exit`)
REQUIRED_CAPS = {
    nr.KVM_CAP_IRQCHIP: "KVM_CAP_IRQCHIP (in-kernel local APIC)",
    nr.KVM_CAP_USER_MEMORY: "KVM_CAP_USER_MEMORY",
    nr.KVM_CAP_IMMEDIATE_EXIT: "KVM_CAP_IMMEDIATE_EXIT (run time-out)",
    nr.KVM_CAP_GET_TSC_KHZ: "KVM_CAP_GET_TSC_KHZ (TSC to nanoseconds)",
}


def open_kvm(path: str = DEV_KVM) -> Kvm:
    """/dev/kvm, checked: the API version is 12 and the capabilities a run needs are there.

    Raises BackendUnavailable with one line naming the cause (api.rst §4.1, §4.4).
    """
    try:
        kvm = Kvm(path)
    except FileNotFoundError:
        raise BackendUnavailable(f"{path} does not exist (KVM module not loaded, or no "
                                 "hardware virtualization here)") from None
    except PermissionError:
        raise BackendUnavailable(f"no permission to open {path} (run as root or join the "
                                 "group that owns it, usually 'kvm')") from None
    except OSError as e:
        raise BackendUnavailable(f"cannot open {path}: {e.strerror}") from None
    try:
        try:
            version = kvm.get_api_version()
        except KvmError as e:
            raise BackendUnavailable(f"{path} is not a KVM device "
                                     f"(KVM_GET_API_VERSION: {e.strerror})") from None
        if version != KVM_API_VERSION:
            raise BackendUnavailable(f"{path} speaks KVM API version {version}, apiclab needs "
                                     f"{KVM_API_VERSION}")
        missing = [name for cap, name in REQUIRED_CAPS.items() if not kvm.check_extension(cap)]
        if missing:
            raise BackendUnavailable(f"{path} lacks {', '.join(missing)}")
    except BaseException:
        kvm.close()
        raise
    return kvm


@dataclass
class _RunLog:
    output: bytearray = field(default_factory=bytearray)
    exits: int = 0
    stop: str = ""  # why the loop ended


# KVM_NMI (api.rst §4.61, kvm_inject_nmi in arch/x86/kvm/x86.c) queues an NMI on the vCPU past
# its local APIC: LVT LINT1's mask and delivery mode are never read, so it is no LINT1 pulse.
LINT1_REFUSAL = ("KVM has no LINT1 pin to pulse: its KVM_NMI ioctl queues an NMI on the vCPU "
                 "directly, past LVT LINT1's mask and delivery mode (SDM §10.5.1)")


class KvmBackend:
    """The real KVM of this host (Backend protocol of apiclab.backends.base)."""

    name = "kvm"

    def __init__(self, path: str = DEV_KVM, *, trace_events: bool = False,
                 shared_capture: TraceCapture | None = None,
                 batch_tracepoints: bool = False) -> None:
        """`trace_events`: capture KVM's tracepoints of each run in a tracefs instance of its own;
        `shared_capture`: in that one instead (entered by the caller), cleared before each run,
        for runs that come one at a time (conform's evidence re-runs); `batch_tracepoints`:
        `run_batch` captures each run's tracepoints in an instance of the batch's (where tracefs
        can be used), so that a run's evidence needs no second run."""
        self.path = path
        self.trace_events = trace_events or shared_capture is not None
        self.shared_capture = shared_capture
        self.batch_tracepoints = batch_tracepoints
        self._reused: ReusedPc | None = None  # see `reusing_vm`

    def prepare_threads(self) -> None:
        """Let other threads run VMs: the time-out's signal handler is installed from here, which
        must be the main thread (deadline.py)."""
        ensure_kick_handler()

    def availability(self) -> Availability:
        try:
            with open_kvm(self.path) as kvm:
                return Availability(True, f"KVM API {kvm.get_api_version()}")
        except BackendUnavailable as e:
            return Availability(False, str(e))

    def refusal(self, program: Program) -> str | None:
        """Why this backend cannot run `program` whatever the host, or None."""
        return LINT1_REFUSAL if program.pulses_lint1 else None

    def run(self, program: Program, *, lapic_image: LapicState | None = None,
            timeout_s: float = 5.0) -> RunResult:
        return self._run(program, lapic_image=lapic_image, timeout_s=timeout_s,
                         reused=self._reused)

    @property
    def reused(self) -> ReusedPc | None:
        """The VM `run` reuses within `reusing_vm`, else None."""
        return self._reused

    @contextmanager
    def reusing_vm(self) -> Iterator[KvmBackend]:
        """Within: `run` puts one VM back in the state of a new one for each one-CPU program
        instead of making a VM per run (`reuse.ReusedPc`), for runs that come one at a time
        from one thread (conform's evidence re-runs); the VM is closed on the way out."""
        with open_kvm(self.path) as kvm, ReusedPc(kvm) as reused:
            self._reused = reused
            try:
                yield self
            finally:
                self._reused = None

    def run_batch(self, programs: Sequence[Program], *, timeout_s: float
                  ) -> list[RunResult | None]:
        """The one-CPU programs one after another on one VM, put back in the state of a new one
        between two (`reuse.ReusedPc`; a program that drives a device, or does not end, ends the
        VM and the next one gets a new VM); None for the others (several CPUs: a VM of their
        own, `run`) and for a run that failed, which the caller runs alone. `timeout_s` is the
        batch's: each run may take what is left of it; the programs after it ran out are None.

        With `batch_tracepoints`, each result's evidence carries the run's tracepoints, those of
        this thread (and of the VM's PIT worker) marked `own`: the kvm events are global to the
        host, so another batch's VM, running meanwhile, is in the capture too, never own."""
        results: list[RunResult | None] = [None] * len(programs)
        end = time.monotonic() + timeout_s
        with open_kvm(self.path) as kvm, ReusedPc(kvm) as reused, \
                self._batch_capture() as capture:
            for i, program in enumerate(programs):
                if children_stopping():  # the suite is being interrupted: end between two runs
                    raise ChildrenStopped("interrupted")
                left = min(end - time.monotonic(), BATCH_RUN_LIMIT_S)
                if program.cpus != 1 or left <= 0 or program.pulses_lint1:
                    continue
                try:
                    result = self._run(program, timeout_s=left, reused=reused,
                                       batch_capture=capture)
                except Exception:  # e.g. an ioctl refused, a log that does not decode: the
                    reused.close()  # caller runs the program alone and reports its error
                    continue
                # a run that reached its limit runs again alone, with a run's own time-out
                results[i] = None if result.timed_out else result
        return results

    @contextmanager
    def _batch_capture(self) -> Iterator[TraceCapture | None]:
        """A tracefs instance for a batch's runs if asked for and possible, else None."""
        if not self.batch_tracepoints:
            yield None
            return
        capture = TraceCapture()
        try:
            capture.__enter__()
        except Exception:  # no tracefs here (not root, not mounted): evidence re-runs say why
            yield None
            return
        with ExitStack() as stack:
            stack.push(capture)  # entered: its exit is owed, with the exception if any
            yield capture

    def _run(self, program: Program, *, lapic_image: LapicState | None = None,
             timeout_s: float = 5.0, reused: ReusedPc | None = None,
             batch_capture: TraceCapture | None = None) -> RunResult:
        refusal = self.refusal(program)
        if refusal is not None:
            raise BackendUnavailable(refusal)
        rom = build_image(program)
        with self._machine(rom, program, reused) as machine:
            vcpu = machine.vcpu
            if lapic_image is not None:
                vcpu.set_lapic(lapic_image)
            tsc_khz = vcpu.get_tsc_khz()
            shared = batch_capture if batch_capture is not None else self.shared_capture
            own = self.trace_events and shared is None
            capture = TraceCapture() if own else nullcontext()
            with capture, RunDeadline(vcpu, timeout_s) as deadline:
                if shared is not None:
                    shared.clear()
                run_log, ap_logs = _run_all(machine)
            tracepoints = shared.read() if shared is not None else None
            if batch_capture is not None and tracepoints is not None:
                tracepoints = own_thread(tracepoints)
            lapic = vcpu.get_lapic()
            if reused is not None:
                reused.finished(program, clean=run_log.stop.startswith("exit port")
                                and not deadline.fired)
        if ap_logs:
            trace = log.decode_cpus([bytes(run_log.output)]
                                    + [bytes(ap.output) for ap in ap_logs], tsc_khz)
        else:
            trace = log.decode(bytes(run_log.output), tsc_khz)
        timed_out = deadline.fired and run_log.stop == "interrupted"
        last = trace.events[-1].time if trace.events else 0
        if timed_out:
            trace.record(last, ev.Timeout, after_s=timeout_s)
        elif not run_log.stop.startswith("exit port"):
            trace.record(last, ev.VmStop, reason=run_log.stop)
        evidence: dict[str, object] = {
            "tsc_khz": tsc_khz,
            "exits": run_log.exits,
            "stop": run_log.stop,
            "agent_log": run_log.output.decode("ascii", errors="replace"),
        }
        if ap_logs:
            evidence["ap_agent_logs"] = [ap.output.decode("ascii", errors="replace")
                                         for ap in ap_logs]
            evidence["ap_stops"] = [ap.stop for ap in ap_logs]
        if isinstance(capture, TraceCapture):
            tracepoints = capture.events
        if tracepoints is not None:
            evidence["tracepoints"] = [e.as_dict() for e in tracepoints]
        return RunResult(trace=trace, lapic=lapic, timed_out=timed_out, evidence=evidence)


    @contextmanager
    def _machine(self, rom: bytes, program: Program, reused: ReusedPc | None
                 ) -> Iterator[KvmPc]:
        """A new PC for the program, or `reused`'s in the state of a new one (closed with it)."""
        if reused is not None and program.cpus == 1:
            yield reused.machine(rom)
            return
        with open_kvm(self.path) as kvm:
            try:
                machine = KvmPc(rom, kvm, program.cpus)
            except KvmError as e:
                if e.ioctl == "KVM_CREATE_VM":
                    err = e.errno or 0
                    raise BackendUnavailable(f"KVM_CREATE_VM refused: {os.strerror(err)}"
                                             + _create_vm_hint(err)) from None
                raise
            with machine:
                yield machine


def _create_vm_hint(err: int) -> str:
    if err == errno.EBUSY:
        return " (another hypervisor holds the virtualization extensions)"
    if err == errno.ENOMEM:
        return " (out of memory)"
    return ""


def _run_all(machine: KvmPc) -> tuple[_RunLog, list[_RunLog]]:
    """vCPU 0 in this thread, each other vCPU in a thread of its own, each with its own log.
    The run ends when vCPU 0's loop does (the agent's exit port, the time-out): the others are
    then stopped as the time-out stops vCPU 0 (immediate_exit and a kick, deadline.py). An AP
    whose loop ends first (a triple fault, an error) stops vCPU 0 the same way."""
    if len(machine.vcpus) == 1:
        return _run_loop(machine, machine.vcpu), []
    stop = threading.Event()
    main_id = threading.get_ident()
    ap_logs = [_RunLog() for _ in machine.vcpus[1:]]

    def ap(k: int) -> None:
        _run_loop(machine, machine.vcpus[k], ap_logs[k - 1], stop)
        if not stop.is_set():  # this AP ended the run
            ap_logs[k - 1].stop = f"cpu {k}: {ap_logs[k - 1].stop}"
            stop.set()
            machine.vcpu.set_immediate_exit(True)
            signal.pthread_kill(main_id, KICK_SIGNAL)

    threads = [threading.Thread(target=ap, args=(k,), daemon=True)
               for k in range(1, len(machine.vcpus))]
    for thread in threads:
        thread.start()
    try:
        out = _run_loop(machine, machine.vcpu)
    finally:
        stop.set()
        for vcpu, thread in zip(machine.vcpus[1:], threads, strict=True):
            vcpu.set_immediate_exit(True)
            if thread.ident is not None and thread.is_alive():
                with suppress(ProcessLookupError):
                    signal.pthread_kill(thread.ident, KICK_SIGNAL)
        for thread in threads:
            thread.join()
        machine.vcpu.set_immediate_exit(False)
    ended_by = [a.stop for a in ap_logs if a.stop.startswith("cpu ")]
    if ended_by and out.stop == "interrupted":
        out.stop = ended_by[0]
    return out, ap_logs


def _run_loop(machine: KvmPc, vcpu: Vcpu, out: _RunLog | None = None,
              stop: threading.Event | None = None) -> _RunLog:
    """KVM_RUN until the agent's exit port, a triple fault, an error or the time-out (or, for an
    AP, `stop`)."""
    out = out if out is not None else _RunLog()
    while True:
        exit_: VcpuExit = vcpu.run()
        out.exits += 1
        match exit_:
            case IoOut(port=port, data=data) if port == PORT_LOG or \
                    LOG_PORT_AP < port < LOG_PORT_AP + MAX_CPUS:  # each vCPU's own log
                out.output += data
            case IoOut(port=port) if port in EXIT_PORTS:
                out.stop = f"exit port {port:#x}"
                return out
            case IoOut(port=port, data=data) if testdev_line(port) is not None:
                # QEMU's pc-testdev, as kvm-unit-tests uses it: the byte is line n's level; GSI n
                # is ISA IRQ n through pc_gsi_routes (IRQ0 to IOAPIC input 2)
                machine.vm.irq_line(port - TESTDEV_IRQ, 1 if data[:1] != b"\0" else 0)
            case IoOut():
                pass  # a port nobody listens to, as on a PC with nothing there
            case IoIn(size=size, count=count):
                vcpu.fill_io_in(b"\xff" * (size * count))  # an empty ISA bus reads all ones
            case MmioRead(length=length):
                vcpu.fill_mmio_read(b"\xff" * length)  # no device there: all ones, as on a PC
            case MmioWrite():
                pass  # the IOAPIC and LAPIC are in the kernel; anything else has no device
            case Interrupted():
                if stop is not None and not stop.is_set():
                    continue  # a kick meant for another thread's vCPU: not this AP's end
                out.stop = "interrupted"
                return out
            case Shutdown():
                out.stop = "shutdown (triple fault)"
                return out
            case InternalError(suberror=sub, data=data):
                out.stop = f"internal error {sub} {[hex(d) for d in data]}"
                return out
            case FailEntry(hardware_entry_failure_reason=reason):
                out.stop = f"entry failed {reason:#x}"
                return out
            case _:
                out.stop = f"unexpected exit {exit_}"
                return out

