"""What a run shows while it runs: a line per event, or a live status table on a terminal.

A :class:`Display` is told every event as the run records it and runs beside the graph until it ends.
:class:`PlainLog` writes a stamped line per event (for logs, pipes and the virtual clock) and, on the real
clock, a progress line every few seconds so a long run is never silent. :class:`LiveStatus` (a terminal; drawn
with ``rich``) keeps a table under the events that matter: the graph time against the total (and the time
left), and per node its state, messages in and out, rate, mailbox and the level of the audio it sends. How
much is shown is a :class:`Verbosity`. :func:`write_event` writes the ``--events`` stream (every event, as JSON
lines).

Numbers in event lines are rounded to the millisecond (``at=5.01``, not ``at=5.009999999999948``).
"""

from __future__ import annotations

import enum
import json
import math
import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from typing import IO, Any, Final, Protocol, final

import numpy as np
import trio
from rich.console import Console
from rich.live import Live
from rich.table import Table

from ._events import Event
from ._graph import Graph
from ._runtime import RunningGraph

__all__ = [
    "NOTABLE",
    "PROGRESS_PERIOD",
    "QUIET_EVENTS",
    "STATUS_PERIOD",
    "Display",
    "LiveStatus",
    "PlainLog",
    "Verbosity",
    "describe_event",
    "endless_sources",
    "expected_length",
    "levels",
    "stamp",
    "write_event",
]

#: How often the live status is redrawn, and a plain log says how far the run is, in seconds.
STATUS_PERIOD: Final = 0.25
PROGRESS_PERIOD: Final = 5.0

#: Events too frequent for a line each (several a second per sink); ``-v`` and ``--events`` show them.
QUIET_EVENTS: Final = frozenset({"playback_progress", "words_released", "video_out"})

#: The events a terminal's live status prints above its table (with every warning and failure).
NOTABLE: Final = frozenset(
    {
        "graph_finished",
        "node_restarted",
        "cleanup_timeout",
        "schedule_action",
        "schedule_action_failed",
        "stop_requested",
        "cancel_requested",
        "recording_started",
        "recording_finished",
        "file_sink_started",
        "file_sink_total",
        "file_sink_failed",
        "playback_started",
        "playback_finished",
        "swap_started",
        "swap_finished",
        "swap_failed",
        "interrupt_after_end",
        "mic_overrun",
        "sonic_session_opened",
        "sonic_session_closed",
        "sonic_barge_in",
    }
)


@final
class Verbosity(enum.IntEnum):
    """``-q``: failures, warnings and the end only; normal; ``-v``: every event."""

    QUIET = 0
    NORMAL = 1
    VERBOSE = 2


def _important(event: Event) -> bool:
    return event.event == "graph_finished" or event.event.endswith("_warning") or event.fields.get("reason") == "failed"


class Display(Protocol):
    """What shows a run: told each event as it is recorded, and run beside the graph until it ends."""

    def on_event(self, event: Event) -> None: ...

    async def run(self, running: RunningGraph) -> None: ...

    def close(self) -> None: ...


def write_event(stream: IO[str], event: Event) -> None:
    """One event as a line of JSON (the ``--events`` stream)."""
    stream.write(json.dumps(event.to_json(), default=str) + "\n")


def _value(value: Any) -> str:
    return str(round(value, 3)) if isinstance(value, float) and math.isfinite(value) else str(value)


def describe_event(e: Event) -> str:
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
            return f"schedule: {f.get('action')} (at {_value(f.get('at'))} s)"
        case "stop_requested":
            return f"stopping gracefully ({f.get('by')})"
        case "cancel_requested":
            return f"cancelling ({f.get('by')})"
        case event if event.endswith("_warning"):
            return f"{e.node or 'graph'}: warning: {f.get('message', '')}"
    details = " ".join(f"{k}={_value(v)}" for k, v in f.items())
    return f"{e.node or 'graph'}: {e.event} {details}".rstrip()


def stamp(e: Event) -> str:
    return f"[{e.t:9.3f}s] {describe_event(e)}"


