"""One node's life: its instance, mailboxes, outlets and requests, its lifecycle state and statistics.

Theory of operation. The runner keeps one :class:`_NodeRun` per node for the node's whole life, restarts
included; the node itself only ever sees its :class:`~mediagraph._dataplane.NodeIO`. ``finish`` is the one place a
node ends: exactly once, it answers the requests left, finishes what its playback outlets owed, closes the
instance (a ``close()`` that raises is the node's failure), records ``node_finished`` and closes its outlets.
"""

from __future__ import annotations

import enum
import math
from typing import TYPE_CHECKING, Any, Literal, final

import trio

from ._contract import PLAYBACK_TYPES, PlaybackContractError
from ._dataplane import Link, NodeIO, Outlet, PlaybackOutlet, _FusedFailure
from ._errors import MediaGraphError
from ._graph import FailGraph, NodeSpec
from ._mailbox import Mailbox
from ._node import Actor, Node, Transform
from ._ports import Overflow
from ._requests import RequestBox
from ._resources import _refs
from ._statistics import NodeStatistics

if TYPE_CHECKING:
    from ._runtime import RunningGraph

__all__ = ["NodeState"]

Reason = Literal["completed", "cancelled", "failed"]


class NodeState(enum.StrEnum):
    """Where a node is in its life: ``pending`` (not started), ``running``, ``finished`` (exactly once)."""

    PENDING = "pending"
    RUNNING = "running"
    FINISHED = "finished"


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


@final
class _Unbuilt(Actor):
    """Stands for a node whose constructor raised: running it raises that error, so the failure goes through the
    node's lifecycle and supervision like any other (a restart builds it again)."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    async def run(self, io: NodeIO) -> None:
        raise self.error


@final
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
        self.state = NodeState.PENDING
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
        if self.open_links == 0 and self.state is NodeState.RUNNING:
            if self.graph.supervisor.cancelling:
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
        self.requests.close(f"has finished ({reason})" if self.state is NodeState.RUNNING else "never started")
        if self.state is not NodeState.RUNNING:  # never started, or already finished: exactly one node_finished
            return
        self.state = NodeState.FINISHED
        self.end_incarnation()
        closing = self.close_quietly()
        if closing is not None:  # close() raised: the node failed, whatever it did before
            if error is None:
                reason, error = "failed", closing
            self.graph.supervisor.supervise_late(self, closing)
        fields: dict[str, Any] = {"reason": reason}
        if error is not None:
            fields["error"] = f"{type(error).__name__}: {error}"
        # Recorded before the outlets close, so fused and unfused nodes downstream finish after this one.
        self.graph.record(self.name, "node_finished", **fields)
        for inlet in self.io.inlets.values() if self.io is not None else ():
            inlet.drop_taken()
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
