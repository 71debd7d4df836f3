"""Running graphs: actors, links, lifecycle, supervision.

Theory of operation. Every node is an actor with a lifecycle the runner owns: ``node_started`` before any
message can reach it, ``node_finished`` (completed, cancelled or failed) exactly once after. Nodes start
sinks first, so nothing is ever sent to a node that is not listening.

Where a node runs is the runtime's choice, invisible to the node:

- an :class:`Actor` has its own task and reads its inlets' mailboxes;
- a :class:`Transform` is *fused* (``fuse=True``, the default) when its inlets block on overflow and its
  failure policy is the default: it then runs inside the task that sends to it, as a plain call per
  message (a link pushes straight into ``process``); otherwise it gets its own task and mailboxes;
- a :class:`Source` gets its own task, which hands itself over to the runtime's pacer while it is paced, so
  paced sources cost one clock wake-up per tick between them.

Backpressure crosses fused chains: each outlet knows the blocking mailboxes it reaches through fused nodes
(its *reach*) and a send first waits until every one of them has room.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any, Final, Literal

import attrs
import trio

from ._contract import PLAYBACK_TYPES, PlaybackContract, PlaybackContractError
from ._errors import MediaGraphError, NodeFailedError, ProviderError
from ._events import EventLog
from ._frames import EndOfStream, Interrupt, PlaybackProgress, PlaybackStarted
from ._graph import FailGraph, Graph, Isolate, NodeSpec, PortRef, Restart
from ._limits import closest
from ._mailbox import Mailbox, has_room, wait_room
from ._node import Actor, Node, ResourceRef, ResourceSpec, Source, Transform, get_resource_type
from ._pacer import Pacer
from ._ports import Overflow
from ._requests import Request, RequestBox

__all__ = [
    "GraphResult",
    "Inlet",
    "LinkStatistics",
    "NodeIO",
    "NodeStatistics",
    "Outlet",
    "PlaybackOutlet",
    "RunningGraph",
    "Runtime",
    "open_runtime",
    "run",
]

#: The longest chain of fused nodes run as nested calls inside one task (Python's stack bounds it).
MAX_FUSED_CHAIN: Final = 32

#: A task sending (or a source producing) without ever waiting yields to the scheduler, and so notices
#: cancellation, at least this often. Larger batches per consumer wake-up; at most this many messages of
#: synchronous work between two checkpoints.
YIELD_EVERY: Final = 64

Reason = Literal["completed", "cancelled", "failed"]


class _FusedFailure(Exception):
    """A fused node raised inside another node's task; carries the node it belongs to."""

    def __init__(self, node: _NodeRun, cause: BaseException) -> None:
        super().__init__(node.name)
        self.node = node
        self.cause = cause


def _failure_of(raised: BaseException) -> Exception | None:
    """The node's own failure in what its body raised: ``None`` for a cancellation, the single exception
    inside a group of one (a node's nursery wraps it), and never the ``Cancelled`` it may come with."""
    if isinstance(raised, BaseExceptionGroup):
        _, rest = raised.split(trio.Cancelled)
        if rest is None:
            return None
        while isinstance(rest, BaseExceptionGroup) and len(rest.exceptions) == 1:
            rest = rest.exceptions[0]
        raised = rest
    return raised if isinstance(raised, Exception) else None


class Link:
    """A link from an outlet to an inlet: counts what crosses it and pushes into the target."""

    __slots__ = ("_mailbox", "_node", "_port", "_process", "frames", "push", "spec_dst", "spec_src")

    def __init__(self, src: PortRef, dst: PortRef, target: _NodeRun) -> None:
        self.spec_src = src
        self.spec_dst = dst
        self.frames = 0
        self._node = target
        self._port = dst.port
        self.push: Callable[[Any], None]
        if target.fused:
            self._mailbox = None
            self._process = target.impl.process  # type: ignore[union-attr]
            self.push = self._push_fused
        else:
            self._mailbox = target.mailboxes[dst.port]
            self._mailbox.open_links += 1
            self.push = self._push_mailbox

    def __repr__(self) -> str:
        return f"<Link {self.spec_src} -> {self.spec_dst} frames={self.frames}>"

    def _push_mailbox(self, msg: Any) -> None:
        self.frames += 1
        self._mailbox.put(msg)  # type: ignore[union-attr]

    def _push_fused(self, msg: Any) -> None:
        self.frames += 1
        try:
            self._process(self._port, msg)
        except _FusedFailure:
            raise
        except Exception as exc:
            raise _FusedFailure(self._node, exc) from exc

    def close(self) -> None:
        if self._mailbox is not None:
            self._mailbox.close_link()
        else:
            self._node.fused_link_closed()

    def reach(self) -> list[Mailbox]:
        """The blocking mailboxes this link ends in, through fused nodes."""
        if self._mailbox is not None:
            return [self._mailbox] if self._mailbox.overflow is Overflow.BLOCK else []
        return self._node.reach()


