"""Opening a session pool, and running a list of sessions from synchronous code."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Literal

import trio

from ._errors import PoolError, SessionError
from ._local import LocalEngine
from ._pool import Engine, Pool
from ._spec import SessionResult, SessionSpec

__all__ = ["open_pool", "run_sessions"]


@asynccontextmanager
async def open_pool(
    engine: Literal["local", "ray"] = "local",
    *,
    processes: int | None = None,
    sessions_per_worker: int | None = None,
    clock: Literal["real", "virtual"] = "real",
    address: str | None = None,
    cpus_per_session: float = 1.0,
    command_timeout: float = 30.0,
    history: int = 1000,
    buffer: int = 10_000,
) -> AsyncIterator[Pool]:
    """A pool of sessions, on local worker processes (the default) or on Ray.

    Args:
        engine: ``"local"``: ``processes`` worker processes on this machine (default: one per core), each one
            trio run hosting many sessions; ``"ray"``: each session a Ray actor (``pip install mediagraph[ray]``),
            on a local Ray of ``processes`` CPUs (default: all) unless ``address`` names a cluster.
        sessions_per_worker: local: the most sessions one worker runs at once; more wait, in order, for room
            (a batch wants 1); ``None``: no limit, sessions go to the least loaded worker.
        clock: ``"virtual"`` runs every worker on the virtual clock (``mediagraph run --clock virtual``): a
            batch of files as fast as the CPU goes. Time then passes whenever a worker is idle, so commands
            land at no particular graph time: for batches, not for live sessions. Graphs holding a real
            device are refused.
        address: ray: the cluster to connect to (``"auto"``, ``"ray://host:10001"``); ``None`` starts a
            local Ray for the life of the pool (or uses the one this process already joined).
        cpus_per_session: ray: the CPUs each session's actor reserves (fractions allowed: ``0.1``).
        command_timeout: seconds ``stop``, ``cancel`` and ``interrupt`` wait for a worker's answer.
        history: events kept per session for a stream opened after they happened.
        buffer: events an event stream holds unread before it drops (and counts) what comes next.

    Resource handling: the pool owns its workers. Leaving the block stops every live session (they drain
    for up to 10 s), cancels those still running (10 s more), closes the workers and reaps them; leaving it
    by an exception (Ctrl-C included) skips the draining. No worker process outlives the block.

    Raises:
        PoolError: the engine is unknown or not installed, a worker could not start, or, at a normal exit,
            sessions failed and nobody asked for their result (the message lists them).
    """
    if engine not in ("local", "ray"):
        raise PoolError(f"engine must be 'local' or 'ray', got {engine!r}")
    if clock not in ("real", "virtual"):
        raise PoolError(f"clock must be 'real' or 'virtual', got {clock!r}")
    pool = Pool(command_timeout=command_timeout, history=history, buffer=buffer, capacity=sessions_per_worker)
    chosen: Engine
    if engine == "local":
        chosen = LocalEngine(pool, processes=processes or os.cpu_count() or 1, clock=clock)
    else:
        from ._ray import RayEngine  # ray is imported here only, and only when asked for

        chosen = RayEngine(pool, address=address, clock=clock, cpus_per_session=cpus_per_session, num_cpus=processes)
    pool.engine = chosen
    graceful = True
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(chosen.run)
            nursery.start_soon(pool.timer)
            try:
                yield pool
            except BaseException:
                graceful = False
                raise
            finally:
                with trio.CancelScope(shield=True):
                    await pool.shutdown(drain=graceful)
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        raise _single(group) from None
    failures = pool.table.unobserved_failures()
    if failures:
        listed = "; ".join(str(f) for f in failures[:5]) + (
            f"; and {len(failures) - 5} more" if len(failures) > 5 else ""
        )
        raise PoolError(f"{len(failures)} session(s) failed and nobody asked for their result: {listed}")


def _single(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The one exception inside nested groups of one (the block's own, a worker that could not start)."""
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def run_sessions(
    specs: Sequence[SessionSpec], engine: Literal["local", "ray"] = "local", **options: object
) -> list[SessionResult | SessionError]:
    """Run sessions to their ends from synchronous code (a script); each one's result or error, in order.

    Args:
        options: as :func:`open_pool` takes them.

    Raises:
        PoolError: as :func:`open_pool` (a failure here is returned, so it counts as asked for).
    """

    async def main() -> list[SessionResult | SessionError]:
        results: list[SessionResult | SessionError | None] = [None] * len(specs)
        async with open_pool(engine, **options) as pool:  # type: ignore[arg-type]

            async def one(i: int, spec: SessionSpec) -> None:
                try:
                    session = await pool.start(spec)
                    results[i] = await pool.result(session)
                except SessionError as exc:
                    results[i] = exc

            async with trio.open_nursery() as nursery:
                for i, spec in enumerate(specs):
                    nursery.start_soon(one, i, spec)
        return [r for r in results if r is not None]

    return trio.run(main)
