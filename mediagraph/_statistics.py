"""Statistics of a running graph: frozen snapshots of counters, read at one moment (in the style of trio's
``MemoryChannelStatistics``). Reading them costs nothing on the data path: every figure is a counter the runtime
keeps anyway, or a length taken when asked.

*Lag* is counted in messages: how far a node is behind what has reached it — the messages queued in an inlet's
mailbox plus those the node has taken in its current batch and not handled yet. A fused node handles each
message inside its sender's call, so its lag is always 0.
"""

from __future__ import annotations

from typing import final

import attrs

__all__ = ["InletStatistics", "LinkStatistics", "NodeStatistics", "OutletStatistics"]


@final
@attrs.frozen(kw_only=True)
class NodeStatistics:
    """Counters of one node. Frames are messages (audio, video, text and control).

    Attributes:
        name: the node. state: ``pending``, ``running`` or ``finished`` (a :class:`~mediagraph.NodeState`).
        fused: the node runs inside its senders' tasks (no mailboxes of its own).
        frames_in: messages that reached its inlets. frames_out: messages sent on its outlets.
        dropped: messages its mailboxes dropped (overflow policy, or left when it finished).
        queued: messages in its mailboxes now. peak_mailbox: the most one of its mailboxes ever held.
        restarts: times its supervision policy restarted it.
        stale: playback events of a superseded generation, dropped at its outlets.
    """

    name: str
    state: str
    fused: bool
    frames_in: int
    frames_out: int
    dropped: int
    queued: int
    peak_mailbox: int
    restarts: int
    stale: int = 0


@final
@attrs.frozen(kw_only=True)
class InletStatistics:
    """One inlet of a node with its own task.

    Attributes:
        node, name: where it is. linked: whether any link comes in (an unlinked inlet has already ended).
        capacity: its mailbox's bound (``inf`` for a feedback inlet).
        queued: messages in its mailbox, not yet taken by the node.
        taken: messages the node has taken in its current batch and not handled yet.
        lag: ``queued + taken``, the messages the node is behind.
        peak: the most messages its mailbox ever held. dropped: messages dropped by its overflow policy, or
            left unhandled when the node finished.
        ended: every link into it has ended (what is queued may still be read).
    """

    node: str
    name: str
    linked: bool
    capacity: float
    queued: int
    taken: int
    lag: int
    peak: int
    dropped: int
    ended: bool


@final
@attrs.frozen(kw_only=True)
class OutletStatistics:
    """One outlet of a node.

    Attributes:
        node, name: where it is. links: how many inlets it feeds. sent: messages sent on it.
        closed: it has ended (an :class:`~mediagraph.EndOfStream`, or its node finished).
        lag: the largest lag among the inlets it feeds (a send waits while a blocking one is full).
    """

    node: str
    name: str
    links: int
    sent: int
    closed: bool
    lag: int


@final
@attrs.frozen(kw_only=True)
class LinkStatistics:
    """One link, from an outlet (``src``, ``node.port``) to an inlet (``dst``).

    Attributes:
        frames: messages that crossed it. queued, peak, dropped: of the mailbox it ends in (0 for a fused target;
            a mailbox fed by several links is shared by them). lag: the lag of the inlet it ends in.
    """

    src: str
    dst: str
    frames: int
    queued: int
    peak: int
    dropped: int
    lag: int = 0
