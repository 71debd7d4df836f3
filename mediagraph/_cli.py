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
import enum
import functools
import json
import math
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path, PurePath
from typing import IO, Any, Protocol

import attrs
import trio

from . import __version__, _startup
from ._actions import action_types, run_schedule
from ._clock import run_virtual
from ._draw import to_dot, to_mermaid
from ._edges import check_devices, located_errors, scrubbed
from ._errors import GraphDefinitionError, MediaGraphError, NodeFailedError
from ._events import Event, EventLog
from ._frames import AudioFrame
from ._limits import closest, scrub
from ._node import node_types, resource_types
from ._ports import InletSpec, OutletSpec, Ports, SameAs
from ._runtime import GraphResult, RunningGraph, open_runtime
from ._yaml import GraphFile, Override, load_graph

__all__ = ["main"]

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
#: The exit status of a run stopped by a signal: 128 + the signal's number, as shells report it.
SIGNAL_EXIT = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGHUP: 129}
#: How often the live status is redrawn, in seconds.
STATUS_PERIOD = 0.25
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
    if args.command is _run:  # a signal once the graph ran is the run's business (it returned its status)
        return status
    return _interrupted() or status


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
        p.set_defaults(command=command)
        return p

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
    run.add_argument("--duration", metavar="SECONDS", type=_seconds, help="stop gracefully after this graph time")
    run.add_argument("--events", metavar="FILE.jsonl", type=Path, help="write the event log as JSON lines")
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
    nodes = sub.add_parser("nodes", help="list node and resource types, or describe one")
    nodes.add_argument("type", metavar="TYPE", nargs="?", help="a node or resource type to describe")
    nodes.set_defaults(command=_nodes)
    return parser


# --- check and draw --------------------------------------------------------------------------------------


