"""Running a loaded graph for the command line (``run`` and ``play``): the display, the events stream, signals
(the first SIGINT/SIGTERM/SIGHUP stops gracefully, the next cancels), ``--duration``, and the exit status."""

from __future__ import annotations

import functools
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO, final

import attrs
import trio

from . import _startup
from ._actions import drive_graph
from ._clock import run_virtual
from ._display import Display, LiveStatus, PlainLog, Verbosity, expected_length, write_event
from ._edges import check_devices, located_errors, scrubbed
from ._errors import MediaGraphError, NodeFailedError
from ._events import EventLog
from ._limits import scrub
from ._runtime import GraphResult, RunningGraph, open_runtime
from ._yaml import GraphFile

__all__ = ["EXIT_ERROR", "EXIT_OK", "SIGNAL_EXIT", "error", "interrupted", "start"]

EXIT_OK = 0
EXIT_ERROR = 1
#: The exit status of a run stopped by a signal: 128 + the signal's number, as shells report it.
SIGNAL_EXIT = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGHUP: 129}


def error(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def interrupted() -> int | None:
    """The exit status for a signal recorded before the graph started (see ``_startup``), with one line."""
    signum = _startup.pending()
    if signum is None:
        return None
    error(f"mediagraph: interrupted ({signal.Signals(signum).name}) before the graph started")
    return SIGNAL_EXIT[signal.Signals(signum)]


def start(gf: GraphFile, *, clock: str, duration: float | None, events_path: Path | None, verbosity: Verbosity) -> int:
    """Run a loaded graph with the command line's display, events file and signal handling; its exit status."""
    virtual = clock == "virtual"
    if virtual:
        check_devices(gf)
    events: IO[str] | None = None
    if events_path == Path("-"):
        events = scrubbed(sys.stdout, gf.secrets)
    elif events_path is not None:
        try:  # line-buffered: every event reaches the file as it happens, so a killed run keeps its log
            events = open(events_path, "w", encoding="utf-8", buffering=1)  # noqa: SIM115 - closed below
            events = scrubbed(events, gf.secrets)
        except OSError as exc:
            error(f"mediagraph: error: cannot write the events file {events_path}: {exc.strerror}")
            return EXIT_ERROR
    try:
        # The live table redraws the terminal: not when the events go to that same terminal too, nor with -q.
        live = (
            not virtual
            and sys.stderr.isatty()
            and verbosity is not Verbosity.QUIET
            and not (events_path == Path("-") and sys.stdout.isatty())
        )
        stderr = scrubbed(sys.stderr, gf.secrets)
        total = expected_length(gf.graph, duration, [item.at for item in gf.schedule if item.name == "stop"])
        display: Display = (
            LiveStatus(stderr, verbosity, total) if live else PlainLog(stderr, verbosity, total, progress=not virtual)
        )
        run = functools.partial(_run_graph, gf, duration=duration, events=events, display=display)
        try:
            return interrupted() or (run_virtual(run) if virtual else trio.run(run))
        except (MediaGraphError, BaseExceptionGroup) as exc:  # a resource that failed to open, say
            lines = located_errors(exc, gf)
            if lines is None:
                raise
            for line in lines:
                error(scrub(line, gf.secrets))
            return EXIT_ERROR
    finally:
        if events is not None and events_path != Path("-"):
            events.close()


@final
@attrs.define
class _Stopping:
    signal: int | None = None


async def _run_graph(gf: GraphFile, *, duration: float | None, events: IO[str] | None, display: Display) -> int:
    log = EventLog()
    if events is not None:
        log.listen(functools.partial(write_event, events))
    log.listen(display.on_event)
    stopping = _Stopping()
    failure: NodeFailedError | None = None
    result: GraphResult | None = None
    with trio.open_signal_receiver(*SIGNAL_EXIT) as signals:
        early = interrupted()  # recorded since the last look, before this receiver took over
        if early is not None:
            return early
        async with open_runtime() as runtime:
            try:
                running = await runtime.start(gf.graph, log=log, meter=isinstance(display, LiveStatus))
            except NodeFailedError as exc:  # a node could not be built from its config
                failure = exc
            else:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(_watch_signals, signals, running, stopping)
                    nursery.start_soon(display.run, running)
                    try:
                        result = await drive_graph(running, gf.schedule, duration=duration)
                    except NodeFailedError as exc:
                        failure = exc
                    nursery.cancel_scope.cancel()
    display.close()
    if failure is not None:
        error(scrub(f"mediagraph: error: {failure}", gf.secrets))
        return EXIT_ERROR
    assert result is not None
    for name, cause in result.isolated.items():
        message = f"node {name!r} failed (isolated, the graph went on): {type(cause).__name__}: {cause}"
        error(scrub(f"mediagraph: error: {message}", gf.secrets))
    if stopping.signal is not None:
        return SIGNAL_EXIT[signal.Signals(stopping.signal)]
    return EXIT_ERROR if result.isolated else EXIT_OK


async def _watch_signals(signals: AsyncIterator[int], running: RunningGraph, stopping: _Stopping) -> None:
    """The first SIGINT/SIGTERM/SIGHUP stops the graph gracefully, the next one cancels it."""
    async for signum in signals:
        name = signal.Signals(signum).name
        if stopping.signal is None:
            stopping.signal = signum
            running.record(None, "stop_requested", by=name)
            running.stop()
        else:
            running.record(None, "cancel_requested", by=name)
            running.cancel()