class Outlet:
    """An outlet of a running node.

    ``emit`` is synchronous (for transforms and sources: the runtime has already waited for room);
    ``send`` waits for room first and is what actors use. Sending :class:`EndOfStream`, or ``close()``,
    ends the outlet; the inlets it feeds end when all their links have.
    """

    __slots__ = ("_reach", "_sends", "emit", "links", "name", "node")

    def __init__(self, node: str, name: str) -> None:
        self.node = node
        self.name = name
        self.links: list[Link] = []
        self._reach: list[Mailbox] = []
        self._sends = 0
        self.emit: Callable[[Any], None] = self._discard

    def __repr__(self) -> str:
        state = "closed" if self.emit == self._closed else f"{len(self.links)} links"
        return f"<Outlet {self.node}.{self.name} {state}>"

    def _discard(self, msg: Any) -> None:
        pass

    def _closed(self, msg: Any) -> None:
        raise MediaGraphError(f"outlet {self.node}.{self.name} is closed; cannot send {type(msg).__name__}")

    def _bind(self) -> None:
        if len(self.links) == 1:
            self.emit = self.links[0].push
        elif self.links:
            pushes = [link.push for link in self.links]

            def fan_out(msg: Any) -> None:
                for push in pushes:
                    push(msg)

            self.emit = fan_out

    @property
    def sent(self) -> int:
        """Messages sent on this outlet (each reaches every linked inlet)."""
        return self.links[0].frames if self.links else 0

    @property
    def closed(self) -> bool:
        return self.emit == self._closed

    @property
    def linked(self) -> bool:
        """Whether anything is linked to this outlet (what is sent on an unlinked outlet is discarded)."""
        return bool(self.links)

    async def wait_room(self) -> None:
        """Wait until every blocking mailbox this outlet reaches has room."""
        await wait_room(self._reach)

    async def send(self, msg: Any) -> None:
        """Send one message, waiting for room (backpressure).

        Cancellation: a checkpoint whenever it waits, and at least every ``YIELD_EVERY`` sends; when
        cancelled, nothing was sent.
        """
        if type(msg) is EndOfStream:
            self.close()
            await trio.lowlevel.checkpoint()
            return
        reach = self._reach
        if reach and not has_room(reach):
            await wait_room(reach)
        else:
            self._sends += 1
            if self._sends >= YIELD_EVERY:
                self._sends = 0
                await trio.lowlevel.checkpoint()
        self.emit(msg)

    def close(self) -> None:
        """End this outlet (idempotent)."""
        if self.closed:
            return
        self.emit = self._closed
        for link in self.links:
            link.close()


class PlaybackOutlet(Outlet):
    """An outlet that carries playback events: each one passes the outlet's :class:`PlaybackContract` (a stale
    event is dropped, a breach raises :class:`PlaybackContractError` in the emitting node) and is recorded in
    the event log as it leaves, so every playback event in the log is one that was delivered."""

    __slots__ = ("_push", "_record", "contract")

    def __init__(self, node: str, name: str, record: Callable[..., None], *, qualified: str | None = None) -> None:
        super().__init__(node, name)
        self.contract = PlaybackContract(qualified or node, name)
        self._record = record
        self._push: Callable[[Any], None] = self._discard
        self.emit = self._checked

    def _bind(self) -> None:
        self.emit = self._discard
        super()._bind()
        self._push, self.emit = self.emit, self._checked

    def _checked(self, msg: Any) -> None:
        if isinstance(msg, PLAYBACK_TYPES):
            checked = self.contract.check(msg)
            if checked is None:
                return
            self._deliver(checked)
        else:
            self._push(msg)

    def _deliver(self, event: Any) -> None:
        if isinstance(event, PlaybackStarted):
            self._record("playback_started", segment=event.segment, generation=event.generation, at=event.t)
        elif isinstance(event, PlaybackProgress):
            self._record(
                "playback_progress",
                segment=event.segment,
                generation=event.generation,
                position=round(event.position, 6),
                at=event.t,
            )
        else:
            self._record(
                "playback_finished",
                segment=event.segment,
                generation=event.generation,
                position=round(event.position, 6),
                interrupted=event.interrupted,
                sent=round(event.sent, 6),
                at=event.t,
            )
        self._push(event)

    def end_incarnation(self, t: float) -> None:
        """The node died or restarts: deliver the finish it owed, if any (see :class:`PlaybackContract`)."""
        for event in self.contract.end_incarnation(t):
            if not self.closed:
                self._deliver(event)


class Inlet:
    """An inlet of a node with its own task: ``async for msg in inlet`` until every link into it closed.

    Messages are taken from the mailbox in batches; ``receive`` waits (and yields) only when none is left.
    """

    __slots__ = ("_buf", "mailbox", "name")

    def __init__(self, name: str, mailbox: Mailbox | None) -> None:
        self.name = name
        self.mailbox = mailbox  # None: not linked, so already ended
        self._buf: deque[Any] = deque()

    def __repr__(self) -> str:
        return f"<Inlet {self.name} {self.mailbox!r}>"

    @property
    def linked(self) -> bool:
        """Whether any link comes into this inlet (an unlinked inlet has already ended)."""
        return self.mailbox is not None

    async def receive_batch(self) -> deque[Any]:
        """Every message waiting (at least one), in order.

        Raises:
            trio.EndOfChannel: the inlet has ended.
            MailboxOverflowError: the inlet's policy is ``fail`` and it overflowed.
        """
        if self._buf:
            buf, self._buf = self._buf, deque()
            return buf
        if self.mailbox is None:
            raise trio.EndOfChannel
        return await self.mailbox.receive_batch()

    async def receive(self) -> Any:
        """The next message. Raises ``trio.EndOfChannel`` when the inlet has ended."""
        if not self._buf:
            self._buf = await self.receive_batch()
        return self._buf.popleft()

    def __aiter__(self) -> Inlet:
        return self

    async def __anext__(self) -> Any:
        if not self._buf:
            try:
                self._buf = await self.receive_batch()
            except trio.EndOfChannel:
                raise StopAsyncIteration from None
        return self._buf.popleft()


