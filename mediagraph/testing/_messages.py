"""A scripted source of any messages on named outlets: ``test_messages``. Importing this module registers it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, final

import attrs

import mediagraph as mg

__all__ = ["Messages", "MessagesConfig"]

#: One step: ``(graph time, outlet, message)``.
Timed = tuple[float, str, Any]


def _outlets(value: Mapping[str, type | Iterable[type]]) -> tuple[tuple[str, tuple[type, ...]], ...]:
    return tuple((name, (types,) if isinstance(types, type) else tuple(types)) for name, types in value.items())


def _known_outlets(config: MessagesConfig, _: attrs.Attribute[Any], steps: tuple[Timed, ...]) -> None:
    names = {name for name, _ in config.outlets}
    for i, (_at, outlet, _msg) in enumerate(steps):
        if outlet not in names:
            raise ValueError(f"step {i}: no outlet {outlet!r} (outlets: {', '.join(sorted(names))})")


@final
@attrs.frozen(kw_only=True)
class MessagesConfig:
    """Args:
    outlets: the outlets and the message types each sends, ``{"agent": AudioFrame, "playback": PLAYBACK_TYPES}``.
    steps: ``(graph time, outlet, message)``, sent in this order, each at its time (one due before the step
        before it is sent right after that one).
    """

    outlets: tuple[tuple[str, tuple[type, ...]], ...] = attrs.field(converter=_outlets)
    steps: tuple[Timed, ...] = attrs.field(default=(), converter=tuple, eq=False, validator=_known_outlets)


@final
@mg.node_type("test_messages", config=MessagesConfig)
class Messages(mg.Source):
    """Sends each scripted ``(t, outlet, message)`` step at graph time ``t``: any message, on any outlet declared."""

    @staticmethod
    def ports(config: MessagesConfig) -> mg.Ports:
        return mg.Ports(outlets=[mg.OutletSpec(name=name, types=types) for name, types in config.outlets])

    def __init__(self, config: MessagesConfig) -> None:
        self.steps = config.steps
        self.next = 0
        self.now = 0.0  # the graph time produce() was asked for last

    def start(self, io: mg.NodeIO) -> None:
        self.outlets = io.outlets

    def produce(self) -> float | None:
        if self.next == len(self.steps):
            return None
        at, outlet, msg = self.steps[self.next]
        if at > self.now:  # not due yet: come back then
            self.now = at
            return at
        self.outlets[outlet].emit(msg)
        self.next += 1
        return self.now  # one message a call: the runtime's backpressure holds between two
