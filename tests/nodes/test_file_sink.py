"""file_sink: real files in every format at the stream's own rate and channels, frames placed by timestamp
(gaps silent, overlaps dropped and counted, exactly, as a property), conversion of rate and channels, a file
readable while written and finalized however the run ends, and errors that name what is wrong."""

from __future__ import annotations

import errno
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import av
import hypothesis.strategies as st
import numpy as np
import numpy.typing as npt
import pytest
import trio
import trio.testing
from hypothesis import given, settings

import mediagraph as mg
from mediagraph.testing import Cancel, capture

# mypy knows the node library as ``nodes`` (its folder); at run time it is installed as ``mediagraph.nodes``.
if TYPE_CHECKING:
    from nodes._file_sink_core import Placement
else:
    from mediagraph.nodes._file_sink_core import Placement

Samples = npt.NDArray[np.int16]
OUTLETS = {"audio": mg.AudioFrame}


def sine(frequency: float, seconds: float, rate: int, channels: int = 1, amplitude: float = 10000) -> Samples:
    t = np.arange(round(rate * seconds)) / rate
    mono = np.round(np.sin(2 * np.pi * frequency * t) * amplitude).astype(np.int16)[:, None]
    return np.repeat(mono, channels, axis=1)


def frame(samples: Samples, timestamp: int, rate: int) -> mg.AudioFrame:
    return mg.AudioFrame(samples=samples, sample_rate=rate, channels=samples.shape[1], timestamp=timestamp)


