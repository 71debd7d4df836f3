"""One Nova Sonic session as the ``nova_sonic`` node keeps it, and the node's error wording (no SDK, no I/O)."""

from __future__ import annotations

import math
import os
from typing import Final, final

import attrs
import trio

from ._sonic_client import SonicStream
from ._sonic_output import SonicOutput
from ._sonic_protocol import SonicInput

__all__ = ["LIMIT_EXCEPTION", "Session", "describe", "scrub"]

#: The service's exception at the end of a session's time.
LIMIT_EXCEPTION: Final = "ModelTimeoutException"
#: The environment's AWS keys, never shown.
SECRETS: Final = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID")


@final
@attrs.define(eq=False)
class Session:
    """One bidirectional stream and what the node knows of it."""

    number: int
    stream: SonicStream
    input: SonicInput
    output: SonicOutput = attrs.Factory(SonicOutput)
    opened: float = 0.0  # graph time
    renew_at: float = math.inf  # trio time, set when ready
    audio: int = 0  # bytes of 16 kHz audio it took
    unsent: int = 0  # bytes dropped because it ended first
    ended: trio.Event = attrs.Factory(trio.Event)  # its output ended, or it failed, or the service ended it
    limit: bool = False  # the service ended it at its limit
    closed: bool = False  # the node closes it (or has): its end is expected
    error: str = ""  # the exception type it ended with
    lock: trio.Lock = attrs.Factory(trio.Lock)  # held by the writer while it sends, by the retirer while it closes
    sending: trio.CancelScope | None = None
    reader: trio.CancelScope = attrs.Factory(trio.CancelScope)


def describe(exc: BaseException) -> str:
    """``Type: message`` of an exception from the SDK or the service."""
    message = str(exc).strip()
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def scrub(text: str) -> str:
    """``text`` without the AWS keys of the environment (an SDK message could quote them)."""
    for name in SECRETS:
        value = os.environ.get(name, "")
        if len(value) >= 8:
            text = text.replace(value, f"<{name}>")
    return text
