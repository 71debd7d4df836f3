"""video_source: the test pattern (pts, times, count, the code read back after H.264) and the stand-in avatar."""

from __future__ import annotations

import io
import math
import subprocess
import sys
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, final

import attrs
import av
import numpy as np
import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

import mediagraph as mg
import mediagraph.testing  # registers test_messages
from mediagraph.testing import Recorder, SinkConfig

if TYPE_CHECKING:
    from nodes._avatar import Avatar, Shot, fps_fraction
    from nodes._pattern import Pattern, code_of, is_flash, read_code
else:
    from mediagraph.nodes._avatar import Avatar, Shot, fps_fraction
    from mediagraph.nodes._pattern import Pattern, code_of, is_flash, read_code

RATE = 48000
Step = tuple[float, str, Any]

# --- a tap: every message with the graph time it arrived --------------------------------------------------

TAPS: dict[str, list[tuple[float, Any]]] = {}


@final
@attrs.frozen(kw_only=True)
class TapConfig:
    key: str


@final
@mg.node_type("_test_video_tap", config=TapConfig)
class Tap(mg.Transform):
    """Keeps ``(graph time, message)`` of everything arriving on ``video`` in ``TAPS[key]``."""

    @staticmethod
    def ports(config: TapConfig) -> mg.Ports:
        return mg.Ports(inlets=[mg.InletSpec(name="video", types=mg.VideoFrame)])

    def __init__(self, config: TapConfig) -> None:
        self.got = TAPS.setdefault(config.key, [])

    def start(self, io: mg.NodeIO) -> None:
        self.io = io

    def process(self, inlet: str, msg: Any) -> None:
        self.got.append((self.io.time(), msg))


async def tapped(params: dict[str, Any], steps: list[tuple[float, str, Any]] | None = None) -> list[tuple[float, Any]]:
    """Run video_source (fed ``steps`` of audio when given) into a tap; what arrived."""
    key = f"tap{len(TAPS)}"
    g = mg.Graph()
    g.add("video", "video_source", **params)
    g.add("tap", "_test_video_tap", key=key)
    g.link("video.video", "tap.video")
    if steps is not None:
        g.add("script", "test_messages", outlets={"audio": mg.AudioFrame}, steps=steps)
        g.link("script.audio", "video.audio")
    with trio.fail_after(3600):
        result = await mg.run(g)
    totals = [e for e in result.log if e.event == "video_source_total"]
    assert len(totals) == 1
    got = TAPS.pop(key)
    assert totals[0].fields["frames"] == sum(isinstance(m, mg.VideoFrame) for _, m in got)
    return got


def frames(got: list[tuple[float, Any]]) -> list[tuple[float, mg.VideoFrame]]:
    return [(t, m) for t, m in got if isinstance(m, mg.VideoFrame)]


# --- the test pattern -------------------------------------------------------------------------------------


async def test_pattern_frames_come_at_their_pts_on_the_graph_clock(autojump_clock: trio.testing.MockClock) -> None:
    got = frames(await tapped({"fps": 25, "duration": 2.0}))
    assert len(got) == 50
    for i, (t, frame) in enumerate(got):
        assert frame.time_base == Fraction(1, 90000)
        assert frame.pts == i * 3600
        assert t == pytest.approx(i / 25, abs=1e-9)
        assert frame.pixels.shape == (240, 320, 3) and frame.pixels.dtype == np.uint8
        assert not frame.pixels.flags.writeable
        assert read_code(frame.pixels) == (i, i * 40)


@pytest.mark.parametrize(
    ("fps", "duration", "count"),
    [(25, 0.4, 10), (25, 0.41, 11), (25, 0.0, 0), (25, 0.001, 1), (29.97, 1.0, 30), (30000 / 1001, 2.5, 75)],
)
async def test_a_duration_gives_the_frames_before_it(
    fps: float, duration: float, count: int, autojump_clock: trio.testing.MockClock
) -> None:
    got = frames(await tapped({"fps": fps, "duration": duration, "width": 64, "height": 48}))
    assert len(got) == count
    rate = fps_fraction(fps)
    for i, (_, frame) in enumerate(got):
        assert frame.pts == round(i / rate * 90000)
        assert frame.time < duration
        assert read_code(frame.pixels) == (i, round(frame.pts / 90))


async def test_unpaced_sends_everything_at_once(autojump_clock: trio.testing.MockClock) -> None:
    got = frames(await tapped({"duration": 3.0, "paced": False, "width": 64, "height": 48}))
    assert len(got) == 75
    assert {t for t, _ in got} == {0.0}


