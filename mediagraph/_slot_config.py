"""The ``slot`` node's config and the values a swap is made of: the child (:class:`ChildSpec`), the policy
(:class:`SwapPolicy`), and :func:`check_swap`, which refuses a swap before anything is queued.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any, final

import attrs

from ._errors import GraphDefinitionError
from ._limits import closest, quote
from ._node import get_node_type
from ._ports import Ports

__all__ = ["ChildSpec", "SlotConfig", "Swap", "SwapPolicy", "as_child", "check_swap"]


class SwapPolicy(enum.Enum):
    """How a swap treats the segment playing: ``CUT`` it now, or wait for its ``BOUNDARY``."""

    CUT = "cut"
    BOUNDARY = "boundary"


@final
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
            raise GraphDefinitionError(f"{where}: expected a mapping with a 'type', got {quote(data)}", param="child")
        if "supervision" in data:
            # A child that fails fails the slot, after the slot has finished what it owed: supervision belongs to
            # the slot, whose restart starts a fresh child with its numbering continued.
            raise GraphDefinitionError(
                f"{where}: a slot's child takes no 'supervision'; give it to the slot (its child's failure is the "
                "slot's failure)",
                param="supervision",
            )
        params = {k: v for k, v in data.items() if k != "type"}
        nt = get_node_type(str(data["type"]))
        return cls(type=nt.name, config=nt.make_config(params, where=f"{where} ({nt.name})"))

    def ports(self) -> Ports:
        return get_node_type(self.type).ports(self.config)

    def __str__(self) -> str:
        return self.type


def as_child(value: Any) -> ChildSpec | None:
    """A child spec from what a config, an API call or a schedule gives: ``None``, a spec or a mapping."""
    if value is None or isinstance(value, ChildSpec):
        return value
    return ChildSpec.from_mapping(value)


def _positive(_: Any, attribute: attrs.Attribute[float], value: float) -> None:
    if not 0 < value < 86400:
        raise ValueError(f"{attribute.name} must be between 0 and 86400 seconds, got {value!r}")


@final
@attrs.frozen(kw_only=True)
class SlotConfig:
    """Args:
    child: the first child, ``{type: speaker, device: virtual}``; ``None`` for an empty slot. A slot that
        restarts (``supervision: restart``) starts again with this child.
    like: for an empty slot, the node type whose ports the slot has.
    stop_timeout: seconds a child being replaced (or the last one, at the end of the input) may take to
        finish before it is cancelled.
    """

    child: ChildSpec | None = attrs.field(default=None, converter=as_child)
    like: str | None = None
    stop_timeout: float = attrs.field(default=5.0, validator=_positive)

    def __attrs_post_init__(self) -> None:
        if self.child is None and self.like is None:
            raise ValueError("a slot needs a child, or 'like: TYPE' to give an empty slot its ports")

    def ports(self) -> Ports:
        if self.child is not None:
            return self.child.ports()
        assert self.like is not None
        nt = get_node_type(self.like)
        return nt.ports(nt.make_config({}, where=f"slot like {self.like!r}"))


@final
@attrs.frozen(kw_only=True)
class Swap:
    """A validated swap request: the new child (``None`` empties the slot) and the policy."""

    child: ChildSpec | None
    policy: SwapPolicy


def check_swap(slot: str, config: SlotConfig, child: ChildSpec | None, policy: Any) -> SwapPolicy:
    """Check a swap before it starts; returns its policy.

    Raises:
        GraphDefinitionError: a policy other than cut or boundary (``param="policy"``), or a child whose
            ports differ from the slot's (``param="to"``).
    """
    try:
        chosen = SwapPolicy(policy.value if isinstance(policy, SwapPolicy) else policy)
    except ValueError:
        names = [p.value for p in SwapPolicy]
        raise GraphDefinitionError(
            f"slot {slot!r}: swap policy must be cut or boundary, got {quote(policy)}{closest(str(policy), names)}",
            param="policy",
        ) from None
    if child is not None and child.ports() != config.ports():
        raise GraphDefinitionError(
            f"slot {slot!r}: child {child.type} has ports {_describe(child.ports())}, "
            f"the slot has {_describe(config.ports())}",
            param="to",
        )
    return chosen


def _describe(ports: Ports) -> str:
    ins = ", ".join(f"{p.name}: {p.type_names}" for p in ports.inlets)
    outs = ", ".join(f"{p.name}: {p.type_names}" for p in ports.outlets)
    return f"(in: {ins}; out: {outs})"