def levels(running: RunningGraph) -> dict[str, dict[str, float]]:
    """Per node, per audio outlet: the peak level (dBFS) of the last frame it sent (a graph started with
    ``meter=True``)."""
    out: dict[str, dict[str, float]] = {}
    for name, node in running.nodes.items():
        for port, outlet in node.outlets.items():
            if outlet.last_audio is not None:
                peak = float(np.abs(outlet.last_audio.samples).max(initial=0))
                out.setdefault(name, {})[port] = 20 * math.log10(max(peak, 1.0) / 32768)
    return out


def expected_length(graph: Graph, duration: float | None, stops: Sequence[float] = ()) -> float | None:
    """How long a run of ``graph`` should last in graph seconds, if it can be told: ``duration`` or the first
    of ``stops`` (the schedule's stop actions), or sooner the longest of its sources, when every source's
    config says how long it plays (a ``media_seconds`` property: a tone's duration, a file's length; ``None``
    for endless)."""
    if stops:
        duration = min([*stops, *([duration] if duration is not None else [])])
    fed = {link.dst.node for link in graph.links}
    lengths = [getattr(spec.config, "media_seconds", None) for name, spec in graph.nodes.items() if name not in fed]
    known = [x for x in lengths if isinstance(x, int | float)]
    longest = max(known) if known and len(known) == len(lengths) else None
    if duration is None:
        return longest
    return duration if longest is None else min(duration, longest)


def endless_sources(graph: Graph) -> list[str]:
    """The sources whose config says they never end on their own (``media_seconds`` is ``None``: a tone with
    no duration, a looping file, a mic)."""
    fed = {link.dst.node for link in graph.links}
    return [
        name
        for name, spec in graph.nodes.items()
        if name not in fed and hasattr(spec.config, "media_seconds") and spec.config.media_seconds is None
    ]


def _progress(t: float, total: float | None) -> str:
    if total is None:
        return f"{t:.1f} s"
    done = min(t / total, 1.0) if total > 0 else 1.0
    return f"{t:.1f} s / {total:.1f} s ({done:.0%}), {max(total - t, 0):.1f} s left"


@final
class PlainLog:
    """A line per event (but the frequent ones), and a progress line every ``PROGRESS_PERIOD`` seconds.

    Args:
        stream: where the lines go (stderr).
        verbosity: how much is shown.
        total: the run's expected length in graph seconds, if known.
        progress: write the progress lines (the real clock; a virtual run is over in a blink).
    """

    def __init__(
        self,
        stream: IO[str],
        verbosity: Verbosity = Verbosity.NORMAL,
        total: float | None = None,
        progress: bool = True,
    ) -> None:
        self.stream = stream
        self.verbosity = verbosity
        self.total = total
        self.progress = progress

    def on_event(self, event: Event) -> None:
        if self.verbosity is Verbosity.VERBOSE or (
            event.event not in QUIET_EVENTS if self.verbosity is Verbosity.NORMAL else _important(event)
        ):
            print(stamp(event), file=self.stream, flush=True)

    async def run(self, running: RunningGraph) -> None:
        if not self.progress or self.verbosity is Verbosity.QUIET:
            return
        while True:
            await trio.sleep(PROGRESS_PERIOD)
            t = running.time()
            print(f"[{t:9.3f}s] progress: {_progress(t, self.total)}", file=self.stream, flush=True)

    def close(self) -> None:
        pass


