"""recorder: real files in every format, conservation of samples (property), trimming to what was played,
finalization on stop, cancel and failure elsewhere, regular Ogg flushing, validation."""

from __future__ import annotations

import shutil
import tempfile
import wave
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import av
import hypothesis.strategies as st
import numpy as np
import numpy.typing as npt
import pytest
import trio
import trio.testing
from hypothesis import given, note, settings

import mediagraph as mg
from mediagraph.testing import Cancel, FaultSpec, SourceConfig, capture

# mypy knows the node library as ``nodes`` (its folder); at run time it is installed as ``mediagraph.nodes``.
if TYPE_CHECKING:
    from nodes.recorder import Conversation
else:
    from mediagraph.nodes.recorder import Conversation

Samples = npt.NDArray[np.int16]
RATE = 48000

# --- a scripted source with timed steps ------------------------------------------------------------------


#: The outlets of the scripted source (``test_messages``).
OUTLETS = {
    "user": mg.AudioFrame,
    "agent": mg.AudioFrame,
    "playback": (mg.PlaybackStarted, mg.PlaybackFinished),
    "video": mg.VideoFrame,
}


def frame(samples: Samples, timestamp: int, rate: int = RATE) -> mg.AudioFrame:
    return mg.AudioFrame(samples=samples, sample_rate=rate, channels=samples.shape[1], timestamp=timestamp)


def sine(frequency: float, seconds: float, rate: int = RATE, amplitude: int = 10000) -> Samples:
    t = np.arange(round(rate * seconds)) / rate
    return np.round(np.sin(2 * np.pi * frequency * t) * amplitude).astype(np.int16)[:, None]


def read_wav(path: Path) -> Samples:
    with wave.open(str(path)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (RATE, 2, 2)
        return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).reshape(-1, 2)


def read_any(path: Path) -> tuple[Samples, set[str]]:
    """Every audio sample of ``path`` as 48 kHz stereo int16, and the codecs of its streams."""
    with av.open(str(path)) as container:
        codecs = {s.codec_context.name for s in container.streams}
        assert container.streams.audio[0].sample_rate == RATE
        resampler = av.AudioResampler(format="s16", layout="stereo", rate=RATE)
        frames = [f for decoded in container.decode(audio=0) for f in resampler.resample(decoded)]
        frames += resampler.resample(None)
    chunks = [np.zeros((0, 2), np.int16)] + [np.asarray(f.to_ndarray(), np.int16).reshape(-1, 2) for f in frames]
    return np.concatenate(chunks), codecs


def rms(x: npt.NDArray[Any]) -> float:
    return float(np.sqrt(np.mean(np.asarray(x, dtype=np.float64) ** 2))) if len(x) else 0.0


async def record(path: Path, steps: list[tuple[float, str, Any]], *, link: tuple[str, ...], **params: Any) -> Any:
    """Run script -> recorder (the given inlets linked); the run's result."""
    g = mg.Graph()
    g.add("script", "test_messages", outlets=OUTLETS, steps=steps)
    g.add("rec", "recorder", path=path, **params)
    for port in link:
        g.link(f"script.{port}", f"rec.{port}")
    with trio.fail_after(3600):
        return await mg.run(g)


# --- real files -----------------------------------------------------------------------------------------


def write_wav(path: Path, samples: Samples, rate: int) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(samples.shape[1])
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())
    return path


@pytest.mark.parametrize("ext", [".wav", ".ogg", ".mp4"])
async def test_files_round_trip_through_file_source_and_recorder(
    tmp_path: Path, ext: str, autojump_clock: trio.testing.MockClock
) -> None:
    user = write_wav(tmp_path / "user.wav", sine(300, 2.0), RATE)
    agent = write_wav(tmp_path / "agent.wav", sine(1000, 1.0, rate=16000), 16000)
    out = tmp_path / "deep" / "er" / f"call{ext}"  # missing folders are created
    g = mg.Graph()
    g.add("user", "file_source", path=user)
    g.add("agent", "file_source", path=agent)
    g.add("rec", "recorder", path=out)
    g.link("user.audio", "rec.user")
    g.link("agent.audio", "rec.agent")
    result = await mg.run(g)
    (done,) = result.log.of("recording_finished")
    assert done.fields["late_samples"] == 0
    got, codecs = read_any(out)
    assert codecs == {".wav": {"pcm_s16le"}, ".ogg": {"opus"}, ".mp4": {"aac"}}[ext]
    assert abs(len(got) - 2 * RATE) <= (0 if ext == ".wav" else 2048)
    left, right = got[:, 0], got[:, 1]
    if ext == ".wav":
        assert np.array_equal(left, sine(300, 2.0)[:, 0])
    else:
        assert np.corrcoef(left[2400:90000], sine(300, 2.0)[2400:90000, 0])[0, 1] > 0.99
    # The agent's 16 kHz second is resampled into the first second on the right; silence after it.
    assert rms(right[2400:45000]) == pytest.approx(10000 / np.sqrt(2), rel=0.1)
    assert rms(right[int(1.1 * RATE) :]) < 50


