"""Whether the audio a node sent down to a sink has all played: the one account of the nodes that keep their
audio outlet open until then (``av_sync``'s core, ``transcript_sync``), so that a barge-in during the last words
still reaches the sink.

Pure. The sink's finished segments account for what it was sent (each ``PlaybackFinished`` says how many
seconds its segment was sent, and every frame belongs to exactly one segment), which holds whatever media
times the frames carry. A sink below that restarted may have lost frames and never account for them: so the
account is also *overdue* ``GRACE`` seconds after a real-time sink would have played everything (each frame
from when it was sent, or when the one before it ended), and the node ends its audio then anyway.
"""

from __future__ import annotations

import math
from typing import Final, final

__all__ = ["GRACE", "AudioSent"]

#: Seconds after a real-time sink would have played all the audio sent that the account is overdue.
GRACE: Final = 1.0
_EPSILON: Final = 1e-6  # seconds: sums of float durations


@final
class AudioSent:
    """Seconds of audio sent down, and the seconds the sink's finished segments account for."""

    def __init__(self) -> None:
        self.sent = 0.0
        self.finished = 0.0
        self.due = -math.inf  # graph time by which a real-time sink would have played all of it

    def __repr__(self) -> str:
        return f"<AudioSent sent={self.sent:.3f} finished={self.finished:.3f} due={self.due:.3f}>"

    def send(self, duration: float, now: float) -> None:
        """``duration`` seconds were sent down at graph time ``now``."""
        self.sent += duration
        self.due = max(self.due, now) + duration

    def finish(self, sent: float) -> None:
        """A segment finished below, having been sent ``sent`` seconds."""
        self.finished += sent

    def restart(self) -> None:
        """A new turn: what was sent and finished before no longer counts (the time it takes still does)."""
        self.sent = self.finished = 0.0

    @property
    def accounted(self) -> bool:
        """Whether the finished segments account for everything sent."""
        return self.finished >= self.sent - _EPSILON

    @property
    def deadline(self) -> float:
        """The graph time from which the account is overdue."""
        return self.due + GRACE
