"""Port declarations: what a node type says about its inlets and outlets."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from typing import final

import attrs

from ._frames import AudioFormat, AudioFrame

__all__ = ["InletSpec", "Overflow", "OutletSpec", "Ports", "SameAs"]


class Overflow(enum.Enum):
    """What an inlet does with a message that arrives while its mailbox is full."""

    #: The sender waits until there is room (backpressure). The default.
    BLOCK = "block"
    #: The oldest queued message is discarded and counted in ``dropped``.
    DROP_OLDEST = "drop_oldest"
    #: The receiving node fails with :class:`MailboxOverflowError`.
    FAIL = "fail"


@final
@attrs.frozen
class SameAs:
    """An outlet format that follows whatever arrives on the named inlet (like a pass-through)."""

    inlet: str


def _types(value: type | Sequence[type]) -> tuple[type, ...]:
    return (value,) if isinstance(value, type) else tuple(value)


def _type_names(types: tuple[type, ...]) -> str:
    return " | ".join(t.__name__ for t in types)


@final
@attrs.frozen(kw_only=True)
class InletSpec:
    """An inlet a node type declares.

    Args:
        name: port name, unique on the node.
        types: message types accepted (control messages are always accepted too).
        format: audio format constraint checked when the graph is validated.
        required: validation fails when a required inlet has no link.
        feedback: a feedback inlet may close a cycle; a send into it never blocks and never loses a message.
        capacity: mailbox size (ignored for feedback inlets, which are unbounded by design: they carry events).
        overflow: policy on a full mailbox.
    """

    name: str
    types: tuple[type, ...] = attrs.field(default=(AudioFrame,), converter=_types)
    format: AudioFormat | None = None
    required: bool = True
    feedback: bool = False
    capacity: int = attrs.field(default=64, validator=attrs.validators.gt(0))
    overflow: Overflow = Overflow.BLOCK

    @property
    def type_names(self) -> str:
        return _type_names(self.types)


@final
@attrs.frozen(kw_only=True)
class OutletSpec:
    """An outlet a node type declares.

    Args:
        name: port name, unique on the node.
        types: message types sent (control messages may always be sent too).
        format: the audio format produced: fixed, ``SameAs(inlet)`` to follow an inlet, or ``None`` (unknown).
    """

    name: str
    types: tuple[type, ...] = attrs.field(default=(AudioFrame,), converter=_types)
    format: AudioFormat | SameAs | None = None

    @property
    def type_names(self) -> str:
        return _type_names(self.types)


def _inlets(specs: Iterable[InletSpec]) -> tuple[InletSpec, ...]:
    return tuple(specs)


def _outlets(specs: Iterable[OutletSpec]) -> tuple[OutletSpec, ...]:
    return tuple(specs)


def _groups(groups: Iterable[Iterable[str]]) -> tuple[tuple[str, ...], ...]:
    return tuple(tuple(group) for group in groups)


@final
@attrs.frozen(kw_only=True)
class Ports:
    """The inlets and outlets of one node, as its type declares them for a given config."""

    inlets: tuple[InletSpec, ...] = attrs.field(default=(), converter=_inlets)
    outlets: tuple[OutletSpec, ...] = attrs.field(default=(), converter=_outlets)
    #: Groups of inlets of which at least one must be linked (the recorder records ``user``, ``agent`` or both).
    one_of: tuple[tuple[str, ...], ...] = attrs.field(default=(), converter=_groups)

    def __attrs_post_init__(self) -> None:
        names = {p.name for p in self.inlets}
        for group in self.one_of:
            if not group or not set(group) <= names:
                raise ValueError(f"one_of group {group!r}: every name must be an inlet of {sorted(names)}")

    def inlet(self, name: str) -> InletSpec | None:
        return next((p for p in self.inlets if p.name == name), None)

    def outlet(self, name: str) -> OutletSpec | None:
        return next((p for p in self.outlets if p.name == name), None)
