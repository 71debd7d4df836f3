"""The local engine: worker processes on this machine, one trio run each.

Theory of operation. Each worker is ``python -m mediagraph.cluster._worker`` (see ``_worker``), started in
a session of its own with two pipes passed by descriptor: commands in, reports out (frames of ``_wire``).
One task per worker reads its reports and hands them to the pool; a second writes what the pool queues for
it. A worker joins the pool when it says hello. When its report pipe ends the worker is gone (killed,
crashed, or closed by us): it is reaped (killed if it lingers), the pool is told with the exit status or
signal, and, unless the pool is closing, a new worker takes its place (with a new id). Closing closes every
command pipe, which makes each worker cancel its sessions and exit; one still there after
:data:`EXIT_TIMEOUT` is killed. No process outlives the pool, none is left unreaped.
"""

from __future__ import annotations

import os
import signal
import sys
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Final, final

import attrs
import trio

from ._errors import PoolError
from ._messages import Launch, Loss, Send
from ._spec import SessionSpec, WorkerStatus
from ._wire import CLOSE_TIMEOUT, Decoder, encode

if TYPE_CHECKING:
    from ._pool import Pool

__all__ = ["LocalEngine"]

#: Seconds a new worker has to say hello (it imports numpy, PyAV and the node library first).
STARTUP_TIMEOUT: Final = 60.0
#: Seconds a closing worker has to exit after its command pipe closed, before it is killed.
EXIT_TIMEOUT: Final = CLOSE_TIMEOUT + 5.0
#: Times in a row a replacement worker may fail to start before the pool stops trying.
MAX_FAILED_STARTS: Final = 3


@final
@attrs.define(eq=False)
class _Proc:
    id: int
    process: trio.Process
    commands: trio.lowlevel.FdStream
    reports: trio.lowlevel.FdStream
    queue: deque[bytes] = attrs.Factory(deque)
    wake: trio.Event = attrs.Factory(trio.Event)
    ticks: tuple[float, int] | None = None  # (when, CPU ticks) at the last look, for cpu_percent

    def put(self, frame: bytes) -> None:
        self.queue.append(frame)
        self.wake.set()

    async def write(self) -> None:
        try:
            while True:
                while not self.queue:
                    self.wake = trio.Event()
                    await self.wake.wait()
                await self.commands.send_all(self.queue.popleft())
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the worker has gone: its report pipe ends too, and the reader says so