@attrs.frozen(kw_only=True)
class LinkStatistics:
    src: str
    dst: str
    frames: int
    queued: int
    peak: int
    dropped: int


@attrs.frozen(kw_only=True)
class NodeStatistics:
    """Counters of one node. Frames are messages (audio, video, text and control)."""

    name: str
    state: str
    fused: bool
    frames_in: int
    frames_out: int
    dropped: int
    queued: int
    peak_mailbox: int
    restarts: int
    stale: int = 0  # playback events of a superseded generation, dropped at the node's outlets


class NodeIO:
    """What a running node sees of the graph: its ports, the graph clock and the event log."""

    def __init__(self, run: _NodeRun) -> None:
        self._run = run
        self._now = trio.lowlevel.current_clock().current_time  # what trio.current_time() calls, minus 3 calls
        self.name = run.name
        self.inlets: Mapping[str, Inlet] = {
            name: Inlet(name, mb if mb.open_links else None) for name, mb in run.mailboxes.items()
        }
        self.outlets: Mapping[str, Outlet] = run.outlets

    def __repr__(self) -> str:
        return f"<NodeIO {self.name}>"

    def time(self) -> float:
        """Graph clock: seconds since the graph started."""
        return self._now() - self._run.graph.t0

    def log(self, event: str, **fields: Any) -> None:
        """Record an event of this node in the graph's event log."""
        self._run.graph.record(self.name, event, **fields)

    def resource(self, ref: ResourceRef | str) -> Any:
        """The opened resource a config parameter refers to.

        Resource handling: the runtime opened it and will close it after its last user; never close it.

        Raises:
            MediaGraphError: this node's config does not refer to that resource.
        """
        name = ref if isinstance(ref, str) else ref.name
        if name not in self._run.refs or name not in self._run.graph.resources.values:
            raise MediaGraphError(f"node {self.name!r} has no resource {name!r}{closest(name, self._run.refs)}")
        return self._run.graph.resources.values[name]

    async def sleep_until(self, t: float) -> None:
        """Sleep until graph time ``t``."""
        await trio.sleep_until(self._run.graph.t0 + t)

    async def wait_room(self) -> None:
        """Wait until every outlet of this node has room."""
        await wait_room(self._run.reach())

    @property
    def requests(self) -> RequestBox:
        """API calls addressed to this node (a slot's swaps), in order. Answer each one you take; the runtime
        fails those left unanswered when the node ends or restarts."""
        return self._run.requests

    def child_name(self, stem: str = "child") -> str:
        """A name for a child never used before in this node's life, restarts included: ``child1``, ``child2``..."""
        self._run.children += 1
        return f"{stem}{self._run.children}"

    async def start_child(
        self, nursery: trio.Nursery, graph: Graph, *, quiet: frozenset[str] = frozenset()
    ) -> RunningGraph:
        """Start ``graph`` as a child of this node, in ``nursery``, and return once every node in it listens.

        The child shares this graph's clock, event log, pacer and resources; its nodes are logged as
        ``THIS_NODE/NODE`` (``quiet`` nodes not at all), and it records no graph events of its own.

        Raises:
            GraphDefinitionError: the child graph is invalid.
            NodeFailedError: a node of it could not be built.

        Resource handling: the child runs in ``nursery``, so it ends before the nursery does; stop it by ending
        its inputs, or cancel it.
        """
        parent = self._run.graph
        child = RunningGraph(
            graph,
            fuse=parent.fuse,
            log=parent.log,
            pacer=parent._pacer,
            cleanup_timeout=parent._cleanup_timeout,
            prefix=f"{parent.prefix}{self.name}/",
            quiet=quiet,
            t0=parent.t0,
            resources=parent.resources,
        )
        await nursery.start(child._run)
        return child


