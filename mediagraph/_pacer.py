"""The graph clock's pacer: one task releases every clock-driven source that is due, like a timer wheel.

A source's own task hands itself over with :meth:`Pacer.hand_over` and sleeps; the pacer calls the source's
``produce`` synchronously each time it is due (so its fused chain runs in the pacer's task) and wakes the
source's task only when the source is exhausted, raised, or must wait for room in a mailbox. Thousands of
paced sources then cost one wake-up per clock tick, not one per frame each.

On Linux with trio's system clock the pacer sleeps on a ``timerfd``: it wakes at the due time to the
microsecond (trio's own timeouts are rounded up to whole milliseconds by ``epoll``) and without the
cancel scope and ``Cancelled`` exception a trio sleep costs. Elsewhere (and under ``MockClock``) it sleeps
with a trio deadline.
"""

from __future__ import annotations

import contextlib
import ctypes
import heapq
import math
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, Final, Protocol, final

import outcome
import trio

from ._mailbox import Mailbox

__all__ = ["Pacer"]


@final
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
#: time when nothing else fell due in the tick before it), plus the wake-up's own delay.
RESOLUTION: Final = 0.001


class _Alarm(Protocol):
    """Sleeps the pacer's task until a trio time; ``move`` (from any task) brings that time forward."""

    async def sleep_until(self, deadline: float) -> None: ...

    def move(self, deadline: float) -> None: ...

    def close(self) -> None: ...


@final
class _TrioAlarm:
    """A trio deadline: works with any clock; epoll rounds the sleep up to whole milliseconds.

    Timers before frames: awake, it lets one more scheduling pass go by before the round. Every task woken
    by the same clock jump (a scheduled action, a ``--duration`` stop, a node's ``sleep_until``) has then
    taken its first step, so an action at time T acts before the frames due at T: a stop at T ends the
    media at T exactly, not one frame later in half the runs. (On the timerfd no such order exists: trio
    wakes its own timers up to a millisecond late.)
    """

    def __init__(self) -> None:
        self._wake: trio.Event | None = None

    async def sleep_until(self, deadline: float) -> None:
        self._wake = trio.Event()
        with trio.move_on_at(deadline):
            await self._wake.wait()
        self._wake = None
        await trio.lowlevel.checkpoint()

    def move(self, deadline: float) -> None:
        if self._wake is not None:
            self._wake.set()

    def close(self) -> None:
        pass


@final
class _Timespec(ctypes.Structure):
    _fields_ = (("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long))


@final
class _Itimerspec(ctypes.Structure):
    _fields_ = (("it_interval", _Timespec), ("it_value", _Timespec))


_CLOCK_MONOTONIC: Final = 1
_TFD_TIMER_ABSTIME: Final = 1


@final
class _TimerfdAlarm:
    """A Linux ``timerfd`` on CLOCK_MONOTONIC, the clock under trio's ``SystemClock`` (``perf_counter``)."""

    def __init__(self, libc: ctypes.CDLL, offset: float) -> None:
        self._settime = libc.timerfd_settime
        self._offset = offset  # trio time minus CLOCK_MONOTONIC
        self._spec = _Itimerspec()
        self._fd: int = libc.timerfd_create(_CLOCK_MONOTONIC, os.O_NONBLOCK | os.O_CLOEXEC)
        if self._fd < 0:
            raise OSError(ctypes.get_errno(), "timerfd_create failed")

    def _arm(self, deadline: float) -> None:
        value = self._spec.it_value
        if deadline == math.inf:
            value.tv_sec = value.tv_nsec = 0  # disarmed
        else:
            # A zero it_value disarms the timer, so a deadline at or before the epoch is clamped to 1 ns.
            ns = max(math.ceil((deadline - self._offset) * 1e9), 1)
            value.tv_sec, value.tv_nsec = divmod(ns, 1_000_000_000)
        if self._settime(self._fd, _TFD_TIMER_ABSTIME, ctypes.byref(self._spec), None) != 0:
            raise OSError(ctypes.get_errno(), "timerfd_settime failed")

    async def sleep_until(self, deadline: float) -> None:
        self._arm(deadline)
        await trio.lowlevel.wait_readable(self._fd)
        # Moved (re-armed) after it fired and before this task ran: nothing to read.
        with contextlib.suppress(BlockingIOError):
            os.read(self._fd, 8)

    def move(self, deadline: float) -> None:
        self._arm(deadline)

    def close(self) -> None:
        os.close(self._fd)


def _alarm() -> _Alarm:
    """A timerfd alarm where trio's clock is the system clock on Linux, else a trio deadline."""
    clock = trio.lowlevel.current_clock()
    offset = getattr(clock, "offset", None)
    if sys.platform == "linux" and type(clock).__name__ == "SystemClock" and isinstance(offset, float):
        try:
            return _TimerfdAlarm(ctypes.CDLL(None, use_errno=True), offset)
        except (OSError, AttributeError):  # no timerfd in this libc or kernel
            pass
    return _TrioAlarm()


@final
class Pacer:
    """Runs in the runtime's nursery for as long as the runtime is open."""

    def __init__(self, resolution: float = RESOLUTION) -> None:
        self.resolution = resolution
        self._heap: list[tuple[float, int, _Entry]] = []
        self._seq = 0
        self._alarm: _Alarm | None = None
        self._deadline = math.inf  # when the sleeping pacer will wake up
        self._last = -math.inf  # when the last round ran
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
        if at < self._deadline and self._alarm is not None:
            self._deadline = max(at, self._last + self.resolution)
            self._alarm.move(self._deadline)

        def abort(_: Any) -> trio.lowlevel.Abort:
            entry.cancelled = True
            return trio.lowlevel.Abort.SUCCEEDED

        result: float | None = await trio.lowlevel.wait_task_rescheduled(abort)
        return result

    async def run(self) -> None:
        heap = self._heap
        self._alarm = alarm = _alarm()
        try:
            while True:
                now = trio.current_time()
                if heap and heap[0][0] <= now and now >= self._last + self.resolution:
                    self._last = now
                    due: list[_Entry] = []
                    while heap and heap[0][0] <= now:
                        due.append(heapq.heappop(heap)[2])
                    self.rounds += 1
                    for entry in due:
                        if not entry.cancelled:
                            self._step(entry)
                # Sleep until the earliest entry is due, but at least one tick after the last round. The sleep
                # is the loop's only checkpoint: a deadline already past (a round longer than a tick) wakes at
                # once, after the other runnable tasks.
                self._deadline = max(heap[0][0], self._last + self.resolution) if heap else math.inf
                await alarm.sleep_until(self._deadline)
                self._deadline = -math.inf  # awake: hand_over need not move the alarm
        finally:
            self._alarm = None
            alarm.close()

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
