"""Serving: N live sessions of one graph kept up on a session pool (``mediagraph serve``).

Theory of operation. :func:`serve` runs one keeper task per place: it starts a session of the spec, waits for
its end, and when it ended without failing (its graph completed, or something stopped it) starts another in
its place, until ``stopping`` is set; an ended session is forgotten by the pool once reported (a pool serving
for days stays bounded). A session that fails was already restarted by the pool as its spec's
:class:`~mediagraph.cluster.RestartPolicy` allows; its final failure is reported (``note``) and its place
stays empty (a graph that fails at once must not be started again and again). When ``stopping`` is set every
live session is stopped (drained); when ``cancelling`` is set too, cancelled. :class:`Watch` turns the
pool's status, looked at now and then, into lines about what changed (a session restarted, lost, failed).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, final

import attrs
import trio

from ._errors import SessionError
from ._spec import PoolStatus, SessionSpec

if TYPE_CHECKING:
    from ._pool import Pool

__all__ = ["ServeReport", "Watch", "serve"]


@final
@attrs.define
class ServeReport:
    """What a serve did: sessions started, ended without failing (and replaced), failed (their errors)."""

    started: int = 0
    ended: int = 0
    failures: list[str] = attrs.field(factory=list)
    live: dict[int, str] = attrs.field(factory=dict)  # place -> its session now


async def serve(
    pool: Pool,
    spec: SessionSpec,
    *,
    sessions: int,
    stopping: trio.Event,
    cancelling: trio.Event | None = None,
    note: Callable[[str], None] = lambda line: None,
    report: ServeReport | None = None,
) -> ServeReport:
    """Keep ``sessions`` sessions of ``spec`` up on ``pool`` until ``stopping`` is set or every place has
    failed; see the module doc. Returns once every session has ended."""
    report = report if report is not None else ServeReport()
    cancelling = cancelling if cancelling is not None else trio.Event()
    async with trio.open_nursery() as nursery:
        for place in range(sessions):
            nursery.start_soon(_keep, pool, spec, place, stopping, cancelling, note, report)
    return report


async def _keep(
    pool: Pool,
    spec: SessionSpec,
    place: int,
    stopping: trio.Event,
    cancelling: trio.Event,
    note: Callable[[str], None],
    report: ServeReport,
) -> None:
    while not stopping.is_set():
        try:
            session = await pool.start(spec)
        except SessionError as exc:
            report.failures.append(str(exc))
            note(f"{exc} (place {place} stays empty)")
            return
        report.started += 1
        report.live[place] = session
        async with trio.open_nursery() as ending:
            ending.start_soon(_end_when, pool, session, stopping, cancelling)
            try:
                result = await pool.result(session)
            except SessionError as exc:
                restarts = getattr(exc, "restarts", 0)
                failure = f"{exc} (after {restarts} restarts)" if restarts else str(exc)
                report.failures.append(failure)
                note(f"{failure} (place {place} stays empty)")
                return
            finally:
                del report.live[place]
                ending.cancel_scope.cancel()
                with contextlib.suppress(SessionError):  # ended and reported: a pool serving for days stays bounded
                    pool.forget(session)
        report.ended += 1
        if not stopping.is_set():
            note(f"session {session!r} {result.reason}; another takes its place")


async def _end_when(pool: Pool, session: str, stopping: trio.Event, cancelling: trio.Event) -> None:
    await stopping.wait()
    with contextlib.suppress(SessionError):  # it may have ended meanwhile
        await pool.stop(session)
    await cancelling.wait()
    with contextlib.suppress(SessionError):
        await pool.cancel(session)


@final
class Watch:
    """Lines about what changed between two looks at a pool's status: restarts, losses, failures."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple[str, int]] = {}  # session -> (state, restarts)

    def changes(self, status: PoolStatus) -> list[str]:
        lines = []
        seen, self._seen = self._seen, {}  # sessions the pool forgot are forgotten here too
        for s in status.sessions:
            before = seen.get(s.session)
            self._seen[s.session] = (s.state, s.restarts)
            if before is None:
                continue
            state, restarts = before
            if s.restarts > restarts:
                lines.append(f"session {s.session!r} restarted (restart {s.restarts}, attempt {s.attempt})")
            elif s.state != state and s.state in ("lost", "failed"):
                lines.append(f"session {s.session!r} {s.state} ({s.where})")
        return lines
