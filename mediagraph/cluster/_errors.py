"""The session pool's errors: children of :class:`mediagraph.MediaGraphError`, each naming the session.

``SessionError`` is what a call about one session raises; its children say why: the session's graph failed
(:class:`SessionFailed`, naming the node and its type), the process or Ray node running it went away
(:class:`WorkerLost`, naming the pid and signal or the node), or the call itself was refused
(:class:`CommandRefused`: unknown id, a session not in a state to take it, the graph refusing it, no answer in
time). :class:`PoolError` is about the pool itself (closed, a worker that cannot start, Ray missing).
"""

from __future__ import annotations

from typing import final

from .._errors import MediaGraphError

__all__ = ["CommandRefused", "PoolError", "SessionError", "SessionFailed", "WorkerLost"]


class SessionError(MediaGraphError):
    """A call about session ``session`` failed; the message starts with ``session 'ID':``."""

    def __init__(self, session: str, message: str) -> None:
        # (session, message) as the arguments, the rest as attributes: copies and pickles rebuild it whole
        super().__init__(session, message)
        self.session = session
        self.detail = message

    def __str__(self) -> str:
        return f"session {self.session!r}: {self.detail}"


@final
class SessionFailed(SessionError):
    """The session's graph failed, or could not be loaded.

    Attributes:
        node: the node that failed (``None`` when the failure is not a node's: a resource, the graph file).
        node_type: that node's type name (``file_source``), when known.
        error_type: the original exception's class name (``FileNotFoundError``, ``GraphDefinitionError``).
        definition: the graph or its overrides are invalid: running it again would fail again.
        restarts: how many times the pool had restarted the session before this final failure.
    """

    def __init__(
        self,
        session: str,
        message: str,
        *,
        node: str | None = None,
        node_type: str | None = None,
        error_type: str = "",
        definition: bool = False,
        restarts: int = 0,
    ) -> None:
        super().__init__(session, message)
        self.node = node
        self.node_type = node_type
        self.error_type = error_type
        self.definition = definition
        self.restarts = restarts


@final
class WorkerLost(SessionError):
    """The worker running the session went away: a local worker process exited (``pid``, ``signal`` when a
    signal ended it), or a Ray actor or node died (``ray_node``)."""

    def __init__(
        self,
        session: str,
        message: str,
        *,
        pid: int | None = None,
        signal: int | None = None,
        ray_node: str | None = None,
        restarts: int = 0,
    ) -> None:
        super().__init__(session, message)
        self.pid = pid
        self.signal = signal
        self.ray_node = ray_node
        self.restarts = restarts


@final
class CommandRefused(SessionError):
    """A call was refused: no such session, a session that has finished or is not running yet, the graph
    refused it (no such node, a slot child whose ports differ...), or the worker did not answer in time."""


@final
class PoolError(MediaGraphError):
    """The pool itself cannot do what was asked: it is closed, a worker could not be started, the engine is
    unknown or not installed."""
