"""The event log: every lifecycle (and later playback and swap) event, in one total order."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, final

import attrs

__all__ = ["Event", "EventLog"]


@final
@attrs.frozen(kw_only=True)
class Event:
    """One entry: ``seq`` (0, 1, 2... in the order things happened), ``t`` (graph clock seconds),
    ``node`` (``None`` for graph-level events), ``event`` (its kind) and the kind's own ``fields``."""

    seq: int
    t: float
    node: str | None
    event: str
    fields: dict[str, Any] = attrs.field(factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "t": round(self.t, 9), "node": self.node, "event": self.event, **self.fields}


@final
class EventLog:
    """An append-only log. Listeners (a JSON-lines writer, a status display) see each event as it is
    recorded; they run inside the runtime and must not block.

    Args:
        keep: hold every event (the default). ``False``: only number them and hand them to the listeners,
            for a long-lived session whose events are streamed elsewhere (a session pool's worker) and must
            not grow its memory; ``events`` then stays empty.
    """

    def __init__(self, *, keep: bool = True) -> None:
        self.events: list[Event] = []
        self._keep = keep
        self._count = 0
        self._listeners: list[Callable[[Event], None]] = []

    def __repr__(self) -> str:
        return f"<EventLog {self._count} events{'' if self._keep else ' (not kept)'}>"

    def __iter__(self) -> Iterator[Event]:
        return iter(self.events)

    def __len__(self) -> int:
        return len(self.events)

    def record(self, t: float, node: str | None, event: str, **fields: Any) -> Event:
        entry = Event(seq=self._count, t=t, node=node, event=event, fields=fields)
        self._count += 1
        if self._keep:
            self.events.append(entry)
        for listener in self._listeners:
            listener(entry)
        return entry

    def listen(self, listener: Callable[[Event], None]) -> None:
        self._listeners.append(listener)

    def of(self, event: str | None = None, node: str | None = None) -> list[Event]:
        """The events of one kind and/or one node, in order."""
        return [e for e in self.events if (event is None or e.event == event) and (node is None or e.node == node)]

    def write_jsonl(self, target: str | Path | IO[str]) -> None:
        """Write every event so far as JSON lines."""
        if isinstance(target, (str, Path)):
            with open(target, "w", encoding="utf-8") as f:
                self.write_jsonl(f)
            return
        for e in self.events:
            target.write(json.dumps(e.to_json()) + "\n")
