"""asyncio code inside a trio graph: one asyncio event loop in a thread of its own, for the nodes that need one.

SDKs written for asyncio (the AWS SDK behind Nova Sonic, ``livekit.rtc``'s rooms) run on that loop; node code
never does. The trio side owns every call, so the house's guarantees hold across the bridge:

- **Calls.** ``await loop.call(fn, *args)`` runs the coroutine ``fn(*args)`` on the loop and returns its result
  or raises its exception, as is, in the calling trio task. Nothing is fire-and-forget: a call's task is
  always awaited, one by one in the caller's order, so hand-off is ordered and bounded both ways (a node
  reading an SDK's output stream calls its ``receive`` in a loop: asyncio never pushes into trio unasked).
- **Cancellation reaches asyncio.** A cancelled call cancels its asyncio task, then waits for it, shielded, at
  most ``cancel_timeout`` seconds of real time; a task that outlives that (an SDK that swallows a
  cancellation) is abandoned and counted (``abandoned``), never waited for forever.
- **Sessions.** Code run under ``with loop.session(tag):`` tags every asyncio task it starts, directly or
  through an SDK's own background tasks (they inherit the context; the loop's task factory files each under
  its tag). ``await loop.reap(tag)`` cancels the session's stragglers and retrieves the exceptions of those
  that failed on their own, unawaited (an SDK that hangs in a call while its background task died of missing
  credentials): :class:`Reaped` says what they were and how many would not end.
- **Cost.** Nothing runs until a graph opens the ``asyncio`` resource (or code makes an ``AsyncioLoop``), and
  nothing imports asyncio before that (``_asyncio_config`` registers the resource type; ``mediagraph``
  imports this module on first use of ``mg.AsyncioLoop``). Closing cancels what is left, stops the loop and
  joins its thread (bounded).

- **Adopted loops.** ``AsyncioLoop.adopt(loop)`` hosts calls on a running loop someone else owns (a LiveKit
  Agents job's, whose room lives there): calls, sessions and reaping work the same (its task factory is chained,
  not replaced, and restored on close); closing only reaps what its sessions started, never stops the loop, and
  nothing blocks when closing on the loop's own thread.

Waits on the loop thread are real-time waits: on the virtual clock (``MockClock``) trio's clock may jump
while the thread works, so graphs hosting asyncio code are tested on the real clock.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, final

import attrs
import trio

from ._errors import MediaGraphError

__all__ = ["AsyncioLoop", "Reaped"]

_SESSION: contextvars.ContextVar[object | None] = contextvars.ContextVar("mediagraph_asyncio_session", default=None)


@final
@attrs.frozen
class Reaped:
    """What reaping a session found: ``left``, tasks that would not end when cancelled; ``errors``, the
    exceptions (``Type: message``) of the session's background tasks that had failed unawaited."""

    left: int
    errors: tuple[str, ...]


