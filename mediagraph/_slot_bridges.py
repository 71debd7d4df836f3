"""The slot's bridges to its child graph, and the messages its task gets about a child.

The child runs as a small graph, ``feed`` -> child -> ``tap``: the slot's task puts what its inlets bring into the
child's :class:`_FeedQueue`, which the ``feed`` node drains into the child (with the child's backpressure); the
``tap`` node posts whatever the child sends into the slot's own queue as a :class:`_ChildSent` message (its
inlets are feedback inlets: the child is never blocked by the slot). Neither bridge is logged.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, final

import attrs
import trio

from ._dataplane import NodeIO
from ._node import Actor, Transform, node_type
from ._ports import InletSpec, OutletSpec, Ports
from ._requests import Request
from ._runtime import RunningGraph

if TYPE_CHECKING:
    from ._slot_config import ChildSpec

__all__: list[str] = []


@final
class _FeedQueue:
    """What the slot's task hands to its child, in order; the child's ``feed`` node drains it."""

    def __init__(self, room: trio.lowlevel.ParkingLot) -> None:
        self.items: deque[tuple[str, Any]] = deque()
        self.closed = False
        self._lot = trio.lowlevel.ParkingLot()
        self._room = room  # the slot's readers wait there for room

    def put(self, inlet: str, msg: Any) -> None:
        assert not self.closed
        self.items.append((inlet, msg))
        self._lot.unpark_all()

    def close(self) -> None:
        self.closed = True
        self._lot.unpark_all()

    async def get(self) -> tuple[str, Any] | None:
        while not self.items:
            if self.closed:
                return None
            await self._lot.park()
        item = self.items.popleft()
        self._room.unpark_all()
        return item


@final
@attrs.frozen(kw_only=True)
class _FeedConfig:
    ports: Ports
    queue: _FeedQueue


@final
@node_type("_slot_feed", config=_FeedConfig)
class _Feed(Actor):
    """Inside a slot: sends what the slot hands over to the child."""

    @staticmethod
    def ports(config: _FeedConfig) -> Ports:
        return Ports(outlets=[OutletSpec(name=p.name, types=p.types, format=p.format) for p in config.ports.inlets])

    def __init__(self, config: _FeedConfig) -> None:
        self.queue = config.queue

    async def run(self, io: NodeIO) -> None:
        while (item := await self.queue.get()) is not None:
            await io.outlets[item[0]].send(item[1])


@final
@attrs.frozen(kw_only=True)
class _TapConfig:
    ports: Ports
    post: Callable[[str, Any], None]


@final
@node_type("_slot_tap", config=_TapConfig)
class _Tap(Transform):
    """Inside a slot: posts what the child sends into the slot's queue. Feedback inlets: never blocks."""

    @staticmethod
    def ports(config: _TapConfig) -> Ports:
        return Ports(
            inlets=[InletSpec(name=p.name, types=p.types, required=False, feedback=True) for p in config.ports.outlets]
        )

    def __init__(self, config: _TapConfig) -> None:
        self.post = config.post

    def start(self, io: NodeIO) -> None:
        pass

    def process(self, inlet: str, msg: Any) -> None:
        self.post(inlet, msg)


@final
@attrs.frozen
class _ChildSent:
    """A message the child sent on one of its outlets."""

    child: _Hosted
    outlet: str
    msg: Any


@final
@attrs.frozen
class _ChildEnded:
    child: _Hosted


@final
@attrs.frozen
class _StopTimedOut:
    child: _Hosted


@final
@attrs.frozen
class _LateInterrupt:
    """An interrupt put into the slot's ended inlet (``RunningGraph.interrupt``, the schedule)."""


_Control = Request | _ChildSent | _ChildEnded | _StopTimedOut | _LateInterrupt


@final
class _Hosted:
    """One child running inside the slot."""

    def __init__(self, spec: ChildSpec, name: str, key: str, room: trio.lowlevel.ParkingLot) -> None:
        self.spec = spec
        self.name = name  # its node's name in its graph: childN
        self.key = key  # its name in the log and in the slot's segment bookkeeping: SLOT/childN
        self.feed = _FeedQueue(room)
        self.running: RunningGraph | None = None
        self.failed = False  # the slot failed it for breaking a rule only the slot can check

    def __repr__(self) -> str:
        return f"<child {self.name} {self.spec}>"
