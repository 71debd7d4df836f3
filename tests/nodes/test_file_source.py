"""file_source: real files of every common format, resampling, pacing, looping, video, and bad input."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import av
import numpy as np
import numpy.typing as npt
import pytest
import trio
import trio.testing

import mediagraph as mg
from mediagraph.testing import Recorder, SinkConfig

# mypy knows the node library as ``nodes`` (its folder); at run time it is installed as ``mediagraph.nodes``.
if TYPE_CHECKING:
    from nodes.file_source import FileSource, FileSourceConfig
else:
    from mediagraph.nodes.file_source import FileSource, FileSourceConfig

Samples = npt.NDArray[np.int16]

CODECS = {".wav": "pcm_s16le", ".flac": "flac", ".ogg": "libopus", ".mp4": "aac", ".mp3": "libmp3lame"}
LOSSLESS = {".wav", ".flac"}


def sine(rate: int, seconds: float, channels: int = 1, frequency: float = 440.0) -> Samples:
    t = np.arange(round(rate * seconds)) / rate
    mono = np.round(np.sin(2 * np.pi * frequency * t) * 12000).astype(np.int16)
    return np.repeat(mono[:, None], channels, axis=1)


def write_audio(path: Path, samples: Samples, rate: int) -> Path:
    """Encode ``samples`` (int16, shape (n, channels)) into ``path``, the codec chosen by its extension."""
    channels = samples.shape[1]
    layout = {1: "mono", 2: "stereo"}[channels]
    with av.open(str(path), "w") as container:
        stream = container.add_stream(CODECS[path.suffix], rate=rate, layout=layout)
        assert isinstance(stream, av.AudioStream)
        for start in range(0, len(samples), 1000):
            chunk = np.ascontiguousarray(samples[start : start + 1000])
            frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="s16", layout=layout)
            frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def write_video(path: Path, *, audio: bool, seconds: float = 1.0, fps: int = 10) -> Path:
    """A small H.264 MP4 (64x48, ``fps`` pictures a second), with a 440 Hz AAC track if ``audio``."""
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=fps)
        assert isinstance(video, av.VideoStream)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        sound = container.add_stream("aac", rate=48000, layout="mono") if audio else None
        for i in range(round(seconds * fps)):
            pixels = np.full((48, 64, 3), i * 20 % 256, dtype=np.uint8)
            picture = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            picture.pts = i
            for packet in video.encode(picture):
                container.mux(packet)
        if isinstance(sound, av.AudioStream):
            samples = sine(48000, seconds)
            frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = 48000, 0, Fraction(1, 48000)
            for packet in [*sound.encode(frame), *sound.encode(None)]:
                container.mux(packet)
        for packet in video.encode(None):
            container.mux(packet)
    return path


async def decode(path: Path, *, duration: float | None = None, video: bool = False, **params: Any) -> list[Any]:
    """Run file_source -> a recording sink; the frames it got (audio, or video when ``video``)."""
    recorder = Recorder()
    g = mg.Graph()
    g.add("src", "file_source", path=path, **params)
    g.add("out", "test_sink", config=SinkConfig(recorder=recorder))
    g.link("src.video" if video else "src.audio", "out.in")
    with trio.fail_after(3600):
        await mg.run(g, duration=duration)
    return [a.message for a in recorder.arrivals("out")]


def joined(frames: list[mg.AudioFrame]) -> Samples:
    return np.concatenate([f.samples for f in frames])


def check_frames(frames: list[mg.AudioFrame], frame_len: int) -> None:
    """Fixed-length frames (the last may be shorter) with exact consecutive timestamps from 0."""
    assert all(f.samples_per_channel == frame_len for f in frames[:-1])
    assert 0 < frames[-1].samples_per_channel <= frame_len
    position = 0
    for f in frames:
        assert f.timestamp == position
        position += f.samples_per_channel


def peak_hz(samples: Samples, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples[:, 0].astype(np.float64)))
    return float(np.argmax(spectrum) * rate / len(samples))


def rms(samples: Samples) -> float:
    return float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))


# --- real files -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("ext", list(CODECS))
async def test_every_format_decodes_into_exact_10ms_frames(
    tmp_path: Path, ext: str, autojump_clock: trio.testing.MockClock
) -> None:
    sent = sine(48000, 1.0)
    path = write_audio(tmp_path / f"tone{ext}", sent, 48000)
    frames = await decode(path, paced=False)
    check_frames(frames, 480)
    assert {(f.sample_rate, f.channels) for f in frames} == {(48000, 1)}
    got = joined(frames)
    if ext in LOSSLESS:
        assert np.array_equal(got, sent)
    else:
        assert abs(len(got) - len(sent)) <= 2048  # codec padding, at most
        assert peak_hz(got, 48000) == pytest.approx(440, abs=2)
        assert rms(got) == pytest.approx(rms(sent), rel=0.12)


async def test_resampled_and_remixed_on_request(tmp_path: Path, autojump_clock: trio.testing.MockClock) -> None:
    path = write_audio(tmp_path / "tone.flac", sine(44100, 1.0, channels=2), 44100)
    config = mg.config_from_mapping(FileSourceConfig, {"path": path, "sample_rate": 16000, "channels": 1}, where="t")
    assert FileSource.ports(config).outlet("audio") == mg.OutletSpec(
        name="audio", format=mg.AudioFormat(sample_rate=16000, channels=1)
    )
    frames = await decode(path, paced=False, sample_rate=16000, channels=1, frame_ms=20)
    check_frames(frames, 320)
    got = joined(frames)
    assert abs(len(got) - 16000) <= 16
    assert peak_hz(got, 16000) == pytest.approx(440, abs=2)


def test_the_outlet_format_is_probed_from_the_file(tmp_path: Path) -> None:
    path = write_audio(tmp_path / "voice.wav", sine(22050, 0.2, channels=2), 22050)
    g = mg.Graph()
    g.add("src", "file_source", path=path)
    g.add("speaker", "speaker", sample_rate=48000)
    g.link("src.audio", "speaker.audio")
    with pytest.raises(mg.GraphDefinitionError, match=r"src\.audio sends AudioFrame \(22050 Hz, 2 ch\)"):
        g.validate()


async def test_paced_frames_are_released_at_their_media_time(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    path = write_audio(tmp_path / "tone.wav", sine(16000, 0.5), 16000)
    recorder = Recorder()
    g = mg.Graph()
    g.add("src", "file_source", path=path)
    g.add("out", "test_sink", config=SinkConfig(recorder=recorder))
    g.link("src.audio", "out.in")
    result = await mg.run(g)
    assert [a.t for a in recorder.arrivals("out")] == pytest.approx([i * 0.01 for i in range(50)])
    assert result.log.of("graph_finished")[0].t == pytest.approx(0.5)  # the end of the media


async def test_loop_goes_on_with_increasing_timestamps(tmp_path: Path, autojump_clock: trio.testing.MockClock) -> None:
    sent = sine(8000, 0.25, frequency=200)
    path = write_audio(tmp_path / "short.wav", sent, 8000)
    frames = await decode(path, loop=True, duration=1.0)
    check_frames(frames, 80)
    got = joined(frames)
    assert len(got) >= 8000
    for start in range(0, len(got) - len(sent), len(sent)):  # every pass is the whole file again
        assert np.array_equal(got[start : start + len(sent)], sent)


def test_decoding_is_incremental(tmp_path: Path) -> None:
    path = write_audio(tmp_path / "long.ogg", sine(48000, 20.0), 48000)
    config = mg.config_from_mapping(FileSourceConfig, {"path": path}, where="t")
    node = FileSource(config)
    sent: list[mg.AudioFrame] = []

    @attrs.frozen
    class FakeOutlet:
        emit: Any
        links: tuple[()] = ()

    @attrs.frozen
    class FakeIO:
        outlets: dict[str, FakeOutlet]

        def log(self, event: str, **fields: Any) -> None:
            raise AssertionError(f"a whole file logged {event} {fields}")

    node.start(FakeIO(outlets={"audio": FakeOutlet(emit=sent.append)}))  # type: ignore[arg-type]
    for _ in range(100):
        node.produce()
    assert len(sent) == 100
    assert len(node._fifo) < 48000 // 10  # a packet or two ahead, never the file


async def test_video_pictures_come_with_the_audio_that_reaches_their_time(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    path = write_video(tmp_path / "clip.mp4", audio=True)
    pictures = await decode(path, video=True)
    assert len(pictures) == 10
    assert all(isinstance(p, mg.VideoFrame) and isinstance(p.pixels, av.VideoFrame) for p in pictures)
    times = [p.time for p in pictures]
    assert times == sorted(times)
    assert times[0] == pytest.approx(0, abs=0.05)
    assert times[-1] == pytest.approx(0.9, abs=0.05)
    assert (await decode(path, paced=False))[-1].timestamp < 48000  # the audio is there too


def test_no_video_outlet_for_an_audio_only_file(tmp_path: Path) -> None:
    path = write_audio(tmp_path / "tone.ogg", sine(48000, 0.1), 48000)
    g = mg.Graph()
    g.add("src", "file_source", path=path)
    g.add("out", "test_sink", config=SinkConfig(recorder=Recorder()))
    with pytest.raises(mg.GraphDefinitionError, match="has no outlet 'video'"):
        g.link("src.video", "out.in")


# --- bad input --------------------------------------------------------------------------------------------


def text_file(tmp_path: Path) -> Path:
    path = tmp_path / "notes.wav"
    path.write_text("this is not audio\n" * 100)
    return path


def empty_file(tmp_path: Path) -> Path:
    path = tmp_path / "empty.ogg"
    path.write_bytes(b"")
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda tmp: tmp / "missing.wav", "path '{path}': no such file"),
        (text_file, "path '{path}': not a media file FFmpeg can read"),
        (empty_file, "path '{path}': not a media file FFmpeg can read"),
        (lambda tmp: write_video(tmp / "silent.mp4", audio=False), "path '{path}': the file has no audio stream"),
    ],
)
def test_unusable_files_are_refused_before_the_graph_runs(tmp_path: Path, make: Any, message: str) -> None:
    path = make(tmp_path)
    with pytest.raises(mg.GraphDefinitionError) as info:
        mg.Graph().add("src", "file_source", path=path)
    assert str(info.value).startswith("node 'src' (file_source): ")
    assert message.format(path=path) in str(info.value)
    assert info.value.param == "path"


def damage(path: Path, how: str) -> Path:
    data = bytearray(path.read_bytes())
    if how == "truncate":
        data = data[: len(data) // 2]
    else:
        middle = len(data) // 2
        data[middle : middle + 4000] = np.random.default_rng(1).integers(0, 256, 4000, dtype=np.uint8).tobytes()
    out = path.with_name(f"{how}d{path.suffix}")
    out.write_bytes(bytes(data))
    return out


@pytest.mark.parametrize(
    ("ext", "how", "message"),
    [
        (".wav", "truncate", "corrupt or truncated data"),
        (".flac", "truncate", "Invalid data"),
        (".ogg", "corrupt", "the file is truncated or damaged"),
        (".mp4", "corrupt", "Invalid data"),
    ],
)
async def test_a_file_damaged_halfway_fails_the_node_naming_the_file(
    tmp_path: Path, ext: str, how: str, message: str, autojump_clock: trio.testing.MockClock
) -> None:
    path = damage(write_audio(tmp_path / f"speech{ext}", sine(48000, 3.0), 48000), how)
    mg.Graph().add("src", "file_source", path=path)  # the header is fine: accepted before the run
    with pytest.raises(mg.NodeFailedError) as info:
        await decode(path, paced=False)
    assert info.value.node == "src"
    cause = info.value.__cause__
    assert isinstance(cause, mg.ProviderError)
    assert f"media file '{path}'" in str(cause)
    assert message in str(cause)


def test_config_errors_name_the_parameter(tmp_path: Path) -> None:
    path = write_audio(tmp_path / "tone.wav", sine(8000, 0.1), 8000)
    with pytest.raises(mg.GraphDefinitionError, match="frame_ms") as info:
        mg.Graph().add("src", "file_source", path=path, frame_ms=0)
    assert info.value.param == "frame_ms"
    with pytest.raises(mg.GraphDefinitionError, match="holds no sample") as info:
        mg.Graph().add("src", "file_source", path=path, frame_ms=0.01)
    assert info.value.param == "frame_ms"
    with pytest.raises(mg.GraphDefinitionError, match="'sample_rate' must be >= 8000") as info:
        mg.Graph().add("src", "file_source", path=path, frame_ms=0.01, sample_rate=100)
    assert info.value.param == "sample_rate"
