"""The A/V synchronizer's core against a simple reference model: a real-time sink (a real
``mg.PlaybackTracker``) plays the audio sent, whose media time is the truth; a frame may be released iff its pts
is at most the played media time, more than ``max_late`` behind it, and of the current epoch."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import attrs
import hypothesis.strategies as st
import pytest
from hypothesis import given, note, settings

import mediagraph as mg

if TYPE_CHECKING:
    from nodes._av_core import AvCore, Decision, Drop, End, Idle, Release, Repeat
else:
    from mediagraph.nodes._av_core import AvCore, Decision, Drop, End, Idle, Release, Repeat

RATE = 48000
DT = 0.01  # seconds per simulation step: the sink plays and the core is ticked at every step
STEP = round(DT * RATE)
AFRAME = 960  # samples per audio frame (20 ms)
EPS = 1e-6


@attrs.frozen
class Turn:
    frames: int  # audio frames of 20 ms
    audio_lead: float  # seconds of audio the producer sends ahead of real time
    media_gap: int  # samples of media timeline skipped before the turn
    wait: int  # steps before the turn begins
    pattern: str
    video_lead: float
    burst: float
    offsets: tuple[float, ...]  # per frame: jitter or lateness, seconds
    reorder: bool
    interrupt: int | None  # steps after the turn begins
    queued: bool  # at the interrupt, a frame of the turn's audio was still queued in the actor: stamped old


@st.composite
def turns(draw: st.DrawFn) -> Turn:
    frames = draw(st.integers(1, 60))
    pattern = draw(st.sampled_from(["steady", "jittered", "bursty", "late"]))
    count = math.ceil(frames * AFRAME / RATE * 30) + 1
    if pattern == "jittered":
        offsets = draw(st.lists(st.floats(-0.03, 0.03), min_size=count, max_size=count))
    elif pattern == "late":
        lateness = st.sampled_from([0.0, 0.0, 0.0, 0.03, 0.08, 0.15, 0.3])
        offsets = draw(st.lists(lateness, min_size=count, max_size=count))
    else:
        offsets = [0.0] * count
    return Turn(
        frames=frames,
        audio_lead=draw(st.sampled_from([0.0, 0.05, 0.2, 1.5])),
        media_gap=draw(st.sampled_from([0, 0, 480, 9600])),
        wait=draw(st.sampled_from([0, 0, 3, 30])),
        pattern=pattern,
        video_lead=draw(st.sampled_from([0.0, 0.02, 0.1, 0.3])),
        burst=draw(st.sampled_from([0.1, 0.2, 0.5])),
        offsets=tuple(offsets),
        reorder=draw(st.booleans()),
        interrupt=draw(st.one_of(st.none(), st.integers(0, frames * 2 + 20))),
        queued=draw(st.booleans()),
    )


@attrs.define
class Frame:
    pts: float
    epoch: int
    arrival: int = -1
    in_time: bool = False
    decided: str = ""


class Sim:
    """The world around the core: a producer sending audio ahead of time, an avatar sending video as the
    turn's pattern says, a real-time sink, and the reference checks on every decision."""

    def __init__(self, core: AvCore[int], fps: float, max_late: float, interval: float | None, idle: str) -> None:
        self.core, self.period, self.max_late, self.idle_mode = core, 1 / fps, max_late, idle
        self.fps = fps
        self.tracker = mg.PlaybackTracker(RATE, progress_interval=interval)
        self.queue: list[list[int]] = []  # the sink's buffer: [media start (samples), samples, consumed]
        self.truth = -math.inf  # played media time (seconds)
        self.epoch = 0
        self.frames: list[Frame] = []
        self.last_out = -math.inf
        self.out = -math.inf  # the last output time: every frame sent out strictly increases it
        self.last_out_epoch = -1
        self.last_released: int | None = None
        self.idle_since: float | None = None  # graph time of the last idle frame, while idle
        self.idle_frame: int | None = None
        self.ends = 0
        self.stale_audio = 0
        self.skews: list[float] = []
        self.now = 0.0

    def play(self) -> None:
        """The sink consumed what it could during the last step."""
        budget = STEP
        while budget and self.queue:
            head = self.queue[0]
            take = min(budget, head[1] - head[2])
            head[2] += take
            budget -= take
            self.truth = (head[0] + head[2]) / RATE
            if head[2] == head[1]:
                self.queue.pop(0)
        played = STEP - budget
        if played:
            self.events(self.tracker.played(played, self.now - DT))

    def events(self, events: list[mg.PlaybackEvent]) -> None:
        for e in events:
            self.check(self.core.playback(e, self.now))

    def check(self, decisions: list[Decision[int]]) -> None:
        for d in decisions:
            assert self.ends == 0, f"{d} after the end"
            if isinstance(d, End):
                self.ends += 1
                continue
            if not isinstance(d, Drop):
                assert d.out > self.out + EPS / 2, ("output time not increasing", self.out, d)
                if isinstance(d, Release | Repeat) and self.epoch == 0:
                    assert d.out == d.pts, ("an offset before any interrupt", d)
                self.out = d.out
            if isinstance(d, Idle):
                assert self.idle_since is not None, f"{d} while not idle"
                assert d.frame == (self.idle_frame if self.idle_mode == "last" else None)
                self.idle_since = self.now
                continue
            f = self.frames[d.frame]
            if isinstance(d, Repeat):
                assert f.epoch == self.epoch, f"repeat of an interrupted epoch's frame {f}"
                assert self.last_out < d.pts <= self.truth + EPS, (self.last_out, d, self.truth)
                self.last_out = d.pts
                continue
            assert not f.decided, f"{f} decided twice"
            if isinstance(d, Release):
                f.decided = "released"
                assert f.epoch == self.epoch, f"{f} of an interrupted epoch released in epoch {self.epoch}"
                assert self.last_out < d.pts, ("output pts not increasing", self.last_out, d)
                assert self.truth - self.max_late - EPS <= d.pts <= self.truth + EPS, (d, self.truth)
                if f.in_time:
                    self.skews.append(d.pts - self.truth)
                    assert -self.period - EPS <= d.pts - self.truth, ("skew", d, self.truth)
                self.last_out, self.last_out_epoch, self.last_released = d.pts, self.epoch, d.frame
                self.idle_since = None
            else:
                assert isinstance(d, Drop)
                f.decided = d.reason
                if d.reason == "stale":
                    assert f.epoch < self.epoch, f
                elif d.reason == "late":
                    assert not f.in_time, f"{f} arrived in time and was dropped late"
                    assert d.pts < self.truth - self.max_late + EPS or d.pts <= self.last_out + EPS, (d, self.truth)
                else:
                    assert d.pts > self.truth - EPS or f.epoch < self.epoch, f"{f} unplayed at {self.truth}"

    def interrupt(self) -> None:
        self.epoch += 1
        self.idle_frame = self.last_released
        self.idle_since = self.now
        self.last_released = None
        self.check(self.core.interrupt(self.now))
        events, _ = self.tracker.interrupt(self.now)
        self.queue.clear()
        self.events(events)