class _Unbuilt(Actor):
    """Stands for a node whose constructor raised: running it raises that error, so the failure goes through the
    node's lifecycle and supervision like any other (a restart builds it again)."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    async def run(self, io: NodeIO) -> None:
        raise self.error


class _NodeRun:
    """The runner's record of one node; the node itself never sees it."""

    def __init__(self, graph: RunningGraph, spec: NodeSpec, fuse: bool) -> None:
        self.graph = graph
        self.spec = spec
        self.name = spec.name
        self.impl: Node = self.build()
        ports = spec.ports
        self.fused = (
            fuse
            and isinstance(self.impl, Transform)
            and isinstance(spec.supervision, FailGraph)
            and all(p.overflow is Overflow.BLOCK and not p.feedback for p in ports.inlets)
        )
        self.mailboxes: dict[str, Mailbox] = (
            {}
            if self.fused
            else {
                p.name: Mailbox(
                    f"{self.name}.{p.name}",
                    math.inf if p.feedback else p.capacity,
                    p.overflow,
                )
                for p in ports.inlets
            }
        )
        self.outlets: dict[str, Outlet] = {
            p.name: (
                PlaybackOutlet(self.name, p.name, self.record, qualified=graph.prefix + self.name)
                if any(issubclass(t, PLAYBACK_TYPES) for t in p.types)
                else Outlet(self.name, p.name)
            )
            for p in ports.outlets
        }
        self.playback = [o for o in self.outlets.values() if isinstance(o, PlaybackOutlet)]
        self.requests = RequestBox(graph.prefix + self.name)
        self.children = 0  # children started through NodeIO.start_child, over the node's whole life
        self.in_links: list[Link] = []
        self.open_links = 0
        self.state = "pending"
        self.restarts = 0
        self.scope = trio.CancelScope()
        self.stopping = False
        self._reach: list[Mailbox] | None = None
        self.io: NodeIO | None = None
        self.refs = _refs(spec.config)  # resources this node uses
        self.holds: set[str] = set()  # resources acquired for it and not yet released
        self.impl_started = False  # start() was called on the current Transform/Source instance
        self.imposed: MediaGraphError | None = None  # a failure found by the node's parent (RunningGraph.fail_node)

    def __repr__(self) -> str:
        kind = "fused" if self.fused else type(self.impl).__mro__[1].__name__.lower()
        return f"<node {self.name} ({self.spec.type.name}, {kind}) {self.state}>"

    def record(self, event: str, **fields: Any) -> None:
        self.graph.record(self.name, event, **fields)

    def build(self) -> Node:
        """A new instance of the node, or an :class:`_Unbuilt` carrying what its constructor raised."""
        try:
            return self.spec.type.factory(self.spec.config)
        except Exception as exc:
            return _Unbuilt(exc)

    def close_quietly(self) -> Exception | None:
        """``close_impl``, returning what it raised instead of raising it."""
        try:
            self.close_impl()
        except Exception as exc:
            return exc
        return None

    def end_incarnation(self) -> None:
        """The node's current instance is gone: its playback outlets finish what it owed."""
        for outlet in self.playback:
            outlet.end_incarnation(self.graph.time())

    def check_owed(self) -> None:
        """Raise if the node completed owing a playback finish (a lost ``PlaybackFinished``)."""
        for outlet in self.playback:
            if outlet.contract.owes:
                raise PlaybackContractError(
                    outlet.contract.node,
                    outlet.name,
                    "finished_once",
                    "it completed without finishing the segment it started",
                )

    def reach(self) -> list[Mailbox]:
        if self._reach is None:
            seen: dict[int, Mailbox] = {}
            for outlet in self.outlets.values():
                for link in outlet.links:
                    for mb in link.reach():
                        seen[id(mb)] = mb
            self._reach = list(seen.values())
        return self._reach

    def close_outlets(self) -> None:
        for outlet in self.outlets.values():
            outlet.close()

    def fused_link_closed(self) -> None:
        self.open_links -= 1
        if self.open_links == 0 and self.state == "running":
            if self.graph.cancelling:
                self.finish("cancelled")
                return
            try:
                self.impl.finish()  # type: ignore[union-attr]
                self.check_owed()
            except Exception as exc:
                raise _FusedFailure(self, exc) from exc
            self.finish("completed")

    def finish(self, reason: Reason, error: BaseException | None = None) -> None:
        if self.imposed is not None and error is None:
            reason, error = "failed", self.imposed
        self.requests.close(f"has finished ({reason})" if self.state == "running" else "never started")
        if self.state != "running":  # never started, or already finished: exactly one node_finished
            return
        self.state = "finished"
        self.end_incarnation()
        closing = self.close_quietly()
        if closing is not None:  # close() raised: the node failed, whatever it did before
            if error is None:
                reason, error = "failed", closing
            self.graph._supervise_late(self, closing)
        fields: dict[str, Any] = {"reason": reason}
        if error is not None:
            fields["error"] = f"{type(error).__name__}: {error}"
        # Recorded before the outlets close, so fused and unfused nodes downstream finish after this one.
        self.graph.record(self.name, "node_finished", **fields)
        for inlet in self.io.inlets.values() if self.io is not None else ():
            if inlet.mailbox is not None:  # taken from the mailbox, never handled
                inlet.mailbox.dropped += len(inlet._buf)
                inlet._buf.clear()
        for mb in self.mailboxes.values():
            mb.close_consumer()
        self.close_outlets()
        held, self.holds = self.holds, set()
        self.graph.resources.release(held)

    def start_impl(self, io: NodeIO) -> None:
        self.impl_started = True
        self.impl.start(io)  # type: ignore[union-attr]

    def close_impl(self) -> None:
        """Call a Transform's or Source's ``close()`` once after its ``start()``, however it ended."""
        if self.impl_started:
            self.impl_started = False
            self.impl.close()  # type: ignore[union-attr]

    def statistics(self) -> NodeStatistics:
        mbs = self.mailboxes.values()
        return NodeStatistics(
            name=self.name,
            state=self.state,
            fused=self.fused,
            frames_in=sum(link.frames for link in self.in_links),
            frames_out=sum(o.sent for o in self.outlets.values()),
            dropped=sum(mb.dropped for mb in mbs),
            queued=sum(len(mb) for mb in mbs),
            peak_mailbox=max((mb.peak for mb in mbs), default=0),
            restarts=self.restarts,
            stale=sum(o.contract.stale for o in self.playback),
        )


def _refs(value: Any) -> set[str]:
    """Names of the resources a config refers to, however deeply (a slot child's config included)."""
    if isinstance(value, ResourceRef):
        return {value.name}
    if attrs.has(type(value)):
        return set().union(*(_refs(getattr(value, f.name)) for f in attrs.fields(type(value))))
    if isinstance(value, (list, tuple)):
        return set().union(*map(_refs, value))
    if isinstance(value, Mapping):
        return set().union(*map(_refs, value.values()))
    return set()