def _check(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    gf = load_graph(args.file, overrides=args.set, output_dirs=args.output_dirs, import_code=args.import_plugins)
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
    gf = load_graph(args.file, overrides=args.set, import_code=args.import_plugins)
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
    nodes = node_types()
    resources = resource_types()
    if args.type is None:
        print(_listing("node types", {name: nt.summary for name, nt in nodes.items()}))
        print(_listing("resource types", {name: rt.summary for name, rt in resources.items()}))
        print(_listing("schedule actions", {name: a.summary for name, a in action_types().items()}))
        print("\n`mediagraph nodes TYPE` shows a type's ports and parameters.")
        return EXIT_OK
    if args.type in nodes:
        nt = nodes[args.type]
        print(f"{nt.name}: {nt.summary}" if nt.summary else nt.name)
        print(_ports(nt.config, nt.ports))
        print(_params(nt.config))
    elif args.type in resources:
        rt = resources[args.type]
        print(f"{rt.name} (resource): {rt.summary}" if rt.summary else f"{rt.name} (resource)")
        print(_params(rt.config))
    else:
        parser.error(f"unknown node or resource type {args.type!r}{closest(args.type, [*nodes, *resources])}")
    return EXIT_OK


def _listing(title: str, items: Mapping[str, str]) -> str:
    if not items:
        return f"{title}:\n  (none installed)"
    width = max(map(len, items))
    return f"{title}:\n" + "\n".join(f"  {name:<{width}}  {summary}".rstrip() for name, summary in items.items())


def _table(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]


def _format(port: InletSpec | OutletSpec) -> str:
    if not any(issubclass(t, AudioFrame) for t in port.types):
        return "-"  # formats constrain audio only
    if isinstance(port.format, SameAs):
        return f"format of inlet {port.format.inlet!r}"
    return str(port.format) if port.format is not None else "any format"


def _ports(config: type, ports: Callable[[Any], Ports]) -> str:
    try:
        declared = ports(config())
    except (TypeError, ValueError):
        return "ports: they depend on the parameters (some have no default)"
    lines: list[str] = []
    inlets: list[InletSpec] = list(declared.inlets)
    if inlets:
        rows = []
        for p in inlets:
            flags = ["required" if p.required else "optional"]
            flags.append("feedback, unbounded" if p.feedback else f"mailbox {p.capacity}, {p.overflow.value}")
            rows.append([p.name, p.type_names, _format(p), ", ".join(flags)])
        lines += ["inlets:", *_table(rows)]
    outlets: list[OutletSpec] = list(declared.outlets)
    if outlets:
        lines += ["outlets:", *_table([[p.name, p.type_names, _format(p)] for p in outlets])]
    return "\n".join(lines or ["ports: none"]) + "\n(ports as declared with the default parameters)"


def _type_name(tp: Any) -> str:
    if isinstance(tp, type):
        return tp.__name__
    return re.sub(r"\b(?:\w+\.)+(\w+)", r"\1", str(tp))  # mediagraph._slot.ChildSpec | None -> ChildSpec | None


def _default(value: Any) -> str:
    if isinstance(value, PurePath):
        return repr(str(value))
    if isinstance(value, enum.Enum):
        return repr(value.value)
    return repr(value)


def _param_docs(config: type) -> dict[str, str]:
    """Parameter descriptions from the config's docstring (``Args:`` then ``name: text`` lines)."""
    docs: dict[str, str] = {}
    current: str | None = None
    in_args = False
    for line in (config.__doc__ or "").splitlines():
        text = line.strip()
        if text == "Args:":
            in_args = True
            continue
        match = re.match(r"(\w+):\s*(.*)", text)
        if in_args and match:
            current = match.group(1)
            docs[current] = match.group(2)
        elif in_args and current and text:
            docs[current] += " " + text
    return docs


def _params(config: type) -> str:
    attrs.resolve_types(config)
    fields = [f for f in attrs.fields(config) if f.init]
    if not fields:
        return "parameters: none"
    docs = _param_docs(config)
    rows = []
    for f in fields:
        if f.default is attrs.NOTHING:
            default = "(required)"
        elif isinstance(f.default, attrs.Factory):  # type: ignore[arg-type]
            default = "(computed)"
        else:
            default = f"default {_default(f.default)}"
        rows.append([f.name, _type_name(f.type), default, docs.get(f.name, "")])
    return "parameters:\n" + "\n".join(_table(rows))


# --- run -------------------------------------------------------------------------------------------------


def _run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    gf = load_graph(args.file, overrides=args.set, output_dirs=args.output_dirs)
    virtual = args.clock == "virtual"
    if virtual:
        check_devices(gf)
    events: IO[str] | None = None
    if args.events is not None:
        try:  # line-buffered: every event reaches the file as it happens, so a killed run keeps its log
            events = open(args.events, "w", encoding="utf-8", buffering=1)  # noqa: SIM115 - closed below
            events = scrubbed(events, gf.secrets)
        except OSError as exc:
            _error(f"mediagraph: error: cannot write the events file {args.events}: {exc.strerror}")
            return EXIT_ERROR
    try:
        live = not virtual and sys.stderr.isatty()
        stderr = scrubbed(sys.stderr, gf.secrets)
        display: _Display = _LiveStatus(stderr) if live else _PlainLog(stderr)
        run = functools.partial(_run_graph, gf, duration=args.duration, events=events, display=display)
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
        if events is not None:
            events.close()


class _Display(Protocol):
    def on_event(self, event: Event) -> None: ...

    async def run(self, running: RunningGraph) -> None: ...

    def close(self) -> None: ...


@attrs.define
class _Stopping:
    signal: int | None = None


async def _run_graph(gf: GraphFile, *, duration: float | None, events: IO[str] | None, display: _Display) -> int:
    log = EventLog()
    if events is not None:
        log.listen(functools.partial(_write_event, events))
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
                running = await runtime.start(gf.graph, log=log)
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


def _write_event(stream: IO[str], event: Event) -> None:
    stream.write(json.dumps(event.to_json(), default=str) + "\n")


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


def _describe(e: Event) -> str:
    """One human line for an event."""
    f = e.fields
    match e.event:
        case "graph_started":
            return f"graph {f.get('graph')!r} started"
        case "graph_finished":
            return f"graph {f.get('graph')!r} finished: {f.get('reason')}"
        case "node_started":
            return f"{e.node}: started"
        case "node_finished":
            error = f" ({f['error']})" if "error" in f else ""
            return f"{e.node}: finished: {f.get('reason')}{error}"
        case "node_restarted":
            return f"{e.node}: restarted (attempt {f.get('attempt')}) after {f.get('error')}"
        case "schedule_action":
            return f"schedule: {f.get('action')} (at {f.get('at')} s)"
        case "stop_requested":
            return f"stopping gracefully ({f.get('by')})"
        case "cancel_requested":
            return f"cancelling ({f.get('by')})"
        case event if event.endswith("_warning"):
            return f"{e.node or 'graph'}: warning: {f.get('message', '')}"
    details = " ".join(f"{k}={v}" for k, v in f.items())
    return f"{e.node or 'graph'}: {e.event} {details}".rstrip()


def _stamp(e: Event) -> str:
    return f"[{e.t:9.3f}s] {_describe(e)}"


#: Events too frequent for a line each on the terminal (several a second per sink); ``--events`` keeps them.
_QUIET_EVENTS = frozenset({"playback_progress"})


class _PlainLog:
    """A line on stderr per event (but the frequent ones): for logs, pipes, and the virtual clock."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream

    def on_event(self, event: Event) -> None:
        if event.event not in _QUIET_EVENTS:
            print(_stamp(event), file=self.stream, flush=True)

    async def run(self, running: RunningGraph) -> None:
        pass

    def close(self) -> None:
        pass


class _LiveStatus:
    """A status line per node, redrawn in place on a terminal; notable events print above it."""

    NOTABLE = frozenset(
        {"graph_finished", "node_restarted", "cleanup_timeout", "schedule_action", "stop_requested", "cancel_requested"}
    )  # and every *_warning event

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.running: RunningGraph | None = None
        self.drawn = 0
        self.seen: dict[str, tuple[float, int]] = {}
        self.rates: dict[str, float] = {}

    def on_event(self, event: Event) -> None:
        if event.event in self.NOTABLE or event.event.endswith("_warning") or event.fields.get("reason") == "failed":
            self.redraw(above=_stamp(event))

    async def run(self, running: RunningGraph) -> None:
        self.running = running
        while True:
            now = trio.current_time()
            for name, stats in running.statistics().items():
                frames = max(stats.frames_in, stats.frames_out)
                then, before = self.seen.get(name, (now, frames))
                if now > then:
                    self.rates[name] = (frames - before) / (now - then)
                self.seen[name] = (now, frames)
            self.redraw()
            await trio.sleep(STATUS_PERIOD)

    def close(self) -> None:
        self.rates.clear()
        self.redraw()

    def lines(self) -> list[str]:
        running = self.running
        if running is None:
            return []
        stats = running.statistics()
        width = max(map(len, stats), default=0)
        terminal = shutil.get_terminal_size()
        room = max(terminal.lines - 2, 2)
        lines = [f"graph {running.name!r}  t={trio.current_time() - running.t0:.2f}s"]
        for name, s in list(stats.items())[: room - 1]:
            rate = f"{self.rates[name]:8.1f}/s" if name in self.rates else " " * 10
            extra = (f"  dropped {s.dropped}" if s.dropped else "") + (f"  restarts {s.restarts}" if s.restarts else "")
            lines.append(
                f"  {name:<{width}}  {s.state:<8}  in {s.frames_in:>8}  out {s.frames_out:>8}  {rate}"
                f"  mailbox {s.queued}/{s.peak_mailbox}{extra}"
            )
        if len(stats) > room - 1:
            lines.append(f"  ... and {len(stats) - room + 1} more nodes")
        return [line[: terminal.columns - 1] for line in lines]  # a wrapped line would break the redraw

    def redraw(self, above: str | None = None) -> None:
        # Up to the first line of the block, clear to the end of the screen, then write it all in one go.
        out = f"\x1b[{self.drawn}F\x1b[J" if self.drawn else ""
        if above is not None:
            out += above + "\n"
        lines = self.lines()
        out += "".join(line + "\n" for line in lines)
        self.drawn = len(lines)
        self.stream.write(out)
        self.stream.flush()


if __name__ == "__main__":
    sys.exit(main())
