"""A node's inlet: the messages of its mailbox, in batches, until every link into it closed; and after that,
what the graph still puts into it (interrupts), for a node that asks (:meth:`Inlet.after_end`)."""

from __future__ import annotations

from collections import deque
from typing import Any, final

import trio

from ._mailbox import Mailbox
from ._statistics import InletStatistics

__all__ = ["AfterEnd", "Inlet"]


@final
class Inlet:
    """An inlet of a node with its own task: ``async for msg in inlet`` until every link into it closed.

    Messages are taken from the mailbox in batches; ``receive`` waits (and yields) only when none is left.
    After the end, :meth:`receive_after_end` reads what the graph puts into the inlet since (interrupts).
    """

    __slots__ = ("_box", "_buf", "mailbox", "name", "node")

    def __init__(self, node: str, name: str, mailbox: Mailbox) -> None:
        self.node = node
        self.name = name
        self.mailbox = mailbox if mailbox.open_links else None  # None: not linked, so already ended
        self._box = mailbox
        mailbox.listening = False  # this node has not asked to read after the end (yet)
        if self.mailbox is None:
            mailbox.ended = True
        self._buf: deque[Any] = deque()

    def __repr__(self) -> str:
        return f"<Inlet {self.name} {self.mailbox!r}>"

    @property
    def linked(self) -> bool:
        """Whether any link comes into this inlet (an unlinked inlet has already ended)."""
        return self.mailbox is not None

    @property
    def lag(self) -> int:
        """Messages the node is behind on this inlet: queued in the mailbox, or taken and not yet handled."""
        return len(self._buf) + (len(self.mailbox) if self.mailbox is not None else 0)

    def statistics(self) -> InletStatistics:
        mb = self.mailbox
        return InletStatistics(
            node=self.node,
            name=self.name,
            linked=mb is not None,
            capacity=mb.capacity if mb is not None else 0,
            queued=len(mb) if mb is not None else 0,
            taken=len(self._buf),
            lag=self.lag,
            peak=mb.peak if mb is not None else 0,
            dropped=mb.dropped if mb is not None else 0,
            ended=mb is None or mb.open_links == 0,
        )

    def give_back(self, batch: deque[Any]) -> None:
        """Put messages taken but not handled back in front, in order (the runner does this when a node's
        handling raised or was cancelled, so a restarted node finds them)."""
        self._buf.extendleft(reversed(batch))
        batch.clear()

    def drop_taken(self) -> None:
        """The node finished: what it took and never handled counts as dropped."""
        if self.mailbox is not None:
            self.mailbox.dropped += len(self._buf)
        self._buf.clear()

    async def receive_batch(self) -> deque[Any]:
        """Every message waiting (at least one), in order.

        Raises:
            trio.EndOfChannel: the inlet has ended.
            MailboxOverflowError: the inlet's policy is ``fail`` and it overflowed.
        """
        if self._buf:
            buf, self._buf = self._buf, deque()
            return buf
        if self.mailbox is None:
            raise trio.EndOfChannel
        return await self.mailbox.receive_batch()

    async def receive(self) -> Any:
        """The next message. Raises ``trio.EndOfChannel`` when the inlet has ended."""
        if not self._buf:
            self._buf = await self.receive_batch()
        return self._buf.popleft()

    def after_end(self) -> AfterEnd:
        """Once the inlet has ended (``async for`` is over), read what the graph puts into it since: an
        ``Interrupt`` from ``RunningGraph.interrupt`` or the schedule. A node that plays on after its input
        ended (a speaker draining its buffer) does, until it finishes::

            with inlet.after_end() as late:
                async for msg in late:  # until the node is done (cancelled)
                    ...

        so a barge-in then still reaches it. Outside that block an interrupt of the ended inlet is refused,
        never left where nobody reads it.
        """
        return AfterEnd(self._box)

    def __aiter__(self) -> Inlet:
        return self

    async def __anext__(self) -> Any:
        if not self._buf:
            try:
                self._buf = await self.receive_batch()
            except trio.EndOfChannel:
                raise StopAsyncIteration from None
        return self._buf.popleft()


@final
class AfterEnd:
    """Reading an ended inlet: see :meth:`Inlet.after_end`."""

    __slots__ = ("_box", "_buf")

    def __init__(self, box: Mailbox) -> None:
        self._box = box
        self._buf: deque[Any] = deque()

    def __enter__(self) -> AfterEnd:
        self._box.listening = True
        return self

    def __exit__(self, *exc: object) -> None:
        self._box.listening = False
        self._box.dropped += len(self._buf)  # accepted while the node listened; it finished before reading them
        self._buf.clear()

    async def receive(self) -> Any:
        """The next message put into the inlet, waiting for one."""
        if not self._buf:
            self._buf = await self._box.receive_after_end()
        return self._buf.popleft()

    def __aiter__(self) -> AfterEnd:
        return self

    async def __anext__(self) -> Any:
        return await self.receive()  # never ends: the node stops reading when it finishes (cancelled)
