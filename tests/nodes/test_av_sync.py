"""av_sync through real nodes on the virtual clock: a scripted avatar (``test_messages``: audio ahead of real time,
video frames on the same media timeline arriving steady, jittered, in bursts or late) above it, a virtual
speaker (or a slot holding one, cut under it) below it, a recording sink as the screen."""

from __future__ import annotations

import contextlib
import math
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

import attrs
import hypothesis.strategies as st
import numpy as np
import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, given, note, settings

import mediagraph as mg
from mediagraph.testing import Recorder, SinkConfig, av_violations, check_av, check_playback

RATE = 48000
AFRAME = 480  # 10 ms
BLOCK = 0.01  # the speaker's block: it may finish the one it took as an interrupt came
FPS = 25
PERIOD = 1 / FPS

Timed = tuple[float, str, Any]


def audio(k: int, turn: int) -> mg.AudioFrame:
    samples = np.full((AFRAME, 1), 1000 * turn + 1, np.int16)
    return mg.AudioFrame(samples=samples, sample_rate=RATE, channels=1, timestamp=k * AFRAME)


def video(k: int, turn: int) -> mg.VideoFrame:
    """Frame ``k`` at media time k/25, its pixels telling the turn and the frame."""
    pixels = np.zeros((2, 2, 3), np.uint8)
    pixels[..., 0], pixels[..., 1] = turn, k % 256
    return mg.VideoFrame(pixels=pixels, pts=k, time_base=PERIOD)


