"""A local worker process: ``python -m mediagraph.cluster._worker COMMANDS_FD REPORTS_FD real|virtual``.

Theory of operation. One trio run (on the virtual clock with ``virtual``) hosts every session the pool
launches here, on one shared runtime (see ``_host``). The pool writes frames to ``COMMANDS_FD`` and reads
this process's reports from ``REPORTS_FD`` (see ``_wire``); standard output and error stay the pool's, for
whatever nodes print. When the command pipe closes (the pool is closing, or has died) every session is
cancelled, their ends are reported while the pipe still takes them, and the process exits, all bounded by
:data:`CLOSE_TIMEOUT`. The pool starts it in a session of its own, so a Ctrl-C at the terminal reaches the
pool alone, which tears its workers down in order.
"""

from __future__ import annotations

import os
import sys

import trio

from .._clock import run_virtual
from .._errors import MediaGraphError
from .._runtime import open_runtime
from ._host import SessionHost
from ._wire import CLOSE_TIMEOUT, Decoder, Outbox

__all__ = ["main", "serve"]


async def serve(commands: trio.abc.ReceiveStream, reports: trio.abc.SendStream, *, virtual: bool) -> None:
    """Run sessions as the frames on ``commands`` say, until it ends; reports go to ``reports``."""
    outbox = Outbox(reports)
    async with trio.open_nursery() as outer:
        outer.start_soon(outbox.run)
        try:
            async with open_runtime() as runtime, trio.open_nursery() as sessions:
                host = SessionHost(runtime, sessions, outbox, virtual=virtual)
                outbox.hello(os.getpid())
                decoder = Decoder()
                try:
                    async for data in commands:
                        for message in decoder.feed(data):
                            _dispatch(host, message)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass  # the pool has gone: as good as closed
                host.cancel_all()
                sessions.cancel_scope.deadline = trio.current_time() + CLOSE_TIMEOUT
        except MediaGraphError:
            pass  # a graph's failure the runtime raises at its exit: every one went to the pool as an outcome
        with trio.move_on_after(CLOSE_TIMEOUT):
            await outbox.wait_empty()
        outer.cancel_scope.cancel()


def _dispatch(host: SessionHost, message: tuple[object, ...]) -> None:
    kind = message[0]
    if kind == "launch":
        _, session, attempt, spec = message
        host.launch(session, attempt, spec)  # type: ignore[arg-type]
    elif kind == "command":
        _, request, session, attempt, command = message
        host.command(request, session, attempt, command)  # type: ignore[arg-type]
    else:
        raise ValueError(f"unknown frame {kind!r} from the pool")


async def _main(commands_fd: int, reports_fd: int, virtual: bool) -> None:
    commands = trio.lowlevel.FdStream(commands_fd)
    reports = trio.lowlevel.FdStream(reports_fd)
    async with commands, reports:
        await serve(commands, reports, virtual=virtual)


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[2] not in ("real", "virtual") or not all(a.isdigit() for a in argv[:2]):
        print("usage: python -m mediagraph.cluster._worker COMMANDS_FD REPORTS_FD real|virtual", file=sys.stderr)
        return 2
    commands_fd, reports_fd, virtual = int(argv[0]), int(argv[1]), argv[2] == "virtual"
    if virtual:
        run_virtual(_main, commands_fd, reports_fd, virtual)
    else:
        trio.run(_main, commands_fd, reports_fd, virtual)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
