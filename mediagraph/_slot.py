"""The ``slot`` node: a swappable child behind a fixed set of ports.

Theory of operation. Everything upstream links to the slot, never to the child, so a swap cannot disturb the
chain above (a transcript synchronizer, a recorder). The child runs as a small graph nested in the slot's
task tree — ``feed`` (messages from the slot) → child → ``tap`` (its outlets, back to the slot) — so it keeps
a real lifecycle, supervision and shielded cleanup; it is logged as ``slot/childN``.

The slot numbers segments itself (the first frame after a flush or interrupt opens one), and maps the
child's own numbering onto its own, so segment ids run on across children; every playback event it passes
up carries the slot's generation: the child's own (which increases at each interrupt) on top of a base that
passes every earlier child's at each swap, so it increases at every swap and every interrupt. A swap happens
between two messages:

- ``cut``: the old child gets an ``Interrupt`` (its open segment finishes as interrupted at the position it
  reached), its input ends, and the slot waits for it to finish before the new child starts.
- ``boundary``: the old child plays out the open segment; the swap happens after the flush that closes it.

Every message sent to the slot reaches exactly one child, in order. Once the old child has finished nothing
of it can reach anyone. An empty slot answers a flush (or interrupt) with an interrupted
``PlaybackFinished`` for the segment, as a message.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import attrs
import trio

from ._errors import GraphDefinitionError, MediaGraphError
from ._frames import AudioFrame, Flush, Interrupt, PlaybackFinished, PlaybackStarted
from ._graph import Graph
from ._node import Actor, Transform, building_resources, closest, get_node_type, node_type
from ._ports import InletSpec, OutletSpec, Ports
from ._runtime import NodeIO, RunningGraph

__all__ = ["ChildSpec", "SlotConfig"]

POLICIES = ("cut", "boundary")


@attrs.frozen(kw_only=True)
class ChildSpec:
    """A slot's child: node type name and validated config."""

    type: str
    config: Any

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, where: str = "slot child") -> ChildSpec:
        """Build from ``{"type": ..., **params}``.

        Raises:
            GraphDefinitionError: no ``type``, unknown type, or invalid parameters.
        """
        if not isinstance(data, Mapping) or "type" not in data:
            raise GraphDefinitionError(f"{where}: expected a mapping with a 'type', got {data!r}", param="child")
        params = {k: v for k, v in data.items() if k != "type"}
        nt = get_node_type(str(data["type"]))
        return cls(type=nt.name, config=nt.make_config(params, where=f"{where} ({nt.name})"))

    def ports(self) -> Ports:
        return get_node_type(self.type).ports(self.config)

    def __str__(self) -> str:
        return self.type


def _child(value: Any) -> ChildSpec | None:
    if value is None or isinstance(value, ChildSpec):
        return value
    return ChildSpec.from_mapping(value)


def _policy(_: Any, __: Any, value: str) -> None:
    if value not in POLICIES:
        raise ValueError(f"policy must be one of {', '.join(POLICIES)}, got {value!r}")


@attrs.frozen(kw_only=True)
class SlotConfig:
    """Args:
    child: the first child, ``{type: speaker, device: virtual}``; ``None`` for an empty slot.
    like: for an empty slot, the node type whose ports the slot has.
    """

    child: ChildSpec | None = attrs.field(default=None, converter=_child)
    like: str | None = None

    def __attrs_post_init__(self) -> None:
        if self.child is None and self.like is None:
            raise ValueError("a slot needs a child, or 'like: TYPE' to give an empty slot its ports")

    def ports(self) -> Ports:
        if self.child is not None:
            return self.child.ports()
        assert self.like is not None
        nt = get_node_type(self.like)
        return nt.ports(nt.make_config({}, where=f"slot like {self.like!r}"))


# --- bridges between the slot and its nested child graph --------------------------------------------------


@attrs.frozen(kw_only=True)
class _FeedConfig:
    ports: Ports
    receive: trio.MemoryReceiveChannel[tuple[str, Any]]