async def test_video_goes_into_mp4_as_h264(tmp_path: Path, autojump_clock: trio.testing.MockClock) -> None:
    steps: list[tuple[float, str, Any]] = []
    for i in range(20):
        steps.append((i * 0.05, "user", frame(sine(440, 0.05), i * 2400)))
        pixels = np.full((48, 64, 3), i * 10, dtype=np.uint8)
        steps.append((i * 0.05, "video", mg.VideoFrame(pixels=pixels, pts=i, time_base=Fraction(1, 20))))
    out = tmp_path / "call.mp4"
    result = await record(out, steps, link=("user", "video"))
    assert result.log.of("recording_finished")[0].fields["pictures"] == 20
    with av.open(str(out)) as container:
        assert {s.codec_context.name for s in container.streams} == {"h264", "aac"}
        assert sum(1 for _ in container.decode(video=0)) == 20
    got, _ = read_any(out)
    assert abs(len(got) - RATE) <= 2048

    # And round again: the recording, read by file_source, recorded again, pictures and sound included.
    again = tmp_path / "again.mp4"
    g = mg.Graph()
    g.add("src", "file_source", path=out)
    g.add("rec", "recorder", path=again)
    g.link("src.audio", "rec.user")
    g.link("src.video", "rec.video")
    result = await mg.run(g)
    assert result.log.of("recording_finished")[0].fields["pictures"] == 20
    regot, _ = read_any(again)
    assert abs(len(regot) - len(got)) <= 2048
    # The stereo recording (user left, silence right) comes back averaged to one channel: half the level.
    assert rms(regot[4800:-4800, 0]) == pytest.approx(rms(got[4800:-4800, 0]) / 2, rel=0.1)


def test_video_is_an_inlet_of_mp4_recorders_only() -> None:
    g = mg.Graph()
    g.add("script", "test_messages", outlets=OUTLETS, steps=[])
    g.add("rec", "recorder", path="call.ogg")
    with pytest.raises(mg.GraphDefinitionError, match="has no inlet 'video'"):
        g.link("script.video", "rec.video")


# --- conservation, exactly, in WAV ------------------------------------------------------------------------

USER_FRAME = st.tuples(st.integers(1, 2000), st.sampled_from([0, 0, 0, 1, 700, 5000]))  # size, gap before
AGENT_STEP = st.one_of(
    st.tuples(st.just("frame"), st.integers(1, 2000), st.sampled_from([0, 0, 0, 1, 700, 5000])),
    st.tuples(st.sampled_from(["flush", "interrupt"]), st.just(0), st.just(0)),
)


