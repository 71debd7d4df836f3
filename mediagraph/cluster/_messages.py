"""What the session table takes and gives besides calls: commands for a session, effects for the engine shell,
and a worker's loss. Plain frozen data, picklable (commands travel to workers as they are)."""

from __future__ import annotations

from typing import Any, final

import attrs

from ._errors import PoolError, SessionError
from ._spec import SessionSpec

__all__ = ["Cancel", "Command", "Effect", "Interrupt", "Launch", "Loss", "Resolve", "Send", "Stop", "Swap", "VERBS"]


# --- commands (sent to a worker as they are) ----------------------------------------------------------------


@final
@attrs.frozen
class Stop:
    """Stop gracefully: sources stop, mailboxes drain."""


@final
@attrs.frozen
class Cancel:
    """Cancel every node now."""


@final
@attrs.frozen
class Interrupt:
    node: str
    inlet: str = "audio"


@final
@attrs.frozen
class Swap:
    """``child``: a node mapping, its YAML text, or ``None`` to empty the slot."""

    slot: str
    child: Any
    policy: str = "cut"


Command = Stop | Cancel | Interrupt | Swap
VERBS = {Stop: "stop", Cancel: "cancel", Interrupt: "interrupt", Swap: "swap"}


# --- effects ------------------------------------------------------------------------------------------------


@final
@attrs.frozen
class Launch:
    """Start ``attempt`` of ``session`` on ``worker``; report back with ``started`` and ``finished``."""

    session: str
    attempt: int
    worker: int
    spec: SessionSpec


@final
@attrs.frozen
class Send:
    """Send ``command`` to ``worker`` for that attempt; answer with ``replied(request, ...)``."""

    worker: int
    request: int
    session: str
    attempt: int
    command: Command


@final
@attrs.frozen
class Resolve:
    """Answer pending call ``request``: ``value`` (a session id, a :class:`SessionResult`, ``None``) or
    ``error``."""

    request: int
    value: Any = None
    error: SessionError | PoolError | None = None


Effect = Launch | Send | Resolve


@final
@attrs.frozen(kw_only=True)
class Loss:
    """Why a worker (or one Ray actor) went away: ``reason`` reads ``worker process 12 exited with signal 9
    (SIGKILL)`` or ``ray node 5f3a... removed``."""

    reason: str
    pid: int | None = None
    signal: int | None = None
    ray_node: str | None = None