@final
class AsyncioLoop:
    """An asyncio event loop running in its own thread; see the module doc.

    Args:
        cancel_timeout: real seconds a cancelled call (or a reaped task) may take to end.
        name: the thread's name.

    Resource handling: :meth:`close` (idempotent) stops the loop and joins the thread; the ``asyncio``
    resource type closes it after the last node using it has finished.
    """

    def __init__(self, *, cancel_timeout: float = 1.0, name: str = "mediagraph-asyncio") -> None:
        self._setup(asyncio.new_event_loop(), cancel_timeout, owned=True)
        self._loop.set_exception_handler(self._on_loop_error)
        started = threading.Event()
        self._thread: threading.Thread | None = threading.Thread(
            target=self._run, args=(started,), name=name, daemon=True
        )
        self._thread.start()
        started.wait()

    @classmethod
    def adopt(cls, loop: asyncio.AbstractEventLoop, *, cancel_timeout: float = 1.0) -> AsyncioLoop:
        """Host calls on ``loop``, a running loop this object does not own (another thread's, or the one the
        caller runs on): :meth:`close` reaps what its sessions started and never stops or closes ``loop``.
        The loop's own exception handler is left alone; its task factory is chained (restored on close)."""
        host = cls.__new__(cls)
        host._setup(loop, cancel_timeout, owned=False)
        host._thread = None
        return host

    def _setup(self, loop: asyncio.AbstractEventLoop, cancel_timeout: float, *, owned: bool) -> None:
        self.cancel_timeout = cancel_timeout
        self.abandoned = 0  # tasks that did not end within cancel_timeout of being cancelled
        self.errors: list[str] = []  # what the loop reported that nobody retrieved (exception type: message)
        self.owned = owned
        self._loop = loop
        self._previous_factory = loop.get_task_factory()
        loop.set_task_factory(self._new_task)
        self._tagged: dict[object, set[asyncio.Task[Any]]] = {}  # on the loop thread only: background tasks
        self._closed = False

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(asyncio.all_tasks(self._loop))} tasks"
        adopted = "" if self.owned else " adopted"
        return f"<AsyncioLoop{adopted} {state}, abandoned={self.abandoned}>"

    def _run(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.call_soon(started.set)
        self._loop.run_forever()

    def _new_task(self, loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        """Every task of the loop: one of a session's is filed under its tag until it ends well (one that
        fails stays, for :meth:`reap` to retrieve its exception)."""
        task: asyncio.Task[Any]
        if self._previous_factory is not None:  # an adopted loop's own factory (its owner's tasks stay its)
            task = self._previous_factory(loop, coro, **kwargs)  # type: ignore[assignment]
        else:
            task = asyncio.Task(coro, loop=loop, **kwargs)
        tag = task.get_context().get(_SESSION)
        if tag is not None:
            tasks = self._tagged.setdefault(tag, set())
            tasks.add(task)
            task.add_done_callback(lambda t: None if not t.cancelled() and t.exception() else tasks.discard(t))
        return task

    def _on_loop_error(self, _loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        self.errors.append(f"{type(exc).__name__}: {exc}" if exc is not None else str(context.get("message")))

    # --- calls ----------------------------------------------------------------------------------------------

    async def call[T](self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """The result of the coroutine ``fn(*args)`` run on the loop (its exception, raised as is).

        Raises:
            MediaGraphError: the loop is closed.
        """
        if self._closed or self._loop.is_closed():
            raise MediaGraphError("the asyncio loop is closed")
        session = _SESSION.get()

        async def run() -> T:
            _SESSION.set(session)  # this task's context: inherited by every task it starts
            return await fn(*args)

        ended: concurrent.futures.Future[asyncio.Task[T]] = concurrent.futures.Future()
        tasks: list[asyncio.Task[T]] = []

        def start() -> None:  # on the loop
            task = self._loop.create_task(run())
            self._tagged.get(session, set()).discard(task)  # the caller awaits it: not a background task
            task.add_done_callback(ended.set_result)  # when the task has really ended, however
            tasks.append(task)

        self._loop.call_soon_threadsafe(start)
        try:
            await _wait(ended)
        except trio.Cancelled:
            self._loop.call_soon_threadsafe(lambda: tasks[0].cancel())  # after start(): the loop runs them in order
            if not await _bounded(ended, self.cancel_timeout):
                self.abandoned += 1
                if session is not None:  # reaping the session cancels it again
                    self._loop.call_soon_threadsafe(lambda: self._tagged.setdefault(session, set()).add(tasks[0]))
            raise
        return ended.result().result()

    @contextlib.contextmanager
    def session(self, tag: object) -> Iterator[None]:
        """Within the block, calls (and every task they start) are tagged ``tag``, for :meth:`reap`."""
        token = _SESSION.set(tag)
        try:
            yield
        finally:
            _SESSION.reset(token)

    async def reap(self, tag: object) -> Reaped:
        """Cancel the background tasks of session ``tag`` still on the loop (up to three times each,
        ``cancel_timeout`` in all) and retrieve the exceptions of those that failed; forget the session.
        Those that would not end are also counted in ``abandoned``.

        Raises:
            MediaGraphError: the loop itself did not answer in twice ``cancel_timeout`` (its thread is blocked).
        """
        if self._closed:
            return Reaped(0, ())
        future = asyncio.run_coroutine_threadsafe(self._reap(tag), self._loop)
        if not await _bounded(future, 2 * self.cancel_timeout):
            raise MediaGraphError(f"the asyncio loop did not answer within {2 * self.cancel_timeout} s")
        reaped: Reaped = future.result()
        self.abandoned += reaped.left
        return reaped

    async def _reap(self, tag: object) -> Reaped:  # on the loop
        tasks = self._tagged.pop(tag, set())
        left = await _cancel(list(tasks), self.cancel_timeout)
        errors = [t.exception() for t in tasks if t.done() and not t.cancelled()]
        return Reaped(left, tuple(f"{type(e).__name__}: {e}" for e in errors if e is not None))

    def finish(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> bool:
        """From synchronous code (a resource's ``close``): run the coroutine ``fn(*args)`` on the loop and wait
        for it, blocking, at most ``cancel_timeout`` seconds; whether it ended (its error, if any, is kept in
        ``errors``; one that does not end in time is cancelled and counted in ``abandoned``)."""
        if self._closed or self._loop.is_closed():
            return False

        async def run() -> Any:
            return await fn(*args)

        if self._on_loop_thread():  # an adopted loop's own thread: waiting here would block it for good
            self._loop.create_task(run()).add_done_callback(self._retrieve)
            return False

        future: concurrent.futures.Future[Any] = asyncio.run_coroutine_threadsafe(run(), self._loop)
        try:
            future.result(timeout=self.cancel_timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            self.abandoned += 1
            return False
        except Exception as exc:
            self.errors.append(f"{type(exc).__name__}: {exc}")
        return True

    def close(self) -> None:
        """Cancel every task left, stop the loop and join its thread (each bounded by ``cancel_timeout``).
        An adopted loop: cancel only the tasks its sessions started (bounded; not waited for on the loop's
        own thread), restore its task factory and leave it running."""
        if self._closed:
            return
        self._closed = True
        if not self.owned:
            self._release()
            return
        with contextlib.suppress(concurrent.futures.TimeoutError):
            left = asyncio.run_coroutine_threadsafe(_cancel_all(self.cancel_timeout), self._loop)
            self.abandoned += left.result(timeout=2 * self.cancel_timeout)
        self._loop.call_soon_threadsafe(self._loop.stop)
        assert self._thread is not None
        self._thread.join(self.cancel_timeout)
        if not self._thread.is_alive():
            self._loop.close()

    def _release(self) -> None:
        """Close an adopted loop: reap every session, give the loop its own task factory back."""
        if self._loop.is_closed():
            return

        async def release() -> int:
            tasks = [t for tagged in self._tagged.values() for t in tagged]
            self._tagged.clear()
            left = await _cancel(tasks, self.cancel_timeout)
            if self._loop.get_task_factory() == self._new_task:  # unless someone chained theirs on top of ours
                self._loop.set_task_factory(self._previous_factory)
            return left

        if self._on_loop_thread():
            self._loop.create_task(release()).add_done_callback(self._retrieve)
            return
        with contextlib.suppress(concurrent.futures.TimeoutError):
            self.abandoned += asyncio.run_coroutine_threadsafe(release(), self._loop).result(
                timeout=2 * self.cancel_timeout
            )

    def _on_loop_thread(self) -> bool:
        try:
            return asyncio.get_running_loop() is self._loop
        except RuntimeError:
            return False

    def _retrieve(self, task: asyncio.Task[Any]) -> None:
        """A task nobody awaits: keep its error in ``errors`` (asyncio then logs nothing)."""
        if not task.cancelled() and (exc := task.exception()) is not None:
            self.errors.append(f"{type(exc).__name__}: {exc}")


async def _wait(future: concurrent.futures.Future[Any]) -> None:
    """Until ``future`` is done, without blocking trio (its callback wakes the task through trio's token)."""
    token = trio.lowlevel.current_trio_token()
    done = trio.Event()

    def wake(_: object) -> None:
        with contextlib.suppress(trio.RunFinishedError):
            token.run_sync_soon(done.set)

    future.add_done_callback(wake)
    await done.wait()


async def _bounded(future: concurrent.futures.Future[Any], real_seconds: float) -> bool:
    """Wait (shielded) for ``future``, at most ``real_seconds`` of real time (not trio's clock, which may be
    virtual); whether it is done. The waiting thread is its own (not one of trio's default pool, which the rest
    of the graph may have filled), so the bound holds."""
    with trio.CancelScope(shield=True):
        limiter = trio.CapacityLimiter(1)
        await trio.to_thread.run_sync(concurrent.futures.wait, [future], real_seconds, limiter=limiter)
    return future.done()


async def _cancel_all(real_seconds: float) -> int:
    """On the loop: :func:`_cancel` every task but this one."""
    me = asyncio.current_task()
    return await _cancel([t for t in asyncio.all_tasks() if t is not me], real_seconds)


async def _cancel(found: list[asyncio.Task[Any]], real_seconds: float) -> int:
    """On the loop: cancel the tasks not done yet, up to three times within ``real_seconds``; retrieve every
    exception (asyncio then logs nothing about them); return how many are still running."""
    tasks = [t for t in found if not t.done()]
    for _ in range(3):
        if not tasks:
            break
        for t in tasks:
            t.cancel()
        await asyncio.wait(tasks, timeout=real_seconds / 3)
        tasks = [t for t in tasks if not t.done()]
    for t in found:
        if t.done() and not t.cancelled():
            t.exception()
    return len(tasks)