def run(sim: Sim, script: list[Turn]) -> None:
    core = sim.core
    arrivals: dict[int, list[int]] = {}
    media = 0  # samples: where the next turn's media begins
    step = 0
    for turn in script:
        for _ in range(turn.wait):  # nothing sent: the sink plays on, frames in flight arrive
            sim.now = step * DT
            sim.play()
            arrive_now(sim, arrivals.pop(step, []), False, step)
            sim.check(core.tick(sim.now))
            alive(sim)
            step += 1
        begin, start = step, media + turn.media_gap
        sent_end = start
        epoch = sim.epoch
        # The avatar's video for the turn: frames covering its audio, arriving as the pattern says, never before
        # the audio they show was sent.
        mine: list[int] = []
        end = start + turn.frames * AFRAME
        k = 0
        while start / RATE + k * sim.period < end / RATE - EPS:
            pts = start / RATE + k * sim.period
            due = begin * DT + pts - start / RATE
            if turn.pattern == "bursty":
                first = math.floor(k * sim.period / turn.burst) * turn.burst
                due = begin * DT + first
            arrive = due - turn.video_lead + turn.offsets[k]
            arrive = max(arrive, begin * DT + pts - start / RATE - turn.audio_lead, begin * DT)
            sim.frames.append(Frame(pts=pts, epoch=epoch))
            mine.append(len(sim.frames) - 1)
            arrivals.setdefault(math.ceil(arrive / DT - EPS), []).append(len(sim.frames) - 1)
            k += 1
        cut_at = None if turn.interrupt is None else begin + turn.interrupt
        while True:
            sim.now = step * DT
            sim.play()
            if cut_at is not None and step >= cut_at:
                sim.interrupt()
                if turn.queued and sent_end < end:
                    n = min(AFRAME, end - sent_end)
                    assert not any(d.keep for d in core.audio(sent_end / RATE, n / RATE, sim.now, epoch=epoch))
                    sim.stale_audio += 1
                made = [i for i in mine if sim.frames[i].pts < sent_end / RATE - EPS]  # the rest was never made
                for at in arrivals:
                    arrivals[at] = [i for i in arrivals[at] if i not in mine or i in made]
                media = sent_end
                break
            while sent_end < end and (sent_end - start) / RATE - turn.audio_lead <= sim.now - begin * DT + EPS:
                n = min(AFRAME, end - sent_end)
                (decision,) = core.audio(sent_end / RATE, n / RATE, sim.now)
                assert decision.keep
                sim.tracker.queue(n, start=sent_end / RATE)
                sim.queue.append([sent_end, n, 0])
                sent_end += n
            if sent_end == end:
                sim.events(sim.tracker.flush(sim.now))
            arrive_now(sim, arrivals.pop(step, []), turn.reorder, step)
            sim.check(core.tick(sim.now))
            alive(sim)
            step += 1
            if sent_end == end:
                media = end
                break
    # Both streams end once everything was sent and has arrived; the sink plays out.
    core_ended_audio = False
    limit = step + 1000
    while sim.ends == 0 and step < limit:
        sim.now = step * DT
        sim.play()
        arrive_now(sim, arrivals.pop(step, []), False, step)
        if not core_ended_audio:
            sim.check(core.end_audio(sim.now))
            core_ended_audio = True
        if not any(at > step for at in arrivals):
            sim.check(core.end_video(sim.now))
        sim.check(core.tick(sim.now))
        alive(sim)
        step += 1
    assert sim.ends == 1, "the tracks never ended"
    assert core.close(sim.now) == [] and core.tick(sim.now) == [] and sim.ends == 1


