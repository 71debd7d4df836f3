"""The recorder's pure core: :class:`Conversation` places what was heard and what was played on one 48 kHz
stereo timeline (left: user, right: agent) and says how much of it is final. No trio, no clock, no I/O: the
actor (:mod:`.recorder`) drains its inlets into it and writes what it releases. The rules, which the property
tests check:

- **Timeline.** A frame's timestamp (in samples at its own rate, counted from media time 0, the same origin
  for both sides) is where it lands: ``timestamp * 48000 / sample_rate``. Other rates are resampled (soxr),
  several channels are averaged to one. Where a side sent nothing the file holds silence. A frame that starts
  before the end of the previous one on its side is placed right after it, never mixed over it
  (``overlaps`` counts them).
- **Trimming.** A :class:`~mediagraph.PlaybackFinished` on the ``playback`` inlet names the audio it is
  about by media time: ``start`` (seconds, where the segment's first sample is) and ``sent`` (seconds of audio
  the sink got for it). When ``interrupted``, the agent audio whose media time ``t`` lies in
  ``start + position <= t < start + sent`` was never played and is not written (silence in its place; the
  rest of a frame stays where its timestamp puts it). Nothing else is trimmed. Segment ids play no part, so
  this holds above a ``slot`` whose cut swaps open segments the agent stream never marked.
- **Fallback: counted segments.** Until an event carries a ``start``, an event without one (from a sink
  that does not stamp them) gets the ``start`` and ``sent`` of the segment with its id, the recorder
  numbering the agent's segments as :class:`mediagraph.PlaybackTracker` does: the first frame after a
  boundary opens the next segment; a :class:`~mediagraph.Flush` closes the open segment (or makes an empty
  one: every flush uses one number); an :class:`~mediagraph.Interrupt` or the end of the inlet closes the
  open one, if any. An event for a segment not complete yet waits for it. Once an event has carried a
  ``start``, events without one are an empty segment's and are ignored.
- **Holding back.** With ``playback`` linked, agent frames are held, in arrival order, until they are
  settled, and nothing after the first held sample is written meanwhile. The *settled time* is the largest
  of: ``start + sent`` of a ``PlaybackFinished``, ``start + position`` of a ``PlaybackProgress`` (that much
  was played, and an interrupt cuts only what comes after it), and ``start`` of any playback event received
  so far. The part of a frame before it is settled (a frame settled part way is split there: its head is
  written, its tail waits), so with a sink that reports progress, agent audio is written as soon as it is
  played, and the user side with it. A sink reports its segments in order, and media time increases along
  the agent stream, so by then every event that can trim that audio has come (whichever came first, the
  event or the audio, is fine). A frame is written trimmed by every range received. When more than
  ``max_hold`` seconds of audio are held, or when the ``playback`` inlet ends or the recorder finalizes,
  held frames are written anyway (``unconfirmed_samples`` counts the unsettled samples). A progress event
  without ``start`` is ignored (the fallback below counts finished segments only).
- **Finality.** The timeline is written up to the point both sides have passed; a side that is quiet is
  waited for at most ``max_lag`` seconds of media behind the other, then its silence is written. Audio that
  arrives for a part already written is dropped and counted (``late_samples``).
"""

from __future__ import annotations

from typing import Final, final

import numpy as np
import numpy.typing as npt
import soxr

import mediagraph as mg

from ._agent_gate import AgentGate
from ._audio import Samples, map_channels

__all__ = ["RATE", "Conversation"]

#: The timeline's sample rate.
RATE: Final = 48000


@final
class _Track:
    """One side: frames turned into mono 48 kHz runs placed by timestamp."""

    def __init__(self) -> None:
        self.end = 0  # first position on the timeline after this side's audio
        self.overlaps = 0
        self._rate = 0
        self._next: int | None = None  # the timestamp that would continue the current run
        self._resampler: soxr.ResampleStream | None = None

    def __repr__(self) -> str:
        return f"<_Track end={self.end} rate={self._rate}>"

    def add(self, frame: mg.AudioFrame) -> list[tuple[int, Samples]]:
        """The pieces ``(position, mono samples)`` this frame puts on the timeline (the tail of a previous
        resampled run included when this frame does not continue it)."""
        out: list[tuple[int, Samples]] = []
        if frame.sample_rate != self._rate or frame.timestamp != self._next:
            out = self.flush()
            position = max(0, round(frame.timestamp * RATE / frame.sample_rate))
            if position < self.end:
                self.overlaps += 1
                position = self.end
            self.end = position
            self._rate = frame.sample_rate
            if frame.sample_rate != RATE:
                self._resampler = soxr.ResampleStream(frame.sample_rate, RATE, 1, dtype="int16", quality="HQ")
        self._next = frame.timestamp + frame.samples_per_channel
        mono = map_channels(frame.samples, 1)[:, 0]
        if self._resampler is not None:
            mono = self._resampler.resample_chunk(mono)
        out.append((self.end, mono))
        self.end += len(mono)
        return out

    def flush(self) -> list[tuple[int, Samples]]:
        """End the current run: the resampler's last samples."""
        resampler, self._resampler, self._next = self._resampler, None, None
        if resampler is None:
            return []
        tail: Samples = resampler.resample_chunk(np.zeros(0, dtype=np.int16), last=True)
        position = self.end
        self.end += len(tail)
        return [(position, tail)]