class _Resources:
    """The open resources of a graph and of the graphs nested in its slots, counted by user."""

    def __init__(self, specs: Mapping[str, ResourceSpec], graph: RunningGraph) -> None:
        self.specs = specs
        self.graph = graph  # the top-level graph, which records the events
        self.users: dict[str, int] = {}
        self.values: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"<resources open={sorted(self.values)} users={self.users}>"

    def acquire(self, names: set[str]) -> None:
        for name in sorted(names):
            if name not in self.values:
                spec = self.specs[name]
                try:
                    self.values[name] = get_resource_type(spec.type).open(spec.config)
                except Exception as exc:
                    raise ProviderError(f"resource {name!r} ({spec.type}) failed to open: {exc}") from exc
                self.graph.log.record(self.graph.time(), None, "resource_opened", resource=name, type=spec.type)
            self.users[name] = self.users.get(name, 0) + 1

    def release(self, names: set[str]) -> None:
        for name in sorted(names):
            self.users[name] -= 1
            if self.users[name] == 0:
                self.close(name)

    def close(self, name: str) -> None:
        value = self.values.pop(name, None)
        if value is None:
            return
        fields: dict[str, Any] = {"resource": name}
        try:
            value.close()
        except Exception as exc:
            fields["error"] = f"{type(exc).__name__}: {exc}"
            self.graph._fail_with(ProviderError(f"resource {name!r} failed to close: {exc}"), exc)
        self.graph.log.record(self.graph.time(), None, "resource_closed", **fields)


@attrs.frozen(kw_only=True)
class GraphResult:
    """How a graph ended: ``reason`` (completed, stopped, cancelled), the event log, final statistics and
    the failures of isolated nodes (name -> exception)."""

    reason: str
    log: EventLog
    statistics: Mapping[str, NodeStatistics]
    isolated: Mapping[str, BaseException]