def arrive_now(sim: Sim, ids: list[int], reorder: bool, step: int) -> None:
    order = sorted(ids, key=lambda i: sim.frames[i].pts, reverse=reorder)
    for i in order:
        f = sim.frames[i]
        f.arrival, f.in_time = step, f.pts > sim.truth + EPS and f.epoch == sim.epoch
        sim.check(sim.core.video(i, f.pts, sim.now))


def alive(sim: Sim) -> None:
    """The track never stalls: while the epoch's frames show, the output is at most a period and a half behind
    the played audio; while idle, an idle frame at least every frame period of graph time."""
    if sim.ends:
        return
    if sim.last_out_epoch == sim.epoch and sim.idle_since is None:
        assert sim.last_out >= sim.truth - 1.5 * sim.period - EPS, ("stalled", sim.last_out, sim.truth)
    if sim.idle_since is not None and (sim.idle_mode == "still" or sim.idle_frame is not None):
        assert sim.now - sim.idle_since <= sim.period + DT + EPS, ("idle stalled", sim.idle_since, sim.now)


@settings(deadline=None, max_examples=400)
@given(
    script=st.lists(turns(), min_size=1, max_size=3),
    fps=st.sampled_from([25.0, 30.0]),
    max_late=st.sampled_from([0.04, 0.1, 0.2]),
    interval=st.sampled_from([0.0, 0.02, 0.05, None]),
    idle=st.sampled_from(["last", "still"]),
)
def test_releases_match_the_reference_under_any_arrival_pattern_and_interrupt(
    script: list[Turn], fps: float, max_late: float, interval: float | None, idle: Any
) -> None:
    core: AvCore[int] = AvCore(fps=fps, max_late=max_late, idle=idle)
    sim = Sim(core, fps, max_late, interval, idle)
    run(sim, script)
    note(f"frames {sim.frames}")
    note(f"stats {core.statistics()}")
    # Every frame fed was decided exactly once; the statistics count them.
    fed = [f for f in sim.frames if f.arrival >= 0]
    assert all(f.decided for f in fed), [f for f in fed if not f.decided]
    stats = core.statistics()
    kinds = [f.decided for f in fed]
    assert (stats.released, stats.late, stats.stale, stats.unplayed) == tuple(
        kinds.count(k) for k in ("released", "late", "stale", "unplayed")
    )
    assert (stats.epoch, stats.stale_audio) == (sim.epoch, sim.stale_audio)
    # A frame that arrived in time for its own epoch is shown unless an interrupt or the end came first.
    for f in fed:
        if f.in_time:
            assert f.decided in ("released", "stale", "unplayed"), f
    assert all(abs(s) <= 1 / fps + EPS for s in sim.skews)