@attrs.frozen
class Turn:
    start: float  # graph time the turn begins
    media: float  # its media start (seconds, a multiple of 40 ms)
    seconds: float  # of audio
    lead: float  # audio sent ahead of real time
    vlead: float  # video sent ahead of its media time (negative: behind)
    pattern: str = "steady"
    burst: float = 0.2
    offsets: tuple[float, ...] = ()  # per video frame: jitter or lateness

    def steps(self, number: int) -> list[Timed]:
        out: list[Timed] = []
        first = round(self.media * RATE) // AFRAME
        for i in range(round(self.seconds * RATE) // AFRAME):
            out.append((max(self.start, self.start + i * AFRAME / RATE - self.lead), "audio", audio(first + i, number)))
        vfirst = round(self.media * FPS)
        for j in range(math.ceil(self.seconds * FPS)):
            at = self.start + j * PERIOD - self.vlead
            if self.pattern == "bursty":
                at = self.start + math.floor((j * PERIOD - self.vlead) / self.burst) * self.burst
            elif self.offsets:
                at += self.offsets[j % len(self.offsets)]
            out.append((max(self.start, at), "video", video(vfirst + j, number)))
        return out


def script(turns: list[Turn], interrupt_at: float | None = None) -> list[Timed]:
    """The turns' steps in time order; with ``interrupt_at``, the first turn stops there (its late video frames
    of media already due still arrive, in flight) and an ``Interrupt`` goes down the audio."""
    steps = [(t, o, m, 0) for t, o, m in turns[0].steps(1)]
    if interrupt_at is not None:
        steps = [s for s in steps if s[0] < interrupt_at or (s[1] == "video" and s[2].time < interrupt_at - 0.1)]
        steps.append((interrupt_at, "audio", mg.Interrupt(), 1))
    for n, turn in enumerate(turns[1:], start=2):
        steps += [(t, o, m, 2) for t, o, m in turn.steps(n)]
    steps.sort(key=lambda s: (s[0], s[3]))
    return [(t, o, m) for t, o, m, _ in steps]


def graph(steps: list[Timed], rec: Recorder, *, below: dict[str, Any] | None = None, **sync: Any) -> mg.Graph:
    g = mg.Graph("avatar")
    outlets = {"audio": (mg.AudioFrame, mg.Interrupt, mg.Flush), "video": mg.VideoFrame}
    g.add("src", "test_messages", outlets=outlets, steps=steps)
    g.add("sync", "av_sync", fps=FPS, **sync)
    below = dict(below or speaker())
    g.add("out", below.pop("type"), **below)
    g.add("screen", "test_sink", config=SinkConfig(recorder=rec))
    g.link("src.audio", "sync.audio")
    g.link("src.video", "sync.video")
    g.link("sync.audio", "out.audio")
    g.link("out.playback", "sync.playback")
    g.link("sync.video", "screen.in")
    return g


def speaker() -> dict[str, Any]:
    return {"type": "speaker", "sample_rate": RATE, "progress_ms": 10}


def outs(log: mg.EventLog, kind: str | None = None) -> list[mg.Event]:
    return [e for e in log.of("video_out") if kind is None or e.fields["kind"] == kind]


def shown(rec: Recorder) -> list[mg.VideoFrame]:
    return [a.message for a in rec.arrivals("screen") if isinstance(a.message, mg.VideoFrame)]


async def run(
    g: mg.Graph,
    swaps: Sequence[float] = (),
    interrupts: Sequence[float] = (),
    outcomes: list[tuple[float, str | None]] | None = None,
) -> mg.EventLog:
    """Run ``g``; cut-swap the speaker below at ``swaps`` and interrupt ``sync`` through the API at
    ``interrupts`` (graph seconds; those after the graph finished are not tried), each in its own task; what
    became of each tried goes to ``outcomes``: (when, ``None`` if accepted or the refusal's message)."""
    log = mg.EventLog()
    async with mg.open_runtime() as rt:
        running = await rt.start(g, log=log)

        async def swap(at: float) -> None:
            await trio.sleep_until(running.t0 + at)
            with contextlib.suppress(mg.MediaGraphError):
                await running.swap("out", speaker(), "cut")

        async def interrupt(at: float) -> None:
            await trio.sleep_until(running.t0 + at)
            outcome: str | None = None
            try:
                running.interrupt("sync")
            except mg.MediaGraphError as exc:
                outcome = str(exc)
            (outcomes if outcomes is not None else []).append((at, outcome))

        async with trio.open_nursery() as nursery:
            for at in swaps:
                nursery.start_soon(swap, at)
            for at in interrupts:
                nursery.start_soon(interrupt, at)
            with trio.fail_after(120), contextlib.suppress(mg.NodeFailedError):  # a child died past its restarts
                await running.wait()
            nursery.cancel_scope.cancel()
    return log


async def test_early_frames_wait_for_their_audio_and_the_last_repeats(autojump_clock: trio.testing.MockClock) -> None:
    rec = Recorder()
    # One second of audio sent 0.3 s ahead; the video comes 0.5 s ahead, 0.4 s of it (10 frames) only.
    turn = Turn(start=0.0, media=0.0, seconds=1.0, lead=0.3, vlead=0.5)
    steps = [s for s in script([turn]) if s[1] == "audio" or s[2].time < 0.4]
    log = await run(graph(steps, rec))
    check_av(log, "sync", sink="out", slack=BLOCK)
    check_playback(log, "out")
    releases = outs(log, "release")
    assert [e.fields["pts"] for e in releases] == [round(k * PERIOD, 6) for k in range(10)]
    assert all(e.fields["waited"] and -PERIOD <= e.fields["skew"] <= 0 for e in releases)
    repeats = outs(log, "repeat")
    # The last frame (0.36 s) repeats every period until the inputs end (the last audio is sent at 0.69 s,
    # when 0.7 s has played: the core ends the tracks once both inputs ended and no frame waits).
    assert [e.fields["pts"] for e in repeats] == [round(0.36 + k * PERIOD, 6) for k in range(1, len(repeats) + 1)]
    assert len(repeats) >= 7
    assert all(float(e.fields["pts"]) > 0.36 for e in repeats)
    frames = shown(rec)
    assert [f.time for f in frames] == sorted(f.time for f in frames)
    assert all(int(f.pixels[0, 0, 1]) == 9 for f in frames[10:])  # the repeats show the last frame's pixels
    assert log.of("av_sync_total")[0].fields["repeated"] == len(repeats)


async def test_a_late_frame_is_dropped_and_counted(autojump_clock: trio.testing.MockClock) -> None:
    rec = Recorder()
    turn = Turn(start=0.0, media=0.0, seconds=1.0, lead=0.3, vlead=0.2)
    steps = script([turn])
    # Frame 10 (media 0.4 s) arrives at 0.7 s instead of 0.2 s: 0.3 s behind the audio, past max_late.
    late = next(i for i, s in enumerate(steps) if s[1] == "video" and s[2].pts == 10)
    steps.insert(next(i for i, s in enumerate(steps) if s[0] >= 0.7), (0.7, "video", steps.pop(late)[2]))
    log = await run(graph(steps, rec, max_late=0.1))
    check_av(log, "sync", sink="out", slack=BLOCK)
    drops = log.of("video_dropped")
    assert [(e.fields["reason"], e.fields["count"], e.fields["first"]) for e in drops] == [("late", 1, 0.4)]
    assert 0.4 not in [e.fields["pts"] for e in outs(log, "release")]
    total = log.of("av_sync_total")[0].fields
    assert (total["late"], total["released"]) == (1, 24)


async def test_after_an_interrupt_nothing_of_the_old_turn_is_released_and_idle_shows(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rec = Recorder()
    old = Turn(start=0.0, media=0.0, seconds=2.0, lead=0.5, vlead=0.3)
    new = Turn(start=1.2, media=2.4, seconds=0.6, lead=0.2, vlead=0.2)
    log = await run(graph(script([old, new], interrupt_at=0.8), rec, idle="still", still_color=(7, 7, 7)))
    check_av(log, "sync", sink="out", slack=BLOCK)
    check_playback(log, "out")
    (cut,) = log.of("av_interrupted")
    after = [e for e in outs(log) if e.seq > cut.seq]
    first_new = next(i for i, e in enumerate(after) if e.fields["kind"] == "release")
    assert first_new > 0 and all(e.fields["kind"] == "idle" for e in after[:first_new])
    assert all(float(e.fields["pts"]) >= 2.4 for e in after[first_new:])
    frames = shown(rec)
    shown_after = frames[len(outs(log)) - len(after) :]
    assert all(int(f.pixels[0, 0, 0]) == 7 for f in shown_after[:first_new])  # the still
    assert all(int(f.pixels[0, 0, 0]) == 2 for f in shown_after[first_new:])  # the new turn only
    stale = log.of("video_dropped")
    assert any(e.fields["reason"] == "stale" for e in stale)  # old frames waiting at the interrupt
    assert log.of("playback_finished")[0].fields["interrupted"]


async def test_an_interrupt_from_the_api_shows_the_last_frame_as_idle(autojump_clock: trio.testing.MockClock) -> None:
    rec = Recorder()
    old = Turn(start=0.0, media=0.0, seconds=2.0, lead=0.5, vlead=0.3)
    # The avatar stops at 0.6 s, its audio open until a Flush at 1.5 s; the API cuts at 0.7 s.
    steps = [*(s for s in script([old]) if s[0] < 0.6), (1.5, "audio", mg.Flush())]
    log = mg.EventLog()
    async with mg.open_runtime() as rt:
        running = await rt.start(graph(steps, rec), log=log)
        await trio.sleep_until(running.t0 + 0.7)
        running.interrupt("sync", "audio")
        await running.wait()
    check_av(log, "sync", sink="out", slack=BLOCK)
    check_playback(log, "out")
    (cut,) = log.of("av_interrupted")
    before = [e for e in outs(log) if e.seq < cut.seq and e.fields["kind"] != "idle"]
    after = [e for e in outs(log) if e.seq > cut.seq]
    assert after and all(e.fields["kind"] == "idle" for e in after)
    frames = shown(rec)
    last = frames[len(before) - 1]
    assert all(np.array_equal(f.pixels, last.pixels) for f in frames[len(before) :])


async def test_a_barge_in_after_the_avatar_sent_everything_still_cuts_the_last_words(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # The avatar sends its whole 2 s turn at once and ends both streams (at 0.12 s): the last words are still
    # to be played when the API interrupts at 1 s. It used to be accepted and lost (the audio inlet had ended,
    # nobody read it): the speaker played the whole turn and its video showed to the end.
    rec = Recorder()
    turn = Turn(start=0.0, media=0.0, seconds=2.0, lead=2.0, vlead=2.0)
    outcomes: list[tuple[float, str | None]] = []
    log = await run(graph(script([turn]), rec), interrupts=[1.0], outcomes=outcomes)
    check_av(log, "sync", sink="out", slack=BLOCK)
    check_playback(log, "out")
    assert outcomes == [(1.0, None)]
    (cut,) = log.of("av_interrupted")
    assert cut.t == 1.0 and cut.fields["cut"] == 2.0
    (finished,) = log.of("playback_finished", "out")
    assert finished.fields["interrupted"] and finished.fields["position"] == pytest.approx(1.0)
    assert max(float(e.fields["media"]) for e in outs(log) if e.fields["kind"] != "idle") < 1.0 + PERIOD
    # Both tracks ended then, not when the avatar's streams did, nor after the unplayed rest.
    assert [e.t for e in log.of("track_ended")] == [1.0, 1.0]


@pytest.mark.parametrize("flushed", [False, True])
async def test_both_outlets_end_exactly_once(autojump_clock: trio.testing.MockClock, flushed: bool) -> None:
    # Whether or not the avatar closed its last segment with a flush, the sink gets exactly one segment.
    rec = Recorder()
    steps = script([Turn(start=0.0, media=0.0, seconds=0.5, lead=0.1, vlead=0.1)])
    log = await run(graph([*steps, (0.45, "audio", mg.Flush())] if flushed else steps, rec))
    assert sorted(e.fields["track"] for e in log.of("track_ended")) == ["audio", "video"]
    assert [e.fields["interrupted"] for e in log.of("playback_finished", "out")] == [False]
    assert rec.arrivals("screen")  # and the screen's inlet ended: the graph completed
    check_av(log, "sync", sink="out", slack=BLOCK)


def test_the_checker_finds_a_stale_release_and_a_second_end() -> None:
    def ev(seq: int, event: str, **fields: Any) -> mg.Event:
        return mg.Event(seq=seq, t=0.0, node="sync", event=event, fields=fields)

    log = [
        ev(0, "av_sync_started", fps=25.0, max_late=0.1, idle="last"),
        ev(
            1, "video_out", kind="release", pts=0.4, media=0.4, stamp=0, skew=-0.01, played=0.41, since=0.3, waited=True
        ),
        ev(2, "av_interrupted", epoch=1, cut=0.6),
        ev(3, "video_out", kind="repeat", pts=0.44, media=0.44, stamp=0),
        ev(
            4,
            "video_out",
            kind="release",
            pts=0.8,
            media=0.8,
            stamp=1,
            skew=-0.06,
            played=0.86,
            since=0.83,
            waited=True,
        ),
        ev(5, "video_out", kind="idle", pts=0.8),
        ev(6, "track_ended", track="video"),
        ev(7, "track_ended", track="video"),
        ev(8, "node_finished", reason="completed"),
    ]
    rules = sorted(v.rule for v in av_violations(log, "sync"))
    assert rules == ["av_end", "av_end", "av_pts_order", "av_skew", "av_stale"]


def test_the_checker_finds_old_turn_audio_played_after_the_interrupt() -> None:
    def ev(seq: int, t: float, node: str, event: str, **fields: Any) -> mg.Event:
        return mg.Event(seq=seq, t=t, node=node, event=event, fields=fields)

    log = [
        ev(0, 0.0, "sync", "av_sync_started", fps=25.0, max_late=0.1, idle="last"),
        ev(1, 0.1, "out", "playback_started", segment=0, generation=0, at=0.1),
        ev(2, 1.0, "sync", "av_interrupted", epoch=1, cut=1.2),
        ev(3, 1.01, "out", "playback_progress", segment=0, generation=0, position=0.91, at=1.01),
        ev(4, 1.1, "out", "playback_finished", segment=0, generation=0, position=1.0, interrupted=True, at=1.1),
        ev(5, 1.3, "out", "playback_started", segment=1, generation=1, at=1.3),
        ev(6, 1.4, "out", "playback_progress", segment=1, generation=1, position=0.1, at=1.4),
    ]
    found = [(v.rule, v.events[-1].seq) for v in av_violations(log, "sync", sink="out")]
    assert found == [("av_old_audio", 3), ("av_old_audio", 4)]
    # A block of 10 ms (taken as the interrupt came) is allowed for; the 100 ms before the finish is not.
    assert [v.events[-1].seq for v in av_violations(log, "sync", sink="out", slack=0.01)] == [4]
    assert av_violations(log, "sync", sink="out", slack=0.1) == []
    assert av_violations(log, "sync") == [], "without the sink, the rule is not checked"


def test_the_cli_lists_its_ports() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "mediagraph", "nodes", "av_sync"], capture_output=True, text=True, check=True
    ).stdout
    for port in ("audio", "video", "playback", "feedback", "max_late", "idle"):
        assert port in out


# --- generated schedules ----------------------------------------------------------------------------------


@st.composite
def turns(draw: st.DrawFn, start: float, media: float) -> Turn:
    pattern = draw(st.sampled_from(["steady", "jittered", "bursty", "late"]))
    offsets: tuple[float, ...] = ()
    if pattern == "jittered":
        offsets = tuple(draw(st.lists(st.sampled_from([-0.03, -0.01, 0.0, 0.01, 0.03]), min_size=1, max_size=8)))
    elif pattern == "late":
        offsets = tuple(draw(st.lists(st.sampled_from([0.0, 0.0, 0.0, 0.03, 0.08, 0.15, 0.3]), min_size=1, max_size=8)))
    return Turn(
        start=start,
        media=media,
        seconds=draw(st.sampled_from([0.2, 0.5, 1.0, 1.5])),
        lead=draw(st.sampled_from([0.05, 0.2, 0.6])),
        vlead=draw(st.sampled_from([0.1, 0.3, 0.6])),
        pattern=pattern,
        burst=draw(st.sampled_from([0.1, 0.25, 0.5])),
        offsets=offsets,
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_generated_schedules_keep_every_av_rule(data: st.DataObject) -> None:
    first = data.draw(turns(0.0, 0.0), label="first")
    interrupt_at = data.draw(st.none() | st.sampled_from([0.05, 0.2, 0.45, 0.9]), label="interrupt_at")
    second: list[Turn] = []
    if interrupt_at is not None or data.draw(st.booleans(), label="two turns"):
        pause = data.draw(st.sampled_from([0.0, 0.1, 0.4]), label="pause")
        begin = (interrupt_at if interrupt_at is not None else first.seconds) + pause
        media = math.ceil((first.seconds + 0.2) / PERIOD) * PERIOD
        second = [data.draw(turns(round(begin, 3), round(media, 6)), label="second")]
    idle = data.draw(st.sampled_from(["last", "still"]), label="idle")
    swaps = data.draw(st.lists(st.sampled_from([0.1, 0.3, 0.7]), max_size=1), label="swaps")
    # Or a sink below that dies at a drawn frame, in a slot that isolates or restarts it.
    dies = data.draw(st.none() | st.integers(1, 40), label="dies") if not swaps else None
    # Barge-ins through the API, at times that often come after the source's audio ended (its lead sends
    # the audio early) while the speaker still plays it: they must still cut it.
    api = data.draw(st.lists(st.sampled_from([0.15, 0.35, 0.8, 1.6]), max_size=2, unique=True), label="api")
    below = {"type": "slot", "child": speaker()} if swaps else speaker()
    if dies is not None:
        supervision = data.draw(st.sampled_from([mg.Isolate(), mg.Restart(max_restarts=2, backoff=0.05)]))
        below = {
            "type": "slot",
            "child": {"type": "test_faulty_sink", "die_at_frame": dies},
            "supervision": supervision,
        }
    cut = interrupt_at if interrupt_at is not None and interrupt_at < first.seconds else None
    steps = script([first, *second], cut)
    note(f"{len(steps)} steps")
    rec = Recorder()
    g = graph(steps, rec, below=below, idle=idle)
    outcomes: list[tuple[float, str | None]] = []
    log = trio.run(run, g, swaps, api, outcomes, clock=trio.testing.MockClock(autojump_threshold=0))
    # An interrupt is refused only once av_sync's tracks ended (everything played): it is never accepted and
    # then left where nobody reads it, and never refused while something could still be cut.
    ended = max((e.t for e in log.of("track_ended")), default=math.inf)
    assert all(at >= ended for at, refusal in outcomes if refusal is not None), (outcomes, ended)
    accepted = [at for at, refusal in outcomes if refusal is None]
    check_av(log, "sync", sink="out", slack=BLOCK)
    check_playback(log, "out")
    frames = shown(rec)
    assert len(frames) == len(outs(log))
    if not log.of("av_sync_total"):  # the sink below died past its restarts: the graph failed, sync was cancelled
        assert dies is not None and log.of("node_finished", "sync")[0].fields["reason"] == "cancelled"
        return
    assert sorted(e.fields["track"] for e in log.of("track_ended")) == ["audio", "video"]
    # The screen got exactly what the log says, in order: no frame of an interrupted turn after the interrupt.
    cuts = log.of("av_interrupted")
    late = [e for e in log.of("interrupt_after_end")]
    assert len(cuts) + len(late) == (cut is not None) + len(accepted)
    cuts = [e for e in cuts if e.seq < min((r.seq for r in log.of("interrupt_requested")), default=math.inf)]
    total = log.of("av_sync_total")[0].fields
    assert (total["released"], total["repeated"]) == (len(outs(log, "release")), len(outs(log, "repeat")))
    for event, frame in zip(outs(log), frames, strict=True):
        if cuts and event.seq > cuts[0].seq and event.fields["kind"] != "idle":
            assert int(frame.pixels[0, 0, 0]) == 2
    if not swaps and dies is None:  # nothing skipped below: every frame that waited is released within a period
        for e in outs(log, "release"):
            assert not e.fields["waited"] or -PERIOD - 1e-6 <= float(e.fields["skew"]) <= 1e-6, e