class RunningGraph:
    """A graph started on a :class:`Runtime`. ``stop()`` drains, ``cancel()`` cancels, ``wait()`` waits."""

    def __init__(
        self,
        graph: Graph,
        *,
        fuse: bool,
        log: EventLog,
        pacer: Pacer | None,
        cleanup_timeout: float,
        prefix: str = "",
        quiet: frozenset[str] = frozenset(),
        t0: float | None = None,
        resources: _Resources | None = None,
    ) -> None:
        validated = graph.validate()
        self.graph = graph
        self.name = graph.name
        self.log = log
        self.fuse = fuse
        # A graph nested in a slot records its nodes as "slot/node", its bridges not at all, and no graph events.
        self.prefix = prefix
        self._quiet = quiet
        self.t0 = trio.current_time() if t0 is None else t0
        self._clock_given = t0 is not None  # a nested graph keeps its parent's graph clock
        self._pacer = pacer
        self._cleanup_timeout = cleanup_timeout
        self.cancelling = False
        self._stopped = False
        self._scope = trio.CancelScope()
        self._done = trio.Event()
        self._failure: MediaGraphError | None = None
        self._observed = False
        self._isolated: dict[str, BaseException] = {}
        self.result: GraphResult | None = None
        self.nodes: dict[str, _NodeRun] = {}
        # A fused chain runs as nested calls: it is cut into runs of at most MAX_FUSED_CHAIN nodes (the next
        # one gets its own task), so any graph that validates runs, however long its chains.
        sources: dict[str, list[str]] = {}
        for spec in graph.links:
            sources.setdefault(spec.dst.node, []).append(spec.src.node)
        depth: dict[str, int] = {}
        for name in validated.order:
            above = max((depth.get(src, 0) for src in sources.get(name, ())), default=0)
            node = self.nodes[name] = _NodeRun(self, graph.nodes[name], fuse and above < MAX_FUSED_CHAIN)
            depth[name] = above + 1 if node.fused else 0
        # A graph nested in a slot shares its parent's resources: the parent opened them, the parent closes them.
        self._owns_resources = resources is None
        self.resources = _Resources(graph.resources, self) if resources is None else resources
        self.links: list[Link] = []
        for spec in graph.links:
            target = self.nodes[spec.dst.node]
            link = Link(spec.src, spec.dst, target)
            target.in_links.append(link)
            if target.fused:
                target.open_links += 1
            self.nodes[spec.src.node].outlets[spec.src.port].links.append(link)
            self.links.append(link)
        for node in self.nodes.values():
            for outlet in node.outlets.values():
                outlet._bind()
                outlet._reach = [mb for link in outlet.links for mb in link.reach()]

    def __repr__(self) -> str:
        state = self.result.reason if self.result else ("cancelling" if self.cancelling else "running")
        return f"<RunningGraph {self.name!r} {state}, {len(self.nodes)} nodes>"

    def time(self) -> float:
        """Graph clock: seconds since the graph started."""
        return trio.current_time() - self.t0

    def record(self, node: str | None, event: str, **fields: Any) -> None:
        if node is None:
            if not self.prefix:
                self.log.record(trio.current_time() - self.t0, None, event, **fields)
        elif node not in self._quiet:
            self.log.record(trio.current_time() - self.t0, self.prefix + node, event, **fields)

    # --- control ------------------------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop gracefully: sources stop, every mailbox drains, every node completes. Idempotent."""
        self._stopped = True
        for node in self.nodes.values():
            if not node.in_links and not node.fused:
                node.stopping = True
                node.scope.cancel()

    def interrupt(self, node: str, inlet: str = "audio") -> None:
        """Deliver an :class:`Interrupt` to ``node``'s ``inlet`` now, behind what is already queued there.

        Raises:
            MediaGraphError: no such node or inlet, or the node is not running.
        """
        run = self._node(node)
        if run.spec.ports.inlet(inlet) is None:
            raise MediaGraphError(f"node {node!r} has no inlet {inlet!r} to interrupt")
        if run.state != "running":
            raise MediaGraphError(f"node {node!r} is {run.state}; there is nothing to interrupt")
        self.record(node, "interrupt_requested", inlet=inlet)
        if run.fused:
            self._guard_fused(run, lambda: run.impl.process(inlet, Interrupt()))  # type: ignore[union-attr]
        else:
            run.mailboxes[inlet].put(Interrupt())

    async def swap(self, slot: str, child: Any, policy: str = "cut") -> None:
        """Replace the child of slot node ``slot`` (see the ``slot`` node type), waiting until done.

        The swap is queued in the slot, behind the swaps asked for before it, and done by the slot's own task
        between two messages; with ``policy="boundary"`` it waits for the open segment to close.

        Args:
            child: ``{"type": ..., **params}``, a ``ChildSpec``, or ``None`` to empty the slot.
            policy: ``"cut"`` or ``"boundary"`` (or a ``SwapPolicy``).

        Raises:
            GraphDefinitionError: the child is invalid or its ports differ from the slot's; nothing was queued.
            MediaGraphError: ``slot`` is not a running slot, or the slot ended (its input, a failure, a cancel)
                before the swap was done; NodeFailedError: the child being replaced, or the new one, failed.

        Cancellation: a swap the slot has not begun is withdrawn; one it has begun still completes.
        """
        request = self.request_swap(slot, child, policy)
        try:
            await request.wait()
        except trio.Cancelled:
            self.nodes[slot].requests.withdraw(request)
            raise

    def request_swap(self, slot: str, child: Any, policy: str = "cut") -> Request:
        """Queue a swap in slot ``slot`` now, without waiting for it: ``await request.wait()`` for its answer.

        Raises:
            GraphDefinitionError, MediaGraphError: as :meth:`swap`, for what is refused before it is queued.
        """
        run = self._node(slot)
        prepare = getattr(type(run.impl), "prepare_swap", None)
        if prepare is None:
            raise MediaGraphError(f"node {slot!r} is not a slot, it cannot swap its child")
        payload = prepare(slot, run.spec.config, child, policy, self.graph.resources)
        if run.state != "running":
            raise MediaGraphError(f"slot {slot!r} is {run.state}; there is nothing to swap")
        request = Request("swap", payload)
        run.requests.submit(request)
        return request

    def _node(self, name: str) -> _NodeRun:
        try:
            return self.nodes[name]
        except KeyError:
            raise MediaGraphError(f"graph {self.name!r} has no node {name!r}{closest(name, self.nodes)}") from None

    def fail_node(self, name: str, error: MediaGraphError) -> None:
        """Fail node ``name`` with ``error`` from outside it (a slot that finds its child broke a rule only the
        slot can check): the node is cancelled and finishes as failed, and the graph fails with it."""
        node = self._node(name)
        if node.state != "running":
            return
        node.imposed = error
        self._fail(node, error)

    @property
    def failure(self) -> MediaGraphError | None:
        """The error the graph failed with (a node with the default policy failed), once it has."""
        return self._failure

    @property
    def finished(self) -> bool:
        return self._done.is_set()

    async def wait_finished(self) -> None:
        """Wait for the graph to finish, however it ends; never raises its failure (see :attr:`failure`)."""
        await self._done.wait()

    def cancel(self) -> None:
        """Cancel every node now; they finish as cancelled."""
        self.cancelling = True
        self._scope.cancel()

    async def wait(self) -> GraphResult:
        """Wait for the graph to finish.

        Raises:
            NodeFailedError: a node with the default policy failed (the original is ``__cause__``).
        """
        await self._done.wait()
        if self._failure is not None:
            self._observed = True
            raise self._failure
        assert self.result is not None
        return self.result

    def statistics(self) -> dict[str, NodeStatistics]:
        return {name: node.statistics() for name, node in self.nodes.items()}

    def link_statistics(self) -> list[LinkStatistics]:
        out = []
        for link in self.links:
            mb = link._mailbox
            out.append(
                LinkStatistics(
                    src=str(link.spec_src),
                    dst=str(link.spec_dst),
                    frames=link.frames,
                    queued=len(mb) if mb else 0,
                    peak=mb.peak if mb else 0,
                    dropped=mb.dropped if mb else 0,
                )
            )
        return out

    # --- running ------------------------------------------------------------------------------------------

    def _supervise_late(self, node: _NodeRun, exc: BaseException) -> None:
        """A node failed after its body ended (in ``close()`` or ``cleanup()``): too late to restart it, so it is
        isolated under ``isolate`` and fails the graph otherwise."""
        if isinstance(node.spec.supervision, Isolate):
            self._isolated[node.name] = exc
        else:
            self._fail(node, exc)

    def _fail(self, node: _NodeRun, exc: BaseException) -> None:
        self._fail_with(NodeFailedError(self.prefix + node.name, exc), exc)

    def _fail_with(self, failure: MediaGraphError, cause: BaseException) -> None:
        if self._failure is None:
            failure.__cause__ = cause
            self._failure = failure
        self.cancelling = True
        self._scope.cancel()

    async def _run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        if not self._clock_given:
            self.t0 = trio.current_time()
        if not self.prefix:
            self.log.record(0.0, None, "graph_started", graph=self.name)
        started = False
        try:
            with self._scope:
                try:
                    for node in self.nodes.values():  # every resource opens before its first user starts
                        self.resources.acquire(node.refs)
                        node.holds = node.refs
                except ProviderError as exc:
                    self._fail_with(exc, exc.__cause__ or exc)
                    return
                async with trio.open_nursery() as nursery:
                    for node in reversed(self.nodes.values()):  # sinks first
                        if node.fused:
                            self._start_fused(node)
                        else:
                            await nursery.start(self._node_task, node)
                    task_status.started()
                    started = True
                    for node in self.nodes.values():
                        if node.fused and node.open_links == 0 and node.state == "running":
                            node.open_links = 1
                            self._guard_fused(node, node.fused_link_closed)
        finally:
            for node in self.nodes.values():
                node.finish("cancelled")
                if node.holds:  # never started: give back what was taken for it
                    self.resources.release(node.holds)
                    node.holds = set()
            if self._owns_resources:
                for name in list(self.resources.values):
                    self.resources.close(name)
            if self._failure is not None:
                reason = "failed"
            elif self.cancelling:
                reason = "cancelled"
            else:
                reason = "stopped" if self._stopped else "completed"
            self.record(None, "graph_finished", graph=self.name, reason=reason)
            self.result = GraphResult(
                reason=reason, log=self.log, statistics=self.statistics(), isolated=dict(self._isolated)
            )
            self._done.set()
            if not started:  # failed or cancelled while starting: the starter still gets its answer
                task_status.started()

    def _start_fused(self, node: _NodeRun) -> None:
        node.state = "running"
        self.record(node.name, "node_started")
        self._guard_fused(node, lambda: node.start_impl(NodeIO(node)))

    def _guard_fused(self, node: _NodeRun, fn: Callable[[], None]) -> None:
        try:
            fn()
        except _FusedFailure as failure:
            self._fused_failed(failure)
        except Exception as exc:
            self._fused_failed(_FusedFailure(node, exc))

    def _fused_failed(self, failure: _FusedFailure) -> None:
        failure.node.finish("failed", failure.cause)
        self._fail(failure.node, failure.cause)

    async def _node_task(self, node: _NodeRun, task_status: trio.TaskStatus[None]) -> None:
        node.state = "running"
        self.record(node.name, "node_started")
        task_status.started()
        reason: Reason = "completed"
        error: BaseException | None = None
        try:
            while True:
                try:
                    node.scope = trio.CancelScope()
                    if node.stopping:
                        node.scope.cancel()
                    with node.scope:
                        await self._body(node)
                        node.check_owed()
                    # An end of input caused by the cancellation of the nodes upstream is no completion.
                    if self.cancelling or (node.scope.cancelled_caught and not node.stopping):
                        reason = "cancelled"
                    break
                except BaseException as raised:
                    exc = _failure_of(raised)
                    if exc is None:  # cancelled (or interrupted): not the node's failure
                        raise
                    if isinstance(exc, _FusedFailure):
                        self._fused_failed(exc)
                        reason = "cancelled"
                        break
                    policy = node.spec.supervision
                    if isinstance(policy, Restart) and node.restarts < policy.max_restarts:
                        node.restarts += 1
                        self.record(
                            node.name, "node_restarted", attempt=node.restarts, error=f"{type(exc).__name__}: {exc}"
                        )
                        node.end_incarnation()
                        node.requests.fail_taken(f"failed ({type(exc).__name__}: {exc}) and is restarting")
                        closing = node.close_quietly()
                        if closing is not None:
                            self.record(node.name, "close_failed", error=f"{type(closing).__name__}: {closing}")
                        await trio.sleep(policy.backoff * 2 ** (node.restarts - 1))
                        node.impl = node.build()
                        continue
                    reason, error = "failed", exc
                    if isinstance(policy, Isolate):
                        self._isolated[node.name] = exc
                    else:
                        self._fail(node, exc)
                    break
        except BaseException:
            reason = "cancelled"
            raise
        finally:
            with trio.CancelScope(shield=True):
                cleanup = getattr(node.impl, "cleanup", None)
                if cleanup is not None:
                    with trio.move_on_after(self._cleanup_timeout) as bounded:
                        try:
                            await cleanup()
                        except Exception as exc:
                            if error is None and reason != "cancelled":
                                reason, error = "failed", exc
                                self._supervise_late(node, exc)
                    if bounded.cancelled_caught:
                        self.record(node.name, "cleanup_timeout", seconds=self._cleanup_timeout)
                try:
                    node.finish(reason, error)
                except _FusedFailure as failure:  # a fused node downstream failed while finishing
                    self._fused_failed(failure)

    async def _body(self, node: _NodeRun) -> None:
        impl = node.impl
        # One NodeIO per node for its whole life: on restart, messages the failed instance had already taken
        # from its mailboxes but not yet handled are still in the inlets' buffers for the new instance.
        io = node.io if node.io is not None else NodeIO(node)
        node.io = io
        if isinstance(impl, Actor):
            await impl.run(io)
        elif isinstance(impl, Transform):
            await self._drive_transform(node, impl, io)
        else:
            assert isinstance(impl, Source)
            await self._drive_source(node, impl, io)

    async def _drive_transform(self, node: _NodeRun, impl: Transform, io: NodeIO) -> None:
        node.start_impl(io)
        reach = node.reach()
        process = impl.process

        async def read(inlet: Inlet) -> None:
            while True:
                try:
                    batch = await inlet.receive_batch()
                except trio.EndOfChannel:
                    return
                try:
                    while batch:
                        if reach and not has_room(reach):
                            await wait_room(reach)
                        process(inlet.name, batch.popleft())
                finally:  # raised or cancelled: what was not handled goes back, for a restart to find
                    inlet._buf.extendleft(reversed(batch))

        inlets = list(io.inlets.values())
        if len(inlets) == 1:
            await read(inlets[0])
        else:
            async with trio.open_nursery() as nursery:
                for inlet in inlets:
                    nursery.start_soon(read, inlet)
        impl.finish()

    async def _drive_source(self, node: _NodeRun, impl: Source, io: NodeIO) -> None:
        node.start_impl(io)
        reach = node.reach()
        t0 = self.t0
        pacer = self._pacer
        at: float | None = t0
        now = trio.current_time()
        produced = 0
        while True:
            assert at is not None
            if at > now and at > (now := trio.current_time()):  # the clock is read only when it may matter
                if pacer is None:
                    await trio.sleep_until(at)
                else:
                    at = await pacer.hand_over(impl.produce, reach, t0, at)
                    if at is None:
                        return
                    if reach and not has_room(reach):
                        await wait_room(reach)
                now = trio.current_time()
                continue
            due = impl.produce()
            if due is None:
                return
            at = t0 + due
            if reach and not has_room(reach):
                await wait_room(reach)
                now = trio.current_time()
            else:
                produced += 1
                if produced >= YIELD_EVERY:
                    produced = 0
                    await trio.lowlevel.checkpoint()
                    now = trio.current_time()


