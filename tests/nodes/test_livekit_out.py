"""livekit_out through the real ``livekit.rtc`` offline loop: AudioSource -> LocalAudioTrack -> AudioStream (no
room, no server). What its monitor outlet delivers is the audio sent, bit for bit; the playback events follow
what really played (started once its first sample played, finished at the end or, on an interrupt, at the
position played within 20 ms of where the delivered audio stops); nothing queued is delivered after an
interrupt. On the real clock (the source drains on the wall clock); each run bounded."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, final

import attrs
import numpy as np
import pytest
import trio

import mediagraph as mg
from mediagraph.testing import Recorder, SinkConfig, capture, check_playback

if TYPE_CHECKING:
    from nodes._livekit_playout import Playout
    from nodes._pattern import read_code
else:
    from mediagraph.nodes._livekit_playout import Playout
    from mediagraph.nodes._pattern import read_code

RATE = 48000
FRAME = 480


@final
@attrs.frozen(kw_only=True)
class RampConfig:
    seconds: float = 0.5


@final
@mg.node_type("livekit_test_ramp", config=RampConfig)
class Ramp(mg.Source):
    """Unpaced 10 ms frames of marked samples (sample k is k % 30000 + 1: never silent, never repeating within
    0.6 s), so any piece of it says where it came from."""

    @staticmethod
    def ports(config: RampConfig) -> mg.Ports:
        return mg.Ports(outlets=[mg.OutletSpec(name="audio", format=mg.AudioFormat(sample_rate=RATE, channels=1))])

    def __init__(self, config: RampConfig) -> None:
        self.frames = round(config.seconds * RATE / FRAME)
        self.sent = 0

    def start(self, io: mg.NodeIO) -> None:
        self.emit = io.outlets["audio"].emit

    def produce(self) -> float | None:
        if self.sent == self.frames:
            return None
        k = self.sent * FRAME
        samples = (np.arange(k, k + FRAME) % 30000 + 1).astype(np.int16).reshape(-1, 1)
        self.emit(mg.AudioFrame(samples=samples, sample_rate=RATE, channels=1, timestamp=k))
        self.sent += 1
        return 0.0


async def play(seconds: float, *, interrupt_at: float | None = None, **params: Any) -> tuple[Recorder, Any]:
    """A 48 kHz tone of ``seconds`` (unpaced: the source paces it) into livekit_out, its monitor and playback
    recorded; an interrupt on its inlet at ``interrupt_at`` (graph seconds)."""
    recorder = Recorder()
    g = mg.Graph("loop")
    g.add("tone", "livekit_test_ramp", seconds=seconds)
    g.add("out", "livekit_out", **params)
    g.add("monitor", "test_sink", config=SinkConfig(recorder=recorder))
    g.add("playback", "test_sink", config=SinkConfig(recorder=recorder))
    g.add("tone_copy", "test_sink", config=SinkConfig(recorder=recorder))
    g.link("tone.audio", "out.audio")
    g.link("tone.audio", "tone_copy.in")
    g.link("out.monitor", "monitor.in")
    g.link("out.playback", "playback.in")
    async with mg.open_runtime() as runtime:
        log = mg.EventLog()
        with trio.fail_after(30):
            running = await runtime.start(g, log=log)
            if interrupt_at is not None:
                await trio.sleep_until(running.t0 + interrupt_at)
                running.interrupt("out")
            result = await running.wait()
    return recorder, result


def delivered(recorder: Recorder) -> np.ndarray:
    """The non-silent audio the monitor delivered, in order."""
    chunks = [a.message.samples[:, 0] for a in recorder.arrivals("monitor") if isinstance(a.message, mg.AudioFrame)]
    audio = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
    nonzero = np.flatnonzero(audio)
    return audio[nonzero[0] : nonzero[-1] + 1] if len(nonzero) else audio[:0]


def sent(recorder: Recorder) -> np.ndarray:
    return np.concatenate([a.message.samples[:, 0] for a in recorder.arrivals("tone_copy")])


async def test_what_the_track_delivers_is_what_was_sent_and_the_events_follow_it() -> None:
    recorder, result = await play(0.5)
    tone, out = sent(recorder), delivered(recorder)
    assert np.array_equal(out, tone[: len(out)]), "bit for bit"
    assert len(out) >= len(tone) - 3 * FRAME, "all of it, but what a loaded machine's last poll may miss"
    check_playback(result.log, "out")
    events = [a.message for a in recorder.arrivals("playback")]
    first, last = events[0], events[-1]
    assert isinstance(first, mg.PlaybackStarted)
    assert isinstance(last, mg.PlaybackFinished) and not last.interrupted and last.position == pytest.approx(0.5)
    assert any(isinstance(e, mg.PlaybackProgress) for e in events)


async def test_an_interrupt_clears_the_queue_and_finishes_where_the_audio_stopped() -> None:
    # The interrupt arrives in band, behind the frames already in the node's mailbox; what was in the source's
    # queue then (half a second) is never delivered, and what comes after the interrupt plays next.
    recorder, result = await play(2.0, interrupt_at=0.6, queue_ms=500)
    check_playback(result.log, "out")
    finished = [a.message for a in recorder.arrivals("playback") if isinstance(a.message, mg.PlaybackFinished)]
    cut, after = finished
    assert cut.interrupted and not after.interrupted
    out, tone = delivered(recorder), sent(recorder)
    differ = np.flatnonzero(out[: len(tone)] != tone[: len(out)])
    heard = int(differ[0])  # the tone as delivered up to the cut
    assert cut.position == pytest.approx(heard / RATE, abs=0.02), (cut, heard / RATE)
    rest = out[heard:]
    resumed = int(np.flatnonzero(tone == rest[0])[-1])  # marked: the value says where it came from (past 0.6 s)
    assert resumed - heard >= 0.45 * RATE, "the queued half second was dropped"
    assert np.array_equal(rest, tone[resumed : resumed + len(rest)]), "then the frames sent after the interrupt"


async def test_a_video_track_delivers_the_pictures_sent_in_order() -> None:
    # 25 fps pattern pictures (each carries its index, readable through the track's i420) beside the audio; the
    # video track's read-back gets them in order, each once, most of them (a stream may skip a picture when its
    # reader is late, never reorder or repeat one).
    recorder = Recorder()
    g = mg.Graph("video")
    g.add("tone", "livekit_test_ramp", seconds=0.8)
    g.add("face", "video_source", fps=25, duration=0.6, width=160, height=120)
    g.add("out", "livekit_out", video=True, width=160, height=120)
    g.add("seen", "test_sink", config=SinkConfig(recorder=recorder))
    g.link("tone.audio", "out.audio")
    g.link("face.video", "out.video")
    g.link("out.video_monitor", "seen.in")
    with trio.fail_after(30):
        await mg.run(g)
    pictures = [a.message for a in recorder.arrivals("seen")]
    codes = [read_code(p.pixels) for p in pictures]
    indices = [code[0] for code in codes if code is not None]
    assert len(indices) == len(codes), "every picture delivered is one of those sent, whole"
    assert indices == sorted(set(indices)) and set(indices) <= set(range(15)), indices
    assert len(indices) >= 10, indices
    stamps = [p.pts for p in pictures]
    assert stamps[0] == 0 and stamps == sorted(stamps)
    assert all(p.pixels.shape == (120, 160, 3) for p in pictures)


def test_the_playout_core_counts_what_the_source_no_longer_holds() -> None:
    playout = Playout(RATE)
    playout.submit(4800, 0.0)
    assert playout.observe(0.1, 1.0) == []  # all of it still held
    started = playout.observe(0.05, 1.05)
    assert [type(e).__name__ for e in started] == ["PlaybackStarted"] and started[0].t == pytest.approx(1.0)
    events = playout.interrupt(0.02, 1.08)
    assert [type(e).__name__ for e in events] == ["PlaybackFinished"]
    (finished,) = events
    assert isinstance(finished, mg.PlaybackFinished) and finished.interrupted
    assert finished.position == pytest.approx(0.08)
    assert playout.pending == 0


async def test_the_virtual_clock_is_refused(autojump_clock: Any) -> None:
    g = mg.Graph("g")
    g.add("tone", "tone_source", duration=0.1)
    g.add("out", "livekit_out")
    g.link("tone.audio", "out.audio")
    captured = await capture(g)
    assert captured.error is not None and "run it on the real clock" in str(captured.error)
