"""The graph clock's pacer: one task releases every clock-driven source that is due, like a timer wheel.

A source's own task hands itself over with :meth:`Pacer.hand_over` and sleeps; the pacer calls the source's
``produce`` synchronously each time it is due (so its fused chain runs in the pacer's task) and wakes the
source's task only when the source is exhausted, raised, or must wait for room in a mailbox. Thousands of
paced sources then cost one wake-up per clock tick, not one per frame each.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Sequence
from typing import Any, Final

import outcome
import trio

from ._mailbox import Mailbox

__all__ = ["Pacer"]


class _Entry:
    __slots__ = ("cancelled", "produce", "reach", "t0", "task")

    def __init__(
        self, produce: Callable[[], float | None], reach: Sequence[Mailbox], t0: float, task: trio.lowlevel.Task
    ) -> None:
        self.produce = produce
        self.reach = reach
        self.t0 = t0
        self.task = task
        self.cancelled = False


#: The pacer's tick: rounds are at least this far apart, each releasing every source already due, so it
#: wakes at most 1/RESOLUTION times a second and a frame is never early and at most one tick late (exactly on
#: time when nothing else fell due in the tick before it).
RESOLUTION: Final = 0.001


class Pacer:
    """Runs in the runtime's nursery for as long as the runtime is open."""

    def __init__(self, resolution: float = RESOLUTION) -> None:
        self.resolution = resolution
        self._heap: list[tuple[float, int, _Entry]] = []
        self._seq = 0
        self._wake: trio.Event | None = None
        self._deadline = math.inf
        self.rounds = 0
        self.steps = 0

    def __repr__(self) -> str:
        return f"<Pacer {len(self._heap)} scheduled, {self.rounds} rounds, {self.steps} steps>"

    def _push(self, at: float, entry: _Entry) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (at, self._seq, entry))

    async def hand_over(
        self, produce: Callable[[], float | None], reach: Sequence[Mailbox], t0: float, at: float
    ) -> float | None:
        """Let the pacer call ``produce`` from time ``at`` (trio clock) on.

        Returns:
            ``None`` when the source is exhausted, or the trio time of its next call when one of the
            mailboxes in ``reach`` is full: the caller waits for room and hands over again.

        Raises:
            whatever ``produce`` raised.

        Cancellation: the source is withdrawn from the pacer and nothing more is produced.
        """
        entry = _Entry(produce, reach, t0, trio.lowlevel.current_task())
        self._push(at, entry)
        if at < self._deadline and self._wake is not None:
            self._wake.set()

        def abort(_: Any) -> trio.lowlevel.Abort:
            entry.cancelled = True
            return trio.lowlevel.Abort.SUCCEEDED

        result: float | None = await trio.lowlevel.wait_task_rescheduled(abort)
        return result

    async def run(self) -> None:
        heap = self._heap
        last = -math.inf  # when the last round ran
        while True:
            now = trio.current_time()
            if heap and heap[0][0] <= now and now >= last + self.resolution:
                last = now
                due: list[_Entry] = []
                while heap and heap[0][0] <= now:
                    due.append(heapq.heappop(heap)[2])
                self.rounds += 1
                for entry in due:
                    if not entry.cancelled:
                        self._step(entry)
                await trio.lowlevel.checkpoint()
                continue
            # Sleep until the earliest entry is due, but at least one tick after the last round.
            self._deadline = max(heap[0][0], last + self.resolution) if heap else math.inf
            self._wake = trio.Event()
            with trio.move_on_at(self._deadline):
                await self._wake.wait()
            self._wake = None

    def _step(self, entry: _Entry) -> None:
        self.steps += 1
        try:
            due = entry.produce()
        except BaseException as exc:  # handed to the source's own task, which reports it
            trio.lowlevel.reschedule(entry.task, outcome.Error(exc))
            return
        if due is None:
            trio.lowlevel.reschedule(entry.task, outcome.Value(None))
            return
        at = entry.t0 + due
        for mb in entry.reach:
            if mb.full:
                trio.lowlevel.reschedule(entry.task, outcome.Value(at))
                return
        self._push(at, entry)
