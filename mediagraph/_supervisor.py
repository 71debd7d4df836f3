"""Supervision: how each node of a running graph runs, and what its failure does to the graph.

Theory of operation. A :class:`Supervisor` belongs to one running graph. It runs every node that has a task
(:meth:`Supervisor.run_node`: an Actor's ``run``, a Transform's inlet readers, a Source's produce loop, which
hands itself over to the shared pacer while it is paced), starts fused nodes in place, and applies the node's
supervision policy when the node raises: ``restart`` builds a new instance after a backoff, ``isolate`` lets the
rest of the graph go on, and the default fails the graph — the first failure is kept as the graph's
:class:`NodeFailedError` and the graph's cancel scope is cancelled. It is the only place that decides any of
this; a node's record (:class:`~mediagraph._noderun._NodeRun`) and the resources only report to it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, final

import trio

from ._dataplane import YIELD_EVERY, NodeIO, _FusedFailure
from ._errors import MediaGraphError, NodeFailedError
from ._graph import Isolate, Restart
from ._inlet import Inlet
from ._mailbox import has_room, wait_room
from ._node import Actor, Source, Transform
from ._noderun import NodeState, Reason, _failure_of, _NodeRun
from ._pacer import Pacer

if TYPE_CHECKING:
    from ._runtime import RunningGraph

__all__ = ["Supervisor"]


@final
class Supervisor:
    """Runs the nodes of one graph and keeps its failure state: ``failure`` (the first failure under the default
    policy), ``isolated`` (node name -> what failed it) and ``cancelling`` (the graph is being cancelled)."""

    def __init__(self, graph: RunningGraph, *, pacer: Pacer | None, cleanup_timeout: float) -> None:
        self.graph = graph
        self.pacer = pacer
        self.cleanup_timeout = cleanup_timeout
        self.scope = trio.CancelScope()  # the graph's: every node task runs inside it
        self.cancelling = False
        self.failure: MediaGraphError | None = None
        self.isolated: dict[str, BaseException] = {}

    def __repr__(self) -> str:
        return f"<Supervisor of {self.graph.name!r} failure={self.failure!r} isolated={sorted(self.isolated)}>"

    # --- failure ------------------------------------------------------------------------------------------

    def cancel(self) -> None:
        """Cancel every node of the graph now."""
        self.cancelling = True
        self.scope.cancel()

    def fail(self, node: _NodeRun, exc: BaseException) -> None:
        """``node`` failed under the default policy: the graph fails with it."""
        self.fail_with(NodeFailedError(self.graph.prefix + node.name, exc), exc)

    def fail_with(self, failure: MediaGraphError, cause: BaseException) -> None:
        """The graph fails with ``failure`` (the first one is kept) and is cancelled."""
        if self.failure is None:
            failure.__cause__ = cause
            self.failure = failure
        self.cancel()

    def supervise_late(self, node: _NodeRun, exc: BaseException) -> None:
        """A node failed after its body ended (in ``close()`` or ``cleanup()``): too late to restart it, so it is
        isolated under ``isolate`` and fails the graph otherwise."""
        if isinstance(node.spec.supervision, Isolate):
            self.isolated[node.name] = exc
        else:
            self.fail(node, exc)

    # --- fused nodes: run inside the task that sends to them ----------------------------------------------

    def start_fused(self, node: _NodeRun) -> None:
        node.state = NodeState.RUNNING
        node.record("node_started")
        self.guard_fused(node, lambda: node.start_impl(NodeIO(node)))

    def guard_fused(self, node: _NodeRun, fn: Callable[[], None]) -> None:
        """Call ``fn`` on ``node``'s behalf, outside any node task: a fused failure fails the node it belongs to."""
        try:
            fn()
        except _FusedFailure as failure:
            self._fused_failed(failure)
        except Exception as exc:
            self._fused_failed(_FusedFailure(node, exc))

    def _fused_failed(self, failure: _FusedFailure) -> None:
        failure.node.finish("failed", failure.cause)
        self.fail(failure.node, failure.cause)

    # --- nodes with a task ----------------------------------------------------------------------------------

    async def run_node(self, node: _NodeRun, task_status: trio.TaskStatus[None]) -> None:
        """The task of one node: its body under its supervision policy, then its shielded cleanup and its end."""
        node.state = NodeState.RUNNING
        node.record("node_started")
        task_status.started()
        reason: Reason = "completed"
        error: BaseException | None = None
        try:
            reason, error = await self._supervised(node)
        except BaseException:
            reason = "cancelled"
            raise
        finally:
            with trio.CancelScope(shield=True):
                failed = await self._cleanup(node)
                if failed is not None and error is None and reason != "cancelled":
                    reason, error = "failed", failed
                    self.supervise_late(node, failed)
                try:
                    node.finish(reason, error)
                except _FusedFailure as failure:  # a fused node downstream failed while finishing
                    self._fused_failed(failure)

    async def _supervised(self, node: _NodeRun) -> tuple[Reason, BaseException | None]:
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
                    return "cancelled", None
                return "completed", None
            except BaseException as raised:
                exc = _failure_of(raised)
                if exc is None:  # cancelled (or interrupted): not the node's failure
                    raise
                if isinstance(exc, _FusedFailure):
                    self._fused_failed(exc)
                    return "cancelled", None
                policy = node.spec.supervision
                if isinstance(policy, Restart) and node.restarts < policy.max_restarts:
                    await self._restart(node, exc, policy)
                    continue
                if isinstance(policy, Isolate):
                    self.isolated[node.name] = exc
                else:
                    self.fail(node, exc)
                return "failed", exc

    async def _restart(self, node: _NodeRun, exc: Exception, policy: Restart) -> None:
        node.restarts += 1
        node.record("node_restarted", attempt=node.restarts, error=f"{type(exc).__name__}: {exc}")
        node.end_incarnation()
        node.requests.fail_taken(f"failed ({type(exc).__name__}: {exc}) and is restarting")
        closing = node.close_quietly()
        if closing is not None:
            node.record("close_failed", error=f"{type(closing).__name__}: {closing}")
        await trio.sleep(policy.backoff * 2 ** (node.restarts - 1))
        node.impl = node.build()

    async def _cleanup(self, node: _NodeRun) -> Exception | None:
        """Await the node's ``cleanup()`` (if it has one) within the cleanup timeout; return what it raised."""
        cleanup = getattr(node.impl, "cleanup", None)
        failed: Exception | None = None
        if cleanup is None:
            return failed
        with trio.move_on_after(self.cleanup_timeout) as bounded:
            try:
                await cleanup()
            except Exception as exc:
                failed = exc
        if bounded.cancelled_caught:
            node.record("cleanup_timeout", seconds=self.cleanup_timeout)
        return failed

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
                    inlet.give_back(batch)

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
        t0 = self.graph.t0
        pacer = self.pacer
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