# --- examples -----------------------------------------------------------------------------------------------


def started(start: float, t: float, generation: int = 0) -> mg.PlaybackStarted:
    return mg.PlaybackStarted(segment=0, start=start, t=t, generation=generation)


def progress(start: float, position: float, t: float, generation: int = 0) -> mg.PlaybackProgress:
    return mg.PlaybackProgress(segment=0, start=start, position=position, t=t, generation=generation)


def test_an_early_frame_waits_for_its_audio_and_the_last_frame_repeats_meanwhile() -> None:
    core: AvCore[str] = AvCore(fps=25.0)
    core.audio(0.0, 1.0, now=0.0)
    assert core.video("a", 0.0, now=0.0) == [] and core.video("c", 0.2, now=0.0) == []
    assert core.playback(started(0.0, t=0.0), now=0.0) == [Release(frame="a", pts=0.0, skew=0.0, out=0.0)]
    assert core.tick(0.05) == []  # the next frame (0.04) may still come: not half a period overdue
    assert core.tick(0.06) == [Repeat(frame="a", pts=pytest.approx(0.04), out=pytest.approx(0.04))]  # type: ignore[arg-type]
    assert core.next_wake(0.07) == pytest.approx(0.1)
    # One repeat, its pts whole periods on and half a period behind the played time at least: 0.12.
    assert [(type(d), round(d.pts, 6)) for d in core.tick(0.17)] == [(Repeat, 0.12)]  # type: ignore[union-attr]
    out = core.tick(0.21)
    assert len(out) == 1 and isinstance(out[0], Release) and out[0].skew == pytest.approx(-0.01)
    assert core.statistics().repeated == 2


def test_the_played_time_runs_on_between_reports_but_not_over_audio_not_yet_sent_nor_a_gap() -> None:
    core: AvCore[str] = AvCore()
    core.audio(0.0, 0.1, now=0.0)
    core.playback(started(0.0, t=0.0), now=0.0)
    assert core.played(0.05) == pytest.approx(0.05)
    assert core.played(0.5) == pytest.approx(0.1)  # underrun: the sink stops where the audio does
    core.audio(0.1, 0.1, now=0.5)  # sent late: it plays from 0.5 on
    assert core.played(0.55) == pytest.approx(0.15)
    core.audio(0.5, 0.1, now=0.5)  # after a media gap: its own segment's start will place it
    assert core.played(2.0) == pytest.approx(0.2)
    core.playback(progress(0.0, 0.1, t=0.6), now=2.0)  # a report behind the estimate does not move it back
    assert core.played(2.0) == pytest.approx(0.2)


def test_a_late_frame_is_released_within_max_late_and_dropped_beyond_or_out_of_order() -> None:
    core: AvCore[str] = AvCore(fps=25.0, max_late=0.1)
    core.audio(0.0, 1.0, now=0.0)
    core.playback(progress(0.0, 0.5, t=0.5), now=0.5)
    assert core.video("old", 0.35, now=0.5) == [Drop(frame="old", pts=0.35, reason="late")]
    (out,) = core.video("ok", 0.45, now=0.5)
    assert isinstance(out, Release) and out.skew == pytest.approx(-0.05)
    assert core.tick(0.52) == [Repeat(frame="ok", pts=pytest.approx(0.49), out=pytest.approx(0.49))]  # type: ignore[arg-type]
    assert core.video("behind", 0.44, now=0.5) == [Drop(frame="behind", pts=0.44, reason="late")]
    assert core.video("same", 0.45, now=0.5) == [Drop(frame="same", pts=0.45, reason="late")]
    assert core.statistics().late == 3


