"""API requests to a running node: queued in the node's own box, answered exactly once.

Theory of operation. A call such as ``RunningGraph.swap`` must never wait on a node that will not answer. The
caller does not touch the node: it puts a :class:`Request` in the node's :class:`RequestBox`, which the runtime
owns for the node's whole life (restarts included), and waits for the answer. The node takes requests in its
own task (``await io.requests.receive()``), in order, and resolves or fails each one; the box keeps every
request not yet answered, so when the node ends — completed, failed, cancelled, before it ever ran — or an
incarnation dies before a restart, the runtime fails whatever is left with a :class:`MediaGraphError` that
says why. Every request is answered exactly once, and no caller is left waiting.
"""

from __future__ import annotations

from collections import deque
from typing import Any, final

import trio

from ._errors import MediaGraphError

__all__ = ["Request", "RequestBox"]


@final
class Request:
    """One API call waiting for a node's answer.

    Args:
        kind: what is asked (``"swap"``), for the node to dispatch on and for messages.
        payload: the validated arguments.
    """

    __slots__ = ("_answered", "_error", "_result", "kind", "payload")

    def __init__(self, kind: str, payload: Any) -> None:
        self.kind = kind
        self.payload = payload
        self._answered = trio.Event()
        self._result: Any = None
        self._error: BaseException | None = None

    def __repr__(self) -> str:
        state = "answered" if self.answered else "waiting"
        return f"<Request {self.kind} {state}>"

    @property
    def answered(self) -> bool:
        return self._answered.is_set()

    def resolve(self, result: Any = None) -> None:
        """Answer with ``result``. A request is answered exactly once."""
        assert not self.answered, f"{self!r} answered twice"
        self._result = result
        self._answered.set()

    def fail(self, error: BaseException) -> None:
        """Answer with ``error``, raised in the caller. A request is answered exactly once."""
        assert not self.answered, f"{self!r} answered twice"
        self._error = error
        self._answered.set()

    async def wait(self) -> Any:
        """Wait for the answer; return the result or raise the error."""
        await self._answered.wait()
        if self._error is not None:
            raise self._error
        return self._result


@final
class RequestBox:
    """The requests to one node: queued until the node takes them, kept until they are answered.

    Args:
        node: the node's name, for messages.
    """

    def __init__(self, node: str) -> None:
        self.node = node
        self._queue: deque[Request] = deque()
        self._taken: list[Request] = []
        self._lot = trio.lowlevel.ParkingLot()
        self._closed: str | None = None  # why the node takes no more requests

    def __repr__(self) -> str:
        return f"<RequestBox {self.node} queued={len(self._queue)} taken={len(self._taken)}>"

    def submit(self, request: Request) -> None:
        """Queue ``request`` for the node; fail it at once if the node has ended."""
        if self._closed is not None:
            self._refuse(request, self._closed)
            return
        self._queue.append(request)
        self._lot.unpark_all()

    def withdraw(self, request: Request) -> bool:
        """Take back a request the node has not taken yet (its caller was cancelled)."""
        try:
            self._queue.remove(request)
        except ValueError:
            return False
        return True

    async def receive(self) -> Request:
        """The next request, in order. The caller must answer it (or the runtime does when the node ends)."""
        while not self._queue:
            await self._lot.park()
        request = self._queue.popleft()
        self._taken = [r for r in self._taken if not r.answered]
        self._taken.append(request)
        return request

    def __aiter__(self) -> RequestBox:
        return self

    async def __anext__(self) -> Request:
        return await self.receive()

    def fail_taken(self, why: str) -> None:
        """The incarnation that took these requests is gone: fail those it did not answer."""
        taken, self._taken = self._taken, []
        for request in taken:
            if not request.answered:
                self._refuse(request, why)

    def close(self, why: str) -> None:
        """The node has ended: fail every request not answered, and any submitted later."""
        if self._closed is not None:
            return
        self._closed = why
        self.fail_taken(why)
        queued, self._queue = self._queue, deque()
        for request in queued:
            self._refuse(request, why)

    def _refuse(self, request: Request, why: str) -> None:
        request.fail(MediaGraphError(f"node {self.node!r} {why}; there is nothing to {request.kind}"))
