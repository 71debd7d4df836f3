"""What goes into a session pool and what comes out: plain, frozen, picklable data.

A :class:`SessionSpec` carries a graph as its YAML text (a :class:`mediagraph.Graph` holds live node types and
does not pickle), the folder its relative paths resolve against, and the ``--set`` overrides, so a worker
process or a Ray actor on another machine loads it exactly as ``mediagraph run`` would. What comes back is a
stream of :class:`SessionEvent` and one :class:`SessionResult` (or a ``SessionError``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final, Literal, final

import attrs
from attrs import validators as _v

from .._errors import GraphDefinitionError
from .._graphfile import Override
from .._limits import read_text
from .._statistics import NodeStatistics

__all__ = [
    "Completed",
    "Failed",
    "PoolStatus",
    "RestartPolicy",
    "SessionEvent",
    "SessionResult",
    "SessionSpec",
    "SessionStatus",
    "WorkerStatus",
]

#: The most restarts a policy may ask for, and the longest first backoff (seconds).
MAX_RESTARTS: Final = 1000
MAX_BACKOFF: Final = 3600.0


@final
@attrs.frozen(kw_only=True)
class RestartPolicy:
    """What the pool does when a session fails (a node under the graph's default policy, or its worker lost).

    Args:
        when: ``"never"`` (the default: the failure is the session's result) or ``"on-failure"``: start it
            again, from the beginning, up to ``max_restarts`` times, waiting ``backoff * 2**(n-1)`` seconds
            before the n-th restart (as a node's ``restart`` supervision does). A session whose graph or
            overrides are invalid, or that was asked to stop or cancel, is never restarted.
    """

    when: Literal["never", "on-failure"] = attrs.field(default="never", validator=_v.in_(("never", "on-failure")))
    max_restarts: int = attrs.field(default=3, validator=[_v.instance_of(int), _v.ge(0), _v.le(MAX_RESTARTS)])
    backoff: float = attrs.field(default=1.0, validator=[_v.ge(0), _v.le(MAX_BACKOFF)])

    @classmethod
    def on_failure(cls, max_restarts: int = 3, backoff: float = 1.0) -> RestartPolicy:
        return cls(when="on-failure", max_restarts=max_restarts, backoff=backoff)

    def allows(self, restarts: int) -> bool:
        """Whether a session restarted ``restarts`` times so far may be restarted once more."""
        return self.when == "on-failure" and restarts < self.max_restarts

    def delay(self, restart: int) -> float:
        """Seconds to wait before restart number ``restart`` (1, 2, ...)."""
        return float(self.backoff * 2 ** (restart - 1))


def _check_sets(instance: object, attribute: attrs.Attribute[Any], value: tuple[str, ...]) -> None:
    for text in value:
        try:
            Override.parse(text)
        except ValueError as exc:
            raise GraphDefinitionError(f"--set {exc}", param="sets") from None


def _tuple_of_str(value: Sequence[str] | str) -> tuple[str, ...]:
    if isinstance(value, str):  # one string is one --set, not a sequence of characters
        return (value,)
    return tuple(value)


def _dirs(value: Sequence[str | Path] | None) -> tuple[str, ...] | None:
    return None if value is None else tuple(str(d) for d in value)


@final
@attrs.frozen(kw_only=True)
class SessionSpec:
    """One session to run: a graph file's text and how to run it.

    Args:
        graph_text: the graph file's YAML (see :func:`mediagraph.load_graph`).
        base_dir: the folder its relative paths resolve against (the file's own; on Ray, a path every node
            can read, a shared file system).
        name: the graph's name when the text has no ``graph:`` key.
        filename: how errors locate the text (``graphs/tone_demo.yaml:7:9``).
        sets: ``--set NODE.PARAM=VALUE`` overrides, as the command line takes them; checked here.
        duration: seconds of graph time before a graceful stop (``mediagraph run --duration``); ``None``: the
            graph ends by itself, by its schedule, or when stopped.
        restart: what to do when the session fails (:class:`RestartPolicy`).
        node: Ray only: run on this Ray node (its hex id) or on a node offering this custom resource; the
            local engine refuses a spec that names one.
        output_dirs: confine the files the graph writes to its folder and these (``--output-dir``); ``None``:
            not confined.

    Raises:
        GraphDefinitionError: an override is not of the ``NODE.PARAM=VALUE`` form (``param`` is ``"sets"``).
    """

    graph_text: str = attrs.field(validator=_v.instance_of(str))
    base_dir: str = attrs.field(converter=str)
    name: str = "graph"
    filename: str = "<string>"
    sets: tuple[str, ...] = attrs.field(default=(), converter=_tuple_of_str, validator=_check_sets)
    duration: float | None = attrs.field(default=None, validator=_v.optional(_v.ge(0)))
    restart: RestartPolicy = attrs.field(factory=RestartPolicy, validator=_v.instance_of(RestartPolicy))
    node: str | None = None
    output_dirs: tuple[str, ...] | None = attrs.field(default=None, converter=_dirs)

    @classmethod
    def from_file(
        cls,
        path: str | Path,
        *,
        sets: Sequence[str] | str = (),
        duration: float | None = None,
        restart: RestartPolicy | None = None,
        node: str | None = None,
        output_dirs: Sequence[str | Path] | None = None,
    ) -> SessionSpec:
        """A spec for a graph file, read now (bounded, as :func:`mediagraph.load_graph` reads it).

        Raises:
            GraphDefinitionError: the file cannot be read, is too large or not UTF-8; an override is invalid.
        """
        path = Path(path)
        return cls(
            graph_text=read_text(path),
            base_dir=str(path.parent.absolute()),
            name=path.stem,
            filename=str(path),
            sets=_tuple_of_str(sets),
            duration=duration,
            restart=restart or RestartPolicy(),
            node=node,
            output_dirs=output_dirs,
        )

    def overrides(self) -> list[Override]:
        return [Override.parse(text) for text in self.sets]


@final
@attrs.frozen(kw_only=True)
class SessionEvent:
    """One event of a session's event log, as its worker recorded it (see :class:`mediagraph.Event`).

    ``attempt`` counts the session's runs (1, then 2 after a restart...); ``seq`` and ``time`` (graph clock
    seconds) are the attempt's own. ``event == "events_dropped"`` (``node`` ``None``) says ``fields["count"]``
    events were dropped just before it, because a buffer on the way was full (see :meth:`Pool.events`).
    """

    session: str
    attempt: int
    seq: int
    time: float
    node: str | None
    event: str
    fields: Mapping[str, Any] = attrs.field(factory=dict)


@final
@attrs.frozen(kw_only=True)
class Completed:
    """An attempt that ended without failing: ``reason`` is ``completed``, ``stopped`` or ``cancelled``;
    ``isolated``: node -> ``"ErrorType: message"`` of the nodes that failed under ``isolate``."""

    reason: str
    statistics: Mapping[str, NodeStatistics] = attrs.field(factory=dict)
    isolated: Mapping[str, str] = attrs.field(factory=dict)


@final
@attrs.frozen(kw_only=True)
class Failed:
    """An attempt that failed (see :class:`SessionFailed` for the fields); ``message`` names the node."""

    message: str
    node: str | None = None
    node_type: str | None = None
    error_type: str = ""
    definition: bool = False


@final
@attrs.frozen(kw_only=True)
class SessionResult:
    """How a session ended, when it did not fail.

    Attributes:
        session: its id. reason: ``completed``, ``stopped`` or ``cancelled``.
        statistics: each node's final statistics (of the last attempt).
        isolated: node -> ``"ErrorType: message"`` for the nodes that failed under ``isolate`` (the graph went on).
        restarts: how many times the pool restarted it; failures: why, one line per restart.
        worker: where the last attempt ran, for people (``pid 1234``, ``ray node 5f3a...``); pid and
            ray_node: the same, for programs (``None`` when it never ran: stopped while pending).
        events_dropped: events of the session the pool dropped (buffers full; see :meth:`Pool.events`).
    """

    session: str
    reason: str
    statistics: Mapping[str, NodeStatistics] = attrs.field(factory=dict)
    isolated: Mapping[str, str] = attrs.field(factory=dict)
    restarts: int = 0
    failures: tuple[str, ...] = ()
    worker: str = ""
    pid: int | None = None
    ray_node: str | None = None
    events_dropped: int = 0


@final
@attrs.frozen(kw_only=True)
class SessionStatus:
    """One session now: ``state`` is ``pending`` (waiting for a worker, or for its restart's backoff),
    ``starting``, ``running``, ``finished``, ``failed`` or ``lost``."""

    session: str
    state: str
    attempt: int
    restarts: int
    worker: int | None
    where: str


@final
@attrs.frozen(kw_only=True)
class WorkerStatus:
    """One worker now: a local process (``pid``) or, on Ray, a Ray node (``ray_node``) with the sessions there.
    ``cpu_percent``: its CPU use since the pool last looked (100 = one core), when cheap to know, else None."""

    worker: int
    alive: bool
    sessions: int
    pid: int | None = None
    ray_node: str | None = None
    cpu_percent: float | None = None


@final
@attrs.frozen(kw_only=True)
class PoolStatus:
    """The pool now, for a display: its engine, every session it knows and every worker."""

    engine: str
    sessions: tuple[SessionStatus, ...]
    workers: tuple[WorkerStatus, ...]

    def count(self, state: str) -> int:
        """How many sessions are in ``state``."""
        return sum(1 for s in self.sessions if s.state == state)