class Runtime:
    """Hosts running graphs and the pacer they share. Open one with :func:`open_runtime`."""

    def __init__(self, nursery: trio.Nursery, pacer: Pacer) -> None:
        self._nursery = nursery
        self._pacer = pacer
        self.graphs: list[RunningGraph] = []

    def __repr__(self) -> str:
        return f"<Runtime {len(self.graphs)} graphs {self._pacer!r}>"

    async def start(
        self,
        graph: Graph,
        *,
        fuse: bool = True,
        pace: bool = True,
        log: EventLog | None = None,
        cleanup_timeout: float = 5.0,
    ) -> RunningGraph:
        """Validate ``graph``, start every node (sinks first) and return once all are listening.

        Args:
            fuse: run synchronous transforms inside the task upstream of them (same observable behaviour).
            pace: drive paced sources from the shared pacer (else each sleeps in its own task).
            log: the event log to record into (a new one by default).
            cleanup_timeout: seconds each node's shielded cleanup may take.

        Raises:
            GraphDefinitionError: the graph is invalid; nothing was started.
        """
        running = RunningGraph(
            graph,
            fuse=fuse,
            log=log if log is not None else EventLog(),
            pacer=self._pacer if pace else None,
            cleanup_timeout=cleanup_timeout,
        )
        self.graphs.append(running)
        await self._nursery.start(running._run)
        return running


