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

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, Final, final

import attrs
import trio

from ._dataplane import Link
from ._errors import MediaGraphError, ProviderError
from ._events import EventLog
from ._frames import Interrupt
from ._graph import Graph
from ._limits import closest
from ._noderun import NodeState, _NodeRun
from ._pacer import Pacer
from ._requests import Request
from ._resources import _Resources
from ._statistics import InletStatistics, LinkStatistics, NodeStatistics, OutletStatistics
from ._supervisor import Supervisor

__all__ = ["GraphResult", "RunningGraph", "Runtime", "open_runtime", "run"]

#: The longest chain of fused nodes run as nested calls inside one task (Python's stack bounds it).
MAX_FUSED_CHAIN: Final = 32


@final
@attrs.frozen(kw_only=True)
class GraphResult:
    """How a graph ended: ``reason`` (completed, stopped, cancelled), the event log, final statistics and
    the failures of isolated nodes (name -> exception)."""

    reason: str
    log: EventLog
    statistics: Mapping[str, NodeStatistics]
    isolated: Mapping[str, BaseException]


@final
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
        meter: bool = False,
    ) -> None:
        validated = graph.validate()
        self.meter = meter
        self.graph = graph
        self.name = graph.name
        self.log = log
        self.fuse = fuse
        # A graph nested in a slot records its nodes as "slot/node", its bridges not at all, and no graph events.
        self.prefix = prefix
        self._quiet = quiet
        self.t0 = trio.current_time() if t0 is None else t0
        self._clock_given = t0 is not None  # a nested graph keeps its parent's graph clock
        self.supervisor = Supervisor(self, pacer=pacer, cleanup_timeout=cleanup_timeout)
        self._stopped = False
        self._done = trio.Event()
        self._observed = False
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
                outlet.wire(meter=meter)

    def __repr__(self) -> str:
        state = self.result.reason if self.result else ("cancelling" if self.supervisor.cancelling else "running")
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

        After the inlet's input ended, the interrupt reaches only a node that reads on after the end
        (``Inlet.after_end``: the speaker, a slot, ``av_sync`` and ``transcript_sync`` do while they play out
        what they hold); for any other it is refused rather than left where nobody reads it.

        Raises:
            MediaGraphError: no such node or inlet, the node is not running, or its inlet has ended and the
                node reads nothing more there.
        """
        run = self._node(node)
        if run.spec.ports.inlet(inlet) is None:
            raise MediaGraphError(f"node {node!r} has no inlet {inlet!r} to interrupt")
        if run.state is not NodeState.RUNNING:
            raise MediaGraphError(f"node {node!r} is {run.state}; there is nothing to interrupt")
        if not run.fused and not run.mailboxes[inlet].deliverable:
            raise MediaGraphError(
                f"node {node!r}: inlet {inlet!r} has ended (its input finished) and the node reads nothing more "
                f"there, so the interrupt would be lost; interrupt a node whose input is still open"
            )
        self.record(node, "interrupt_requested", inlet=inlet)
        if run.fused:
            self.supervisor.guard_fused(run, lambda: run.impl.process(inlet, Interrupt()))  # type: ignore[union-attr]
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
        if run.state is not NodeState.RUNNING:
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
        if node.state is not NodeState.RUNNING:
            return
        node.imposed = error
        self.supervisor.fail(node, error)

    async def start_child(
        self, nursery: trio.Nursery, graph: Graph, *, prefix: str, quiet: frozenset[str]
    ) -> RunningGraph:
        """Start ``graph`` nested in this one (see :meth:`NodeIO.start_child`): same clock, log, pacer and
        resources, its nodes logged under ``prefix``."""
        child = RunningGraph(
            graph,
            fuse=self.fuse,
            log=self.log,
            pacer=self.supervisor.pacer,
            cleanup_timeout=self.supervisor.cleanup_timeout,
            prefix=f"{self.prefix}{prefix}",
            quiet=quiet,
            meter=self.meter,
            t0=self.t0,
            resources=self.resources,
        )
        await nursery.start(child._run)
        return child

    @property
    def failure(self) -> MediaGraphError | None:
        """The error the graph failed with (a node with the default policy failed), once it has."""
        return self.supervisor.failure

    async def wait_finished(self) -> None:
        """Wait for the graph to finish, however it ends; never raises its failure (see :attr:`failure`)."""
        await self._done.wait()

    def cancel(self) -> None:
        """Cancel every node now; they finish as cancelled."""
        self.supervisor.cancel()

    async def wait(self) -> GraphResult:
        """Wait for the graph to finish.

        Raises:
            NodeFailedError: a node with the default policy failed (the original is ``__cause__``).
        """
        await self._done.wait()
        if self.supervisor.failure is not None:
            self._observed = True
            raise self.supervisor.failure
        assert self.result is not None
        return self.result

    def statistics(self) -> dict[str, NodeStatistics]:
        """Each node's statistics, by name (see :mod:`mediagraph._statistics` for what the fields mean)."""
        return {name: node.statistics() for name, node in self.nodes.items()}

    def link_statistics(self) -> list[LinkStatistics]:
        """Every link's statistics, in the order of the graph's links."""
        return [link.statistics() for link in self.links]

    def inlet_statistics(self) -> list[InletStatistics]:
        """The statistics of every inlet of the nodes that have their own task and have started."""
        return [inlet.statistics() for node in self.nodes.values() if node.io for inlet in node.io.inlets.values()]

    def outlet_statistics(self) -> list[OutletStatistics]:
        """Every outlet's statistics."""
        return [outlet.statistics() for node in self.nodes.values() for outlet in node.outlets.values()]

    # --- running ------------------------------------------------------------------------------------------

    async def _run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        if not self._clock_given:
            self.t0 = trio.current_time()
        if not self.prefix:
            self.log.record(0.0, None, "graph_started", graph=self.name)
        started = False
        try:
            with self.supervisor.scope:
                try:
                    for node in self.nodes.values():  # every resource opens before its first user starts
                        self.resources.acquire(node.refs)
                        node.holds = node.refs
                except ProviderError as exc:
                    self.supervisor.fail_with(exc, exc.__cause__ or exc)
                    return
                async with trio.open_nursery() as nursery:
                    for node in reversed(self.nodes.values()):  # sinks first
                        if node.fused:
                            self.supervisor.start_fused(node)
                        else:
                            await nursery.start(self.supervisor.run_node, node)
                    task_status.started()
                    started = True
                    for node in self.nodes.values():
                        if node.fused and node.open_links == 0 and node.state is NodeState.RUNNING:
                            node.open_links = 1
                            self.supervisor.guard_fused(node, node.fused_link_closed)
        finally:
            for node in self.nodes.values():
                node.finish("cancelled")
                if node.holds:  # never started: give back what was taken for it
                    self.resources.release(node.holds)
                    node.holds = set()
            if self._owns_resources:
                for name in list(self.resources.values):
                    self.resources.close(name)
            if self.supervisor.failure is not None:
                reason = "failed"
            elif self.supervisor.cancelling:
                reason = "cancelled"
            else:
                reason = "stopped" if self._stopped else "completed"
            self.record(None, "graph_finished", graph=self.name, reason=reason)
            self.result = GraphResult(
                reason=reason, log=self.log, statistics=self.statistics(), isolated=dict(self.supervisor.isolated)
            )
            self._done.set()
            if not started:  # failed or cancelled while starting: the starter still gets its answer
                task_status.started()


