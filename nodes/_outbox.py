"""An ordered outbox: what a node's reader tasks decide, sent by one task in the order it was decided.

Theory of operation. A node that reads several inlets in several tasks and asks one core about each message
must send what the core decides in the order the core decided it, or one reader waiting on a full outlet lets
another's later decisions overtake its own (and the order then changes from run to run). So a reader never
sends: :meth:`Outbox.put` waits for room, then asks the core and queues the answer with no checkpoint in
between, and one task, :meth:`Outbox.drain`, sends everything in order. The outbox is bounded: once
``limit`` items wait, the readers wait, so the outlets' backpressure reaches the inlets through it.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Iterable
from typing import Final, final

import trio

__all__ = ["LIMIT", "Outbox"]

#: Items decided and not yet sent above which the readers wait.
LIMIT: Final = 64


@final
class Outbox[T]:
    """Items in the order they were decided; one sender drains them."""

    def __init__(self, limit: int = LIMIT) -> None:
        self.limit = limit
        self._in, self._out = trio.open_memory_channel[T](math.inf)
        self._room = trio.lowlevel.ParkingLot()

    def __repr__(self) -> str:
        return f"<Outbox {self._out.statistics().current_buffer_used}/{self.limit}>"

    async def put(self, decide: Callable[[], Iterable[T]]) -> None:
        """Wait for room, then call ``decide`` and queue what it returns, in the same step."""
        while self._out.statistics().current_buffer_used >= self.limit:
            await self._room.park()
        for item in decide():
            self._in.send_nowait(item)

    def close(self) -> None:
        """Nothing more is put: :meth:`drain` returns once it has sent what is queued."""
        self._in.close()

    async def drain(self, send: Callable[[T], Awaitable[None]]) -> None:
        """Send every item, in order, with ``send`` (the node's one sender), until closed and empty."""
        async for item in self._out:
            if self._out.statistics().current_buffer_used < self.limit:
                self._room.unpark_all()
            await send(item)
        self._room.unpark_all()