@asynccontextmanager
async def open_runtime() -> AsyncIterator[Runtime]:
    """A runtime whose graphs all finish before the block exits.

    Error handling: a graph that failed and was never waited for raises its failure at exit; a failure is
    never swallowed.
    """
    try:
        async with trio.open_nursery() as nursery:
            pacer = Pacer()
            nursery.start_soon(pacer.run)
            runtime = Runtime(nursery, pacer)
            try:
                yield runtime
                for running in runtime.graphs:
                    await running._done.wait()
            finally:
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        # The runtime's own tasks never raise: a group of one is the block's own error (``await running.wait()``
        # raising NodeFailedError inside it), which the caller gets as itself.
        if len(group.exceptions) == 1 and not isinstance(group.exceptions[0], trio.Cancelled):
            raise group.exceptions[0] from group.exceptions[0].__cause__
        raise
    for running in runtime.graphs:
        if running._failure is not None and not running._observed:
            raise running._failure


async def run(
    graph: Graph,
    *,
    fuse: bool = True,
    pace: bool = True,
    log: EventLog | None = None,
    duration: float | None = None,
    cleanup_timeout: float = 5.0,
) -> GraphResult:
    """Run ``graph`` until every node has finished (or ``duration`` seconds of graph time, then stop).

    Raises:
        GraphDefinitionError: the graph is invalid; nothing ran.
        NodeFailedError: a node failed under the default policy; the graph was cancelled.
    """
    async with open_runtime() as runtime:
        running = await runtime.start(graph, fuse=fuse, pace=pace, log=log, cleanup_timeout=cleanup_timeout)
        if duration is not None:
            with trio.move_on_after(duration):
                await running._done.wait()
            running.stop()
        await running._done.wait()
    # Raised here, outside the runtime's nursery, so the caller gets the error itself, not a group of one.
    return await running.wait()
