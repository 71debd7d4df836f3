"""The ``slot`` node: a swappable child behind a fixed set of ports.

Theory of operation. Everything upstream links to the slot, never to the child, so a swap cannot disturb the
chain above (a transcript synchronizer, a recorder). The child runs as a small graph started through the
public sub-graph seam (:meth:`NodeIO.start_child`) — ``feed`` → child → ``tap`` — so it keeps a real
lifecycle and shielded cleanup; it is logged as ``slot/childN``, ``N`` never reused, restarts included.

One task owns every decision. Three kinds of things reach it, each as a message in the slot's own queues:
the messages on its inlets (read by one reader task per inlet, one at a time, so backpressure holds), what
the child sends (the tap posts it), and the API's swap requests (``io.requests``: queued, in order, each
answered exactly once — by the slot, or by the runtime if the slot ends first). The segment bookkeeping is
the trio-free :class:`SlotSegments`; the task only applies its decisions. Hence, by construction: two swaps
never overlap, a boundary swap never runs inside a segment, and no call is left waiting.

Segments and generations are the slot's own: the first frame after a flush or interrupt opens a segment; every
event about it carries the slot's id and the generation in force when it opened. The generation goes up at
every swap and every interrupt, whether or not a child is there to hear it. A swap happens between two
messages:

- ``cut``: the old child gets an ``Interrupt`` (its segment, open or flushed and still playing, finishes as
  interrupted at the position it reached), its input ends, and the new child starts once the old one has
  finished (or, after ``stop_timeout``, been cancelled).
- ``boundary``: waits in the slot — never in the caller's schedule — until no segment is open: after the flush
  or interrupt that closes it, or the end of the input. A cut asked for behind it interrupts the open segment,
  which is the boundary it was waiting for.

Every message sent to the slot reaches exactly one child, in order. Once the old child has finished nothing of
it can reach anyone. Whatever a child owed when it finished — died, was cut, was cancelled — the slot
finishes as interrupted at the position it last reported. An empty slot answers a flush (or interrupt) with an
interrupted ``PlaybackFinished`` for the segment, as a message. A child that breaks the segment contract fails
(the runtime checks its playback outlet; the slot checks the ids and positions it reports against what it
was sent), and a child that fails fails the slot with the child's own error, after its segments finished.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, final

import trio

from ._configs import building_resources
from ._contract import PlaybackContractError
from ._dataplane import NodeIO
from ._errors import MediaGraphError
from ._frames import AudioFrame, Flush, Interrupt, PlaybackFinished, PlaybackProgress, PlaybackStarted
from ._graph import Graph
from ._node import Actor, ResourceSpec, node_type
from ._ports import Ports
from ._requests import Request
from ._slot_bridges import (
    _ChildEnded,
    _ChildSent,
    _Control,
    _FeedConfig,
    _Hosted,
    _LateInterrupt,
    _StopTimedOut,
    _TapConfig,
)
from ._slot_config import ChildSpec, SlotConfig, Swap, SwapPolicy, as_child, check_swap
from ._slot_core import Answer, SlotSegments

__all__ = ["ChildSpec", "SlotConfig", "SwapPolicy"]


@final
@node_type(
    "slot",
    config=SlotConfig,
    examples={"child: {type: speaker}": {"child": {"type": "speaker"}}, "like: null_sink": {"like": "null_sink"}},
    port_notes="those of its child's type (or of 'like' for an empty slot)",
)
class Slot(Actor):
    """Holds a swappable child behind fixed ports; swap it with ``RunningGraph.swap``."""

    @staticmethod
    def ports(config: SlotConfig) -> Ports:
        return config.ports()

    @staticmethod
    def prepare_swap(
        name: str, config: SlotConfig, child: Any, policy: Any, resources: Mapping[str, ResourceSpec]
    ) -> Swap:
        """Validate a swap before it is queued (see :func:`check_swap`)."""
        token = building_resources.set(resources)  # a new child may name graph resources
        try:
            spec = as_child(child)
        finally:
            building_resources.reset(token)
        return Swap(child=spec, policy=check_swap(name, config, spec, policy))

    def __init__(self, config: SlotConfig) -> None:
        self.config = config
        ports = config.ports()
        self._ports = ports
        self._audio = next((p.name for p in ports.inlets if AudioFrame in p.types), None)
        self._interrupt_inlet = self._audio or ports.inlets[0].name
        self._playback = [p.name for p in ports.outlets if PlaybackFinished in p.types]
        self.segments = SlotSegments()
        self.child: _Hosted | None = None
        self.stopping: _Hosted | None = None  # the child being replaced
        self._swap: tuple[Request, Swap, str | None] | None = None  # the swap waiting for `stopping` to end
        self._requests: deque[Request] = deque()
        self._control: deque[_Control] = deque()  # what the children send, their ends, swap requests
        self._inputs: deque[tuple[str, Any] | None] = deque()  # inlet messages; None: every inlet ended
        self._wake = trio.lowlevel.ParkingLot()
        self._room = trio.lowlevel.ParkingLot()
        self.input_ended = False
        self.discarded = 0  # frames that reached an empty slot
        self.started = 0  # children this incarnation started

    def __repr__(self) -> str:
        child = self.child.spec if self.child else "empty"
        return f"<Slot child={child} generation={self.segments.generation} open={self.segments.open}>"

    # --- the actor ------------------------------------------------------------------------------------------

    async def run(self, io: NodeIO) -> None:
        self.io = io
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            if self.config.child is not None:
                await self._start(self.config.child)
            nursery.start_soon(self._read_requests)
            nursery.start_soon(self._read_inputs)
            await self._loop()
            nursery.cancel_scope.cancel()
        io.log("slot_total", segments=self.segments.next_segment, discarded=self.discarded, children=self.started)

    async def _loop(self) -> None:
        while True:
            if self._control:
                await self._on_control(self._control.popleft())
            elif self._inputs and self.stopping is None:
                await self._on_input(self._inputs.popleft())
            elif self.input_ended and self.child is None and self.stopping is None:
                return
            else:
                await self._wake.park()
            self._room.unpark_all()

    def _post(self, item: _Control) -> None:
        self._control.append(item)
        self._wake.unpark_all()

    async def _read_requests(self) -> None:
        async for request in self.io.requests:
            self._post(request)

    def _has_room(self) -> bool:
        if self._inputs or self.stopping is not None:
            return False
        return self.child is None or len(self.child.feed.items) < 2

    async def _read_inputs(self) -> None:
        async def read(inlet: str) -> None:
            async for msg in self.io.inlets[inlet]:
                while not self._has_room():  # the child is behind, or the slot's task, or a swap is under way
                    await self._room.park()
                self._inputs.append((inlet, msg))
                self._wake.unpark_all()

        async with trio.open_nursery() as readers:
            for inlet in self.io.inlets:
                readers.start_soon(read, inlet)
        self._inputs.append(None)
        self._wake.unpark_all()
        # A barge-in after the end still reaches the child playing out (until the slot finishes).
        with self.io.inlets[self._interrupt_inlet].after_end() as late:
            async for msg in late:  # cancelled once the slot finishes
                if isinstance(msg, Interrupt):
                    self._post(_LateInterrupt())

    # --- inputs ---------------------------------------------------------------------------------------------

    async def _on_input(self, item: tuple[str, Any] | None) -> None:
        if item is None:
            self.input_ended = True
            self._answer(self.segments.end(self.io.time()))
            await self._serve_requests()  # swaps asked for before the end: the end is their boundary
            return
        inlet, msg = item
        if inlet == self._audio:
            owner = self.child.key if self.child is not None else None
            if isinstance(msg, AudioFrame):
                self.segments.frame(owner, msg.timestamp / msg.sample_rate, msg.duration)
                if owner is None:
                    self.discarded += 1
            elif isinstance(msg, Interrupt):
                self._answer(self.segments.interrupt(self.io.time()))
            elif isinstance(msg, Flush):
                self._answer(self.segments.flush(owner, self.io.time()))
        if self.child is not None:
            self.child.feed.put(inlet, msg)
        await self._serve_requests()

    # --- what the children send -----------------------------------------------------------------------------

    def _from_child(self, hosted: _Hosted) -> Callable[[str, Any], None]:
        def post(outlet: str, msg: Any) -> None:
            self._post(_ChildSent(hosted, outlet, msg))

        return post

    async def _on_control(self, item: _Control) -> None:
        if isinstance(item, Request):
            if self.input_ended:
                item.fail(MediaGraphError(f"slot {self.io.name!r} has ended its input; there is nothing to swap"))
                return
            self._requests.append(item)
            await self._serve_requests()
        elif isinstance(item, _ChildSent):
            if item.child is self.child or item.child is self.stopping:  # else a replaced child: dropped
                self._child_message(item.child, item.outlet, item.msg)
        elif isinstance(item, _ChildEnded):
            await self._child_ended(item.child)
        elif isinstance(item, _LateInterrupt):
            self._late_interrupt()
        elif item.child is self.stopping and item.child.running is not None:
            self.io.log("child_stop_timeout", child=item.child.name, seconds=self.config.stop_timeout)
            item.child.running.cancel()

    def _late_interrupt(self) -> None:
        """An interrupt after the input ended: the child cuts what it still plays, if it reads on after its own
        input ended (its segments then finish as interrupted, as for any interrupt)."""
        child = self.child
        self._answer(self.segments.interrupt(self.io.time()))
        if child is None or child.running is None:
            self.io.log("interrupt_after_end", reason="the slot is empty")
            return
        try:
            child.running.interrupt(child.name, self._interrupt_inlet)
        except MediaGraphError as exc:  # nothing is left to cut
            self.io.log("interrupt_after_end", reason=str(exc))

    def _child_message(self, hosted: _Hosted, outlet: str, msg: Any) -> None:
        if not isinstance(msg, (PlaybackStarted, PlaybackProgress, PlaybackFinished)):
            self.io.outlets[outlet].emit(msg)
            return
        if hosted.failed:  # nothing more of a child the slot failed
            return
        try:
            event = self.segments.child_event(hosted.key, outlet, msg)
        except PlaybackContractError as breach:
            # The child's own outlet passed it, so it breaks what only the slot knows: what it sent the child.
            assert hosted.running is not None
            hosted.failed = True
            hosted.running.fail_node(hosted.name, breach)
            return
        self.io.outlets[outlet].emit(event)

    async def _child_ended(self, hosted: _Hosted) -> None:
        assert hosted.running is not None
        self._answer(self.segments.child_gone(hosted.key, self.io.time()))
        failure = hosted.running.failure
        if hosted is self.child:
            self.child = None
            if failure is not None:
                raise failure
            if not self.input_ended:  # a child that ends by itself leaves the slot empty, as a swap to None would
                self.io.log("child_finished", child=hosted.name)
            return
        assert hosted is self.stopping and self._swap is not None
        self.stopping = None
        request, swap, old = self._swap
        self._swap = None
        if failure is not None:
            self.io.log("swap_failed", old=old, new=_str(swap.child), error=str(failure))
            request.fail(failure)
            raise failure
        await self._install(request, swap, old)
        await self._serve_requests()

    def _answer(self, answers: list[Answer]) -> None:
        for outlet in self._playback:
            for answer in answers:
                self.io.outlets[outlet].emit(answer)

    # --- swaps ----------------------------------------------------------------------------------------------

    async def _serve_requests(self) -> None:
        """Begin the first queued swap if it can begin now; a cut queued behind a waiting boundary swap
        interrupts the open segment, which is the boundary that swap waits for. Once the input has ended and
        no swap is left, the last child is stopped."""
        await self._next_swaps()
        child = self.child
        if self.input_ended and not self._requests and self.stopping is None and child and not child.feed.closed:
            self._stop(child, cut=False)

    async def _next_swaps(self) -> None:
        while self._requests and self.stopping is None:
            request = self._requests[0]
            swap: Swap = request.payload
            if swap.policy is SwapPolicy.BOUNDARY and self.segments.open is not None and self.child is not None:
                if not any(r.payload.policy is SwapPolicy.CUT for r in self._requests):
                    return
                self._answer(self.segments.interrupt(self.io.time()))
                self.child.feed.put(self._interrupt_inlet, Interrupt(reason="swap"))
            self._requests.popleft()
            await self._begin(request, swap)

    async def _begin(self, request: Request, swap: Swap) -> None:
        old = self.child
        self.io.log("swap_started", old=_str(old.spec if old else None), new=_str(swap.child), policy=swap.policy.value)
        # A cut interrupts whatever the old child still plays, a flushed segment too; a boundary swap begins
        # only when no segment is open (or with no child), and lets the old child play out what was flushed.
        cut = self.segments.open is not None or (
            swap.policy is SwapPolicy.CUT and old is not None and self.segments.owes(old.key)
        )
        self._answer(self.segments.interrupt(self.io.time(), count=False))  # the empty slot's open segment
        self.segments.swapped()
        if old is None:
            await self._install(request, swap, None)
            return
        self._swap = (request, swap, str(old.spec))
        self.child, self.stopping = None, old
        self._stop(old, cut=cut)

    def _stop(self, hosted: _Hosted, *, cut: bool) -> None:
        """End the child's input (after an ``Interrupt`` if ``cut``); it finishes in its own time, bounded by
        ``stop_timeout``, and its end reaches the loop as a message."""
        if cut:
            hosted.feed.put(self._interrupt_inlet, Interrupt(reason="swap"))
        hosted.feed.close()
        self._nursery.start_soon(self._bound_stop, hosted)

    async def _bound_stop(self, hosted: _Hosted) -> None:
        assert hosted.running is not None
        with trio.move_on_after(self.config.stop_timeout):
            await hosted.running.wait_finished()
            return
        self._post(_StopTimedOut(hosted))

    async def _install(self, request: Request, swap: Swap, old: str | None) -> None:
        if swap.child is not None:
            await self._start(swap.child)
        self.io.log("swap_finished", old=old, new=_str(swap.child), generation=self.segments.generation)
        request.resolve()

    async def _start(self, spec: ChildSpec) -> None:
        name = self.io.child_name()
        hosted = _Hosted(spec, name, f"{self.io.name}/{name}", self._room)
        g = Graph(name)
        g.add("feed", "_slot_feed", config=_FeedConfig(ports=self._ports, queue=hosted.feed))
        g.add(name, spec.type, config=spec.config)
        g.add("tap", "_slot_tap", config=_TapConfig(ports=self._ports, post=self._from_child(hosted)))
        for inlet in self._ports.inlets:
            g.link(f"feed.{inlet.name}", f"{name}.{inlet.name}")
        for outlet in self._ports.outlets:
            g.link(f"{name}.{outlet.name}", f"tap.{outlet.name}")
        self.segments.child_started(hosted.key)
        hosted.running = await self.io.start_child(self._nursery, g, quiet=frozenset({"feed", "tap"}))
        self.child = hosted
        self.started += 1
        self._nursery.start_soon(self._watch, hosted)

    async def _watch(self, hosted: _Hosted) -> None:
        assert hosted.running is not None
        await hosted.running.wait_finished()
        self._post(_ChildEnded(hosted))


def _str(spec: ChildSpec | None) -> str | None:
    return str(spec) if spec is not None else None