@final
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
        meter: bool = False,
    ) -> RunningGraph:
        """Validate ``graph``, start every node (sinks first) and return once all are listening.

        Args:
            fuse: run synchronous transforms inside the task upstream of them (same observable behaviour).
            pace: drive paced sources from the shared pacer (else each sleeps in its own task).
            log: the event log to record into (a new one by default).
            cleanup_timeout: seconds each node's shielded cleanup may take.
            meter: keep the last audio frame each outlet sent (``Outlet.last_audio``), for a level meter; off,
                it costs nothing.

        Raises:
            GraphDefinitionError: the graph is invalid; nothing was started.
        """
        running = RunningGraph(
            graph,
            fuse=fuse,
            log=log if log is not None else EventLog(),
            pacer=self._pacer if pace else None,
            cleanup_timeout=cleanup_timeout,
            meter=meter,
        )
        # A long-lived runtime (a session pool's worker) starts graph after graph: forget those that finished
        # and have nothing left to report (a failure is kept until it has been observed).
        self.graphs = [g for g in self.graphs if g.result is None or (g.failure is not None and not g._observed)]
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
                    await running.wait_finished()
            finally:
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        # The runtime's own tasks never raise: a group of one is the block's own error (``await running.wait()``
        # raising NodeFailedError inside it), which the caller gets as itself.
        if len(group.exceptions) == 1 and not isinstance(group.exceptions[0], trio.Cancelled):
            raise group.exceptions[0] from group.exceptions[0].__cause__
        raise
    for running in runtime.graphs:
        if running.failure is not None and not running._observed:
            raise running.failure


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
                await running.wait_finished()
            running.stop()
        await running.wait_finished()
    # Raised here, outside the runtime's nursery, so the caller gets the error itself, not a group of one.
    return await running.wait()