@final
class LiveStatus:
    """A status table on a terminal, redrawn in place; the events that matter print above it.

    Args:
        stream: the terminal (stderr).
        verbosity: ``QUIET`` prints only failures, warnings and the end above the table; ``VERBOSE`` every event.
        total: the run's expected length in graph seconds, if known (the header then shows the time left).
        outputs: node name -> the file it writes, shown under the table.
    """

    def __init__(
        self,
        stream: IO[str],
        verbosity: Verbosity = Verbosity.NORMAL,
        total: float | None = None,
        outputs: Mapping[str, str] | None = None,
    ) -> None:
        self.console = Console(
            file=stream, highlight=False, force_terminal=True, width=_size().columns, height=_size().lines
        )
        self.verbosity = verbosity
        self.total = total
        self.outputs = dict(outputs or {})
        self.running: RunningGraph | None = None
        self.seen: dict[str, tuple[float, int]] = {}
        self.rates: dict[str, float] = {}
        self.live = Live(console=self.console, auto_refresh=False, transient=False, redirect_stderr=False)

    def on_event(self, event: Event) -> None:
        if event.event in ("recording_started", "file_sink_started") and event.node is not None:
            self.outputs[event.node] = str(event.fields.get("path"))
        shown = {
            Verbosity.QUIET: _important(event),
            Verbosity.NORMAL: event.event in NOTABLE or _important(event),
            Verbosity.VERBOSE: True,
        }[self.verbosity]
        if shown:
            self.console.print(stamp(event), markup=False, highlight=False, soft_wrap=True)  # the terminal wraps it

    async def run(self, running: RunningGraph) -> None:
        self.running = running
        self.live.start()
        while True:
            now = trio.current_time()
            for name, stats in running.statistics().items():
                frames = max(stats.frames_in, stats.frames_out)
                then, before = self.seen.get(name, (now, frames))
                if now > then:
                    self.rates[name] = (frames - before) / (now - then)
                self.seen[name] = (now, frames)
            self.live.update(self.table(), refresh=True)
            await trio.sleep(STATUS_PERIOD)

    def close(self) -> None:
        if self.running is not None:
            self.rates.clear()
            self.live.update(self.table(), refresh=True)
        self.live.stop()

    def table(self) -> Table:
        """The table, fitted to the terminal: no cell wraps; on a narrow one the level is a number only; on a
        short one the rows that do not fit become one "+N more" row, so the header and the files written show."""
        running = self.running
        assert running is not None
        width, height = self.console.width, self.console.height
        title = f"graph {running.name!r}  {_progress(running.time(), self.total)}"
        table = Table(title=title, title_justify="left", box=None, pad_edge=False, header_style="bold")
        widths = {"state": 9, "in": 5, "out": 5, "rate/s": 6, "mailbox": 5, "level": 7}  # the least each takes
        table.add_column("node", no_wrap=True, overflow="ellipsis", max_width=max(10, width // 3))
        for column, least in widths.items():
            table.add_column(
                column,
                justify="left" if column in ("state", "level") else "right",
                no_wrap=True,
                overflow="ellipsis",
                min_width=least,
            )
        meter = levels(running)
        bar = 10 if width >= 90 else 0
        stats = list(running.statistics().items())
        room = max(1, height - 4 - (2 if self.outputs else 0))  # title, header, caption, the cursor's line
        shown = stats if len(stats) <= room else stats[: room - 1]
        for name, s in shown:
            rate = f"{self.rates[name]:.1f}" if name in self.rates else ""
            state = s.state + (f" ({s.restarts} restarts)" if s.restarts else "")
            mailbox = f"{s.queued}/{s.peak_mailbox}" + (f" dropped {s.dropped}" if s.dropped else "")
            ports = meter.get(name, {})
            level = "  ".join(_meter(db, port if len(ports) > 1 else "", bar) for port, db in ports.items())
            table.add_row(name, state, str(s.frames_in), str(s.frames_out), rate, mailbox, level)
        if len(shown) < len(stats):
            table.add_row(f"+{len(stats) - len(shown)} more", "", "", "", "", "", "")
        if self.outputs:
            table.caption = "  ".join(f"{node} -> {path}" for node, path in self.outputs.items())
            table.caption_justify = "left"
        return table


def _size() -> os.terminal_size:
    """The size of the terminal stderr is (the stream the display writes to is wrapped: secrets masked)."""
    try:
        return os.get_terminal_size(sys.stderr.fileno())
    except (OSError, ValueError):
        return shutil.get_terminal_size()


def _meter(db: float, port: str = "", width: int = 10) -> str:
    """``-12 dB ███████░░░`` (from -60 dB to 0; the bar ``width`` characters, none for 0), after the port's
    name when given."""
    filled = max(0, min(width, round((db + 60) / 60 * width)))
    bar = " " + "█" * filled + "░" * (width - filled) if width else ""
    return (f"{port} " if port else "") + f"{max(db, -99):4.0f} dB" + bar
