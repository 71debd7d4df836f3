"""The ``mediagraph`` command line: run, check and draw graph files; list node types.

Exit status: 0 success, 1 a graph or runtime error, 2 a usage error; a run stopped by SIGINT, SIGTERM or
SIGHUP (the terminal closed) exits with 130, 143 or 129 once the graph has stopped gracefully, and so does
a command that gets one before the graph starts (with one line saying so, never a traceback; see
``mediagraph._startup``).

Errors in a graph file print as ``FILE:LINE:COLUMN: error: MESSAGE`` (the format editors jump to); other
errors as ``mediagraph: error: MESSAGE``. Nothing starts, and no file is written, unless the graph is valid.

A graph file writes only inside its own folder (``--set`` values: inside the current directory) unless the
user allows more folders with ``--output-dir DIR``; see ``mediagraph._paths`` for the whole policy.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import math
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import IO, NoReturn, final

import attrs
import trio

from . import __version__, _startup
from ._actions import run_schedule
from ._clock import run_virtual
from ._display import Display, LiveStatus, PlainLog, Verbosity, expected_length, write_event
from ._draw import to_dot, to_mermaid
from ._edges import check_devices, located_errors, scrubbed
from ._errors import GraphDefinitionError, MediaGraphError, NodeFailedError
from ._events import EventLog
from ._inspect import describe, overview
from ._limits import scrub
from ._runtime import GraphResult, RunningGraph, open_runtime
from ._sound import device_table, play_graph
from ._yaml import GraphFile, Override, load_graph

__all__ = ["command", "main"]

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
#: The exit status of a run stopped by a signal: 128 + the signal's number, as shells report it.
SIGNAL_EXIT = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGHUP: 129}
DIAGRAMS = (".mmd", ".dot", ".svg", ".png")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status.

    Args:
        argv: the arguments (default: ``sys.argv[1:]``).
    """
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        status: int = _interrupted() or args.command(args, parser)
    except GraphDefinitionError as exc:
        _error(str(exc) if exc.location else f"mediagraph: error: {exc}")
        return EXIT_ERROR
    except MediaGraphError as exc:
        _error(f"mediagraph: error: {exc}")
        return EXIT_ERROR
    except KeyboardInterrupt:  # Ctrl-C before the graph started, when the signal guard is not installed
        _error("mediagraph: interrupted (SIGINT) before the graph started")
        return SIGNAL_EXIT[signal.SIGINT]
    except BrokenPipeError:  # whoever read the output went away (`mediagraph nodes | head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing more to flush at exit
        return 128 + signal.SIGPIPE  # as a shell reports a process the pipe signal ended
    if args.command is _run:  # a signal once the graph ran is the run's business (it returned its status)
        return status
    return _interrupted() or status


def command() -> NoReturn:
    """The ``mediagraph`` program (and ``python -m mediagraph``): :func:`main`, then the process ends at once.

    It ends with ``os._exit``, after flushing its two streams, not through interpreter finalization: livekit's
    FFI (behind the ``apm`` processor) forwards its own log records to Python from tokio threads, and one
    that arrives while CPython 3.12 finalizes is cut down mid-callback (``pthread_exit`` across a Rust frame
    that cannot unwind), so the process aborted with SIGABRT after a run that had succeeded (5 of 200 short
    runs on a loaded machine). Nothing is lost by not finalizing: a run closes every file it wrote, and the
    events file, before ``main`` returns.
    """
    status = main()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError):  # the reader went away (a closed pipe): what is left reaches nobody
            stream.flush()
    os._exit(status)


def _interrupted() -> int | None:
    """The exit status for a signal recorded before the graph started (see ``_startup``), with one line."""
    signum = _startup.pending()
    if signum is None:
        return None
    _error(f"mediagraph: interrupted ({signal.Signals(signum).name}) before the graph started")
    return SIGNAL_EXIT[signal.Signals(signum)]