def test_frames_arriving_reordered_are_released_in_pts_order() -> None:
    core: AvCore[str] = AvCore(fps=25.0)
    core.audio(0.0, 1.0, now=0.0)
    for name, pts in [("c", 0.08), ("a", 0.0), ("b", 0.04)]:
        core.video(name, pts, now=0.0)
    out = core.playback(started(0.0, t=0.0), now=0.0) + core.tick(0.09)
    assert [d.frame for d in out if isinstance(d, Release)] == ["a", "b", "c"]


@pytest.mark.parametrize("idle", ["last", "still"])
def test_an_interrupt_drops_the_old_turn_everywhere_and_shows_the_idle_frame_until_new_speech(idle: Any) -> None:
    core: AvCore[str] = AvCore(fps=25.0, idle=idle)
    core.audio(0.0, 1.0, now=0.0)
    core.video("a", 0.0, now=0.0)
    core.video("b", 0.5, now=0.0)
    core.playback(started(0.0, t=0.0), now=0.0)
    shown = "a" if idle == "last" else None
    out = core.interrupt(now=0.1)
    assert out == [Drop(frame="b", pts=0.5, reason="stale"), Idle(frame=shown, t=0.1, out=pytest.approx(0.04))]  # type: ignore[arg-type]
    assert core.cut == pytest.approx(1.0)  # the end of the audio sent
    assert core.video("in flight", 0.6, now=0.11) == [Drop(frame="in flight", pts=0.6, reason="stale")]
    assert core.video("queued", 1.2, now=0.11, epoch=0) == [Drop(frame="queued", pts=1.2, reason="stale")]
    assert [d.keep for d in core.audio(0.9, 0.1, now=0.11)] == [False]
    finish = mg.PlaybackFinished(segment=0, start=0.0, position=0.1, interrupted=True, sent=1.0, t=0.1)
    assert core.playback(finish, now=0.12) == []  # the old turn's segment: no played time of the new epoch
    assert core.tick(0.14) == [Idle(frame=shown, t=0.14, out=pytest.approx(0.08))]  # type: ignore[arg-type]
    assert core.video("new", 1.5, now=0.15) == [] and core.tick(0.16) == []
    core.audio(1.5, 0.5, now=0.2)
    new = mg.PlaybackStarted(segment=1, start=1.5, t=0.2, generation=1)
    # The new turn's media (1.5 s) lies ahead of the idle frames: no offset.
    assert core.playback(new, now=0.2) == [Release(frame="new", pts=1.5, skew=0.0, out=1.5)]
    assert core.tick(0.3) == [Repeat(frame="new", pts=pytest.approx(1.58), out=pytest.approx(1.58))]  # type: ignore[arg-type]
    stats = core.statistics()
    assert (stats.epoch, stats.stale, stats.stale_audio) == (1, 3, 1)


def test_after_an_interrupt_the_old_frame_is_never_repeated() -> None:
    core: AvCore[str] = AvCore(fps=25.0, idle="still")
    core.audio(0.0, 1.0, now=0.0)
    core.video("a", 0.0, now=0.0)
    core.playback(started(0.0, t=0.0), now=0.0)
    core.interrupt(now=0.1, cut=2.0)
    assert core.cut == 2.0
    core.audio(2.0, 1.0, now=0.1)
    out = core.playback(mg.PlaybackStarted(segment=1, start=2.0, t=0.1, generation=1), now=0.5)
    # Speech plays, no frame of it yet: still idle, no repeat of "a".
    assert out == [Idle(frame=None, t=0.5, out=pytest.approx(0.08))]  # type: ignore[arg-type]


def test_idle_frames_advance_the_output_time_and_the_next_epoch_goes_out_after_them() -> None:
    # The new turn's media begins where the old one's audio ended (0.2 s), but the idle frames shown while
    # waiting for its speech ran to 0.44 on the output timeline: the new epoch's frames go out a period after.
    core: AvCore[str] = AvCore(fps=25.0)
    core.audio(0.0, 0.2, now=0.0)
    core.video("a", 0.0, now=0.0)
    core.playback(started(0.0, t=0.0), now=0.0)
    idles = [d.out for d in core.interrupt(now=0.1) if isinstance(d, Idle)]
    for t in (0.14, 0.18, 0.22, 0.26, 0.3, 0.34, 0.38, 0.42):
        idles += [d.out for d in core.tick(t) if isinstance(d, Idle)]
    assert idles == pytest.approx([0.04 * k for k in range(1, 10)])
    core.audio(0.2, 0.2, now=0.45)
    core.video("b", 0.2, now=0.45)
    core.video("c", 0.24, now=0.45)
    out = core.playback(mg.PlaybackStarted(segment=1, start=0.2, t=0.45, generation=1), now=0.45)
    assert out == [Release(frame="b", pts=0.2, skew=0.0, out=pytest.approx(0.40))]  # type: ignore[arg-type]
    (release,) = core.tick(0.49)
    assert isinstance(release, Release) and (release.pts, release.out) == pytest.approx((0.24, 0.44))