@settings(deadline=None, max_examples=80)
@given(
    user=st.lists(USER_FRAME, max_size=12),
    agent=st.lists(AGENT_STEP, max_size=16),
    stamped=st.booleans(),
    data=st.data(),
)
def test_the_wav_holds_exactly_the_samples_sent_in_place_trimmed_to_what_was_played(
    user: list[tuple[int, int]], agent: list[tuple[str, int, int]], stamped: bool, data: st.DataObject
) -> None:
    """The sink below is a real PlaybackTracker, played a drawn amount after each step. Its events carry
    their segment's media range, or (``stamped=False``, an old sink) do not, and the recorder counts."""
    rng = np.random.default_rng(len(user) * 100 + len(agent))
    present: dict[int, list[tuple[int, Samples]]] = {0: [], 1: []}  # column -> (position, samples)

    user_steps: list[tuple[str, Any]] = []
    position = 0
    for size, gap in user:
        position += gap
        samples = rng.integers(-32768, 32767, (size, 1), dtype=np.int16)
        user_steps.append(("user", frame(samples, position)))
        present[0].append((position, samples))
        position += size

    tracker = mg.PlaybackTracker(RATE)
    agent_steps: list[tuple[str, Any]] = []
    events: list[mg.PlaybackEvent] = []
    position = 0
    for kind, size, gap in agent:
        if kind == "frame":
            position += gap
            samples = rng.integers(-32768, 32767, (size, 1), dtype=np.int16)
            tracker.queue(size, start=position / RATE)
            agent_steps.append(("agent", frame(samples, position)))
            present[1].append((position, samples))
            position += size
        elif kind == "flush":
            events += tracker.flush()
            agent_steps.append(("agent", mg.Flush()))
        else:
            events += tracker.interrupt()[0]
            agent_steps.append(("agent", mg.Interrupt()))
        played = data.draw(st.sampled_from([0, tracker.unplayed]) | st.integers(0, tracker.unplayed), label="played")
        events += tracker.played(played, 0.0)
    events += tracker.end()
    if data.draw(st.booleans(), label="played to the end"):
        events += tracker.played(tracker.unplayed, 0.0)
    else:  # a sink that stops playing finishes what it started, as interrupted: the runtime requires it
        events += tracker.interrupt()[0]

    # Every sample in its place, but the media ranges never played: [start + position, start + sent).
    length = max((ts + len(s) for column in present.values() for ts, s in column), default=0)
    want = np.zeros((length, 2), dtype=np.int16)
    written = np.zeros((length, 2), dtype=bool)
    for column, pieces in present.items():
        for ts, samples in pieces:
            want[ts : ts + len(samples), column] = samples[:, 0]
            written[ts : ts + len(samples), column] = True
    for event in events:
        if isinstance(event, mg.PlaybackFinished) and event.interrupted and event.start is not None:
            cut = slice(round((event.start + event.position) * RATE), round((event.start + event.sent) * RATE))
            want[cut, 1] = 0
            written[cut, 1] = False
    want = want[: max(np.flatnonzero(written.any(axis=1)), default=-1) + 1]
    if not stamped:
        events = [attrs.evolve(e, start=None, sent=0.0) for e in events if isinstance(e, mg.PlaybackFinished)]
    note(f"events: {events}")

    # Any interleaving of the two sides, each in its own order; the playback events, in their order, anywhere.
    merged: list[tuple[str, Any]] = []
    while user_steps or agent_steps:
        take_user = bool(user_steps) and (not agent_steps or data.draw(st.booleans(), label="user next"))
        merged.append((user_steps if take_user else agent_steps).pop(0))
    at = data.draw(st.lists(st.integers(0, len(merged)), min_size=len(events), max_size=len(events)), label="at")
    for index, event in reversed(list(zip(sorted(at), events, strict=True))):
        merged.insert(index, ("playback", event))
    note(f"{len(merged)} steps")

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "call.wav"
        timed = [(0.0, outlet, msg) for outlet, msg in merged]

        async def main() -> Any:
            return await record(path, timed, link=("user", "agent", "playback"), max_lag=3600)

        result = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
        got = read_wav(path)
    stats = result.log.of("recording_finished")[0].fields
    assert stats["late_samples"] == 0
    assert stats["overlaps"] == 0
    assert got.shape == want.shape
    assert np.array_equal(got, want)