def _error(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- arguments -------------------------------------------------------------------------------------------


def _override(text: str) -> Override:
    try:
        return Override.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _device(text: str) -> str | int:
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a device name or index, got an empty string")
    return int(text) if text.isdigit() else text


def _devices_of(args: argparse.Namespace) -> dict[str, str | int]:
    chosen = {"output": args.output_device, "input": getattr(args, "input_device", None)}
    return {direction: device for direction, device in chosen.items() if device is not None}


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mediagraph",
        description="Run, check and draw mediagraph graph files.",
        epilog="Exit status: 0 success, 1 graph or runtime error, 2 usage error, 130/143 stopped by SIGINT/SIGTERM.",
    )
    parser.add_argument("--version", action="version", version=f"mediagraph {__version__}")
    sub = parser.add_subparsers(metavar="COMMAND", required=True)

    def file_command(name: str, help: str, command: Callable[..., int]) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.add_argument("file", metavar="FILE", type=Path, help="the graph file (YAML)")
        p.add_argument(
            "--set",
            metavar="NODE.PARAM=VALUE",
            action="append",
            type=_override,
            default=[],
            help="override a node parameter; VALUE is a YAML scalar (repeatable)",
        )
        devices(p)
        p.set_defaults(command=command)
        return p

    def devices(p: argparse.ArgumentParser, *, inputs: bool = True) -> None:
        p.add_argument(
            "--output-device",
            metavar="NAME",
            type=_device,
            help="play every speaker of the graph (slot children and swap targets included) on this device: "
            "'virtual', 'default', or a name, part of one or index as 'mediagraph devices' lists them",
        )
        if inputs:
            p.add_argument(
                "--input-device", metavar="NAME", type=_device, help="record every mic of the graph from this device"
            )

    def verbosity(p: argparse.ArgumentParser) -> None:
        quiet = p.add_mutually_exclusive_group()
        quiet.add_argument(
            "-q",
            "--quiet",
            action="store_const",
            dest="verbosity",
            const=Verbosity.QUIET,
            help="show only failures, warnings and the end",
        )
        quiet.add_argument(
            "-v",
            "--verbose",
            action="store_const",
            dest="verbosity",
            const=Verbosity.VERBOSE,
            help="show every event (the frequent ones too)",
        )
        p.set_defaults(verbosity=Verbosity.NORMAL)

    def output_dirs(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--output-dir",
            metavar="DIR",
            action="append",
            type=Path,
            default=[],
            dest="output_dirs",
            help="a folder the graph may write in besides its own folder (the graph file's, or the current "
            "directory for --set values); outputs elsewhere (.., absolute paths, ~, symbolic links leading "
            "out) are refused without it (repeatable)",
        )

    run = file_command("run", "run a graph until its sources end, --duration passes, or a stop action", _run)
    output_dirs(run)
    verbosity(run)
    run.add_argument("--duration", metavar="SECONDS", type=_seconds, help="stop gracefully after this graph time")
    run.add_argument(
        "--events", metavar="FILE.jsonl", type=Path, help="write the event log as JSON lines ('-': to standard output)"
    )
    run.add_argument(
        "--clock",
        choices=("real", "virtual"),
        default="real",
        help="virtual: run on a mock clock, as fast as possible (refuses graphs holding a real device)",
    )
    check = file_command("check", "validate a graph file without running anything", _check)
    output_dirs(check)
    draw = file_command("draw", "draw a graph: .mmd (Mermaid), .dot, or .svg/.png through Graphviz", _draw)
    for p in (check, draw):
        p.add_argument(
            "--import-plugins",
            action="store_true",
            help="import the code the graph names (plugin classes) to check it too; by default nothing of "
            "the graph's own code runs before 'run'",
        )
    draw.add_argument("-o", "--output", metavar="OUT", type=Path, required=True, help="the diagram to write")
    listing = "list the sound devices PortAudio sees (outputs and inputs, the defaults marked)"
    sub.add_parser("devices", help=listing, description=listing).set_defaults(command=_devices)
    play = sub.add_parser("play", help="play a media file (a recording, any file FFmpeg reads) on a sound device")
    play.add_argument("file", metavar="FILE", type=Path, help="the media file")
    play.add_argument("--duration", metavar="SECONDS", type=_seconds, help="stop after this many seconds")
    devices(play, inputs=False)
    verbosity(play)
    play.set_defaults(command=_play)
    nodes = sub.add_parser("nodes", help="list node and resource types, or describe one")
    nodes.add_argument("type", metavar="TYPE", nargs="?", help="a node or resource type to describe")
    nodes.set_defaults(command=_nodes)
    return parser


# --- check and draw --------------------------------------------------------------------------------------


