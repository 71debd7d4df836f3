"""Signals before a graph runs: the command line answers Ctrl-C with exit 130 and one line, whenever it comes.

Python's default turns SIGINT into ``KeyboardInterrupt`` wherever the interpreter happens to be — in the
middle of importing a C extension (soxr's import has crashed so), inside an ``except`` block handling the
previous one — and SIGTERM and SIGHUP kill the process outright. So when the process is the ``mediagraph``
command, the first thing ``import mediagraph`` does (before any heavy import) is to make these signals only
*recorded*. The command line looks at what was recorded at safe points (after loading the graph, before
starting it, as soon as trio's signal receiver has taken over) and exits with 128 + the signal's number and
one line; while the graph runs, trio's receiver stops it gracefully. No signal ever raises, so a quick
double Ctrl-C still exits 130 instead of dying by the signal.

Library users (``import mediagraph`` in their own program) are not affected: nothing is installed unless
the process was started as ``mediagraph`` or ``python -m mediagraph``.
"""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType

__all__ = ["SIGNALS", "install", "is_command_line", "pending"]

#: The signals that stop the command line: Ctrl-C, ``kill``, and the terminal closing.
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

_pending: int | None = None
_installed = False


def _record(signum: int, frame: FrameType | None) -> None:
    global _pending
    if _pending is None:
        _pending = signum


def is_command_line() -> bool:
    """Whether this process was started as the ``mediagraph`` command (or ``python -m mediagraph``)."""
    argv = list(getattr(sys, "orig_argv", ()))
    if len(argv) >= 2 and os.path.basename(argv[1]) == "mediagraph":
        return True
    return "-m" in argv and argv[argv.index("-m") + 1 : argv.index("-m") + 2] == ["mediagraph"]


def install() -> bool:
    """Record :data:`SIGNALS` instead of acting on them (idempotent); ``False`` outside the main thread."""
    global _installed
    if not _installed:
        try:
            for signum in SIGNALS:
                signal.signal(signum, _record)
        except ValueError:  # not the main thread: leave the handlers alone
            return False
        _installed = True
    return True


def installed() -> bool:
    """Whether the signals are being recorded."""
    return _installed


def pending() -> int | None:
    """The first signal recorded, if any."""
    return _pending


if is_command_line():
    install()