@final
class LocalEngine:
    """Worker processes for a :class:`~mediagraph.cluster.Pool` (see the module's theory of operation)."""

    name = "local"

    def __init__(self, pool: Pool, *, processes: int, clock: str) -> None:
        self._pool = pool
        self._processes = processes
        self._clock = clock
        self._procs: dict[int, _Proc] = {}
        self._ids = 0
        self._closing = False
        self._failed_starts = 0
        self._gone = trio.Event()  # set when the last worker has been reaped while closing
        self._nursery: trio.Nursery | None = None

    def __repr__(self) -> str:
        return f"<LocalEngine {len(self._procs)} workers ({self._clock} clock)>"

    def check(self, spec: SessionSpec) -> None:
        if spec.node is not None:
            raise PoolError(
                f"the local engine places sessions itself; node={spec.node!r} is for engine='ray' (leave it unset)"
            )

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Start the workers and keep them (and their replacements) until cancelled.

        Raises:
            PoolError: a first worker could not start (the message says how it ended).
        """
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            async with trio.open_nursery() as boot:
                for _ in range(self._processes):
                    boot.start_soon(nursery.start, self._worker)
            task_status.started()

    def launch(self, launch: Launch) -> None:
        self._procs[launch.worker].put(encode(("launch", launch.session, launch.attempt, launch.spec)))

    def send(self, send: Send) -> None:
        self._procs[send.worker].put(encode(("command", send.request, send.session, send.attempt, send.command)))

    def workers(self) -> list[WorkerStatus]:
        out = []
        for proc in self._procs.values():
            out.append(
                WorkerStatus(worker=proc.id, alive=True, sessions=0, pid=proc.process.pid, cpu_percent=self._cpu(proc))
            )
        return out

    def kill(self, worker: int) -> int:
        """SIGKILL worker ``worker`` (for tests and for a pool that gives up on one); its pid."""
        proc = self._procs[worker]
        proc.process.kill()
        return proc.process.pid

    async def aclose(self) -> None:
        """Close every worker's command pipe and wait (bounded) until each has exited and been reaped."""
        self._closing = True
        for proc in list(self._procs.values()):
            await proc.commands.aclose()
        if self._procs:
            with trio.move_on_after(EXIT_TIMEOUT + 5.0):
                await self._gone.wait()
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()

    async def _worker(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self._ids += 1
        wid = self._ids
        read_commands, write_commands = os.pipe()
        read_reports, write_reports = os.pipe()
        try:
            process = await trio.lowlevel.open_process(
                [
                    sys.executable,
                    "-m",
                    "mediagraph.cluster._worker",
                    str(read_commands),
                    str(write_reports),
                    self._clock,
                ],
                pass_fds=(read_commands, write_reports),
                start_new_session=True,  # a Ctrl-C at the terminal is the pool's to handle, not the workers'
            )
        except BaseException:
            os.close(write_commands)
            os.close(read_reports)
            raise
        finally:
            os.close(read_commands)
            os.close(write_reports)
        proc = _Proc(wid, process, trio.lowlevel.FdStream(write_commands), trio.lowlevel.FdStream(read_reports))
        self._procs[wid] = proc
        joined = False
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(proc.write)
                decoder = Decoder()
                with trio.move_on_after(STARTUP_TIMEOUT):
                    async for data in proc.reports:
                        messages = decoder.feed(data)
                        if messages and messages[0][0] == "hello":
                            joined = True
                            self._pool.worker_up(wid, pid=process.pid)
                            task_status.started()
                            self._report(messages[1:])
                            break
                if joined:
                    async for data in proc.reports:
                        self._report(decoder.feed(data))
                nursery.cancel_scope.cancel()
        finally:
            with trio.CancelScope(shield=True):
                loss = await self._reap(proc)
            del self._procs[wid]
            if joined:
                self._pool.worker_down(wid, loss)
            if self._closing and not self._procs:
                self._gone.set()
        if not joined:
            raise PoolError(f"a worker process could not start: {loss.reason} before saying hello")
        if not self._closing and self._nursery is not None:
            self._nursery.start_soon(self._replace)

    async def _replace(self) -> None:
        assert self._nursery is not None
        try:
            await self._nursery.start(self._worker)
            self._failed_starts = 0
        except PoolError as exc:
            self._failed_starts += 1
            if self._failed_starts < MAX_FAILED_STARTS and not self._closing:
                self._nursery.start_soon(self._replace)
            elif not self._procs:
                self._pool.no_workers(Loss(reason=str(exc)))

    async def _reap(self, proc: _Proc) -> Loss:
        """Wait for the process to exit (kill it if it lingers); why it ended."""
        for stream in (proc.commands, proc.reports):
            await stream.aclose()
        with trio.move_on_after(EXIT_TIMEOUT if self._closing else 2.0):
            await proc.process.wait()
        if proc.process.returncode is None:
            proc.process.kill()
            await proc.process.wait()
        code = proc.process.returncode
        pid = proc.process.pid
        if code is not None and code < 0:
            name = signal.Signals(-code).name
            return Loss(reason=f"worker process {pid} exited with signal {-code} ({name})", pid=pid, signal=-code)
        return Loss(reason=f"worker process {pid} exited with status {code}", pid=pid)

    def _report(self, messages: list[tuple[object, ...]]) -> None:
        pool = self._pool
        for message in messages:
            kind = message[0]
            if kind == "events":
                pool.session_events(*message[1:])  # type: ignore[arg-type]
            elif kind == "started":
                pool.session_started(*message[1:])  # type: ignore[arg-type]
            elif kind == "finished":
                pool.session_finished(*message[1:])  # type: ignore[arg-type]
            elif kind == "reply":
                pool.replied(*message[1:])  # type: ignore[arg-type]

    def _cpu(self, proc: _Proc) -> float | None:
        """CPU use since the last look, from ``/proc`` (Linux); ``None`` elsewhere or on the first look."""
        try:
            fields = Path(f"/proc/{proc.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            return None
        ticks = int(fields[11]) + int(fields[12])  # utime + stime
        now = trio.current_time()
        last, proc.ticks = proc.ticks, (now, ticks)
        if last is None or now <= last[0]:
            return None
        return 100.0 * (ticks - last[1]) / os.sysconf("SC_CLK_TCK") / (now - last[0])