@settings(deadline=None, max_examples=60)
@given(
    index=st.integers(0, 2**24 - 1),
    ms=st.integers(0, 2**32 - 1),
    width=st.integers(32, 400).map(lambda n: 2 * n),
    height=st.integers(24, 300).map(lambda n: 2 * n),
    flash=st.booleans(),
)
def test_read_code_reads_the_raw_picture_exactly(index: int, ms: int, width: int, height: int, flash: bool) -> None:
    picture = Pattern(width, height).draw(index, ms, flash=flash)
    assert picture.shape == (height, width, 3)
    assert read_code(picture) == (index, ms)
    assert read_code(picture.mean(axis=2)) == (index, ms)  # grey works too
    assert is_flash(picture) == flash


def test_codes_wrap_and_pictures_without_a_code_read_as_none() -> None:
    assert read_code(Pattern(64, 48).draw(2**24 + 5, 2**32 + 7)) == code_of(2**24 + 5, 2**32 + 7) == (5, 7)
    rng = np.random.default_rng(0)
    assert read_code(rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)) is None
    assert read_code(np.full((240, 320, 3), 128, dtype=np.uint8)) is None
    damaged = Pattern(320, 240).draw(1234, 49360).copy()
    damaged[-20:, 40:60] = 255 - damaged[-20:, 40:60]  # one cell of the last row (part of the check) flipped
    assert read_code(damaged) is None
    assert read_code(np.zeros((10, 10, 3), dtype=np.uint8)) is None


def h264_round_trip(pictures: list[np.ndarray[Any, Any]], *, crf: int, scale: float) -> list[np.ndarray[Any, Any]]:
    """Encode ``pictures`` with libx264 at ``crf``, scaled by ``scale``, into an in-memory MP4; decode them."""
    height, width = pictures[0].shape[:2]
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height = round(width * scale) // 2 * 2, round(height * scale) // 2 * 2
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf)}
        for i, picture in enumerate(pictures):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(picture), format="rgb24")
            frame = frame.reformat(width=stream.width, height=stream.height)
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    buf.seek(0)
    with av.open(buf, "r") as back:
        return [f.to_ndarray(format="rgb24") for f in back.decode(video=0)]


@settings(deadline=None, max_examples=12)
@given(
    start=st.integers(0, 2**24 - 30),
    ms=st.integers(0, 2**32 - 2**20),
    step=st.sampled_from([1, 2, 7]),
    flashes=st.sets(st.integers(0, 11)),
)
def test_read_code_survives_h264_at_crf_40_and_half_size(start: int, ms: int, step: int, flashes: set[int]) -> None:
    pattern = Pattern(320, 240)
    frames = [(start + i * step, ms + i * step * 40) for i in range(12)]
    pictures = [pattern.draw(i, m, flash=k in flashes) for k, (i, m) in enumerate(frames)]
    decoded = h264_round_trip(pictures, crf=40, scale=0.5)
    assert [p.shape for p in decoded] == [(120, 160, 3)] * 12
    # Near 2**24 the index wraps (the code carries 24 bits): code_of says what a frame carries.
    assert [read_code(p) for p in decoded] == [code_of(i, m) for i, m in frames]
    assert [is_flash(p) for p in decoded] == [k in flashes for k in range(12)]


@pytest.mark.parametrize(("crf", "scale"), [(40, 0.25), (51, 1.0)])
def test_read_code_survives_quarter_size_and_the_worst_quality(crf: int, scale: float) -> None:
    """The figures of ``_pattern``'s docstring: 80x60 at crf 40, and crf 51 (the worst) at full size."""
    pattern = Pattern(320, 240)
    codes = [(i, i * 40) for i in range(100)]
    decoded = h264_round_trip([pattern.draw(i, m) for i, m in codes], crf=crf, scale=scale)
    assert [read_code(p) for p in decoded] == codes


