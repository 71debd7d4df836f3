"""The data plane: links, outlets, inlets, and what a running node sees of the graph (:class:`NodeIO`).

Theory of operation. A message goes from a node's ``Outlet.emit`` (``send`` waits for room first) to every
:class:`Link` of the outlet; a link either puts it in the target's :class:`~mediagraph._mailbox.Mailbox`, where
the target's :class:`~mediagraph._inlet.Inlet` takes it in batches, or — for a *fused* target — calls the
target's ``process`` directly. So a frame's path from one node to the next is: ``Outlet.emit`` →
``Link.push`` → ``Mailbox.put`` or ``Transform.process``. A :class:`PlaybackOutlet` checks each playback event
against the outlet's contract before that, and records it in the event log.

Backpressure crosses fused chains: each outlet knows the blocking mailboxes it reaches through fused nodes
(its *reach*) and a send first waits until every one of them has room.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final, final

import trio

from ._configs import ResourceRef
from ._contract import PLAYBACK_TYPES, PlaybackContract
from ._errors import MediaGraphError
from ._frames import AudioFrame, EndOfStream, PlaybackProgress, PlaybackStarted
from ._graph import Graph, PortRef
from ._inlet import Inlet
from ._limits import closest
from ._mailbox import Mailbox, has_room, wait_room
from ._ports import Overflow
from ._requests import RequestBox
from ._statistics import LinkStatistics, OutletStatistics

if TYPE_CHECKING:
    from ._noderun import _NodeRun
    from ._runtime import RunningGraph

__all__ = ["Link", "NodeIO", "Outlet", "PlaybackOutlet", "YIELD_EVERY"]

#: A task sending (or a source producing) without ever waiting yields to the scheduler, and so notices
#: cancellation, at least this often. Larger batches per consumer wake-up; at most this many messages of
#: synchronous work between two checkpoints.
YIELD_EVERY: Final = 64


@final
class _FusedFailure(Exception):
    """A fused node raised inside another node's task; carries the node it belongs to."""

    def __init__(self, node: _NodeRun, cause: BaseException) -> None:
        super().__init__(node.name)
        self.node = node
        self.cause = cause


@final
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

    def lag(self) -> int:
        """The lag of the inlet this link ends in (see :mod:`mediagraph._statistics`); 0 for a fused target."""
        io = self._node.io
        inlet = io.inlets.get(self._port) if io is not None else None
        if inlet is not None:
            return inlet.lag
        return len(self._mailbox) if self._mailbox is not None else 0

    def statistics(self) -> LinkStatistics:
        mb = self._mailbox
        return LinkStatistics(
            src=str(self.spec_src),
            dst=str(self.spec_dst),
            frames=self.frames,
            queued=len(mb) if mb is not None else 0,
            peak=mb.peak if mb is not None else 0,
            dropped=mb.dropped if mb is not None else 0,
            lag=self.lag(),
        )

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

    __slots__ = ("_reach", "_sends", "emit", "last_audio", "links", "name", "node")

    def __init__(self, node: str, name: str) -> None:
        self.node = node
        self.name = name
        self.last_audio: AudioFrame | None = None  # kept only when the graph is metered
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

    def wire(self, *, meter: bool = False) -> None:
        """Called by the runtime once every link of the graph exists: ``emit`` goes straight to the links, and
        ``send`` waits on the blocking mailboxes they reach. Metered, ``emit`` first keeps each audio frame in
        ``last_audio`` (for a level meter; unmetered, nothing is added to the path)."""
        self._reach = [mb for link in self.links for mb in link.reach()]
        if len(self.links) == 1:
            self.emit = self.links[0].push
        elif self.links:
            pushes = [link.push for link in self.links]

            def fan_out(msg: Any) -> None:
                for push in pushes:
                    push(msg)

            self.emit = fan_out
        if meter:
            inner = self.emit

            def metered(msg: Any) -> None:
                if type(msg) is AudioFrame:
                    self.last_audio = msg
                inner(msg)

            self.emit = metered

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

    def statistics(self) -> OutletStatistics:
        return OutletStatistics(
            node=self.node,
            name=self.name,
            links=len(self.links),
            sent=self.sent,
            closed=self.closed,
            lag=max((link.lag() for link in self.links), default=0),
        )

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


@final
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

    def wire(self, *, meter: bool = False) -> None:
        self.emit = self._discard
        super().wire()
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
        fields: dict[str, Any] = {"segment": event.segment, "generation": event.generation}
        if isinstance(event, PlaybackStarted):
            kind = "playback_started"
        else:
            fields["position"] = round(event.position, 6)
            kind = "playback_progress"
            if not isinstance(event, PlaybackProgress):
                kind = "playback_finished"
                fields.update(interrupted=event.interrupted, sent=round(event.sent, 6))
        self._record(kind, **fields, at=event.t)
        self._push(event)

    def end_incarnation(self, t: float) -> None:
        """The node died or restarts: deliver the finish it owed, if any (see :class:`PlaybackContract`)."""
        for event in self.contract.end_incarnation(t):
            if not self.closed:
                self._deliver(event)


@final
class NodeIO:
    """What a running node sees of the graph: its ports, the graph clock and the event log."""

    def __init__(self, run: _NodeRun) -> None:
        self._run = run
        self._now = trio.lowlevel.current_clock().current_time  # what trio.current_time() calls, minus 3 calls
        self.name = run.name
        self.inlets: Mapping[str, Inlet] = {name: Inlet(run.name, name, mb) for name, mb in run.mailboxes.items()}
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
        return await self._run.graph.start_child(nursery, graph, prefix=f"{self.name}/", quiet=quiet)
