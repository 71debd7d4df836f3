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
import math
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from . import __version__
from ._actions import action_types
from ._cli_batch import batch_command, serve_command
from ._cli_run import EXIT_ERROR, EXIT_OK, SIGNAL_EXIT, error, interrupted, start
from ._display import Verbosity, endless_sources
from ._draw import to_dot, to_mermaid
from ._errors import GraphDefinitionError, MediaGraphError
from ._inspect import describe, overview
from ._node import node_types, resource_types
from ._plugins import import_plugin
from ._sound import check_output, device_table, play_graph
from ._yaml import GraphFile, Override, load_graph

__all__ = ["command", "main"]

EXIT_USAGE = 2
DIAGRAMS = (".mmd", ".dot", ".svg", ".png")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status.

    Args:
        argv: the arguments (default: ``sys.argv[1:]``).
    """
    parser = _parser()
    if argv is None and "_ARGCOMPLETE" in os.environ:  # a shell asking for completions: answer, then exit
        import argcomplete

        argcomplete.autocomplete(parser)
    args = parser.parse_args(argv)
    try:
        for name in getattr(args, "plugins", ()):
            import_plugin(name, Path.cwd(), location=f"--plugin {name}")
        status: int = interrupted() or args.command(args, parser)
    except GraphDefinitionError as exc:
        error(str(exc) if exc.location else f"mediagraph: error: {exc}")
        return EXIT_ERROR
    except MediaGraphError as exc:
        error(f"mediagraph: error: {exc}")
        return EXIT_ERROR
    except KeyboardInterrupt:  # Ctrl-C before the graph started, when the signal guard is not installed
        error("mediagraph: interrupted (SIGINT) before the graph started")
        return SIGNAL_EXIT[signal.SIGINT]
    except BrokenPipeError:  # whoever read the output went away (`mediagraph nodes | head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing more to flush at exit
        return 128 + signal.SIGPIPE  # as a shell reports a process the pipe signal ended
    if args.command is _run:  # a signal once the graph ran is the run's business (it returned its status)
        return status
    return interrupted() or status


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


# --- arguments -------------------------------------------------------------------------------------------


def _override(text: str) -> Override:
    try:
        return Override.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _names(**_: object) -> list[str]:
    """What ``mediagraph nodes`` can describe, for shell completion."""
    return [*node_types(), *resource_types(), *action_types()]


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
        plugins(p)
        p.set_defaults(command=command)
        return p

    def plugins(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--plugin",
            metavar="MODULE",
            action="append",
            default=[],
            dest="plugins",
            help="import your own node types first: a .py file (relative to the current directory) or a module "
            "name (repeatable)",
        )

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
    draw.add_argument(
        "-o", "--output", metavar="OUT", type=Path, required=True, help="the diagram to write ('-': standard output)"
    )
    draw.add_argument(
        "--format",
        choices=[d[1:] for d in DIAGRAMS],
        help="the diagram's format (default: the output's extension; mmd on standard output)",
    )
    listing = "list the sound devices PortAudio sees (outputs and inputs, the defaults marked)"
    sub.add_parser("devices", help=listing, description=listing).set_defaults(command=_devices)
    play = sub.add_parser("play", help="play a media file (a recording, any file FFmpeg reads) on a sound device")
    play.add_argument("file", metavar="FILE", type=Path, help="the media file")
    play.add_argument("--duration", metavar="SECONDS", type=_seconds, help="stop after this many seconds")
    devices(play, inputs=False)
    verbosity(play)
    plugins(play)
    play.set_defaults(command=_play)
    nodes = sub.add_parser("nodes", help="list node and resource types, or describe one")
    described = nodes.add_argument("type", metavar="TYPE", nargs="?", help="a node or resource type to describe")
    described.completer = _names  # type: ignore[attr-defined]  # argcomplete's hook
    plugins(nodes)
    nodes.set_defaults(command=_nodes)
    _pool_commands(sub, output_dirs)
    return parser


def _pool_commands(sub: Any, output_dirs: Callable[[argparse.ArgumentParser], None]) -> None:
    """``batch`` and ``serve``: a graph on a session pool (``mediagraph.cluster``)."""
    text = "run a graph once per input file, on every core (local worker processes) or on a Ray cluster"
    batch = sub.add_parser("batch", help=text, description=text)
    batch.add_argument("file", metavar="FILE", type=Path, help="the graph file (YAML)")
    batch.add_argument(
        "--over",
        metavar="GLOB",
        action="append",
        required=True,
        help="the input files ('recordings/*.wav', '**' for subfolders; repeatable)",
    )
    batch.add_argument(
        "--set",
        metavar="NODE.PARAM=VALUE",
        action="append",
        default=[],
        help="override a node parameter; in VALUE, {file} {stem} {name} {dir} {index} are the input's (the value is "
        "then a string): --set mic.path={file} --set rec.path=out/{stem}.ogg (repeatable)",
    )
    batch.add_argument("--parallel", metavar="N", type=_count, help="inputs running at once (default: --processes)")
    batch.add_argument("--fail-fast", action="store_true", help="at the first failed input, cancel the rest")
    batch.add_argument("--retries", metavar="N", type=int, default=0, help="run a failed input again up to N times")
    batch.add_argument("--duration", metavar="SECONDS", type=_seconds, help="stop each input's run after this long")
    batch.add_argument(
        "--clock",
        choices=("real", "virtual"),
        default="virtual",
        help="virtual (the default): each graph as fast as the CPU goes; real: paced sources in real time",
    )
    text = "keep N sessions of a graph running, restarted by their policy, with the pool's load shown"
    serve = sub.add_parser("serve", help=text, description=text)
    serve.add_argument("file", metavar="FILE", type=Path, help="the graph file (YAML)")
    serve.add_argument("--sessions", metavar="N", type=_count, default=1, help="how many sessions (default 1)")
    serve.add_argument(
        "--set", metavar="NODE.PARAM=VALUE", action="append", default=[], help="override a node parameter"
    )
    serve.add_argument(
        "--restart",
        choices=("never", "on-failure"),
        default="on-failure",
        help="what to do when a session fails (default on-failure: start it again, up to --max-restarts)",
    )
    serve.add_argument("--max-restarts", metavar="N", type=int, default=3, help="restarts per session (default 3)")
    serve.add_argument("--backoff", metavar="SECONDS", type=float, default=1.0, help="first restart delay, doubling")
    serve.add_argument("--duration", metavar="SECONDS", type=_seconds, help="stop every session after this long")
    serve.add_argument("--clock", choices=("real", "virtual"), default="real", help=argparse.SUPPRESS)
    for p in (batch, serve):
        p.add_argument("--engine", choices=("local", "ray"), default="local", help="where sessions run (default local)")
        p.add_argument(
            "--address", metavar="ADDR", help="ray: the cluster ('auto', 'ray://host:10001'); default a local one"
        )
        p.add_argument("--processes", metavar="N", type=_count, help="local: worker processes (default: one per core)")
        p.add_argument("-q", "--quiet", action="store_true", help="show only failures and the end")
        output_dirs(p)
    batch.set_defaults(command=batch_command)
    serve.set_defaults(command=serve_command)


def _count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return int(text)


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
    endless = endless_sources(g)
    if endless and not any(item.name == "stop" for item in gf.schedule):
        named = ", ".join(f"{name!r} ({g.nodes[name].type.name})" for name in endless)
        error(
            f"{args.file}: warning: the graph never ends on its own ({named} "
            f"{'never ends' if len(endless) == 1 else 'never end'}): stop it with Ctrl-C, "
            "--duration SECONDS or a stop action in its schedule"
        )
    return EXIT_OK


def _draw(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    out: Path = args.output
    stdout = str(out) == "-"
    suffix = f".{args.format}" if args.format else (".mmd" if stdout else out.suffix.lower())
    if suffix not in DIAGRAMS:
        parser.error(f"cannot draw {str(out)!r}: the output must end with {', '.join(DIAGRAMS)} (or give --format)")
    gf = load_graph(args.file, overrides=args.set, import_code=args.import_plugins, devices=_devices_of(args))
    if suffix == ".mmd":
        return _write(out, to_mermaid(gf.graph, gf.schedule))
    dot_text = to_dot(gf.graph, gf.schedule)
    if suffix == ".dot":
        return _write(out, dot_text)
    dot = shutil.which("dot")
    if dot is None:
        error(
            f"mediagraph: error: writing {suffix} needs Graphviz's 'dot' program, which is not installed; "
            "install Graphviz, or draw to a .dot or .mmd file"
        )
        return EXIT_ERROR
    target = [] if stdout else ["-o", str(out)]
    done = subprocess.run([dot, f"-T{suffix[1:]}", *target], input=dot_text.encode(), capture_output=True, check=False)
    if done.returncode != 0:
        error(f"mediagraph: error: dot failed ({done.returncode}): {done.stderr.decode(errors='replace').strip()}")
        return EXIT_ERROR
    if stdout:
        sys.stdout.buffer.write(done.stdout)
    return EXIT_OK


def _write(path: Path, text: str) -> int:
    if str(path) == "-":
        sys.stdout.write(text)
        return EXIT_OK
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        error(f"mediagraph: error: cannot write {path}: {exc.strerror}")
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
    check_output(device)
    gf = GraphFile(path=args.file, graph=graph, schedule=(), resources={}, locations={})
    return start(gf, clock="real", duration=args.duration, events_path=None, verbosity=args.verbosity)


def _run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    gf = load_graph(args.file, overrides=args.set, output_dirs=args.output_dirs, devices=_devices_of(args))
    return start(gf, clock=args.clock, duration=args.duration, events_path=args.events, verbosity=args.verbosity)


if __name__ == "__main__":
    sys.exit(main())
