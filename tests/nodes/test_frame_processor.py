"""frame_processor: apm noise suppression and echo cancellation, 10 ms re-chunking, gain, resample, plugins,
stream metadata (in order, clearing once), processor configs and their errors."""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import attrs
import av
import hypothesis.strategies as st
import numpy as np
import numpy.typing as npt
import pytest
import trio
import trio.testing
from hypothesis import given, note, settings
from livekit import rtc

import mediagraph as mg

# mypy knows the node library as ``nodes`` (its folder); at run time it is installed as ``mediagraph.nodes``.
if TYPE_CHECKING:
    from nodes.frame_processor import (
        ApmConfig,
        CredentialsCleared,
        CredentialsUpdated,
        FrameProcessorConfig,
        GainConfig,
        MetadataState,
        PluginConfig,
        ResampleConfig,
        StreamInfoCleared,
        StreamInfoUpdated,
        StreamMetadata,
        StreamMetadataCleared,
        processor_config,
    )
else:
    from mediagraph.nodes.frame_processor import (
        ApmConfig,
        CredentialsCleared,
        CredentialsUpdated,
        FrameProcessorConfig,
        GainConfig,
        MetadataState,
        PluginConfig,
        ResampleConfig,
        StreamInfoCleared,
        StreamInfoUpdated,
        StreamMetadata,
        StreamMetadataCleared,
        processor_config,
    )

Samples = npt.NDArray[np.int16]

# --- test nodes: a scripted source and a collecting sink ------------------------------------------------------


@attrs.frozen(kw_only=True)
class ScriptConfig:
    steps: tuple[tuple[str, Any], ...] = attrs.field(converter=tuple, eq=False)


@mg.node_type("fp_test_script", config=ScriptConfig)
class Script(mg.Source):
    """Emits ``(outlet, message)`` steps in order, as fast as the graph takes them."""

    @staticmethod
    def ports(config: ScriptConfig) -> mg.Ports:
        return mg.Ports(
            outlets=[
                mg.OutletSpec(name="audio"),
                mg.OutletSpec(name="reference"),
                mg.OutletSpec(name="metadata", types=(StreamMetadata, StreamMetadataCleared)),
            ]
        )

    def __init__(self, config: ScriptConfig) -> None:
        self.steps = iter(config.steps)

    def start(self, io: mg.NodeIO) -> None:
        self.outlets = io.outlets

    def produce(self) -> float | None:
        step = next(self.steps, None)
        if step is None:
            return None
        self.outlets[step[0]].emit(step[1])
        return 0.0


@attrs.frozen(kw_only=True)
class CollectConfig:
    into: list[Any] = attrs.field(eq=False)


@mg.node_type("fp_test_collect", config=CollectConfig)
class Collect(mg.Transform):
    """Keeps every message it gets."""

    @staticmethod
    def ports(config: CollectConfig) -> mg.Ports:
        return mg.Ports(inlets=[mg.InletSpec(name="audio")])

    def __init__(self, config: CollectConfig) -> None:
        self.into = config.into

    def start(self, io: mg.NodeIO) -> None:
        pass

    def process(self, inlet: str, msg: Any) -> None:
        self.into.append(msg)


class Negate(rtc.FrameProcessor[rtc.AudioFrame]):
    """A plugin that negates samples and records every call it gets."""

    instances: ClassVar[list[Negate]] = []

    def __init__(self, label: str = "") -> None:
        self.label = label
        self.sizes: list[int] = []
        self.calls: list[tuple[Any, ...]] = []
        self.closed = 0
        self._enabled = True
        Negate.instances.append(self)

    @property
    def enabled(self) -> bool:
        return self._enabled

    @enabled.setter
    def enabled(self, value: bool) -> None:
        self._enabled = value

    def _process(self, frame: rtc.AudioFrame) -> rtc.AudioFrame:
        self.sizes.append(frame.samples_per_channel)
        data = np.frombuffer(frame.data, dtype=np.int16)
        out = (-data.astype(np.int32)).clip(-32768, 32767).astype(np.int16)
        return rtc.AudioFrame(out.tobytes(), frame.sample_rate, frame.num_channels, frame.samples_per_channel)

    def _on_stream_info_updated(self, *, room_name: str, participant_identity: str, publication_sid: str) -> None:
        self.calls.append(("info", room_name, participant_identity, publication_sid))

    def _on_stream_info_cleared(self) -> None:
        self.calls.append(("info_cleared",))

    def _on_credentials_updated(self, *, token: str, url: str) -> None:
        self.calls.append(("credentials", url, token))

    def _on_credentials_cleared(self) -> None:
        self.calls.append(("credentials_cleared",))

    def _close(self) -> None:
        self.closed += 1


