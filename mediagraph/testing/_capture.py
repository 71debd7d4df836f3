"""Running a graph and capturing its event log and outcome, with an optional stop or cancel on schedule."""

from __future__ import annotations

import contextlib
from typing import final

import attrs
import trio

import mediagraph as mg

__all__ = ["Cancel", "Captured", "Schedule", "Stop", "capture"]


@final
@attrs.frozen(kw_only=True)
class Stop:
    """Stop the graph gracefully (``RunningGraph.stop``) at graph time ``at``, if it is still running."""

    at: float = attrs.field(validator=attrs.validators.ge(0))


@final
@attrs.frozen(kw_only=True)
class Cancel:
    """Cancel the graph (``RunningGraph.cancel``) at graph time ``at``, if it is still running."""

    at: float = attrs.field(validator=attrs.validators.ge(0))


Schedule = Stop | Cancel


@final
@attrs.frozen(kw_only=True)
class Captured:
    """How one run went.

    Args:
        log: every event recorded.
        result: the graph's result, ``None`` if it failed.
        error: the :class:`mediagraph.NodeFailedError` the run raised, ``None`` if it did not fail.
    """

    log: mg.EventLog
    result: mg.GraphResult | None
    error: mg.NodeFailedError | None

    @property
    def reason(self) -> str | None:
        """``graph_finished``'s reason (completed, stopped, cancelled, failed)."""
        ends = self.log.of("graph_finished")
        return ends[-1].fields.get("reason") if ends else None


async def capture(
    graph: mg.Graph,
    *,
    fuse: bool = True,
    pace: bool = True,
    schedule: Schedule | None = None,
) -> Captured:
    """Run ``graph`` to its end and capture what happened, a node failure included.

    Args:
        fuse, pace: as for :func:`mediagraph.run`.
        schedule: a :class:`Stop` or :class:`Cancel` to apply at a given graph time.

    Returns:
        the log and either the result or the failure.

    Raises:
        GraphDefinitionError: the graph is invalid; nothing ran.

    Cancellation: bound the run with ``trio.fail_after``; under ``MockClock(autojump_threshold=0)`` a graph
    that never ends (a node that hangs) otherwise waits forever for a deadline that never comes.
    """
    log = mg.EventLog()
    result: mg.GraphResult | None = None
    error: mg.NodeFailedError | None = None
    async with mg.open_runtime() as runtime:
        running = await runtime.start(graph, fuse=fuse, pace=pace, log=log)
        if schedule is not None:
            with trio.move_on_at(running.t0 + schedule.at), contextlib.suppress(mg.NodeFailedError):
                await running.wait()
            if isinstance(schedule, Stop):
                running.stop()
            else:
                running.cancel()
        try:
            result = await running.wait()
        except mg.NodeFailedError as exc:
            error = exc
    return Captured(log=log, result=result, error=error)