@node_type("_slot_feed", config=_FeedConfig)
class _Feed(Actor):
    """Inside a slot: sends what the slot forwards to the child."""

    @staticmethod
    def ports(config: _FeedConfig) -> Ports:
        return Ports(outlets=[OutletSpec(name=p.name, types=p.types, format=p.format) for p in config.ports.inlets])

    def __init__(self, config: _FeedConfig) -> None:
        self.config = config

    async def run(self, io: NodeIO) -> None:
        async with self.config.receive:
            async for inlet, msg in self.config.receive:
                await io.outlets[inlet].send(msg)


@attrs.frozen(kw_only=True)
class _TapConfig:
    ports: Ports
    handler: Callable[[str, Any], None]


@node_type("_slot_tap", config=_TapConfig)
class _Tap(Transform):
    """Inside a slot: hands what the child sends to the slot. Feedback inlets: never blocks the child."""

    @staticmethod
    def ports(config: _TapConfig) -> Ports:
        return Ports(
            inlets=[InletSpec(name=p.name, types=p.types, required=False, feedback=True) for p in config.ports.outlets]
        )

    def __init__(self, config: _TapConfig) -> None:
        self.handler = config.handler

    def start(self, io: NodeIO) -> None:
        pass

    def process(self, inlet: str, msg: Any) -> None:
        self.handler(inlet, msg)


class _Hosted:
    """One child generation running inside the slot."""

    def __init__(self, spec: ChildSpec, number: int, base: int, send: trio.MemorySendChannel[tuple[str, Any]]):
        self.spec = spec
        self.number = number
        self.base = base  # slot segment id of the child's segment 0
        self.send = send
        self.running: RunningGraph | None = None


