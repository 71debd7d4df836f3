"""Event streams of a session pool: bounded, in order, counting what they drop (see :meth:`Pool.events`)."""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, final

import trio

from ._spec import SessionEvent

if TYPE_CHECKING:
    from ._pool import Pool

__all__ = ["EventStream", "dropped"]


@final
class EventStream:
    """Events of one session (or of every session) as they come; an async iterator and a context manager
    (leaving the ``with`` block stops the subscription). A session's stream ends once the session has ended
    and every event of it was delivered; the stream of every session ends when the pool closes."""

    def __init__(self, pool: Pool, session: str | None, buffer: int) -> None:
        self._pool = pool
        self.session = session
        self._buffer: deque[SessionEvent] = deque()
        self._capacity = buffer
        self.dropped = 0
        self._pending_drops = 0
        self._ended = False
        self._wake = trio.Event()

    def __repr__(self) -> str:
        return f"<EventStream {self.session or 'all sessions'} {len(self._buffer)} queued, {self.dropped} dropped>"

    def put(self, event: SessionEvent) -> None:
        if self._ended:
            return
        if len(self._buffer) >= self._capacity:
            self.dropped += 1
            self._pending_drops += 1
            self._pool.count_dropped(event.session, 1)
            return
        if self._pending_drops:
            self._buffer.append(dropped(event, self._pending_drops))
            self._pending_drops = 0
        self._buffer.append(event)
        self._wake.set()

    def end(self) -> None:
        if self._pending_drops and not self._ended:  # the count goes last, past the bound by this one event
            self._buffer.append(dropped(self._buffer[-1], self._pending_drops) if self._buffer else self._marker())
            self._pending_drops = 0
        self._ended = True
        self._wake.set()

    def _marker(self) -> SessionEvent:
        return SessionEvent(
            session=self.session or "",
            attempt=0,
            seq=-1,
            time=0.0,
            node=None,
            event="events_dropped",
            fields={"count": self._pending_drops},
        )

    def close(self) -> None:
        self.end()
        self._pool.unsubscribe(self)

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> SessionEvent:
        while not self._buffer:
            if self._ended:
                self._pool.unsubscribe(self)
                raise StopAsyncIteration
            self._wake = trio.Event()
            await self._wake.wait()
        return self._buffer.popleft()


def dropped(before: SessionEvent, count: int) -> SessionEvent:
    return SessionEvent(
        session=before.session,
        attempt=before.attempt,
        seq=-1,
        time=before.time,
        node=None,
        event="events_dropped",
        fields={"count": count},
    )
