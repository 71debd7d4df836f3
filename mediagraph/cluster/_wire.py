"""Frames between the pool and a worker process, and the worker's bounded way out.

A frame is a 4-byte big-endian length and a pickle (protocol 5) of a tuple whose first item names it:

pool -> worker: ``("launch", session, attempt, spec)``, ``("command", request, session, attempt, command)``;
the pool closing the pipe tells the worker to cancel what it runs and exit.

worker -> pool: ``("hello", pid)`` once, then ``("events", session, attempt, [(seq, t, node, event, fields),
...])`` (``seq == -1``, ``event == "events_dropped"`` marks a count of events dropped just before it),
``("started", session, attempt)``, ``("reply", request, error | None)`` and ``("finished", session, attempt,
outcome)``, in the order they happened.

Both ends are the pool's own processes, which is what makes unpickling their frames safe. :class:`Outbox`
is the worker's side of the way out: reports and replies are never dropped (there are as many as the pool's
calls); events are, past :data:`MAX_QUEUED_EVENTS` waiting for the pipe, and counted, and the count goes out
in their place before the next event (or the end) of that attempt.
"""

from __future__ import annotations

import pickle
import struct
from collections import deque
from typing import Any, Final, final

import trio

from .._events import Event
from ._host import plain
from ._spec import Completed, Failed

__all__ = ["CLOSE_TIMEOUT", "MAX_FRAME", "Decoder", "Outbox", "encode"]

HEADER: Final = struct.Struct("!I")
#: The largest frame either side accepts (a graph's text is at most a few MiB).
MAX_FRAME: Final = 64 << 20
#: Events a worker holds for a pool that does not read them fast enough, before it drops (and counts) them.
MAX_QUEUED_EVENTS: Final = 10_000
#: Seconds a closing worker gives its sessions' cleanup and its last reports before it exits anyway.
CLOSE_TIMEOUT: Final = 10.0
#: Events coalesced into one frame at most.
BATCH: Final = 500


def encode(message: tuple[Any, ...]) -> bytes:
    data = pickle.dumps(message, protocol=5)
    return HEADER.pack(len(data)) + data


@final
class Decoder:
    """Bytes in, whole messages out."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes | bytearray) -> list[tuple[Any, ...]]:
        """The messages completed by ``data``.

        Raises:
            ValueError: a frame announces more than :data:`MAX_FRAME` bytes (the stream is not ours).
        """
        self._buffer += data
        out: list[tuple[Any, ...]] = []
        while len(self._buffer) >= HEADER.size:
            (size,) = HEADER.unpack_from(self._buffer)
            if size > MAX_FRAME:
                raise ValueError(f"a frame of {size:,} bytes, more than the {MAX_FRAME:,} allowed")
            if len(self._buffer) < HEADER.size + size:
                break
            out.append(pickle.loads(self._buffer[HEADER.size : HEADER.size + size]))
            del self._buffer[: HEADER.size + size]
        return out


@final
class Outbox:
    """A worker's reports in order, written to the pool's pipe by :meth:`run` (see the module docstring)."""

    def __init__(self, stream: trio.abc.SendStream) -> None:
        self._stream = stream
        self._queue: deque[tuple[Any, ...]] = deque()
        self._events = 0  # events in the queue
        self._dropped: dict[tuple[str, int], int] = {}
        self._wake = trio.Event()
        self._idle = trio.Event()  # set whenever the writer has written everything queued
        self.closed = False

    def __repr__(self) -> str:
        return f"<Outbox {len(self._queue)} queued, {sum(self._dropped.values())} events dropped>"

    def _put(self, item: tuple[Any, ...]) -> None:
        self._queue.append(item)
        self._wake.set()

    def _flush_dropped(self, key: tuple[str, int], t: float) -> None:
        count = self._dropped.pop(key, 0)
        if count:
            self._events += 1
            self._put(("event", *key, (-1, t, None, "events_dropped", {"count": count})))

    def hello(self, pid: int) -> None:
        self._put(("hello", pid))

    def event(self, session: str, attempt: int, event: Event) -> None:
        key = (session, attempt)
        if self._events >= MAX_QUEUED_EVENTS:
            self._dropped[key] = self._dropped.get(key, 0) + 1
            return
        self._flush_dropped(key, event.t)
        self._events += 1
        self._put(("event", session, attempt, (event.seq, event.t, event.node, event.event, plain(event.fields))))

    def started(self, session: str, attempt: int) -> None:
        self._put(("started", session, attempt))

    def finished(self, session: str, attempt: int, outcome: Completed | Failed) -> None:
        self._flush_dropped((session, attempt), 0.0)
        self._put(("finished", session, attempt, outcome))

    def reply(self, request: int, error: str | None) -> None:
        self._put(("reply", request, error))

    async def wait_empty(self) -> None:
        """Wait until everything queued so far is written (or the pipe broke)."""
        while self._queue and not self.closed:
            self._idle = trio.Event()
            await self._idle.wait()

    async def run(self) -> None:
        """Write what is queued, coalescing consecutive events of one attempt into one frame, until the pipe
        breaks (the pool has gone: nothing more can be said)."""
        try:
            while True:
                if not self._queue:
                    self._idle.set()
                    self._wake = trio.Event()
                    await self._wake.wait()
                frames = bytearray()
                while self._queue and len(frames) < 1 << 20:
                    item = self._queue.popleft()
                    if item[0] != "event":
                        frames += encode(item)
                        continue
                    batch = [item[3]]
                    while len(batch) < BATCH and self._queue and self._queue[0][:3] == item[:3]:
                        batch.append(self._queue.popleft()[3])
                    self._events -= len(batch)
                    frames += encode(("events", item[1], item[2], batch))
                await self._stream.send_all(bytes(frames))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self.closed = True
            self._idle.set()