@final
class _Timeline:
    """Stereo samples from ``written`` on; each side writes its own column; what nobody wrote is silence."""

    def __init__(self) -> None:
        self.written = 0
        self.high = 0  # first position after every sample placed so far
        self.late_samples = 0
        self._buf: npt.NDArray[np.int16] = np.zeros((0, 2), dtype=np.int16)

    def __repr__(self) -> str:
        return f"<_Timeline written={self.written} high={self.high}>"

    def place(self, column: int, position: int, samples: Samples) -> None:
        if position < self.written:
            cut = min(self.written - position, len(samples))
            self.late_samples += cut
            samples, position = samples[cut:], self.written
        if not len(samples):
            return
        start = position - self.written
        stop = start + len(samples)
        if stop > len(self._buf):
            grown = np.zeros((max(stop, 2 * len(self._buf)), 2), dtype=np.int16)
            grown[: len(self._buf)] = self._buf
            self._buf = grown
        self._buf[start:stop, column] = samples
        self.high = max(self.high, position + len(samples))

    def take(self, upto: int) -> npt.NDArray[np.int16]:
        """The samples from ``written`` to ``upto``, now written."""
        count = upto - self.written
        out = np.zeros((count, 2), dtype=np.int16)
        have = min(count, len(self._buf))
        out[:have] = self._buf[:have]
        rest = self._buf[have : max(have, self.high - self.written)]
        self._buf = np.zeros((max(len(rest), 1024), 2), dtype=np.int16)
        self._buf[: len(rest)] = rest
        self.written = upto
        return out


@final
class Conversation:
    """The recorder's pure core: feed it what arrives on each inlet, take the stereo samples that are final.

    Args:
        sides: the linked audio inlets, a subset of ``{"user", "agent"}``.
        playback: whether the ``playback`` inlet is linked (then agent audio waits for playback events).
        max_lag: seconds a quiet side is waited for, behind the other.
        max_hold: seconds of agent audio held at most for a playback event that settles it.
    """

    def __init__(self, *, sides: set[str], playback: bool, max_lag: float = 1.0, max_hold: float = 30.0) -> None:
        self.tracks = {side: _Track() for side in sorted(sides)}
        self.open = set(self.tracks)
        self.gate = AgentGate(hold=playback and "agent" in sides, max_hold=max_hold)
        self.timeline = _Timeline()
        self.max_lag = round(max_lag * RATE)

    def __repr__(self) -> str:
        return f"<Conversation open={sorted(self.open)} {self.timeline!r} {self.gate!r}>"

    def user(self, msg: object) -> None:
        if isinstance(msg, mg.AudioFrame):
            self._place("user", self.tracks["user"].add(msg))

    def agent(self, msg: object) -> None:
        if isinstance(msg, mg.AudioFrame):
            released = self.gate.frame(msg)
        elif isinstance(msg, mg.Flush | mg.Interrupt):
            released = self.gate.boundary(interrupt=isinstance(msg, mg.Interrupt))
        else:
            return
        self._agent(released)

    def playback(self, msg: object) -> None:
        if isinstance(msg, mg.PlaybackStarted | mg.PlaybackProgress | mg.PlaybackFinished):
            self._agent(self.gate.playback(msg))

    def end(self, inlet: str) -> None:
        """``inlet`` (user, agent or playback) has ended."""
        if inlet == "playback":
            self._agent(self.gate.release_all())
        elif inlet in self.open:
            self.open.discard(inlet)
            if inlet == "agent":  # its open segment is complete
                self._agent(self.gate.boundary(interrupt=True))
            self._place(inlet, self.tracks[inlet].flush())

    def take(self, minimum: int = 0) -> npt.NDArray[np.int16] | None:
        """The stereo samples that became final, if there are at least ``minimum`` of them."""
        upto = self._frontier()
        if upto - self.timeline.written < max(minimum, 1):
            return None
        return self.timeline.take(upto)

    def finish(self) -> npt.NDArray[np.int16]:
        """Everything not written yet: ends every inlet, releases held agent audio whole."""
        for inlet in ("playback", *sorted(self.open)):
            self.end(inlet)
        return self.timeline.take(max(self.timeline.high, self.timeline.written))

    def statistics(self) -> dict[str, int]:
        return {
            "written": self.timeline.written,
            "late_samples": self.timeline.late_samples,
            "trimmed_samples": self.gate.trimmed_samples,
            "unconfirmed_samples": self.gate.unconfirmed_samples,
            "overlaps": sum(t.overlaps for t in self.tracks.values()),
        }

    def _agent(self, frames: list[mg.AudioFrame]) -> None:
        if not frames:
            return
        track = self.tracks["agent"]
        for frame in frames:
            self._place("agent", track.add(frame))
        if "agent" not in self.open:  # released after the inlet ended: nothing will continue it
            self._place("agent", track.flush())

    def _place(self, side: str, pieces: list[tuple[int, Samples]]) -> None:
        column = 0 if side == "user" else 1
        for position, samples in pieces:
            self.timeline.place(column, position, samples)

    def _frontier(self) -> int:
        """Where the final part of the timeline ends: no open side may still place audio before it."""
        leader = max((t.end for t in self.tracks.values()), default=0)
        bounds = [max(self.tracks[side].end, leader - self.max_lag) for side in self.open]
        limit = min(bounds, default=self.timeline.high)
        held = self.gate.first_held()
        if held is not None:
            limit = min(limit, round(held.timestamp * RATE / held.sample_rate))
        return max(self.timeline.written, limit)
