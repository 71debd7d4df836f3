"""One session attempt as a Ray actor: a trio run in a thread of the actor's process, polled by the pool.

Theory of operation. Ray wraps :class:`SessionActor` (this module imports no ray; ``_ray`` does the
wrapping) as a threaded actor. Its constructor starts a thread whose trio run hosts the attempt on a
:class:`SessionHost`, exactly as a local worker would, with a :class:`Mailbox` as its outbox. The pool's side
asks :meth:`SessionActor.poll` for what has happened (a long poll: it waits up to ``wait`` seconds for
something new), acknowledging what it has received by its ``cursor``, so a poll lost on the way loses
nothing; commands go in through :meth:`SessionActor.command`, into the trio run by its token, and their
replies come back by the same poll. The mailbox is bounded as a worker's outbox is: events past
:data:`MAX_QUEUED_EVENTS` unacknowledged are dropped and counted, never reports or replies.
"""

from __future__ import annotations

import os
import threading
from typing import Any, final

import trio

from .._clock import run_virtual
from .._errors import MediaGraphError
from .._events import Event
from .._runtime import open_runtime
from ._host import SessionHost, plain
from ._messages import Cancel, Command, Stop
from ._spec import Completed, Failed, SessionSpec
from ._wire import MAX_QUEUED_EVENTS

__all__ = ["Mailbox", "SessionActor"]


@final
class Mailbox:
    """Thread-safe, ordered, bounded: the trio thread puts, the actor's method threads take."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._items: list[tuple[Any, ...]] = []
        self._first = 0  # the index of _items[0] since the beginning
        self._events = 0
        self._dropped = 0
        self.done = False

    def __repr__(self) -> str:
        return f"<Mailbox {len(self._items)} unacknowledged, {self._dropped} events dropped>"

    def _put(self, item: tuple[Any, ...]) -> None:
        with self._lock:
            if item[0] == "event":
                if self._events >= MAX_QUEUED_EVENTS:
                    self._dropped += 1
                    return
                self._events += 1
            if self._dropped and item[0] in ("event", "finished"):
                marker = (
                    -1,
                    item[3][1] if item[0] == "event" else 0.0,
                    None,
                    "events_dropped",
                    {"count": self._dropped},
                )
                self._items.append(("event", item[1], item[2], marker))
                self._events += 1
                self._dropped = 0
            self._items.append(item)
            self.done = self.done or item[0] == "finished"
            self._lock.notify_all()

    def event(self, session: str, attempt: int, event: Event) -> None:
        self._put(("event", session, attempt, (event.seq, event.t, event.node, event.event, plain(event.fields))))

    def started(self, session: str, attempt: int) -> None:
        self._put(("started", session, attempt))

    def finished(self, session: str, attempt: int, outcome: Completed | Failed) -> None:
        self._put(("finished", session, attempt, outcome))

    def reply(self, request: int, error: str | None) -> None:
        self._put(("reply", request, error))

    def take(self, cursor: int, wait: float) -> tuple[int, list[tuple[Any, ...]]]:
        """Forget what came before ``cursor``; what came since (waiting up to ``wait`` s for something), and the
        cursor after it."""
        with self._lock:
            drop = max(0, min(cursor - self._first, len(self._items)))
            self._events -= sum(1 for item in self._items[:drop] if item[0] == "event")
            del self._items[:drop]
            self._first += drop
            if not self._items:
                self._lock.wait(wait)
            return self._first + len(self._items), list(self._items)


@final
class SessionActor:
    """Hosts one attempt (see the module's theory of operation)."""

    def __init__(self, session: str, attempt: int, spec: SessionSpec, virtual: bool) -> None:
        self._session, self._attempt, self._spec, self._virtual = session, attempt, spec, virtual
        self.mailbox = Mailbox()
        self._ready = threading.Event()
        self._token: trio.lowlevel.TrioToken | None = None
        self._host: SessionHost | None = None
        self._thread = threading.Thread(target=self._main, name=f"mediagraph session {session}", daemon=True)
        self._thread.start()
        self._ready.wait()

    def __repr__(self) -> str:
        return f"<SessionActor {self._session} attempt {self._attempt}>"

    def where(self) -> tuple[str, int]:
        """The Ray node id this actor runs on, and its process id."""
        import ray  # inside the actor's process, where Ray is running anyway

        return ray.get_runtime_context().get_node_id(), os.getpid()

    def poll(self, cursor: int, wait: float) -> tuple[int, list[tuple[Any, ...]]]:
        return self.mailbox.take(cursor, wait)

    def command(self, request: int, command: Command) -> None:
        host, token = self._host, self._token
        if host is None or token is None or self.mailbox.done:
            self.mailbox.reply(request, None if isinstance(command, Stop | Cancel) else "it has ended")
            return
        try:
            trio.from_thread.run_sync(host.command, request, self._session, self._attempt, command, trio_token=token)
        except trio.RunFinishedError:
            self.mailbox.reply(request, None if isinstance(command, Stop | Cancel) else "it has ended")

    def _main(self) -> None:
        try:
            if self._virtual:
                run_virtual(self._serve)
            else:
                trio.run(self._serve)
        except BaseException as exc:  # the host reports every failure of the attempt; this is ours
            if not self.mailbox.done:
                self.mailbox.finished(self._session, self._attempt, Failed(message=f"{type(exc).__name__}: {exc}"))
        finally:
            self._ready.set()

    async def _serve(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        try:
            async with open_runtime() as runtime, trio.open_nursery() as nursery:
                self._host = SessionHost(runtime, nursery, self.mailbox, virtual=self._virtual)
                self._host.launch(self._session, self._attempt, self._spec)
                self._ready.set()
        except MediaGraphError:
            pass  # a graph's failure the runtime raises at its exit: it went to the pool as the outcome