def test_the_core_waits_for_a_quiet_side_at_most_max_lag() -> None:
    core = Conversation(sides={"user", "agent"}, playback=False, max_lag=0.5)
    core.user(frame(np.ones((RATE, 1), np.int16), 0))
    taken = core.take()
    assert taken is not None
    assert len(taken) == RATE // 2  # one second of user, the agent waited for half a second
    core.agent(frame(np.full((4800, 1), 2, np.int16), 0))  # too late for the first 0.5 s
    core.agent(frame(np.full((4800, 1), 3, np.int16), RATE // 2))  # just in time
    rest = core.finish()
    assert core.statistics()["late_samples"] == 4800
    assert np.all(rest[:4800, 1] == 3)
    assert np.all(rest[4800:, 1] == 0)


def test_the_core_settles_by_media_time_ignores_unstamped_events_after_stamped_ones_and_holds_at_most_max_hold() -> (
    None
):
    core = Conversation(sides={"agent"}, playback=True, max_hold=0.5)
    for i in range(4):  # 0.4 s, one segment as the sink sees it
        core.agent(frame(np.full((4800, 1), 1 + i, np.int16), i * 4800))
    assert core.take() is None  # held: no event yet
    core.playback(mg.PlaybackStarted(segment=0, start=0.0))
    assert core.take() is None  # started at 0: nothing before it to settle
    core.playback(mg.PlaybackFinished(segment=0, position=0.25, interrupted=True, start=0.0, sent=0.4))
    # A stamping sink's event without start is an empty segment's: it trims nothing (counting would say 0).
    core.playback(mg.PlaybackFinished(segment=0, position=0.0, interrupted=True))
    taken = core.take()
    assert taken is not None
    assert len(taken) == 12000  # the kept 0.25 s; the trimmed rest is silence not yet final
    assert np.array_equal(taken[:, 1], np.repeat(np.arange(1, 4, dtype=np.int16), 4800)[:12000])
    for i in range(4, 10):  # 0.6 s more, never reported: more than max_hold is held, the oldest goes out
        core.agent(frame(np.full((4800, 1), 9, np.int16), i * 4800))
    stats = core.statistics()
    assert (stats["trimmed_samples"], stats["unconfirmed_samples"]) == (7200, 4800)
    rest = core.finish()
    assert not rest[:7200, 1].any()  # the trimmed 0.25 s to 0.4 s
    assert np.all(rest[7200:, 1] == 9)
    assert len(taken) + len(rest) == 10 * 4800


# --- lossy formats: level and correlation ---------------------------------------------------------------


@pytest.mark.parametrize("ext", [".ogg", ".mp4", ".wav"])
async def test_interrupted_agent_audio_is_cut_where_playback_stopped(
    tmp_path: Path, ext: str, autojump_clock: trio.testing.MockClock
) -> None:
    """User speaks in [0, 1) s; the agent's reply at [0.5, 1.5) s is played for 0.4 s, then interrupted."""
    steps: list[tuple[float, str, Any]] = []
    user, agent = sine(300, 1.0), sine(1000, 1.0)
    for i in range(100):
        steps.append((i * 0.01, "user", frame(user[i * 480 : (i + 1) * 480], i * 480)))
        steps.append((i * 0.01, "agent", frame(agent[i * 480 : (i + 1) * 480], RATE // 2 + i * 480)))
    steps.append((1.0, "agent", mg.Interrupt()))
    steps.append((1.0, "playback", mg.PlaybackFinished(segment=0, position=0.4, interrupted=True)))
    out = tmp_path / f"call{ext}"
    result = await record(out, steps, link=("user", "agent", "playback"))
    assert result.log.of("recording_finished")[0].fields["trimmed_samples"] == int(0.6 * RATE)
    got, _ = read_any(out)
    assert abs(len(got) - RATE) <= 2048
    left, right = got[:, 0].astype(np.float64), got[:, 1].astype(np.float64)
    window = slice(int(0.05 * RATE), int(0.45 * RATE))
    assert np.corrcoef(left[window], user[window, 0])[0, 1] > 0.99
    assert rms(right[: int(0.45 * RATE)]) < 100  # the agent had not started
    played = slice(int(0.55 * RATE), int(0.85 * RATE))
    assert np.corrcoef(right[played], agent[int(0.05 * RATE) : int(0.35 * RATE), 0])[0, 1] > 0.99
    assert rms(right[int(0.95 * RATE) :]) < 100  # cut at 0.9 s: the rest was never played


async def test_with_the_virtual_speaker_the_recording_ends_where_playback_was_interrupted(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """The agent's reply is produced faster than real time; an interrupt at 0.6 s cuts it in the speaker."""
    reply = sine(500, 2.0)
    steps: list[tuple[float, str, Any]] = [
        (i * 0.002, "agent", frame(reply[i * 480 : (i + 1) * 480], i * 480)) for i in range(200)
    ]
    steps.append((0.6, "agent", mg.Interrupt()))
    out = tmp_path / "call.wav"
    g = mg.Graph()
    g.add("script", "test_messages", outlets=OUTLETS, steps=steps)
    g.add("speaker", "speaker")
    g.add("rec", "recorder", path=out)
    g.link("script.agent", "speaker.audio")
    g.link("script.agent", "rec.agent")
    g.link("speaker.playback", "rec.playback")
    result = await mg.run(g)
    (finished,) = result.log.of("playback_finished")
    assert finished.fields["interrupted"]
    played = round(finished.fields["position"] * RATE)
    assert 0.5 * RATE <= played <= 0.7 * RATE
    got = read_wav(out)
    assert np.array_equal(got[:, 1], reply[:played, 0])
    assert not got[:, 0].any()


# --- finalization --------------------------------------------------------------------------------------


@pytest.mark.parametrize("ext", [".ogg", ".wav", ".mp4"])
async def test_a_cancelled_graph_leaves_a_valid_file(
    tmp_path: Path, ext: str, autojump_clock: trio.testing.MockClock
) -> None:
    out = tmp_path / f"call{ext}"
    g = mg.Graph()
    g.add("tone", "tone_source", frequency=440)  # endless
    g.add("rec", "recorder", path=out)
    g.link("tone.audio", "rec.user")
    captured = await capture(g, schedule=Cancel(at=2.0))
    assert captured.reason == "cancelled"
    got, _ = read_any(out)
    assert abs(len(got) - 2 * RATE) <= 4800
    assert rms(got[RATE // 2 : RATE, 0]) > 10000


async def test_a_failure_elsewhere_leaves_a_valid_file(tmp_path: Path, autojump_clock: trio.testing.MockClock) -> None:
    out = tmp_path / "call.mp4"  # MP4 is unreadable without its index, written when it is finalized
    g = mg.Graph()
    g.add("tone", "tone_source", frequency=440)
    g.add("rec", "recorder", path=out)
    g.link("tone.audio", "rec.user")
    g.add("doomed", "test_source", config=SourceConfig(count=1000, paced=True, fault=FaultSpec(at=100)))
    g.add("sink", "test_sink")
    g.link("doomed.out", "sink.in")
    captured = await capture(g)
    assert captured.error is not None
    assert captured.error.node == "doomed"
    got, codecs = read_any(out)
    assert codecs == {"aac"}
    assert abs(len(got) - RATE) <= 4800


async def test_ogg_reaches_the_disk_while_recording(tmp_path: Path, autojump_clock: trio.testing.MockClock) -> None:
    out = tmp_path / "call.ogg"
    g = mg.Graph()
    g.add("tone", "tone_source", frequency=440)
    g.add("rec", "recorder", path=out)
    g.link("tone.audio", "rec.user")
    async with mg.open_runtime() as runtime:
        running = await runtime.start(g)
        await trio.sleep(5.0)
        assert not out.exists(), "under its in-progress name until finalized"
        snapshot = tmp_path / "snapshot.ogg"
        shutil.copy(tmp_path / "call.ogg.part", snapshot)  # what a killed process would leave
        running.cancel()
    assert out.exists() and not (tmp_path / "call.ogg.part").exists()
    got, _ = read_any(snapshot)
    assert len(got) >= 4.0 * RATE  # at most about a second lost


# --- validation -------------------------------------------------------------------------------------------


async def test_a_recorder_needs_user_or_agent(tmp_path: Path, autojump_clock: trio.testing.MockClock) -> None:
    """Refused when the graph is validated, before anything runs: no node fails while running for it."""
    steps = [(0.0, "playback", mg.PlaybackFinished(segment=0, position=0.0, interrupted=False))]
    with pytest.raises(mg.GraphDefinitionError) as info:
        await record(tmp_path / "x.ogg", steps, link=("playback",))
    assert info.value.node == "rec"
    assert "link at least one of its inlets 'user' and 'agent'" in str(info.value)
    assert not (tmp_path / "x.ogg").exists()


def test_unknown_extensions_are_refused() -> None:
    with pytest.raises(mg.GraphDefinitionError, match=r"unsupported extension '\.mp3' \(known: \.ogg, \.opus"):
        mg.Graph().add("rec", "recorder", path="call.mp3")


async def test_an_unwritable_path_fails_naming_it(tmp_path: Path, autojump_clock: trio.testing.MockClock) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    steps = [(0.0, "user", frame(sine(440, 0.01), 0))]
    with pytest.raises(mg.NodeFailedError) as info:
        await record(blocker / "call.wav", steps, link=("user",))
    assert isinstance(info.value.__cause__, mg.ProviderError)
    assert f"cannot create recording '{blocker / 'call.wav'}'" in str(info.value)


# --- above a slot that swaps its child ----------------------------------------------------------------------

FRAME = 480  # 10 ms


def reply(timestamp: int, count: int) -> Samples:
    """The agent's audio: a saw of known values at every media sample, so any misplaced sample shows."""
    values = ((timestamp + np.arange(count)) * 7919) % 20000 - 10000
    return values.astype(np.int16)[:, None]


@attrs.frozen(kw_only=True)
class TimedScriptConfig:
    #: ("frames", n): n 10 ms frames, one every ``pace`` * 10 ms of graph time; ("flush", 0);
    #: ("wait", seconds): graph and media time go on, silent; ("pace", factor).
    script: tuple[tuple[str, float], ...] = attrs.field(converter=tuple)


@mg.node_type("recorder_test_script", config=TimedScriptConfig)
class TimedScript(mg.Source):
    """Plays a script of frames (see :func:`reply`), flushes and pauses on the graph clock."""

    @staticmethod
    def ports(config: TimedScriptConfig) -> mg.Ports:
        return mg.Ports(outlets=[mg.OutletSpec(name="audio", format=mg.AudioFormat(sample_rate=RATE, channels=1))])

    def __init__(self, config: TimedScriptConfig) -> None:
        self.steps = list(config.script)
        self.at = 0.0
        self.ts = 0
        self.pace = 1.0
        self.frames = 0  # left in the current ("frames", n) step

    def start(self, io: mg.NodeIO) -> None:
        self.emit = io.outlets["audio"].emit

    def produce(self) -> float | None:
        while self.frames or self.steps:
            if self.frames:
                self.frames -= 1
                self.emit(mg.AudioFrame(samples=reply(self.ts, FRAME), sample_rate=RATE, channels=1, timestamp=self.ts))
                self.ts += FRAME
                self.at += self.pace * FRAME / RATE
                return self.at
            kind, value = self.steps.pop(0)
            if kind == "frames":
                self.frames = int(value)
            elif kind == "pace":
                self.pace = value
            elif kind == "wait":
                self.at += value
                self.ts += round(value * RATE)
                return self.at
            else:
                self.emit(mg.Flush())
        return None


async def test_a_cut_swap_above_the_recorder_trims_exactly_what_the_old_child_did_not_play(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """Three utterances of 3 s, 1 s and 1 s, the first produced at twice real time. A cut swap at 0.6 s, in
    the middle of the first, stops the old speaker (it played about 0.6 s of the 1.2 s it got); the rest of
    the utterance opens a new segment on the new child, so the slot's segment ids run one ahead of a count
    of flushes. A boundary swap during the second utterance lets it finish. Exactly the audio the old child
    got and did not play is missing from the recording."""
    script = [("pace", 0.5), ("frames", 300), ("flush", 0), ("pace", 1.0), ("wait", 1.0)]
    script += [("frames", 100), ("flush", 0), ("wait", 1.0), ("frames", 100), ("flush", 0)]
    out = tmp_path / "call.wav"
    g = mg.Graph()
    g.add("src", "recorder_test_script", script=script)
    g.add("out", "slot", child={"type": "speaker"})
    g.add("rec", "recorder", path=out)
    g.link("src.audio", "out.audio")
    g.link("src.audio", "rec.agent")
    g.link("out.playback", "rec.playback")
    async with mg.open_runtime() as rt:
        running = await rt.start(g)
        await trio.sleep_until(running.t0 + 0.6)
        await running.swap("out", {"type": "speaker"}, policy="cut")
        await trio.sleep_until(running.t0 + 3.0)  # the second utterance is playing
        await running.swap("out", {"type": "speaker", "block_ms": 20}, policy="boundary")
        result = await running.wait()

    finished = [e.fields for e in result.log.of("playback_finished", "out")]
    assert [(f["segment"], f["generation"], f["interrupted"]) for f in finished] == [
        (0, 0, True),
        (1, 1, False),
        (2, 1, False),
        (3, 2, False),
    ]
    played, sent = round(finished[0]["position"] * RATE), round(finished[0]["sent"] * RATE)
    assert 0.5 * RATE < played < 0.7 * RATE
    assert 1.1 * RATE < sent < 1.3 * RATE
    assert sum(f["sent"] for f in finished) == pytest.approx(5.0)

    # The media timeline: utterances at [0, 3), [4, 5) and [6, 7) seconds; the cut part of the first silent.
    want = np.zeros(7 * RATE, dtype=np.int16)
    for begin, seconds in ((0, 3), (4, 1), (6, 1)):
        want[begin * RATE : (begin + seconds) * RATE] = reply(begin * RATE, seconds * RATE)[:, 0]
    want[played:sent] = 0
    got = read_wav(out)
    assert np.array_equal(got[:, 1], want)
    assert not got[:, 0].any()
    stats = result.log.of("recording_finished")[0].fields
    assert (stats["trimmed_samples"], stats["unconfirmed_samples"], stats["late_samples"]) == (sent - played, 0, 0)