def read(path: Path) -> tuple[Samples, int, int, str]:
    """Every sample of ``path`` as decoded (int16, shape (n, channels)), its rate, channels and codec."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        rate, channels, codec = stream.sample_rate, stream.channels, stream.codec_context.name
        layout = {1: "mono", 2: "stereo"}.get(channels) or f"{channels}c"
        resampler = av.AudioResampler(format="s16", layout=layout, rate=rate)
        frames = [f for decoded in container.decode(audio=0) for f in resampler.resample(decoded)]
        frames += resampler.resample(None)
    chunks = [np.zeros((0, channels), np.int16)]
    chunks += [np.asarray(f.to_ndarray(), np.int16).reshape(-1, channels) for f in frames]
    return np.concatenate(chunks), rate, channels, codec


def peak_hz(x: Samples, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x.astype(np.float64)))
    return float(np.fft.rfftfreq(len(x), 1 / rate)[int(np.argmax(spectrum))])


def rms(x: npt.NDArray[Any]) -> float:
    return float(np.sqrt(np.mean(np.asarray(x, dtype=np.float64) ** 2))) if len(x) else 0.0


def tone_graph(
    path: Path, duration: float | None = 1.0, tone_rate: int = 24000, tone_channels: int = 2, **params: Any
) -> mg.Graph:
    """A 440 Hz tone at half of full scale into ``file_sink`` (``params``)."""
    g = mg.Graph()
    g.add("tone", "tone_source", frequency=440, duration=duration, sample_rate=tone_rate, channels=tone_channels)
    g.add("out", "file_sink", path=path, **params)
    g.link("tone.audio", "out.audio")
    return g


async def script(path: Path, steps: list[tuple[float, str, Any]], **params: Any) -> mg.GraphResult:
    g = mg.Graph()
    g.add("script", "test_messages", outlets=OUTLETS, steps=steps)
    g.add("out", "file_sink", path=path, **params)
    g.link("script.audio", "out.audio")
    with trio.fail_after(3600):
        return await mg.run(g)


def total(result: mg.GraphResult) -> dict[str, Any]:
    (event,) = result.log.of("file_sink_total")
    return dict(event.fields)


# --- real files -----------------------------------------------------------------------------------------

#: What each format decodes to for a 24 kHz stereo tone: codec, rate (Opus always decodes at 48 kHz), and
#: how many samples the length may be off by (a codec frame: AAC's priming and padding).
DECODED = {
    ".wav": ("pcm_s16le", 24000, 0),
    ".flac": ("flac", 24000, 0),
    ".ogg": ("opus", 48000, 960),
    ".mp4": ("aac", 24000, 2048),
}


@pytest.mark.parametrize("ext", list(DECODED))
async def test_a_tone_is_written_at_its_own_rate_and_channels(
    tmp_path: Path, ext: str, autojump_clock: trio.testing.MockClock
) -> None:
    out = tmp_path / "deep" / f"tone{ext}"  # missing folders are created
    result = await mg.run(tone_graph(out))
    assert out.exists() and not (tmp_path / "deep" / f"tone{ext}.part").exists()
    (started,) = result.log.of("file_sink_started")
    assert started.fields == {"path": str(out), "part": f"{out}.part", "sample_rate": 24000, "channels": 2}
    assert total(result) == {
        "path": str(out),
        "sample_rate": 24000,
        "channels": 2,
        "samples": 24000,
        "seconds": 1.0,
        "gaps": 0,
        "gap_samples": 0,
        "overlaps": 0,
        "overlap_samples": 0,
    }
    got, rate, channels, codec = read(out)
    want_codec, want_rate, slack = DECODED[ext]
    assert (codec, rate, channels) == (want_codec, want_rate, 2)
    assert abs(len(got) - want_rate) <= slack
    if ext in (".wav", ".flac"):
        assert np.array_equal(got, sine(440, 1.0, 24000, 2, amplitude=0.5 * 32767))
    else:
        middle = got[want_rate // 10 : want_rate * 9 // 10]
        assert rms(middle[:, 0]) == pytest.approx(0.5 * 32767 / np.sqrt(2), rel=0.05)
        assert peak_hz(middle[:, 0], want_rate) == pytest.approx(440, abs=2)
        assert rms(middle[:, 0] - middle[:, 1]) < 100  # the same on both channels


async def test_a_gap_is_silence_an_overlap_is_dropped_and_counted_and_controls_are_ignored(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    rate = 16000
    a, b, c = (np.full((1600, 1), v, np.int16) for v in (1000, 2000, 3000))
    steps: list[tuple[float, str, Any]] = [
        (0.0, "audio", frame(a, 8000, rate)),  # the file starts here: no leading silence
        (0.0, "audio", mg.Flush()),
        (0.1, "audio", frame(b, 8000 + 1600 + 800, rate)),  # 50 ms of silence before it
        (0.2, "audio", mg.Interrupt()),
        (0.2, "audio", frame(c, 8000 + 1600 + 800 + 1200, rate)),  # its first 400 samples overlap b's end
    ]
    out = tmp_path / "gaps.wav"
    result = await script(out, steps)
    stats = total(result)
    assert (stats["gaps"], stats["gap_samples"], stats["overlaps"], stats["overlap_samples"]) == (1, 800, 1, 400)
    assert stats["samples"] == 1600 + 800 + 1600 + 1200
    want = np.concatenate([a, np.zeros((800, 1), np.int16), b, c[400:]])
    got, got_rate, channels, _ = read(out)
    assert (got_rate, channels) == (rate, 1)
    assert np.array_equal(got, want)


async def test_mono_16k_goes_into_a_stereo_48k_file(tmp_path: Path, autojump_clock: trio.testing.MockClock) -> None:
    out = tmp_path / "up.wav"
    result = await mg.run(tone_graph(out, tone_rate=16000, tone_channels=1, sample_rate=48000, channels=2))
    assert total(result)["samples"] == 48000
    got, rate, channels, _ = read(out)
    assert (rate, channels, len(got)) == (48000, 2, 48000)
    assert np.array_equal(got[:, 0], got[:, 1])  # copied
    want = sine(440, 1.0, 48000, amplitude=0.5 * 32767)[:, 0]
    assert np.corrcoef(got[2400:45600, 0], want[2400:45600])[0, 1] > 0.999


async def test_stereo_48k_goes_into_a_mono_16k_file_averaged(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    left, right = sine(300, 1.0, 48000), np.zeros((48000, 1), np.int16)
    stereo = np.concatenate([left, right], axis=1)
    steps: list[tuple[float, str, Any]] = [
        (i * 0.01, "audio", frame(stereo[i * 480 : (i + 1) * 480], i * 480, 48000)) for i in range(100)
    ]
    out = tmp_path / "down.flac"
    result = await script(out, steps, sample_rate=16000, channels=1)
    stats = total(result)
    assert (stats["samples"], stats["gaps"], stats["overlaps"]) == (16000, 0, 0)
    got, rate, channels, _ = read(out)
    assert (rate, channels, len(got)) == (16000, 1, 16000)
    assert rms(got[800:15200]) == pytest.approx(10000 / 2 / np.sqrt(2), rel=0.02)  # half: averaged with silence


async def test_opus_takes_48k_for_a_rate_it_cannot_encode(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    out = tmp_path / "cd.opus"
    result = await mg.run(tone_graph(out, tone_rate=44100, tone_channels=1))
    (started,) = result.log.of("file_sink_started")
    assert (started.fields["sample_rate"], started.fields["channels"]) == (48000, 1)
    got, rate, channels, _ = read(out)
    assert (rate, channels) == (48000, 1)
    assert abs(len(got) - 48000) <= 960


async def test_a_frame_whose_channels_cannot_be_mapped_fails_naming_node_inlet_and_count_and_keeps_the_rest(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    out = tmp_path / "mixed.wav"
    steps: list[tuple[float, str, Any]] = [
        (0.0, "audio", frame(np.ones((4800, 2), np.int16), 0, 48000)),
        (0.1, "audio", frame(np.ones((480, 3), np.int16), 4800, 48000)),
    ]
    with pytest.raises(mg.NodeFailedError) as info:
        await script(out, steps)
    assert info.value.node == "out"
    assert str(info.value.__cause__) == (
        f"file_sink 'out' inlet 'audio' (file '{out}'): a 3-channel frame cannot go into a 2-channel file: "
        "channels are mapped only to mono (averaged) or from mono (copied) (set channels: 3 to keep them)"
    )
    got, _, channels, _ = read(out)  # finalized with what came before
    assert (channels, len(got)) == (2, 4800)


async def test_a_jump_past_max_gap_fails_naming_it_instead_of_writing_hours_of_silence(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    out = tmp_path / "jump.wav"
    steps: list[tuple[float, str, Any]] = [
        (0.0, "audio", frame(np.ones((4800, 1), np.int16), 0, 48000)),
        (0.1, "audio", frame(np.ones((480, 1), np.int16), 48000 * 3600, 48000)),  # an hour later
    ]
    with pytest.raises(mg.NodeFailedError) as info:
        await script(out, steps)
    assert str(info.value.__cause__) == (
        f"file_sink 'out' inlet 'audio' (file '{out}'): a frame 3599.900 s after the end of the audio before it "
        "(timestamp 172800000 at 48000 Hz): more than max_gap, 60.0 s, of silence to write"
    )
    got, _, _, _ = read(out)
    assert len(got) == 4800, "what came before is kept, finalized"


# --- crash safety and finalization -----------------------------------------------------------------------


@pytest.mark.parametrize("ext", list(DECODED))
async def test_a_cancelled_run_leaves_a_finalized_file(
    tmp_path: Path, ext: str, autojump_clock: trio.testing.MockClock
) -> None:
    out = tmp_path / f"endless{ext}"
    captured = await capture(tone_graph(out, duration=None), schedule=Cancel(at=2.0))
    assert captured.reason == "cancelled"
    assert not (tmp_path / f"endless{ext}.part").exists()
    got, rate, _, _ = read(out)
    assert abs(len(got) - 2 * rate) <= rate // 10
    assert rms(got[rate // 2 : rate, 0]) > 10000


@pytest.mark.parametrize("ext", list(DECODED))
async def test_the_file_in_progress_is_readable_while_written(
    tmp_path: Path, ext: str, autojump_clock: trio.testing.MockClock
) -> None:
    out, part = tmp_path / f"live{ext}", tmp_path / f"live{ext}.part"
    snapshot = tmp_path / f"snapshot{ext}"
    async with mg.open_runtime() as runtime:
        running = await runtime.start(tone_graph(out, duration=None))
        await trio.sleep_until(running.t0 + 3.0)
        assert not out.exists(), "nothing under the final name until finalized"
        shutil.copy(part, snapshot)  # what a process killed now would leave
        running.stop()
        await running.wait()
    got, rate, _, _ = read(snapshot)
    assert 2.25 * rate <= len(got) <= 3.0 * rate, "at most about half a second behind"
    assert out.exists() and not part.exists()


async def test_no_frame_at_all_leaves_an_empty_file(tmp_path: Path, autojump_clock: trio.testing.MockClock) -> None:
    out = tmp_path / "empty.flac"
    result = await script(out, [], channels=2)
    assert total(result)["samples"] == 0
    got, rate, channels, _ = read(out)
    assert (len(got), rate, channels) == (0, 48000, 2)


# --- errors -----------------------------------------------------------------------------------------------


def test_an_unsupported_extension_is_refused_naming_the_parameter() -> None:
    with pytest.raises(mg.GraphDefinitionError) as info:
        mg.Graph().add("out", "file_sink", path="call.mp3")
    assert info.value.param == "path"
    assert "unsupported extension '.mp3' (known: .ogg, .opus, .wav, .mp4, .flac)" in str(info.value)


@pytest.mark.parametrize(
    ("params", "param", "message"),
    [
        ({"path": "x.ogg", "sample_rate": 44100}, "sample_rate", "sample_rate 44100: Ogg/Opus takes 8000, 12000"),
        ({"path": "x.opus", "channels": 3}, "channels", "channels 3: Ogg/Opus takes 1, 2, 5, 6, 7, 8 channels"),
        ({"path": "x.wav", "channels": 9}, "channels", "'channels' must be <= 8"),
    ],
)
def test_a_rate_or_channel_count_the_format_cannot_take_is_refused(
    params: dict[str, Any], param: str, message: str
) -> None:
    with pytest.raises(mg.GraphDefinitionError) as info:
        mg.Graph().add("out", "file_sink", **params)
    assert info.value.param == param
    assert message in str(info.value)


@pytest.mark.parametrize("ext", [".wav", ".flac", ".ogg"])
async def test_a_full_disk_fails_naming_the_file_and_keeps_what_was_written(
    tmp_path: Path, ext: str, full_disk: Callable[[int, str | None], None], autojump_clock: trio.testing.MockClock
) -> None:
    full_disk(50_000, None)
    out, part = tmp_path / f"full{ext}", tmp_path / f"full{ext}.part"
    log = mg.EventLog()
    with pytest.raises(mg.NodeFailedError) as info:
        await mg.run(tone_graph(out, duration=60), log=log)
    assert info.value.node == "out"
    assert isinstance(info.value.__cause__, mg.ProviderError)
    message = str(info.value.__cause__)
    assert message.startswith(f"writing recording '{out}' failed: [Errno {errno.ENOSPC}] No space left on device")
    assert message.endswith(f"what was written so far is in '{part}'")
    assert not log.of("file_sink_total"), "a failed file never claims to be complete"
    (failed,) = log.of("file_sink_failed")
    assert failed.fields["part"] == str(part)
    assert not out.exists()
    got, rate, _, _ = read(part)
    assert len(got) > rate // 10, "what reached the disk is readable"


async def test_an_unwritable_folder_fails_at_start_naming_the_file(
    read_only_folder: Path, autojump_clock: trio.testing.MockClock
) -> None:
    out = read_only_folder / "x.wav"
    log = mg.EventLog()
    with pytest.raises(mg.NodeFailedError) as info:
        await mg.run(tone_graph(out, sample_rate=48000, channels=2), log=log)
    assert str(info.value.__cause__) == (
        f"cannot create recording '{out}': no permission to write in the folder '{read_only_folder}'"
    )
    assert not log.of("file_sink_started") and not log.of("file_sink_total")


# --- graph files and the command line ---------------------------------------------------------------------


async def test_a_graph_file_writes_beside_itself(tmp_path: Path, autojump_clock: trio.testing.MockClock) -> None:
    text = """