def _check(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    gf = load_graph(
        args.file,
        overrides=args.set,
        output_dirs=args.output_dirs,
        import_code=args.import_plugins,
        devices=_devices_of(args),
    )
    g = gf.graph
    actions = len(gf.schedule)
    print(
        f"{args.file}: ok: graph {g.name!r}, {len(g.nodes)} nodes, {len(g.links)} links, "
        f"{actions} scheduled action{'' if actions == 1 else 's'}"
    )
    return EXIT_OK


def _draw(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    out: Path = args.output
    suffix = out.suffix.lower()
    if suffix not in DIAGRAMS:
        parser.error(f"cannot draw {str(out)!r}: the output must end with {', '.join(DIAGRAMS)}")
    gf = load_graph(args.file, overrides=args.set, import_code=args.import_plugins, devices=_devices_of(args))
    if suffix == ".mmd":
        return _write(out, to_mermaid(gf.graph))
    dot_text = to_dot(gf.graph)
    if suffix == ".dot":
        return _write(out, dot_text)
    dot = shutil.which("dot")
    if dot is None:
        _error(
            f"mediagraph: error: writing {suffix} needs Graphviz's 'dot' program, which is not installed; "
            "install Graphviz, or draw to a .dot or .mmd file"
        )
        return EXIT_ERROR
    done = subprocess.run(
        [dot, f"-T{suffix[1:]}", "-o", str(out)], input=dot_text, text=True, capture_output=True, check=False
    )
    if done.returncode != 0:
        _error(f"mediagraph: error: dot failed ({done.returncode}): {done.stderr.strip()}")
        return EXIT_ERROR
    return EXIT_OK


def _write(path: Path, text: str) -> int:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        _error(f"mediagraph: error: cannot write {path}: {exc.strerror}")
        return EXIT_ERROR
    return EXIT_OK


# --- nodes -----------------------------------------------------------------------------------------------


def _nodes(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if args.type is None:
        print(overview())
        return EXIT_OK
    try:
        print(describe(args.type))
    except LookupError as exc:
        parser.error(str(exc))
    return EXIT_OK


# --- run -------------------------------------------------------------------------------------------------


def _devices(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    print(device_table())
    return EXIT_OK


def _play(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    device = args.output_device if args.output_device is not None else "default"
    graph = play_graph(args.file, device)
    gf = GraphFile(path=args.file, graph=graph, schedule=(), resources={}, locations={})
    return _start(gf, clock="real", duration=args.duration, events_path=None, verbosity=args.verbosity)


def _run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    gf = load_graph(args.file, overrides=args.set, output_dirs=args.output_dirs, devices=_devices_of(args))
    return _start(gf, clock=args.clock, duration=args.duration, events_path=args.events, verbosity=args.verbosity)


def _start(gf: GraphFile, *, clock: str, duration: float | None, events_path: Path | None, verbosity: Verbosity) -> int:
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
            _error(f"mediagraph: error: cannot write the events file {events_path}: {exc.strerror}")
            return EXIT_ERROR
    try:
        live = not virtual and sys.stderr.isatty()
        stderr = scrubbed(sys.stderr, gf.secrets)
        total = expected_length(gf.graph, duration)
        display: Display = (
            LiveStatus(stderr, verbosity, total) if live else PlainLog(stderr, verbosity, total, progress=not virtual)
        )
        run = functools.partial(_run_graph, gf, duration=duration, events=events, display=display)
        try:
            return _interrupted() or (run_virtual(run) if virtual else trio.run(run))
        except (MediaGraphError, BaseExceptionGroup) as exc:  # a resource that failed to open, say
            lines = located_errors(exc, gf)
            if lines is None:
                raise
            for line in lines:
                _error(scrub(line, gf.secrets))
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
        early = _interrupted()  # recorded since the last look, before this receiver took over
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
                    nursery.start_soon(run_schedule, gf.schedule, running)
                    if duration is not None:
                        nursery.start_soon(_stop_after, running, duration)
                    nursery.start_soon(display.run, running)
                    try:
                        result = await running.wait()
                    except NodeFailedError as exc:
                        failure = exc
                    nursery.cancel_scope.cancel()
    display.close()
    if failure is not None:
        _error(scrub(f"mediagraph: error: {failure}", gf.secrets))
        return EXIT_ERROR
    assert result is not None
    for name, cause in result.isolated.items():
        message = f"node {name!r} failed (isolated, the graph went on): {type(cause).__name__}: {cause}"
        _error(scrub(f"mediagraph: error: {message}", gf.secrets))
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


async def _stop_after(running: RunningGraph, duration: float) -> None:
    await trio.sleep_until(running.t0 + duration)
    running.record(None, "stop_requested", by="duration")
    running.stop()


if __name__ == "__main__":
    sys.exit(main())
