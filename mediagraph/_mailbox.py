"""Bounded mailboxes on ``trio.lowlevel``: FIFO, exactly once, one consumer wake-up per batch.

Theory of operation. ``put`` is synchronous: it appends, applies the overflow policy, and reschedules the
parked consumer if there is one. Blocking happens *before* a send, in :func:`wait_room`, so a chain of
synchronous transforms can run inside its sender's task and still get backpressure from the first mailbox
beyond it. A transform that turns one message into several may overshoot a blocking mailbox by that
expansion, never more, and every later send waits until the mailbox is below capacity again.
The consumer takes everything queued in one ``receive_batch`` and senders waiting for room are woken then.

After the end (every link closed, everything received) a consumer reads on only if it asks to, with
``receive_after_end``: what is put then (an ``Interrupt`` from the graph's API or schedule) reaches it. Whoever
puts after the end asks :attr:`Mailbox.deliverable` first, so nothing is put where nobody will read it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Any, final

import trio

from ._errors import MailboxOverflowError
from ._ports import Overflow

__all__ = ["Mailbox", "has_room", "wait_room"]

_SUCCEEDED = trio.lowlevel.Abort.SUCCEEDED


@final
class Mailbox:
    """The queue behind one inlet of a node that has its own task."""

    __slots__ = (
        "_consumer",
        "_error",
        "_q",
        "_senders",
        "capacity",
        "closed",
        "dropped",
        "ended",
        "label",
        "listening",
        "open_links",
        "overflow",
        "peak",
    )

    def __init__(self, label: str, capacity: float, overflow: Overflow) -> None:
        self.label = label
        self.capacity = capacity
        self.overflow = overflow
        self._q: deque[Any] = deque()
        self._consumer: trio.lowlevel.Task | None = None
        self._senders: list[trio.lowlevel.Task] = []
        self._error: MailboxOverflowError | None = None
        self.open_links = 0
        self.closed = False  # the consumer is gone: puts are discarded and counted, senders never wait
        self.ended = False  # the consumer saw the end (or the inlet was never linked)
        self.listening = False  # the consumer reads what is put after the end (Inlet.after_end)
        self.dropped = 0
        self.peak = 0

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{self.open_links} links open"
        return f"<Mailbox {self.label} {len(self._q)}/{self.capacity} {self.overflow.value}, {state}>"

    def __len__(self) -> int:
        return len(self._q)

    @property
    def deliverable(self) -> bool:
        """Whether a message put now will be received: the consumer runs and has not seen the end, or reads
        on after it."""
        return not self.closed and (not self.ended or self.listening)

    @property
    def full(self) -> bool:
        return len(self._q) >= self.capacity

    def put(self, msg: Any) -> None:
        if self.closed:
            self.dropped += 1
            return
        q = self._q
        if len(q) >= self.capacity:
            if self.overflow is Overflow.DROP_OLDEST:
                q.popleft()
                self.dropped += 1
            elif self.overflow is Overflow.FAIL:
                self.dropped += 1
                if self._error is None:
                    self._error = MailboxOverflowError(
                        f"inlet {self.label}: mailbox full ({self.capacity} messages) and its policy is 'fail'"
                    )
                self._wake_consumer()
                return
        q.append(msg)
        if len(q) > self.peak:
            self.peak = len(q)
        if self._consumer is not None:
            task, self._consumer = self._consumer, None
            trio.lowlevel.reschedule(task)

    def close_link(self) -> None:
        """One producer link ended; the inlet ends when the last one does and the queue is empty."""
        self.open_links -= 1
        if self.open_links == 0:
            self._wake_consumer()

    def close_consumer(self) -> None:
        """The consumer finished: drop what is queued (counted) and release every waiting sender."""
        self.closed = True
        self.dropped += len(self._q)
        self._q.clear()
        self._wake_senders()

    def _wake_consumer(self) -> None:
        if self._consumer is not None:
            task, self._consumer = self._consumer, None
            trio.lowlevel.reschedule(task)

    def _wake_senders(self) -> None:
        senders, self._senders = self._senders, []
        for task in senders:
            trio.lowlevel.reschedule(task)

    async def receive_batch(self) -> deque[Any]:
        """Everything queued, in order, waiting if there is nothing.

        Raises:
            trio.EndOfChannel: every link into the inlet has closed and everything was received.
            MailboxOverflowError: the inlet's policy is ``fail`` and a sender found it full.
        """
        while not self._q:
            if self._error is not None:
                raise self._error
            if self.open_links <= 0:
                self.ended = True
                raise trio.EndOfChannel
            await self._park_consumer()
        if self._error is not None:
            raise self._error
        batch, self._q = self._q, deque()
        if self._senders:
            self._wake_senders()
        return batch

    async def receive_after_end(self) -> deque[Any]:
        """After the end: what is put into the mailbox from now on (at least one message), waiting for it.
        The consumer sets :attr:`listening` while it reads this way (``Inlet.after_end``)."""
        while not self._q:
            await self._park_consumer()
        batch, self._q = self._q, deque()
        return batch

    async def _park_consumer(self) -> None:
        self._consumer = trio.lowlevel.current_task()

        def abort(_: Any) -> trio.lowlevel.Abort:
            self._consumer = None
            return _SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)

    async def _wait_for_room(self) -> None:
        task = trio.lowlevel.current_task()
        self._senders.append(task)

        def abort(_: Any) -> trio.lowlevel.Abort:
            self._senders.remove(task)
            return _SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)


def has_room(mailboxes: Iterable[Mailbox]) -> bool:
    """Whether every mailbox is below capacity (the synchronous check before :func:`wait_room`)."""
    for mb in mailboxes:  # noqa: SIM110 - a plain loop: no generator object on the hot path
        if len(mb._q) >= mb.capacity:
            return False
    return True


async def wait_room(mailboxes: Iterable[Mailbox]) -> bool:
    """Wait until every mailbox (all with the blocking policy) is below capacity.

    Returns:
        whether it had to wait (and so yielded to the scheduler).
    """
    waited = False
    while True:
        full = next((mb for mb in mailboxes if mb.full), None)
        if full is None:
            return waited
        waited = True
        await full._wait_for_room()