@node_type("slot", config=SlotConfig)
class Slot(Actor):
    """Holds a swappable child behind fixed ports; see ``swap``."""

    @staticmethod
    def ports(config: SlotConfig) -> Ports:
        return config.ports()

    def __init__(self, config: SlotConfig) -> None:
        self.config = config
        self.child: _Hosted | None = None
        self.generation = 0  # the highest generation passed up so far
        self._base = 0  # added to the current child's generations
        self.children = 0
        self.next_segment = 0  # ids the slot has handed out
        self.open: int | None = None  # id of the segment frames go to, if one is open
        self._finished: set[int] = set()
        self.discarded = 0  # frames that reached an empty slot
        self._ranges: dict[int, list[float]] = {}  # unfinished segment -> [media start, seconds forwarded]
        self._pending: tuple[ChildSpec | None, str, trio.Event] | None = None
        self._lock = trio.Lock()  # held while a message is handed to the child, and during a swap
        self.closing = False  # input ended: the last child is being stopped

    def __repr__(self) -> str:
        child = self.child.spec if self.child else "empty"
        return f"<Slot child={child} generation={self.generation} open={self.open}>"

    async def run(self, io: NodeIO) -> None:
        self.io = io
        self._parent = io._run.graph
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            if self.config.child is not None:
                await self._start(self.config.child)
            inlets = list(io.inlets.values())
            async with trio.open_nursery() as readers:
                for inlet in inlets:
                    readers.start_soon(self._forward, inlet.name)
            async with self._lock:
                self.closing = True
                if self._pending is not None:  # a boundary swap still waiting when the input ended
                    await self._swap_now(*self._pending)
                if self.child is None and self.open is not None:
                    self._answer_empty(self.open)
                await self._stop_child(interrupt=False)
        io.log("slot_total", segments=self.next_segment, discarded=self.discarded, children=self.children)

    # --- segments ----------------------------------------------------------------------------------------

    def _track(self, msg: Any) -> int | None:
        """Slot-level segment bookkeeping; returns the id of a segment this message closes, if any."""
        if isinstance(msg, AudioFrame):
            if self.open is None:
                self.open = self.next_segment
                self.next_segment += 1
            range_ = self._ranges.setdefault(self.open, [msg.timestamp / msg.sample_rate, 0.0])
            range_[1] += msg.duration
            return None
        if isinstance(msg, Flush):
            if self.open is None:  # a flush with nothing queued finishes an empty segment
                self.open = self.next_segment
                self.next_segment += 1
            closed, self.open = self.open, None
            return closed
        if isinstance(msg, Interrupt):
            cut, self.open = self.open, None
            return cut
        return None

    def _generation(self, event: PlaybackStarted | PlaybackFinished) -> int:
        """The slot's generation for a child's event: the swap base plus the child's interrupt count."""
        self.generation = max(self.generation, self._base + event.generation)
        return self._base + event.generation

    def _emit_up(self, outlet: str, event: PlaybackStarted | PlaybackFinished) -> None:
        """Pass an event up under the slot's own segment id, generation and media range, and log it."""
        start, sent = self._ranges.get(event.segment, (None, 0.0))
        if isinstance(event, PlaybackFinished):
            self._ranges.pop(event.segment, None)
            self._finished.add(event.segment)
            event = attrs.evolve(event, generation=self._generation(event), start=start, sent=sent)
            self.io.log(
                "playback_finished",
                segment=event.segment,
                generation=event.generation,
                position=round(event.position, 6),
                interrupted=event.interrupted,
                sent=round(sent, 6),
            )
        else:
            event = attrs.evolve(event, generation=self._generation(event), start=start)
            self.io.log("playback_started", segment=event.segment, generation=event.generation)
        self.io.outlets[outlet].emit(event)

    def _from_child(self, hosted: _Hosted) -> Callable[[str, Any], None]:
        def handle(outlet: str, msg: Any) -> None:
            if self.child is not hosted:  # a replaced child: nothing of it reaches anyone
                return
            if isinstance(msg, (PlaybackStarted, PlaybackFinished)):
                self._emit_up(outlet, attrs.evolve(msg, segment=msg.segment + hosted.base))
            else:
                self.io.outlets[outlet].emit(msg)

        return handle

    # --- forwarding --------------------------------------------------------------------------------------

    async def _forward(self, inlet: str) -> None:
        async for msg in self.io.inlets[inlet]:
            async with self._lock:
                closed = self._track(msg)
                if self.child is not None:
                    try:
                        await self.child.send.send((inlet, msg))
                    except trio.BrokenResourceError:  # the child died: its watcher reports why
                        await trio.sleep_forever()
                elif closed is not None and closed not in self._finished:
                    self._answer_empty(closed)
                elif isinstance(msg, AudioFrame):
                    self.discarded += 1
                if closed is not None and self._pending is not None and self._pending[1] == "boundary":
                    await self._swap_now(*self._pending)

    def _answer_empty(self, segment: int) -> None:
        event = PlaybackFinished(
            segment=segment,
            position=0.0,
            interrupted=True,
            generation=self.generation - self._base,  # relative, like a child's: _emit_up adds the base
            t=self.io.time(),
        )
        for p in self.config.ports().outlets:
            if PlaybackFinished in p.types:
                self._emit_up(p.name, event)

    # --- children ----------------------------------------------------------------------------------------

    async def _start(self, spec: ChildSpec) -> None:
        ports = self.config.ports()  # the child's: the first one's by construction, later ones by check_swap
        self.children += 1
        send, receive = trio.open_memory_channel[tuple[str, Any]](0)
        assert self.open is None, "a child always starts between segments"
        hosted = _Hosted(spec, self.children, self.next_segment, send)
        name = f"child{hosted.number}"
        g = Graph(f"{self.io.name}/{name}")
        g.add("feed", "_slot_feed", config=_FeedConfig(ports=ports, receive=receive))
        g.add(name, spec.type, config=spec.config)
        g.add("tap", "_slot_tap", config=_TapConfig(ports=ports, handler=self._from_child(hosted)))
        for inlet in ports.inlets:
            g.link(f"feed.{inlet.name}", f"{name}.{inlet.name}")
        for outlet in ports.outlets:
            g.link(f"{name}.{outlet.name}", f"tap.{outlet.name}")
        parent = self._parent
        hosted.running = RunningGraph(
            g,
            fuse=parent.fuse,
            log=parent.log,
            pacer=parent._pacer,
            cleanup_timeout=parent._cleanup_timeout,
            prefix=f"{parent.prefix}{self.io.name}/",
            quiet=frozenset({"feed", "tap"}),
            t0=parent.t0,
            resources=parent.resources,
        )
        self.child = hosted
        await self._nursery.start(hosted.running._run)
        self._nursery.start_soon(self._watch, hosted)

    async def _watch(self, hosted: _Hosted) -> None:
        """A child that fails while it is the slot's child fails the slot, with the child's own error, after
        every segment it still owed is finished as interrupted (position 0: what it played is unknown)."""
        assert hosted.running is not None
        await hosted.running._done.wait()
        failure = hosted.running._failure
        if failure is None or self.child is not hosted:
            return
        self.child = None
        for segment in range(hosted.base, self.next_segment):
            if segment not in self._finished:
                self._answer_empty(segment)
        self.open = None
        raise failure

    async def _stop_child(self, *, interrupt: bool) -> None:
        hosted = self.child
        if hosted is None:
            return
        if interrupt:
            await hosted.send.send((self._audio_inlet(), Interrupt(reason="swap")))
        await hosted.send.aclose()
        assert hosted.running is not None
        await hosted.running._done.wait()
        self.child = None
        self.open = None  # the child finished the open segment: interrupted, or closed by its end of input
        if hosted.running._failure is not None:
            raise hosted.running._failure

    def _audio_inlet(self) -> str:
        return next(p.name for p in self.config.ports().inlets if AudioFrame in p.types)

    async def swap(self, child: Any, policy: str = "cut") -> None:
        """Replace the child (``{"type": ..., **params}`` or ``None`` to empty the slot), waiting until done.

        Raises:
            GraphDefinitionError: invalid child or policy, or a child whose ports differ from the slot's.
        """
        token = building_resources.set(self._parent.graph.resources)  # a new child may name graph resources
        try:
            spec = _child(child)
        finally:
            building_resources.reset(token)
        check_swap(self.io.name, self.config, spec, policy)
        done = trio.Event()
        if policy == "boundary" and self.open is not None and self.child is not None and not self.closing:
            self._pending = (spec, policy, done)  # the forwarder swaps after the flush closing the segment
            await done.wait()
            return
        async with self._lock:
            if self.closing:
                raise MediaGraphError(f"slot {self.io.name!r} has ended its input; there is nothing to swap")
            await self._swap_now(spec, policy, done)

    async def _swap_now(self, spec: ChildSpec | None, policy: str, done: trio.Event) -> None:
        self._pending = None
        old = str(self.child.spec) if self.child else None
        self.io.log("swap_started", old=old, new=str(spec) if spec else None, policy=policy)
        if self.child is None:
            if self.open is not None:  # the empty slot played nothing of it, whatever the policy
                self._answer_empty(self.open)
                self.open = None
        else:
            # After a cut the next frame opens a new segment; a boundary swap happens when none is open, or at
            # the end of the input, when the old child's end closes it.
            await self._stop_child(interrupt=policy == "cut" and self.open is not None)
        self.generation += 1
        self._base = self.generation  # the new child's generation 0 comes after everything before it
        if spec is not None:
            await self._start(spec)
        self.io.log("swap_finished", old=old, new=str(spec) if spec else None, generation=self.generation)
        done.set()


def check_swap(slot: str, config: SlotConfig, child: ChildSpec | None, policy: str) -> None:
    """Check a swap before it starts.

    Raises:
        GraphDefinitionError: a policy other than cut or boundary (``param="policy"``), or a child whose
            ports differ from the slot's (``param="to"``).
    """
    if policy not in POLICIES:
        raise GraphDefinitionError(
            f"slot {slot!r}: swap policy must be cut or boundary, got {policy!r}{closest(str(policy), POLICIES)}",
            param="policy",
        )
    if child is not None and child.ports() != config.ports():
        raise GraphDefinitionError(
            f"slot {slot!r}: child {child.type} has ports {_describe(child.ports())}, "
            f"the slot has {_describe(config.ports())}",
            param="to",
        )


def _describe(ports: Ports) -> str:
    ins = ", ".join(f"{p.name}: {p.type_names}" for p in ports.inlets)
    outs = ", ".join(f"{p.name}: {p.type_names}" for p in ports.outlets)
    return f"(in: {ins}; out: {outs})"