nodes:
  tone: {type: tone_source, duration: 0.5, sample_rate: 16000}
  out: {type: file_sink, path: out/tone.flac, channels: 2}
links:
  - tone.audio -> out.audio
"""
    graph_file = tmp_path / "graph.yaml"
    graph_file.write_text(text)
    loaded = mg.load_graph(graph_file, output_dirs=[])
    result = await mg.run(loaded.graph)
    assert total(result)["path"] == str(tmp_path / "out" / "tone.flac")
    got, rate, channels, _ = read(tmp_path / "out" / "tone.flac")
    assert (len(got), rate, channels) == (8000, 16000, 2)
    with pytest.raises(mg.GraphDefinitionError, match=r"parameter 'path'.*leads outside"):
        mg.parse_graph(text.replace("out/tone.flac", "../escape.flac"), base_dir=tmp_path, output_dirs=[])


def test_the_node_type_is_registered_and_described() -> None:
    assert mg.get_node_type("file_sink").config.__name__ == "FileSinkConfig"
    out = subprocess.run(
        [sys.executable, "-m", "mediagraph", "nodes", "file_sink"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("file_sink: Writes one audio stream to a file")
    assert "audio  AudioFrame  any format" in out.stdout


# --- the core, exactly ------------------------------------------------------------------------------------

FRAMES = st.lists(st.tuples(st.integers(1, 300), st.integers(-400, 400)), max_size=12)  # size, offset


@settings(deadline=None, max_examples=200)
@given(frames=FRAMES)
def test_every_sample_lands_at_its_timestamp_after_the_first_gaps_silent_overlaps_dropped(
    frames: list[tuple[int, int]],
) -> None:
    """Frames at the file's rate, each ``offset`` samples after (or, negative, before) the previous one's end."""
    placement = Placement(8000, 1)
    want: dict[int, int] = {}  # position -> value, the first one placed there winning
    position, end, value = 1000, 0, 0
    pieces = []
    gaps = overlaps = 0
    first: int | None = None
    for size, offset in frames:
        position += offset
        first = position if first is None else first
        samples = (np.arange(size, dtype=np.int16) + value)[:, None]
        value += size
        pieces += placement.add(frame(samples, position, 8000))
        at = position - first
        gaps += at > end
        overlaps += at < end
        for i in range(size):
            if at + i >= end:
                want[at + i] = int(samples[i, 0])
        end = max(end, at + size)
        position += size
    pieces += placement.flush()
    got = np.concatenate([np.zeros((0, 1), np.int16), *pieces])[:, 0]
    assert len(got) == end == placement.end
    assert [want.get(i, 0) for i in range(end)] == got.tolist()
    stats = placement.statistics()
    assert (stats["gaps"], stats["overlaps"]) == (gaps, overlaps)
    assert stats["gap_samples"] == end - len(want)
    assert stats["overlap_samples"] == sum(size for size, _ in frames) - len(want)


def test_a_resampled_stream_in_pieces_has_no_rounding_gaps() -> None:
    """44.1 kHz into 48 kHz in runs separated by real gaps: only the real gaps count."""
    placement = Placement(48000, 1)
    pieces = []
    ts = 0
    for run in range(3):
        for _ in range(37):
            pieces += placement.add(frame(sine(440, 0.01, 44100), ts, 44100))
            ts += 441
        ts += 4410 if run < 2 else 0  # 100 ms of gap
    pieces += placement.flush()
    stats = placement.statistics()
    assert (stats["gaps"], stats["overlaps"]) == (2, 0)
    assert stats["gap_samples"] == pytest.approx(2 * 4800, abs=2)
    assert placement.end == sum(len(p) for p in pieces) == pytest.approx(round(ts * 48000 / 44100), abs=2)