NEGATE = f"{__name__}:Negate"


def run_processor(
    processor: dict[str, Any], steps: list[tuple[str, Any]], *, link: tuple[str, ...] = ("audio",)
) -> list[Any]:
    """Run script -> frame_processor -> collect under a mock clock; what the collector got."""
    got: list[Any] = []
    g = mg.Graph()
    g.add("script", "fp_test_script", steps=steps)
    g.add("proc", "frame_processor", processor=processor)
    g.add("out", "fp_test_collect", into=got)
    for port in link:
        g.link(f"script.{port}", f"proc.{port}")
    g.link("proc.audio", "out.audio")

    async def main() -> None:
        with trio.fail_after(3600):
            await mg.run(g)

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    return got


def frames_of(samples: Samples, rate: int, size: int, start: int = 0) -> list[tuple[str, Any]]:
    """``samples`` cut into frames of ``size`` samples (the last one shorter), as script steps."""
    steps: list[tuple[str, Any]] = []
    for i in range(0, len(samples), size):
        chunk = samples[i : i + size]
        steps.append(("audio", mg.AudioFrame(samples=chunk, sample_rate=rate, channels=1, timestamp=start + i)))
    return steps


def audio(got: list[Any]) -> list[mg.AudioFrame]:
    return [m for m in got if isinstance(m, mg.AudioFrame)]


def joined(frames: list[mg.AudioFrame]) -> Samples:
    return np.concatenate([f.samples for f in frames]) if frames else np.zeros((0, 1), dtype=np.int16)


def level_db(x: npt.NDArray[Any]) -> float:
    return float(10 * np.log10(np.mean(np.asarray(x, dtype=np.float64) ** 2) + 1e-9))


# --- apm --------------------------------------------------------------------------------------------------


