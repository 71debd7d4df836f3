"""Running a batch's plan on a session pool (``mediagraph batch``).

Theory of operation. :func:`run_batch` starts the inputs' sessions on a pool, at most ``parallel`` at a time,
in input order, and records each one's result or failure as it comes (``on_update`` is told); a failure does
not stop the others unless ``fail_fast`` (then those running are cancelled, and they and the rest are marked
skipped). The plan (:mod:`._batch_plan`) has already failed the inputs whose graph did not load.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import trio

from ._batch_plan import BatchItem, BatchPlan
from ._errors import SessionError

if TYPE_CHECKING:
    from ._pool import Pool

__all__ = ["run_batch"]


async def run_batch(
    pool: Pool,
    plan: BatchPlan,
    *,
    parallel: int,
    fail_fast: bool = False,
    on_update: Callable[[BatchItem], None] = lambda item: None,
) -> BatchPlan:
    """Run the plan's sessions on ``pool``, at most ``parallel`` at a time; every item ends ``ok``, ``failed``
    or ``skipped``. Returns the plan (its items updated)."""
    limit = trio.Semaphore(max(1, parallel))
    failed = trio.Event()
    for item in plan.items:
        if item.done:
            on_update(item)
            if item.state == "failed":
                failed.set()
    async with trio.open_nursery() as nursery:
        for item in plan.items:
            if item.done:
                continue
            await limit.acquire()
            if fail_fast and failed.is_set():
                limit.release()
                break
            nursery.start_soon(_run_item, pool, item, limit, failed, fail_fast, on_update)
    for item in plan.items:
        if not item.done:
            item.state = "skipped"
            on_update(item)
    return plan


async def _run_item(
    pool: Pool,
    item: BatchItem,
    limit: trio.Semaphore,
    failed: trio.Event,
    fail_fast: bool,
    on_update: Callable[[BatchItem], None],
) -> None:
    assert item.spec is not None
    began = time.monotonic()
    scope = trio.CancelScope()
    try:
        with scope:
            if fail_fast and failed.is_set():
                return
            item.state = "running"
            on_update(item)
            item.session = await pool.start(item.spec)
            async with trio.open_nursery() as watch:
                if fail_fast:  # another input failed: this one is cancelled, and marked skipped
                    watch.start_soon(_cancel_when, failed, scope)
                item.result = await pool.result(item.session)
                watch.cancel_scope.cancel()
            item.state = "ok"
    except SessionError as exc:
        item.state, item.error = "failed", exc.detail
        failed.set()
    finally:
        limit.release()
        item.seconds = time.monotonic() - began
        if scope.cancelled_caught and item.session is not None:
            with trio.CancelScope(shield=True), trio.move_on_after(5), contextlib.suppress(SessionError):
                await pool.cancel(item.session)
                await pool.result(item.session)  # observed: the pool does not report it again at exit
        if item.done:
            on_update(item)


async def _cancel_when(event: trio.Event, scope: trio.CancelScope) -> None:
    await event.wait()
    scope.cancel()
