"""What node configs and actors share about clocks and resource references (no I/O)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import attrs
import trio.lowlevel

import mediagraph as mg

__all__ = ["resource_of", "virtual_clock"]


def virtual_clock() -> bool:
    """Whether the run's clock jumps ahead whenever every task waits (``MockClock(autojump_threshold=...)``,
    the virtual clock): real-time devices and services cannot run on it, and threads must not let it jump."""
    return math.isfinite(getattr(trio.lowlevel.current_clock(), "autojump_threshold", math.inf))


def resource_of(type_name: str, what: str) -> Callable[[Any, attrs.Attribute[Any], mg.ResourceRef | None], None]:
    """An attrs validator: the parameter, if given, names a resource of type ``type_name`` (``what`` says what
    that is in the message: ``an asyncio loop``)."""

    def check(_: object, attribute: attrs.Attribute[Any], ref: mg.ResourceRef | None) -> None:
        if ref is not None and ref.type != type_name:
            raise ValueError(f"{attribute.name}: resource {ref.name!r} is a {ref.type}, not {what}")

    return check