def noisy_bursts(rate: int, seconds: float) -> tuple[Samples, npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """Harmonic bursts (200 Hz and 6 overtones), 0.5 s on, 0.5 s off, plus white noise 20 dB below them.

    Returns the samples and masks of the inner parts of the bursts and of the pauses (edges left out).
    """
    t = np.arange(int(rate * seconds)) / rate
    harmonic = sum(np.sin(2 * np.pi * 200 * k * t) / k for k in range(1, 8))
    phase = t % 1.0
    noise = np.random.default_rng(7).normal(0.0, 0.02, len(t))
    x = harmonic * (phase < 0.5) * 0.25 + noise
    samples = np.round(x * 32767).clip(-32768, 32767).astype(np.int16)[:, None]
    burst = (phase > 0.05) & (phase < 0.45)
    pause = (phase > 0.55) & (phase < 0.95)
    return samples, burst, pause


@pytest.mark.parametrize("frame_ms", [5, 10, 20, 37])
def test_apm_reduces_stationary_noise_whatever_the_frame_size(frame_ms: int) -> None:
    rate = 48000
    x, burst, pause = noisy_bursts(rate, 6.0)
    got = run_processor({"type": "apm", "noise_suppression": True}, frames_of(x, rate, rate * frame_ms // 1000))
    frames = audio(got)
    # Exact 10 ms frames with consecutive timestamps, the last partial chunk flushed at the end: nothing lost.
    assert all(f.samples_per_channel == rate // 100 for f in frames[:-1])
    assert [f.timestamp for f in frames] == list(range(0, len(x), rate // 100))
    y = joined(frames)
    assert y.shape == x.shape
    settled = np.arange(len(x)) >= rate  # the suppressor learns the noise during the first second
    pause_drop = level_db(x[pause & settled]) - level_db(y[pause & settled])
    burst_move = abs(level_db(x[burst & settled]) - level_db(y[burst & settled]))
    measured = f"pauses -{pause_drop:.1f} dB, bursts {burst_move:.2f} dB"
    assert pause_drop >= 6.0, measured
    assert burst_move < 2.0, measured


def test_apm_cancels_the_echo_of_the_reference() -> None:
    rate, n = 16000, 160
    rng = np.random.default_rng(3)
    seconds = 8
    t = np.arange(seconds * rate) / rate
    far = rng.normal(0.0, 0.1, len(t)) * (np.sin(2 * np.pi * 1.3 * t) > 0)  # noise bursts, speech-like
    delay = int(0.03 * rate)
    echo = np.zeros_like(far)
    echo[delay:] = 0.5 * far[:-delay]

    def pcm(x: npt.NDArray[np.float64]) -> Samples:
        return np.round(x * 32767).clip(-32768, 32767).astype(np.int16)[:, None]

    steps: list[tuple[str, Any]] = []
    for i in range(0, len(t), n):
        ref = mg.AudioFrame(samples=pcm(far[i : i + n]), sample_rate=rate, channels=1, timestamp=i)
        cap = mg.AudioFrame(samples=pcm(echo[i : i + n]), sample_rate=rate, channels=1, timestamp=i)
        steps += [("reference", ref), ("audio", cap)]
    processor = {"type": "apm", "echo_cancellation": True, "stream_delay_ms": 30}
    y = joined(audio(run_processor(processor, steps, link=("audio", "reference"))))
    late = slice(2 * rate, None)
    assert level_db(pcm(echo)[late]) - level_db(y[late]) >= 20.0


def test_reference_inlet_exists_only_with_echo_cancellation() -> None:
    g = mg.Graph()
    g.add("script", "fp_test_script", steps=[])
    g.add("proc", "frame_processor", processor={"type": "apm", "noise_suppression": True})
    with pytest.raises(mg.GraphDefinitionError, match="has no inlet 'reference'"):
        g.link("script.reference", "proc.reference")


# --- re-chunking, through a plugin that records the sizes it gets -------------------------------------------

STEP = st.one_of(
    st.tuples(st.just("frame"), st.integers(1, 1500), st.sampled_from([0, 0, 0, 1, 333])),  # size, gap
    st.tuples(st.sampled_from(["flush", "interrupt"]), st.just(0), st.just(0)),
)


@settings(deadline=None, max_examples=60)
@given(rate=st.sampled_from([16000, 48000]), script=st.lists(STEP, max_size=25))
def test_plugins_get_exact_10ms_chunks_and_every_kept_sample_comes_out_in_place(
    rate: int, script: list[tuple[str, int, int]]
) -> None:
    chunk = rate // 100
    rng = np.random.default_rng(len(script))
    steps: list[tuple[str, Any]] = []
    expected: list[tuple[int, int]] = []  # (timestamp, sample) of every sample that must come out, in order
    controls: list[tuple[type, int]] = []  # each control with the samples that must precede it
    run: list[tuple[int, int]] = []  # the samples of the current run not yet out
    run_len = 0  # samples in the current run (chunk boundaries count from its start)
    position = 0
    for kind, size, gap in script:
        if kind == "frame":
            if gap:
                expected += run
                run, run_len = [], 0
            position += gap
            values = rng.integers(-30000, 30000, size).astype(np.int16)
            frame = mg.AudioFrame(samples=values[:, None], sample_rate=rate, channels=1, timestamp=position)
            steps.append(("audio", frame))
            run += [(position + i, int(v)) for i, v in enumerate(values)]
            run_len += size
            whole = len(run) - (run_len % chunk)  # complete chunks go out at once
            expected += run[:whole]
            run = run[whole:]
            position += size
        elif kind == "flush":
            expected += run
            run, run_len = [], 0
            steps.append(("audio", mg.Flush()))
            controls.append((mg.Flush, len(expected)))
        else:
            run, run_len = [], 0  # the partial chunk is dropped
            steps.append(("audio", mg.Interrupt()))
            controls.append((mg.Interrupt, len(expected)))
    expected += run
    note(f"{len(steps)} steps, {len(expected)} samples expected")
    Negate.instances.clear()
    got = run_processor({"type": "plugin", "plugin": NEGATE}, steps)
    (plugin,) = Negate.instances
    assert set(plugin.sizes) <= {chunk}
    assert plugin.closed == 1
    out: list[tuple[int, int]] = []
    seen_controls: list[tuple[type, int]] = []
    for msg in got:
        if isinstance(msg, mg.AudioFrame):
            out += [(msg.timestamp + i, -int(v)) for i, v in enumerate(msg.samples[:, 0])]
        else:
            seen_controls.append((type(msg), len(out)))
    assert out == [(ts, max(v, -32767)) for ts, v in expected]
    assert seen_controls == controls


# --- gain, resample -------------------------------------------------------------------------------------------


def test_gain_scales_and_clips() -> None:
    x = np.array([[0], [1000], [-1000], [20000], [-20000]], dtype=np.int16)
    steps = [("audio", mg.AudioFrame(samples=x, sample_rate=16000, channels=1, timestamp=5))]
    (frame,) = audio(run_processor({"type": "gain", "db": 6.0206}, steps))
    assert frame.timestamp == 5
    assert frame.samples[:, 0].tolist() == [0, 2000, -2000, 32767, -32768]
    (same,) = audio(run_processor({"type": "gain", "db": 0}, steps))
    assert np.array_equal(same.samples, x)


def test_resample_keeps_the_signal_and_the_timestamps() -> None:
    rate, target = 48000, 16000
    t = np.arange(rate) / rate
    x = np.round(np.sin(2 * np.pi * 440 * t) * 10000).astype(np.int16)[:, None]
    steps = frames_of(x[:24000], rate, 336) + frames_of(x[24000:], rate, 336, start=48000)  # a 0.5 s gap
    steps.insert(10, ("audio", mg.Flush()))
    got = run_processor({"type": "resample", "sample_rate": target, "channels": 2}, steps)
    frames = audio(got)
    assert {f.sample_rate for f in frames} == {target}
    assert {f.channels for f in frames} == {2}
    first = [f for f in frames if f.timestamp < 16000]
    second = [f for f in frames if f.timestamp >= 16000]
    for run, start in ((first, 0), (second, 16000)):
        assert run[0].timestamp == start
        for a, b in itertools.pairwise(run):
            assert b.timestamp == a.timestamp + a.samples_per_channel
        y = joined(run)
        assert len(y) == 8000  # soxr's streaming output, flushed at the gap and at the end: exact length
        assert np.array_equal(y[:, 0], y[:, 1])
        ideal = np.sin(2 * np.pi * 440 * (np.arange(8000) / target)) * 10000
        assert np.corrcoef(y[200:-200, 0], ideal[200:-200])[0, 1] > 0.999


def test_resample_declares_its_output_format() -> None:
    g = mg.Graph()
    g.add("tone", "tone_source", sample_rate=48000, duration=0.1)
    g.add("proc", "frame_processor", processor={"type": "resample", "sample_rate": 16000})
    g.add("speaker", "speaker", sample_rate=48000)
    g.link("tone.audio", "proc.audio")
    g.link("proc.audio", "speaker.audio")
    with pytest.raises(mg.GraphDefinitionError, match=r"format mismatch: proc\.audio sends AudioFrame \(16000 Hz"):
        g.validate()


# --- metadata ---------------------------------------------------------------------------------------------

METADATA = st.one_of(
    st.builds(
        StreamMetadata,
        room=st.sampled_from(["a", "b"]),
        participant=st.just("p"),
        track_id=st.sampled_from(["t1", "t2"]),
        url=st.sampled_from(["", "wss://x"]),
        token=st.sampled_from(["", "k1", "k2"]),
    ),
    st.builds(StreamMetadataCleared),
)


@given(st.lists(METADATA, max_size=30))
def test_metadata_calls_follow_every_change_once_and_clear_once(
    messages: list[StreamMetadata | StreamMetadataCleared],
) -> None:
    state = MetadataState()
    info: tuple[str, str, str] | None = None  # what the processor has been told
    credentials: tuple[str, str] | None = None
    for msg in messages:
        for call in state.apply(msg):
            before = (info, credentials)
            match call:
                case StreamInfoUpdated(room, participant, track_id):
                    info = (room, participant, track_id)
                case StreamInfoCleared():
                    info = None
                case CredentialsUpdated(url, token):
                    credentials = (url, token)
                case CredentialsCleared():
                    credentials = None
            assert (info, credentials) != before, f"{call!r} told the processor nothing new"
        if isinstance(msg, StreamMetadataCleared):
            assert (info, credentials) == (None, None)
        else:
            assert info == (msg.room, msg.participant, msg.track_id)
            assert credentials == ((msg.url, msg.token) if msg.url or msg.token else None)


def test_metadata_reaches_the_plugin_in_order_and_clearing_is_idempotent() -> None:
    meta = StreamMetadata(room="r", participant="p", track_id="TR_1", url="wss://lk", token="t1")
    refreshed = attrs.evolve(meta, token="t2")
    cleared = StreamMetadataCleared(reason="left")
    frame = mg.AudioFrame(samples=np.zeros((480, 1), np.int16), sample_rate=48000, channels=1)
    steps: list[tuple[str, Any]] = [
        ("metadata", meta),
        ("audio", frame),
        ("metadata", meta),  # no change: nothing
        ("metadata", refreshed),
        ("metadata", cleared),
        ("metadata", cleared),
        ("metadata", cleared),
        ("metadata", meta),
        ("metadata", cleared),
    ]
    Negate.instances.clear()
    run_processor({"type": "plugin", "plugin": NEGATE}, steps, link=("audio", "metadata"))
    (plugin,) = Negate.instances
    assert plugin.calls == [
        ("info", "r", "p", "TR_1"),
        ("credentials", "wss://lk", "t1"),
        ("credentials", "wss://lk", "t2"),
        ("info_cleared",),
        ("credentials_cleared",),
        ("info", "r", "p", "TR_1"),
        ("credentials", "wss://lk", "t1"),
        ("info_cleared",),
        ("credentials_cleared",),
    ]
    assert plugin.closed == 1
    assert "t1" not in repr(meta)


def test_a_shared_processor_is_told_once_and_closed_once_by_its_opener() -> None:
    Negate.instances.clear()
    config = PluginConfig(plugin=NEGATE, options={"label": "shared"})
    with config.open() as processor:
        a, b = processor.stream(), processor.stream()
        frame = mg.AudioFrame(samples=np.ones((480, 1), np.int16), sample_rate=48000, channels=1)
        assert joined(a.process(frame))[0, 0] == -1
        assert joined(b.process(frame))[0, 0] == -1
        processor.update_metadata(StreamMetadata(room="r", participant="p", track_id="t"))
        for _ in range(2):  # both users clear
            processor.update_metadata(StreamMetadataCleared())
    processor.close()  # a second close does nothing
    (plugin,) = Negate.instances
    assert plugin.label == "shared"
    assert plugin.calls == [("info", "r", "p", "t"), ("info_cleared",)]
    assert plugin.closed == 1


def test_a_disabled_plugin_passes_frames_through() -> None:
    Negate.instances.clear()
    with PluginConfig(plugin=NEGATE).open() as processor:
        (plugin,) = Negate.instances
        plugin.enabled = False
        frame = mg.AudioFrame(samples=np.full((480, 1), 7, np.int16), sample_rate=48000, channels=1)
        assert joined(processor.stream().process(frame))[0, 0] == 7


# --- configs ---------------------------------------------------------------------------------------------


def test_processor_configs_from_mappings() -> None:
    def config(processor: Any) -> Any:
        return mg.config_from_mapping(FrameProcessorConfig, {"processor": processor}, where="test").processor

    assert config({"type": "apm", "noise_suppression": True}) == ApmConfig(noise_suppression=True)
    assert config({"type": "gain", "db": -6}) == GainConfig(db=-6.0)
    assert config({"type": "resample", "sample_rate": 16000}) == ResampleConfig(sample_rate=16000)
    assert config({"type": "plugin", "plugin": NEGATE}).plugin == NEGATE


@pytest.mark.parametrize(
    ("processor", "message"),
    [
        ({"type": "apx"}, "processor type must be one of apm, gain, resample, plugin, got 'apx'"),
        ({"noise_suppression": True}, "processor type must be one of apm, gain, resample, plugin, got None"),
        ({"type": "apm", "noise_supression": True}, "unknown parameter 'noise_supression' (did you mean"),
        ({"type": "apm", "noise_suppression": "yes"}, "parameter 'noise_suppression' must be bool, got str"),
        ({"type": "gain"}, "missing 1 required keyword-only argument: 'db'"),
        ({"type": "resample", "sample_rate": 16000, "quality": "best"}, "'quality' must be in"),
        ({"type": "plugin", "plugin": "no_such_module_xyz:Thing"}, "cannot import 'no_such_module_xyz'"),
        ({"type": "plugin", "plugin": "collections:OrderedDict"}, "expected a livekit.rtc.FrameProcessor subclass"),
        ({"type": "plugin", "plugin": "just_a_module"}, "plugin must be 'package.module:Class'"),
        ("denoiser", "unknown resource 'denoiser'"),
        (["apm"], "processor must be a mapping with a 'type'"),
    ],
)
def test_processor_config_errors_name_the_node_and_the_problem(processor: Any, message: str) -> None:
    with pytest.raises(mg.GraphDefinitionError) as info:
        mg.Graph().add("ns", "frame_processor", processor=processor)
    assert str(info.value).startswith(
        ("node 'ns' (frame_processor): processor", "node 'ns' (frame_processor): parameter 'processor'")
    )
    assert message in str(info.value)
    assert info.value.node == "ns"
    assert info.value.param == "processor"


def test_a_processor_error_stays_a_graph_definition_error_naming_the_nested_parameter() -> None:
    bad = {"type": "apm", "noise_supression": True}
    with pytest.raises(mg.GraphDefinitionError) as inner:
        processor_config(bad)
    assert inner.value.param == "noise_supression"
    with pytest.raises(mg.GraphDefinitionError) as info:
        mg.Graph().add("ns", "frame_processor", processor=bad)
    assert info.value.param == "processor"
    assert isinstance(info.value.__cause__, mg.GraphDefinitionError)
    assert info.value.__cause__.param == "noise_supression"
    with pytest.raises(mg.GraphDefinitionError) as kind:
        processor_config({"type": "apx"})
    assert kind.value.param == "type"


# --- the bundled demo: graphs/noisy_speech_demo.yaml ------------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "graphs" / "noisy_speech_demo.yaml"
SAMPLE = ROOT / "graphs" / "media" / "noisy_speech.ogg"


def decode_stereo(path: Path) -> npt.NDArray[np.float64]:
    with av.open(str(path)) as container:
        resampler = av.AudioResampler(format="s16", layout="stereo", rate=48000)
        frames = [f for decoded in container.decode(audio=0) for f in resampler.resample(decoded)]
        frames += resampler.resample(None)
    return np.concatenate([np.asarray(f.to_ndarray(), np.int16).reshape(-1, 2) for f in frames]).astype(np.float64)


def test_the_noisy_speech_demo_runs_from_the_command_line(tmp_path: Path) -> None:
    out = tmp_path / "demo.ogg"
    command = [sys.executable, "-m", "mediagraph", "run", str(DEMO), "--clock", "virtual"]
    overrides = ["--set", f"recorder.path={out}", "--output-dir", str(tmp_path)]  # outside the cwd: allowed here
    done = subprocess.run([*command, *overrides], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "graph 'noisy_speech_demo' finished: completed" in done.stdout + done.stderr
    x = decode_stereo(out)
    assert len(x) == pytest.approx(13.35 * 48000, abs=4800)
    noise_only = slice(4800, 21600)  # the half second of noise before the voice
    assert level_db(x[noise_only, 0]) - level_db(x[noise_only, 1]) >= 6.0  # right: after suppression
    assert abs(level_db(x[:, 0]) - level_db(x[:, 1])) < 3.0  # the voice is kept


def test_the_bundled_sample_is_small_and_readable() -> None:
    assert SAMPLE.stat().st_size < 200_000
    g = mg.Graph()
    g.add("mic", "file_source", path=SAMPLE)  # probed: exists, has audio
    assert g.nodes["mic"].ports.outlet("audio") == mg.OutletSpec(
        name="audio", format=mg.AudioFormat(sample_rate=48000, channels=1)
    )


@pytest.mark.skipif(
    shutil.which("espeak-ng") is None and os.environ.get("CI") != "true",  # tools/test.sh installs it; CI must run it
    reason="espeak-ng is not installed (tools/test.sh installs it)",
)
def test_the_sample_script_regenerates_the_sample(tmp_path: Path) -> None:
    out = tmp_path / "sample.ogg"
    script = ROOT / "graphs" / "media" / "make_sample.py"
    subprocess.run([sys.executable, str(script), str(out)], check=True, capture_output=True, timeout=600)
    assert out.stat().st_size < 200_000
    assert len(decode_stereo(out)) == pytest.approx(len(decode_stereo(SAMPLE)), abs=4800)
