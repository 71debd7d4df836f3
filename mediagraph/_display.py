"""What a run shows while it runs: a line per event, or a live status per node on a terminal.

A :class:`Display` is told every event as the run records it and runs beside the graph until it ends:
:class:`PlainLog` writes a stamped line per event (for logs, pipes and the virtual clock), :class:`LiveStatus`
redraws a status line per node in place and prints the notable events above it. :func:`write_event` writes
the ``--events`` file (every event, as JSON lines).
"""

from __future__ import annotations

import json
import shutil
from typing import IO, Protocol, final

import trio

from ._events import Event
from ._runtime import RunningGraph

__all__ = [
    "QUIET_EVENTS",
    "STATUS_PERIOD",
    "Display",
    "LiveStatus",
    "PlainLog",
    "describe_event",
    "stamp",
    "write_event",
]

#: How often the live status is redrawn, in seconds.
STATUS_PERIOD = 0.25


class Display(Protocol):
    """What shows a run: told each event as it is recorded, and run beside the graph until it ends."""

    def on_event(self, event: Event) -> None: ...

    async def run(self, running: RunningGraph) -> None: ...

    def close(self) -> None: ...


def write_event(stream: IO[str], event: Event) -> None:
    """One event as a line of JSON (the ``--events`` file)."""
    stream.write(json.dumps(event.to_json(), default=str) + "\n")


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
            return f"schedule: {f.get('action')} (at {f.get('at')} s)"
        case "stop_requested":
            return f"stopping gracefully ({f.get('by')})"
        case "cancel_requested":
            return f"cancelling ({f.get('by')})"
        case event if event.endswith("_warning"):
            return f"{e.node or 'graph'}: warning: {f.get('message', '')}"
    details = " ".join(f"{k}={v}" for k, v in f.items())
    return f"{e.node or 'graph'}: {e.event} {details}".rstrip()


def stamp(e: Event) -> str:
    return f"[{e.t:9.3f}s] {describe_event(e)}"


#: Events too frequent for a line each on the terminal (several a second per sink); ``--events`` keeps them.
QUIET_EVENTS = frozenset({"playback_progress", "words_released", "video_out"})


@final
class PlainLog:
    """A line on stderr per event (but the frequent ones): for logs, pipes, and the virtual clock."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream

    def on_event(self, event: Event) -> None:
        if event.event not in QUIET_EVENTS:
            print(stamp(event), file=self.stream, flush=True)

    async def run(self, running: RunningGraph) -> None:
        pass

    def close(self) -> None:
        pass


@final
class LiveStatus:
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
            self.redraw(above=stamp(event))

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
