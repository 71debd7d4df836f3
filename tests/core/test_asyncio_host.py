"""The asyncio host: calls cross to the loop thread and back in order, exceptions propagate as they are,
cancellation reaches the asyncio task (and a task that swallows it is abandoned within the bound), a session's
stray tasks are reaped, and closing joins the thread. On the real clock: the loop is a real thread."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import threading
from typing import Any

import pytest
import trio

import mediagraph as mg
from mediagraph import Reaped


@pytest.fixture
def loop() -> Any:
    host = mg.AsyncioLoop(cancel_timeout=0.2)
    yield host
    host.close()


async def test_calls_run_on_the_loop_thread_in_order_and_return_their_results(loop: mg.AsyncioLoop) -> None:
    seen: list[tuple[int, str]] = []

    async def record(i: int) -> int:
        await asyncio.sleep(0)
        seen.append((i, threading.current_thread().name))
        return i * 2

    assert [await loop.call(record, i) for i in range(5)] == [0, 2, 4, 6, 8]
    assert seen == [(i, "mediagraph-asyncio") for i in range(5)]


async def test_an_exception_propagates_as_it_is(loop: mg.AsyncioLoop) -> None:
    async def fail() -> None:
        raise KeyError("modelTimeoutException")

    with pytest.raises(KeyError, match="modelTimeoutException"):
        await loop.call(fail)


async def test_cancellation_reaches_the_asyncio_task(loop: mg.AsyncioLoop) -> None:
    started, cancelled = threading.Event(), threading.Event()

    async def forever() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async with trio.open_nursery() as nursery:

        async def call() -> None:
            await loop.call(forever)

        nursery.start_soon(call)
        await trio.to_thread.run_sync(started.wait)
        nursery.cancel_scope.cancel()
    assert cancelled.is_set() and loop.abandoned == 0


async def test_a_task_that_swallows_its_cancellation_is_abandoned_within_the_bound(loop: mg.AsyncioLoop) -> None:
    # As the SDK's input_stream.close() on a dead stream: it swallows one cancellation and goes on waiting.
    started, release = threading.Event(), asyncio.Event()

    async def stubborn() -> None:
        started.set()
        while True:
            with contextlib.suppress(asyncio.CancelledError):
                await release.wait()
                return

    with trio.move_on_after(5) as outer:  # the call returns (cancelled) long before this
        async with trio.open_nursery() as nursery:
            nursery.start_soon(loop.call, stubborn)
            await trio.to_thread.run_sync(started.wait)
            nursery.cancel_scope.cancel()
    assert not outer.cancelled_caught
    assert loop.abandoned == 1


async def test_a_session_s_stray_tasks_are_reaped_and_others_left(loop: mg.AsyncioLoop) -> None:
    # An SDK starts background tasks of its own; they inherit the session's tag.
    strays: list[asyncio.Task[None]] = []

    async def start_background() -> None:
        strays.append(asyncio.get_running_loop().create_task(asyncio.Event().wait()))  # type: ignore[arg-type]

    async def failing_background() -> None:
        async def boom() -> None:
            raise RuntimeError("credentials expired")

        strays.append(asyncio.get_running_loop().create_task(boom()))
        await asyncio.sleep(0)

    with loop.session("one"):
        await loop.call(start_background)
        await loop.call(failing_background)
    with loop.session("two"):
        await loop.call(start_background)
    reaped = await loop.reap("one")
    assert reaped == Reaped(left=0, errors=("RuntimeError: credentials expired",))
    assert [t.done() for t in strays] == [True, True, False]
    assert loop.errors == [], "the failed task's exception was retrieved, not reported as lost"
    assert await loop.reap("two") == Reaped(0, ()) and strays[2].cancelled()
    assert await loop.reap("two") == Reaped(0, ()), "a reaped session is forgotten"


async def test_closing_cancels_what_is_left_and_joins_the_thread() -> None:
    host = mg.AsyncioLoop(cancel_timeout=0.2)
    with host.session("s"):
        await host.call(asyncio.sleep, 0)
    threads = {t.name for t in threading.enumerate()}
    assert "mediagraph-asyncio" in threads
    host.close()
    host.close()  # idempotent
    assert "mediagraph-asyncio" not in {t.name for t in threading.enumerate()}
    with pytest.raises(mg.MediaGraphError, match="closed"):
        await host.call(asyncio.sleep, 0)


def test_the_asyncio_resource_type_is_registered_and_costs_nothing_until_opened() -> None:
    rt = mg.resource_types()["asyncio"]
    assert "asyncio event loop" in rt.summary
    before = {t.name for t in threading.enumerate()}
    config = rt.config(cancel_timeout=0.5)
    assert {t.name for t in threading.enumerate()} == before, "no thread until the resource is opened"
    host = rt.open(config)
    try:
        assert host.cancel_timeout == 0.5
    finally:
        host.close()
    with pytest.raises(ValueError, match="cancel_timeout"):
        rt.config(cancel_timeout=0)


def test_importing_mediagraph_does_not_import_asyncio() -> None:
    # (The node library's livekit.rtc imports it anyway; the runtime alone does not.)
    code = "import sys, mediagraph; print('asyncio' in sys.modules)"
    ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert ran.stdout.strip() == "False"


@contextlib.contextmanager
def foreign_loop(factory: Any = None) -> Any:
    """A running asyncio loop on a thread of its own that the test, not the host, owns (a job's loop)."""
    owner = asyncio.new_event_loop()
    owner.set_task_factory(factory)
    thread = threading.Thread(target=owner.run_forever, name="job-loop", daemon=True)
    thread.start()
    try:
        yield owner
    finally:
        owner.call_soon_threadsafe(owner.stop)
        thread.join(5)
        owner.close()


async def test_an_adopted_loop_hosts_calls_and_sessions_and_is_never_stopped() -> None:
    made: list[str] = []  # the owner's own task factory keeps making every task

    def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        made.append(getattr(coro, "__name__", "?"))
        return asyncio.Task(coro, loop=loop, **kwargs)

    with foreign_loop(factory) as owner:
        host = mg.AsyncioLoop.adopt(owner, cancel_timeout=0.2)
        assert "adopted" in repr(host)

        async def where() -> str:
            return threading.current_thread().name

        assert await host.call(where) == "job-loop"
        strays: list[asyncio.Task[None]] = []

        async def start_background() -> None:
            strays.append(asyncio.get_running_loop().create_task(asyncio.Event().wait()))  # type: ignore[arg-type]

        with host.session("graph"):
            await host.call(start_background)
        await host.call(start_background)  # no session: the owner's, left alone
        assert "wait" in made
        await trio.to_thread.run_sync(host.close)
        assert strays[0].cancelled() and not strays[1].done()
        assert owner.is_running() and not owner.is_closed(), "closing never stops a loop it does not own"
        assert owner.get_task_factory() is factory, "the owner's task factory is given back"
        with pytest.raises(mg.MediaGraphError, match="closed"):
            await host.call(where)
        owner.call_soon_threadsafe(strays[1].cancel)


def test_an_adopted_loop_closed_on_its_own_thread_never_blocks_it() -> None:
    async def job() -> tuple[bool, bool, float]:
        loop = asyncio.get_running_loop()
        host = mg.AsyncioLoop.adopt(loop, cancel_timeout=5)
        with host.session("graph"):
            stray = loop.create_task(asyncio.Event().wait())
        t0 = loop.time()
        finished = host.finish(asyncio.sleep, 10)  # would block the loop it waits on: not waited for
        host.close()
        took = loop.time() - t0
        await asyncio.sleep(0.05)
        return finished, stray.cancelled(), took

    finished, cancelled, took = asyncio.run(job())
    assert not finished and cancelled and took < 0.5