def test_mediagraph_nodes_lists_its_ports() -> None:
    ran = subprocess.run(
        [sys.executable, "-m", "mediagraph", "nodes", "video_source"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    assert "outlets:\n  video  VideoFrame" in ran.stdout
    for param in ("fps", "width", "height", "duration", "paced", "audio", "latency", "jitter", "burst", "seed"):
        assert f"\n  {param} " in ran.stdout, param


@pytest.mark.parametrize(
    ("params", "param", "match"),
    [
        ({"width": 321}, "width", "must be even"),
        ({"height": 10}, "height", "48"),
        ({"fps": 0}, "fps", "0"),
        ({"latency": 0.2}, "latency", "applies only with audio: true"),
        ({"flash_on_beep": True}, "flash_on_beep", "applies only with audio: true"),
        ({"audio": True, "duration": 3}, "duration", "does not apply with audio: true"),
        ({"audio": True, "paced": False}, "paced", "does not apply with audio: true"),
    ],
)
def test_bad_parameters_are_refused_before_the_run(params: dict[str, Any], param: str, match: str) -> None:
    with pytest.raises(mg.GraphDefinitionError, match=match) as caught:
        mg.Graph().add("video", "video_source", **params)
    assert caught.value.param == param


# --- the stand-in avatar ----------------------------------------------------------------------------------


def audio(start: float, seconds: float, level: int = 0) -> mg.AudioFrame:
    count = round(seconds * RATE)
    samples = np.full((count, 1), level, dtype=np.int16)
    return mg.AudioFrame(samples=samples, sample_rate=RATE, channels=1, timestamp=round(start * RATE))


def speech(seconds: float, frame: float = 0.02, at: float = 0.0, media: float = 0.0) -> list[tuple[float, str, Any]]:
    """Audio frames of ``frame`` seconds covering media ``[media, media + seconds)``, each sent at its time
    from graph time ``at``."""
    n = round(seconds / frame)
    return [(at + i * frame, "audio", audio(media + i * frame, frame)) for i in range(n)]


async def test_the_avatar_covers_the_audio_media_time_after_its_latency(
    autojump_clock: trio.testing.MockClock,
) -> None:
    steps = speech(1.0, at=0.5, media=10.0)  # media 10 s to 11 s, sent from graph time 0.5 s
    got = frames(await tapped({"audio": True, "latency": 0.25}, steps))
    assert [round(f.time, 6) for _, f in got] == [round(10 + k / 25, 6) for k in range(25)]
    for t, f in got:
        sent_at = 0.5 + math.floor(round((f.time - 10.0) / 0.02, 6)) * 0.02  # the audio frame holding it
        assert t == pytest.approx(sent_at + 0.25, abs=1e-6)
        assert read_code(f.pixels) == (round(f.time * 25), round(f.time * 1000))


async def test_jitter_delays_within_its_bound_in_order_and_repeats(autojump_clock: trio.testing.MockClock) -> None:
    steps = speech(2.0, frame=0.04)
    params = {"audio": True, "latency": 0.1, "jitter": 0.08, "seed": 7}
    first = frames(await tapped(params, steps))
    again = frames(await tapped(params, steps))
    other = frames(await tapped({**params, "seed": 8}, steps))
    assert [(round(t, 9), f.pts) for t, f in first] == [(round(t, 9), f.pts) for t, f in again]
    assert [t for t, _ in first] != [t for t, _ in other]
    assert [f.pts for _, f in first] == [k * 3600 for k in range(50)]
    times = [t for t, _ in first]
    assert times == sorted(times)
    delays = [t - f.time for t, f in first]
    assert min(delays) >= 0.1 - 1e-9 and max(delays) <= 0.18 + 1e-9
    assert max(delays) - min(delays) > 0.02  # it did jitter


async def test_bursts_hold_frames_until_each_burst(autojump_clock: trio.testing.MockClock) -> None:
    got = frames(await tapped({"audio": True, "burst": 0.5}, speech(2.0)))
    assert len(got) == 50
    for t, f in got:
        assert t == pytest.approx(math.ceil(round(f.time / 0.5, 9)) * 0.5, abs=1e-9)
    assert sorted({round(t, 6) for t, _ in got}) == [0.0, 0.5, 1.0, 1.5, 2.0]


async def test_an_interrupt_drops_the_frames_held_and_goes_down(autojump_clock: trio.testing.MockClock) -> None:
    steps = [*speech(1.0), (1.0, "audio", mg.Interrupt()), *speech(0.4, at=1.2, media=2.0)]
    got = await tapped({"audio": True, "latency": 0.3}, steps)
    interrupt = next(i for i, (_, m) in enumerate(got) if isinstance(m, mg.Interrupt))
    before, after = frames(got[:interrupt]), frames(got[interrupt:])
    assert got[interrupt][0] == pytest.approx(1.0)
    # sent by 1.0 s: the frames of the audio that arrived by 0.7 s; the rest of the old turn never comes
    assert [round(f.time, 6) for _, f in before] == [round(k / 25, 6) for k in range(18)]
    assert [round(f.time, 6) for _, f in after] == [round(2 + k / 25, 6) for k in range(10)]
    assert all(t >= 1.5 - 1e-9 for t, _ in after)


async def test_a_flush_follows_the_frames_made_before_it(autojump_clock: trio.testing.MockClock) -> None:
    steps = [*speech(0.4), (0.4, "audio", mg.Flush()), *speech(0.2, at=0.6, media=1.0)]
    got = await tapped({"audio": True, "latency": 0.2, "burst": 0.25}, steps)
    kinds = ["flush" if isinstance(m, mg.Flush) else round(m.time, 6) for _, m in got]
    assert kinds == [*(round(k / 25, 6) for k in range(10)), "flush", *(round(1 + k / 25, 6) for k in range(5))]
    flush_at = next(t for t, m in got if isinstance(m, mg.Flush))
    assert flush_at == pytest.approx(0.75)  # 0.4 + latency, at the next burst


def beeps(
    seconds: float, onsets: list[float], length: float = 0.1, frame: float = 0.01
) -> list[tuple[float, str, Any]]:
    steps: list[tuple[float, str, Any]] = []
    for i in range(round(seconds / frame)):
        t = i * frame
        loud = any(o <= t + 1e-9 and t < o + length - 1e-9 for o in onsets)
        steps.append((t, "audio", audio(t, frame, 20000 if loud else 0)))
    return steps


async def test_flash_on_beep_lines_the_flash_up_with_the_beep(autojump_clock: trio.testing.MockClock) -> None:
    got = frames(await tapped({"audio": True, "flash_on_beep": True}, beeps(3.0, [1.0, 2.0])))
    flashes = [f.time for _, f in got if is_flash(f.pixels)]
    assert flashes == pytest.approx([1.0, 1.04, 1.08, 2.0, 2.04, 2.08])
    assert all(read_code(f.pixels) is not None for _, f in got)


async def test_without_flash_on_beep_a_beep_does_not_flash(autojump_clock: trio.testing.MockClock) -> None:
    got = frames(await tapped({"audio": True}, beeps(1.5, [1.0])))
    assert len(got) == 38 and not any(is_flash(f.pixels) for _, f in got)


# --- the avatar core against a reference ------------------------------------------------------------------

ARRIVALS = st.lists(
    st.tuples(st.integers(1, 4000), st.integers(0, 6000), st.integers(0, 80)),  # samples, gap, ms since last
    min_size=1,
    max_size=40,
)


@settings(deadline=None, max_examples=150)
@given(
    arrivals=ARRIVALS,
    fps=st.sampled_from([25.0, 30.0, 29.97, 12.5]),
    latency=st.sampled_from([0.0, 0.05, 0.3]),
    jitter=st.sampled_from([0.0, 0.01, 0.2]),
    burst=st.sampled_from([0.0, 0.1, 0.5]),
)
def test_the_core_makes_each_frame_of_the_audio_once_in_order_on_time(
    arrivals: list[tuple[int, int, int]], fps: float, latency: float, jitter: float, burst: float
) -> None:
    rate = fps_fraction(fps)
    core = Avatar(fps=rate, latency=latency, jitter=jitter, burst=burst, seed=1)
    position, now, covered = 0, 0.0, []
    made: dict[int, float] = {}  # index -> graph time made
    out: list[tuple[float, int]] = []

    def wake_until(t: float) -> None:  # an actor waking at each due time up to t
        while (due := core.next_due()) is not None and due <= t:
            out.extend((due, shot.index) for shot in core.take(due) if isinstance(shot, Shot))

    for samples, gap, wait in arrivals:
        now += wait / 1000
        wake_until(now)
        position += gap
        frame = mg.AudioFrame(
            samples=np.zeros((samples, 1), np.int16), sample_rate=RATE, channels=1, timestamp=position
        )
        covered.append((Fraction(position, RATE), Fraction(position + samples, RATE)))
        for shot in core.audio(frame, now):
            made[shot.index] = now
        position += samples
    wake_until(math.inf)
    expected = sorted({k for a, b in covered for k in range(math.ceil(a * rate), math.ceil(b * rate))})
    assert [k for _, k in out] == expected  # every frame of the audio's media time, once, in order
    times = [t for t, _ in out]
    assert times == sorted(times)
    latest = 0.0
    for t, k in out:
        assert t >= made[k] + latency - 1e-9
        if burst:
            assert (t / burst) == pytest.approx(round(t / burst), abs=1e-6)
            assert t < max(made[k] + latency + jitter, latest) + burst + 1e-9
        else:
            assert t <= max(made[k] + latency + jitter, latest) + 1e-9
        latest = t
    assert core.statistics() == {"made": len(expected), "released": len(expected), "dropped": 0, "flashes": 0}


@settings(deadline=None, max_examples=150)
@given(
    steps=st.lists(st.tuples(st.sampled_from(["audio", "audio", "audio", "interrupt"]), st.integers(0, 120))),
    latency=st.sampled_from([0.0, 0.1, 0.3]),
    burst=st.sampled_from([0.0, 0.2]),
)
def test_after_an_interrupt_no_frame_made_before_it_goes_out(
    steps: list[tuple[str, int]], latency: float, burst: float
) -> None:
    core = Avatar(fps=Fraction(25), latency=latency, jitter=0.05, burst=burst, seed=3)
    now, position, epoch = 0.0, 0, 0
    made: dict[int, int] = {}  # index -> epoch it was made in
    out: list[tuple[int, int]] = []  # (index, epoch when released)
    for kind, wait in [*steps, ("end", 0)]:
        now += wait / 1000
        while (due := core.next_due()) is not None and (due <= now or kind == "end"):
            out.extend((shot.index, epoch) for shot in core.take(due) if isinstance(shot, Shot))
        if kind == "audio":
            for shot in core.audio(audio(position / RATE, 0.02), now):
                made[shot.index] = epoch
            position += round(0.02 * RATE)
        elif kind == "interrupt":
            core.interrupt()
            epoch += 1
    assert all(made[k] == e for k, e in out)  # released in the epoch it was made in, never after an interrupt
    released = {k for k, _ in out}
    assert len(released) == len(out)
    stats = core.statistics()
    assert stats["made"] == len(made) == stats["released"] + stats["dropped"]
    assert stats["released"] == len(out)
    assert [k for k, _ in out] == sorted(released)


async def test_the_code_reads_back_from_the_recorders_mp4(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    g = mg.Graph()
    g.add("tone", "tone_source", duration=2.0)
    g.add("video", "video_source", duration=2.0)
    g.add("rec", "recorder", path=tmp_path / "call.mp4")
    g.link("tone.audio", "rec.agent")
    g.link("video.video", "rec.video")
    with trio.fail_after(3600):
        await mg.run(g)
    with av.open(str(tmp_path / "call.mp4"), "r") as f:
        decoded = [(float(frame.time or 0), read_code(frame.to_ndarray(format="rgb24"))) for frame in f.decode(video=0)]
    assert [code for _, code in decoded] == [(i, i * 40) for i in range(50)]
    for t, code in decoded:
        assert code is not None and t == pytest.approx(code[1] / 1000, abs=0.002)  # shown at its media time


async def test_audio_back_returns_the_voice_with_its_face(autojump_clock: trio.testing.MockClock) -> None:
    """``audio_back``: each audio frame comes back with its video frames (the same latency and bursts), and the
    flush after them, as an avatar service returns the voice with the face."""
    rec = Recorder()
    steps = [*speech(1.0, at=0.5, media=10.0), (1.5, "audio", mg.Flush())]
    g = mg.Graph()
    g.add("script", "test_messages", outlets={"audio": mg.AudioFrame}, steps=steps)
    g.add("video", "video_source", audio=True, audio_back=True, latency=0.25, burst=0.1)
    g.add("voice", "test_sink", config=SinkConfig(recorder=rec))
    g.add("face", "test_sink", config=SinkConfig(recorder=rec))
    g.link("script.audio", "video.audio")
    g.link("video.audio", "voice.in")
    g.link("video.video", "face.in")
    await mg.run(g)
    voice, face = rec.arrivals("voice"), rec.arrivals("face")
    sent = [m for _, _, m in steps if isinstance(m, mg.AudioFrame)]
    assert [a.message for a in voice] == [*sent, mg.Flush()]  # every frame, in order, then the flush
    assert isinstance(face[-1].message, mg.Flush)
    for a, (at, _, _) in zip(voice, steps, strict=False):  # each after the latency, at the next burst
        assert a.t == pytest.approx(math.ceil(round((at + 0.25) / 0.1, 9)) * 0.1, abs=1e-6)
    for f in face[:-1]:  # a video frame never comes before the audio it was made from
        start = f.message.time
        holding = next(a for a in voice if isinstance(a.message, mg.AudioFrame) and a.message.timestamp / RATE <= start
                       < a.message.timestamp / RATE + a.message.duration)  # fmt: skip
        assert holding.t <= f.t
