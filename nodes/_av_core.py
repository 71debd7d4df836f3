"""The A/V synchronizer's pure core: avatar video released by the audio actually played.

No trio, no clock, no I/O: the actor (``av_sync``) feeds it the audio it sends down, the video frames that
arrive, the playback events from below and the graph time ``now`` (``tick(now)`` when nothing else happens;
:meth:`AvCore.next_wake` says when something may next be due), and acts on the decisions it returns.

Theory of operation. All media times are seconds on the one media timeline the audio and the video share
(an audio frame's ``timestamp / sample_rate``, a video frame's ``pts * time_base``).

- **Played media time.** A playback event of a segment whose media ``start`` is known says that the media
  up to ``start + position`` was heard (``position`` 0 for a ``PlaybackStarted``). The played media time is
  the largest such value of the current epoch. Between two events of a segment still playing it runs on
  with graph time from the last event (its ``t``) as a real-time sink would play the audio sent down: never
  past a gap in the media, and never over audio before the graph time it was sent (a sink that underran
  waits for it). It is thus the most the sink can have played, exact for a sink that plays as soon as it
  can; the reports correct it at each event. After a ``PlaybackFinished`` it stands still. Events without
  ``start`` cannot be placed and are ignored (``unplaced``); events of a generation older than one seen are
  ignored (``stale_events``).
- **Release.** Video frames of the current epoch wait in pts order. A frame is *due* once the played media
  time reaches its pts. A due frame is released, with ``skew = pts - played``, unless it is *late*: its pts
  is more than ``max_late`` seconds behind the played time, or not after the last pts sent out (output pts
  strictly increase); a late frame is dropped and counted. A frame that arrives before it is due is released
  at the first call at which it is due, so with calls at least once per frame period its skew is within one
  frame period (``next_wake`` gives the graph time to call back).
- **Repeats.** While the audio plays, after the frames due, the last frame released is repeated once the
  next frame is half a frame period overdue (the played time is a period and a half past the last pts sent
  out), with pts advanced by whole frame periods and at least half a period behind the played time: a frame
  that arrives just when it is due (an avatar sends a frame with its audio) is never beaten to its slot by a
  repeat, and the output stays within a period and a half of the audio, so the track never stalls (at most
  one repeat per call).
- **Epochs.** :meth:`AvCore.interrupt` starts a new epoch. Every frame the core holds is dropped as
  *stale*, the played time of the new epoch is unknown until its speech plays, and the epoch's *cut* is
  the furthest media time seen so far (the end of the audio sent, just after a video frame's pts) or
  the cut the caller gives, whichever is later. **The rule telling an old frame from a new one**: a frame
  (audio or video) is of an older epoch, and is dropped as stale, when the actor stamps it with an older
  epoch (the actor stamps each inbound frame with the epoch current when it took it from its inlet, so a
  frame it had queued before the interrupt is old), or when its media time is before the current epoch's
  cut (the producer's media time only grows, so media before the cut that still arrives after the interrupt,
  in flight in the mailboxes above, is the old turn's). Playback events of a segment starting before the cut
  are the old turn's and do not move the new epoch's played time. Nothing of the new epoch is released
  before its own speech plays, hence never before the interrupt was applied. Old-turn media lying beyond
  everything seen at the interrupt cannot be told by time: a caller that knows where the new turn begins
  passes it as ``cut``.
- **Idle.** From the interrupt until the new epoch's first frame is released (which waits for its speech to
  play), the video shows the idle frame: the last frame released before the interrupt (``idle="last"``) or
  the configured still (``idle="still"``: the decision carries no frame). It is shown at the interrupt and
  again every frame period of graph time, so the track stays alive; repeats resume with the new epoch's
  first frame (a frame of an interrupted epoch is never repeated).
- **Output timeline.** Every frame sent out carries ``out``, its presentation time on the output track,
  which strictly increases: idle frames advance it a frame period each, and an epoch's frames go out at
  their pts plus the epoch's *offset*, zero unless the idle frames ran past the new epoch's first pts, then
  just enough to put that frame a period after the last idle one. (``pts`` stays the media time: skew,
  lateness and the epoch cut are told by it.)
- **End.** Once both the audio and the video have ended, the tracks end (one :class:`End`, exactly once)
  when all the audio sent in the epoch has been played (by the played time, which runs on as the sink
  plays) or accounted for by a ``PlaybackFinished``; the frames still waiting are then dropped as
  ``unplayed``. Until then the last frame repeats while the audio plays, and an interrupt (a barge-in
  during the last words) still starts a new epoch, whose empty audio has played at once. So that the end
  never hangs on reports that cannot come, the tracks end at the latest ``_audio_sent.GRACE`` after a real-time
  sink would have played all the audio sent (each frame from when it was sent or the one before it ended).
  :meth:`AvCore.close` (the graph stops) ends them at once, dropping what waits. After the end every input
  is ignored.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import math
from typing import Final, Literal, final

import attrs

import mediagraph as mg

from ._audio_sent import AudioSent

__all__ = ["AudioDecision", "AvCore", "AvStatistics", "Decision", "Drop", "End", "Idle", "Release", "Repeat"]

_EPSILON: Final = 1e-6  # seconds: media times are sums of float durations


@final
@attrs.frozen(kw_only=True)
class Release[F]:
    """Show ``frame`` now, at ``out`` on the output timeline; ``skew`` is its pts minus the played media time
    (seconds)."""

    frame: F
    pts: float
    skew: float
    out: float


@final
@attrs.frozen(kw_only=True)
class Repeat[F]:
    """Show ``frame`` (the last one released) again, at media time ``pts`` (``out`` on the output timeline)."""

    frame: F
    pts: float
    out: float


@final
@attrs.frozen(kw_only=True)
class Drop[F]:
    """``frame`` will never be shown: ``late`` (behind the played time), ``stale`` (of an older epoch) or
    ``unplayed`` (its audio never played before the end)."""

    frame: F
    pts: float
    reason: Literal["late", "stale", "unplayed"]


@final
@attrs.frozen(kw_only=True)
class Idle[F]:
    """Show the idle frame at graph time ``t`` (``out`` on the output timeline): ``frame`` (the last one
    released), or the still if ``None``."""

    frame: F | None
    t: float
    out: float


@final
@attrs.frozen(kw_only=True)
class End:
    """Both tracks end: sent once."""


@final
@attrs.frozen(kw_only=True)
class AudioDecision:
    """What to do with an audio frame: send it down (``keep``), or drop it as stale."""

    keep: bool
    start: float
    duration: float


type Decision[F] = Release[F] | Repeat[F] | Drop[F] | Idle[F] | End


@final
@attrs.frozen(kw_only=True)
class AvStatistics:
    epoch: int
    released: int
    repeated: int
    late: int
    stale: int
    unplayed: int
    stale_audio: int
    stale_events: int
    unplaced: int
    waiting: int


@final
class AvCore[F]:
    """Feed it audio sent, video arriving, playback events and time; each call returns the decisions due.

    Args:
        fps: the output frame rate (repeats and idle frames come at it).
        max_late: seconds a due frame may be behind the played time and still be released.
        idle: what the video shows after an interrupt: the last frame, or the still.

    Raises:
        ValueError: a frame rate that is not positive, a negative ``max_late``, an unknown ``idle``.
    """

    def __init__(self, *, fps: float = 25.0, max_late: float = 0.1, idle: Literal["last", "still"] = "last") -> None:
        if not (math.isfinite(fps) and fps > 0):
            raise ValueError(f"fps must be positive, got {fps!r}")
        if not (math.isfinite(max_late) and max_late >= 0):
            raise ValueError(f"max_late must be >= 0 seconds, got {max_late!r}")
        if idle not in ("last", "still"):
            raise ValueError(f"idle must be 'last' or 'still', got {idle!r}")
        self.period = 1.0 / fps
        self.max_late = max_late
        self.idle_mode = idle
        self.epoch = 0
        self.cut = -math.inf  # media before it is of an older epoch
        self.ended = False
        self._waiting: list[tuple[float, int, F]] = []  # heap of (pts, arrival, frame) of the current epoch
        self._order = itertools.count()
        self._last: F | None = None  # the last frame released
        self._last_pts = -math.inf  # the last pts sent out (releases and repeats)
        self._out = -math.inf  # the last time sent out on the output timeline (idle frames too)
        self._offset = 0.0  # this epoch's output time minus media time
        self._rebase = False  # the next release sets the offset: an epoch begins after idle frames
        self._played: float | None = None  # the largest played media time reported in this epoch
        self._anchor: tuple[float, float] | None = None  # (media, graph time) of the last event of a playing segment
        self._audio: list[list[float]] = []  # [start, end, graph time sent] of this epoch's audio, merged
        self._accounted = -math.inf  # start + sent of the epoch's finished segments
        self._sent = AudioSent()  # this epoch's audio sent down, and the finished segments' account of it
        self._seen = -math.inf  # the furthest media time seen, any epoch
        self._generation = 0
        self._idle_at: float | None = None  # graph time of the next idle frame, while idle
        self._idle_frame: F | None = None  # what idle shows (None: the still)
        self._audio_ended = self._video_ended = False
        self._counts = dict.fromkeys(
            ("released", "repeated", "late", "stale", "unplayed", "stale_audio", "stale_events", "unplaced"), 0
        )

    def __repr__(self) -> str:
        return (
            f"<AvCore epoch={self.epoch} played={self._played} waiting={len(self._waiting)} "
            f"last_pts={self._last_pts} idle={self._idle_at is not None} ended={self.ended}>"
        )

    def statistics(self) -> AvStatistics:
        return AvStatistics(epoch=self.epoch, waiting=len(self._waiting), **self._counts)

    # --- inputs ---------------------------------------------------------------------------------------------

    def audio(self, start: float, duration: float, now: float, epoch: int | None = None) -> list[AudioDecision]:
        """An audio frame to send down: media ``start`` and ``duration`` (seconds), stamped with ``epoch``
        (``None``: the current one). Returns one decision for it (its due video decisions come with the next
        call: the frame only matters to them once it plays)."""
        if self.ended or self._old(start, epoch):
            self._counts["stale_audio"] += 1
            return [AudioDecision(keep=False, start=start, duration=duration)]
        end = start + duration
        self._seen = max(self._seen, end)
        self._sent.send(duration, now)
        last = self._audio[-1] if self._audio else None
        # Merged into the chunk it continues when it was sent before a real-time sink could reach it anyway.
        if last is not None and abs(start - last[1]) <= _EPSILON and now <= last[2] + (last[1] - last[0]) + _EPSILON:
            last[1] = end
        else:
            bisect.insort(self._audio, [start, end, now])
        return [AudioDecision(keep=True, start=start, duration=duration)]

    def video(self, frame: F, pts: float, now: float, epoch: int | None = None) -> list[Decision[F]]:
        """A video frame arrived: its media time ``pts`` (seconds), stamped with ``epoch`` (``None``: the
        current one)."""
        if self.ended:
            return [self._drop(frame, pts, "unplayed")]
        if self._old(pts, epoch):
            return [self._drop(frame, pts, "stale")]
        self._seen = max(self._seen, pts + 2 * _EPSILON)  # the old turn's media ends after its last frame
        heapq.heappush(self._waiting, (pts, next(self._order), frame))
        return self._step(now)

    def playback(self, event: mg.PlaybackEvent, now: float) -> list[Decision[F]]:
        """A playback event from the sink below."""
        if self.ended:
            return []
        if event.generation < self._generation:
            self._counts["stale_events"] += 1
            return []
        self._generation = event.generation
        if event.start is None:
            self._counts["unplaced"] += 1
            return []
        if event.start < self.cut - _EPSILON:
            return []  # the old turn's segment, finishing
        position = 0.0 if isinstance(event, mg.PlaybackStarted) else event.position
        media = event.start + position
        self._played = media if self._played is None else max(self._played, media)
        if isinstance(event, mg.PlaybackFinished):
            self._anchor = None
            self._accounted = max(self._accounted, event.start + event.sent)
            self._sent.finish(event.sent)
        else:
            self._anchor = (media, event.t)
        return self._step(now)

    def tick(self, now: float) -> list[Decision[F]]:
        """Time passed: frames due, repeats, idle frames."""
        return self._step(now) if not self.ended else []

    def interrupt(self, now: float, cut: float | None = None) -> list[Decision[F]]:
        """Barge-in: a new epoch. What the core holds is dropped as stale; media before ``cut`` (or before
        the furthest media seen, if later) is the old turn's; the idle frame shows until new speech plays."""
        if self.ended:
            return []
        self.epoch += 1
        self.cut = max(self._seen, -math.inf if cut is None else cut)
        out: list[Decision[F]] = [self._drop(f, p, "stale") for p, _, f in sorted(self._waiting)]
        self._waiting.clear()
        self._played = self._anchor = None
        self._audio.clear()
        self._idle_frame = self._last if self.idle_mode == "last" else None
        self._last = None  # never repeated in the new epoch
        self._accounted = -math.inf
        self._sent.restart()
        self._idle_at = now
        self._rebase = True
        return out + self._step(now)

    def end_audio(self, now: float) -> list[Decision[F]]:
        """The audio inlet ended."""
        self._audio_ended = True
        return self.tick(now)

    def end_video(self, now: float) -> list[Decision[F]]:
        """The video inlet ended."""
        self._video_ended = True
        return self.tick(now)

    def close(self, now: float) -> list[Decision[F]]:
        """The graph stops: end both tracks now (once), dropping the frames that wait."""
        return self._finish() if not self.ended else []

    # --- time -----------------------------------------------------------------------------------------------

    def played(self, now: float) -> float | None:
        """The played media time at graph time ``now`` (``None`` until the epoch's speech plays)."""
        if self._played is None or self._anchor is None:
            return self._played
        position, clock = self._anchor
        for start, end, sent in self._audio:
            if end <= position + _EPSILON:
                continue
            if start > position + _EPSILON:
                break  # a gap: the next segment's start will say where it plays
            clock = max(clock, sent)  # the sink could not play it before it was sent
            take = min(end - position, now - clock)
            if take <= 0:
                break
            position, clock = position + take, clock + take
        return max(self._played, position)

    def next_wake(self, now: float) -> float | None:
        """The graph time at which a call may next return something (``None``: only an input can)."""
        if self.ended:
            return None
        wakes: list[float] = []
        if self._audio_ended and self._video_ended:
            wakes.append(self._sent.deadline)
        if self._idle_at is not None and self._shows_idle():
            wakes.append(self._idle_at)
        played = self.played(now)
        if self._anchor is not None and played is not None:
            targets = [self._waiting[0][0]] if self._waiting else []
            if self._last is not None:
                targets.append(self._last_pts + 1.5 * self.period)
            for target in targets:
                wakes.append(now + max(0.0, target - played))  # reached only if that audio plays
        return max(now, min(wakes)) if wakes else None

    # --- decisions ------------------------------------------------------------------------------------------

    def _old(self, media: float, epoch: int | None) -> bool:
        return (epoch is not None and epoch < self.epoch) or media < self.cut - _EPSILON

    def _drop(self, frame: F, pts: float, reason: Literal["late", "stale", "unplayed"]) -> Drop[F]:
        self._counts[reason] += 1
        return Drop(frame=frame, pts=pts, reason=reason)

    def _step(self, now: float) -> list[Decision[F]]:
        out: list[Decision[F]] = []
        played = self.played(now)
        if self._played is not None:  # forget the audio known to be played
            self._audio = [chunk for chunk in self._audio if chunk[1] > self._played + _EPSILON]
        if played is not None:
            while self._waiting and self._waiting[0][0] <= played + _EPSILON:
                pts, _, frame = heapq.heappop(self._waiting)
                if pts < played - self.max_late - _EPSILON or pts <= self._last_pts + _EPSILON:
                    out.append(self._drop(frame, pts, "late"))
                    continue
                if self._rebase:
                    self._offset, self._rebase = max(0.0, self._out + self.period - pts), False
                self._last, self._last_pts, self._idle_at = frame, pts, None
                self._counts["released"] += 1
                out.append(Release(frame=frame, pts=pts, skew=pts - played, out=self._output(pts)))
            if self._last is not None and played >= self._last_pts + 1.5 * self.period - _EPSILON:
                periods = math.floor((played - self._last_pts) / self.period - 0.5 + _EPSILON)
                self._last_pts += periods * self.period
                self._counts["repeated"] += 1
                out.append(Repeat(frame=self._last, pts=self._last_pts, out=self._output(self._last_pts)))
        if self._idle_at is not None and now >= self._idle_at - _EPSILON:
            if self._shows_idle():
                self._out = self._out + self.period if self._out > -math.inf else 0.0
                out.append(Idle(frame=self._idle_frame, t=now, out=self._out))
            self._idle_at += self.period * max(1, math.floor((now - self._idle_at) / self.period + _EPSILON) + 1)
        if self._audio_ended and self._video_ended and (self._played_out(played) or now >= self._sent.deadline):
            out.extend(self._finish())
        return out

    def _output(self, pts: float) -> float:
        """The output time of this epoch's frame at media time ``pts`` (and the last one sent out)."""
        self._out = pts + self._offset
        return self._out

    def _shows_idle(self) -> bool:
        return self.idle_mode == "still" or self._idle_frame is not None

    def _played_out(self, played: float | None) -> bool:
        """Whether all the audio sent in this epoch has played, or its segments finished: by media time, or by
        the seconds the finished segments were sent (which holds however the sink cut its segments)."""
        if not self._audio or self._sent.accounted:
            return True
        end = max(chunk[1] for chunk in self._audio)
        return self._accounted >= end - _EPSILON or (played is not None and played >= end - _EPSILON)

    def _finish(self) -> list[Decision[F]]:
        out: list[Decision[F]] = [self._drop(f, p, "unplayed") for p, _, f in sorted(self._waiting)]
        self._waiting.clear()
        self.ended = True
        self._idle_at = None
        return [*out, End()]