def test_both_tracks_end_once_after_the_audio_played_out_and_waiting_frames_are_dropped_unplayed() -> None:
    core: AvCore[str] = AvCore(fps=25.0)
    core.audio(0.0, 0.2, now=0.0)
    core.video("a", 0.0, now=0.0)
    core.video("beyond", 0.4, now=0.0)
    core.playback(started(0.0, t=0.0), now=0.0)
    assert core.end_audio(0.06) == [Repeat(frame="a", pts=pytest.approx(0.04), out=pytest.approx(0.04))]  # type: ignore[arg-type]
    assert core.end_video(0.06) == []  # "beyond" waits: the audio is still playing
    finish = mg.PlaybackFinished(segment=0, start=0.0, position=0.2, interrupted=False, sent=0.2, t=0.2)
    out = core.playback(finish, now=0.2)
    assert out[-2:] == [Drop(frame="beyond", pts=0.4, reason="unplayed"), End()]
    assert (
        core.tick(1.0) == []
        and core.close(1.0) == []
        and core.video("x", 0.5, now=1.0)[0] == Drop(frame="x", pts=0.5, reason="unplayed")
    )
    assert core.next_wake(1.0) is None


def test_close_ends_both_tracks_at_once_and_only_once() -> None:
    core: AvCore[str] = AvCore()
    core.video("a", 0.0, now=0.0)
    assert core.close(0.0) == [Drop(frame="a", pts=0.0, reason="unplayed"), End()]
    assert core.close(0.1) == [] and core.interrupt(0.1) == []


def test_stale_generations_and_unplaced_events_are_ignored() -> None:
    core: AvCore[str] = AvCore()
    core.audio(0.0, 1.0, now=0.0)
    core.video("a", 0.5, now=0.0)
    assert core.playback(progress(0.0, 0.1, t=0.1, generation=2), now=0.1) == []
    assert core.playback(progress(0.0, 0.9, t=0.1, generation=1), now=0.1) == []
    assert core.playback(mg.PlaybackProgress(segment=0, position=0.9, generation=2), now=0.1) == []
    stats = core.statistics()
    assert (stats.stale_events, stats.unplaced, stats.waiting) == (1, 1, 1)


def test_next_wake_says_when_a_frame_or_an_idle_frame_is_due() -> None:
    core: AvCore[str] = AvCore(fps=25.0, idle="still")
    assert core.next_wake(0.0) is None
    core.audio(0.0, 1.0, now=0.0)
    core.video("a", 0.3, now=0.0)
    core.playback(started(0.0, t=0.0), now=0.0)
    assert core.next_wake(0.1) == pytest.approx(0.3)
    core.interrupt(now=0.2)
    assert core.next_wake(0.2) == pytest.approx(0.24)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"fps": 0.0}, "fps"), ({"max_late": -1.0}, "max_late"), ({"idle": "blank"}, "idle")],
)
def test_bad_settings_are_refused(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        AvCore(**kwargs)


def test_media_at_the_cut_up_to_rounding_belongs_to_the_new_epoch() -> None:
    core: AvCore[str] = AvCore(fps=25.0)
    start = 0.02
    for _ in range(6):  # the old turn's audio ends at 0.14, up to float rounding
        core.audio(start, 0.02, now=0.0)
        start += 0.02
    core.interrupt(now=0.1)
    assert core.video("new", 0.02 + 3 * 0.04, now=0.1) == []  # 0.13999999999999999: waits, not stale
    assert core.video("old", 0.10, now=0.1) == [Drop(frame="old", pts=0.10, reason="stale")]
