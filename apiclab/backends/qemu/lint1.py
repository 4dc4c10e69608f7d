"""The host's half of the LINT1_PULSE step on QEMU: pulse LINT1 when the guest says it is there.

QEMU's `inject-nmi` (QMP) reaches the CPU the way a PC's NMI source does: `x86_nmi` →
`apic_deliver_nmi` → `apic_local_deliver(s, APIC_LVT_LINT1)` (hw/i386/x86.c, hw/intc/apic.c), so
the LVT LINT1 entry decides what the pulse becomes (masked: nothing; NMI: an NMI; Fixed: its
vector), as on hardware (SDM §10.5.1).

Only a program with such a step pays for this: its QEMU gets two more sockets, both connected by
QEMU at start-up to listeners made here first (so there is no race for a socket file to appear):
COM1, a 16550 UART whose bytes are the agent's marker and the host's answer
(`apiclab.guest.program` LINT1_*), and a QMP monitor. A thread serves them while the emulator runs:
for each marker, `inject-nmi`, then the answer, so the pulse has landed (the vCPU is kicked by the
command; the agent only sees the answer after it) while the agent waits at the step. The thread
ends when QEMU closes the sockets (it exited or was killed) or when `close` cancels it; the sockets
are closed however the run ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

from apiclab.guest.program import LINT1_ACK, LINT1_MARKER

SERIAL = "chardev:lint1com"  # QEMU's -serial for COM1: the chardev `Lint1Host.argv` makes
JOIN_S = 2.0  # how long `close` waits for the serving thread once QEMU is gone


class Lint1Host:
    """The sockets and the serving thread of one QEMU run (a context manager).

        with Lint1Host(directory) as host:
            child = run_child(argv + host.argv(), timeout_s)
        host.pulses, host.error
    """

    def __init__(self, directory: Path) -> None:
        self.serial_path = directory / "lint1-com1.sock"
        self.qmp_path = directory / "lint1-qmp.sock"
        self.pulses = 0  # inject-nmi commands QEMU answered, each followed by the ack
        self.error = ""  # why serving stopped early, if it did
        self._listeners: list[socket.socket] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name="apiclab-lint1", daemon=True)

    def argv(self) -> list[str]:
        """QEMU's extra arguments: the chardev of COM1 (`-serial SERIAL`) and a QMP monitor, on
        the two sockets (QEMU connects)."""
        return ["-chardev", f"socket,id=lint1com,path={self.serial_path}",
                "-chardev", f"socket,id=lint1qmp,path={self.qmp_path}",
                "-mon", "chardev=lint1qmp,mode=control"]

    def __enter__(self) -> Lint1Host:
        try:
            for path in (self.serial_path, self.qmp_path):
                listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self._listeners.append(listener)
                listener.bind(str(path))
                listener.listen(1)
                listener.setblocking(False)
            self._thread.start()
            self._ready.wait()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Stop serving (QEMU has ended, or the run is being abandoned) and close the sockets."""
        loop, task = self._loop, self._task
        if loop is not None and task is not None:
            with contextlib.suppress(RuntimeError):  # the loop has closed already
                loop.call_soon_threadsafe(task.cancel)
        if self._thread.is_alive():
            self._thread.join(JOIN_S)
        for listener in self._listeners:
            listener.close()
        self._listeners.clear()

    # --- the serving thread ------------------------------------------------------------------

    def _main(self) -> None:
        # qemu.qmp logs each failure itself; what went wrong is this object's `error`
        quiet = logging.getLogger("qemu.qmp")
        quiet.addHandler(logging.NullHandler())
        quiet.propagate = False
        try:
            asyncio.run(self._run())
        except Exception as e:  # reported through `error`, not lost in a thread
            self.error = f"{type(e).__name__}: {e}"
        finally:
            self._ready.set()

    async def _run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop.set_exception_handler(self._unretrieved)
        self._task = asyncio.current_task()
        self._ready.set()
        with contextlib.suppress(asyncio.CancelledError):  # `close`: QEMU is gone
            await self._serve()

    def _unretrieved(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """An exception no task awaited: qemu.qmp's reader meets the end of the monitor's stream
        when QEMU exits (expected: QEMU ends the run); anything else is this run's `error`."""
        exception = context.get("exception")
        if isinstance(exception, (EOFError, ConnectionError)):
            return
        if not self.error:
            self.error = str(exception or context.get("message", "unknown asyncio error"))

    async def _serve(self) -> None:
        from qemu.qmp import QMPClient  # only runs with a LINT1 step pay for the import

        loop = asyncio.get_running_loop()
        serial_listener, qmp_listener = self._listeners
        serial, _ = await loop.sock_accept(serial_listener)
        qmp_sock, _ = await loop.sock_accept(qmp_listener)
        qmp = QMPClient("apiclab-lint1")
        try:
            await qmp.connect(qmp_sock)
            await self._answer(loop, serial, qmp)
        finally:
            serial.close()
            with contextlib.suppress(Exception):
                await qmp.disconnect()
            qmp_sock.close()

    async def _answer(self, loop: asyncio.AbstractEventLoop, serial: socket.socket,
                      qmp: Any) -> None:
        """For each marker byte the guest sends: pulse, then answer; until QEMU closes COM1."""
        serial.setblocking(False)
        while True:
            data = await loop.sock_recv(serial, 64)
            if not data:
                return  # QEMU exited
            for _ in range(data.count(LINT1_MARKER)):
                await qmp.execute("inject-nmi")
                self.pulses += 1
                await loop.sock_sendall(serial, LINT1_ACK)
