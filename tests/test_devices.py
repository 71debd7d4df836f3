"""Real devices: a tone played through ``speaker`` into a PulseAudio null sink, recorded back through ``mic``
from a virtual source on the sink's monitor (``tools/pulse.sh`` sets the server up; the test command runs it).

These run on the real clock, which real devices need, but never sleep blindly: every wait is for an event
or a condition, inside ``trio.fail_after``. They are skipped only when PulseAudio cannot be started.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt
import pytest
import trio

import mediagraph as mg

RATE = 48000
FRAME = 480
ROOT = Path(__file__).resolve().parent.parent
PULSE_DIR = os.environ.get("MEDIAGRAPH_PULSE_DIR", "/tmp/mediagraph-pulse")


@attrs.frozen(kw_only=True)
class ToneConfig:
    delay: float = 0.0
    frequency: float = 1000.0
    duration: float = 0.5


@mg.node_type("device_test_tone", config=ToneConfig)
class Tone(mg.Source):
    """After ``delay`` seconds of nothing, a paced tone in 10 ms frames, then a flush."""

    @staticmethod
    def ports(config: ToneConfig) -> mg.Ports:
        return mg.Ports(outlets=[mg.OutletSpec(name="audio", format=mg.AudioFormat(sample_rate=RATE, channels=1))])

    def __init__(self, config: ToneConfig) -> None:
        self.config = config
        self.frames = round(config.duration * RATE / FRAME)
        self.sent = -1  # the first call only waits for the delay

    def start(self, io: mg.NodeIO) -> None:
        self.emit = io.outlets["audio"].emit

    def produce(self) -> float | None:
        if self.sent == self.frames:
            self.emit(mg.Flush())
            return None
        if self.sent >= 0:
            n = np.arange(self.sent * FRAME, (self.sent + 1) * FRAME)
            wave = np.round(np.sin(2 * math.pi * self.config.frequency * n / RATE) * 12000).astype(np.int16)
            self.emit(mg.AudioFrame(samples=wave[:, None], sample_rate=RATE, channels=1, timestamp=n[0].item()))
        self.sent += 1
        return self.config.delay + self.sent * FRAME / RATE


@attrs.define(eq=False)
class Tap:
    """Where a ``device_test_tap`` node puts what it receives; tests wait on it."""

    frames: list[mg.AudioFrame] = attrs.field(factory=list)
    _changed: trio.Event = attrs.field(factory=trio.Event)

    def add(self, frame: mg.AudioFrame) -> None:
        self.frames.append(frame)
        self._changed.set()
        self._changed = trio.Event()

    async def wait_frames(self, count: int) -> None:
        while len(self.frames) < count:
            await self._changed.wait()

    def samples(self) -> npt.NDArray[np.float64]:
        return np.concatenate([f.samples[:, 0] for f in self.frames]).astype(np.float64)


@attrs.frozen(kw_only=True)
class TapConfig:
    tap: Tap


@mg.node_type("device_test_tap", config=TapConfig)
class TapNode(mg.Actor):
    """Hands every frame it receives to a :class:`Tap`."""

    @staticmethod
    def ports(config: TapConfig) -> mg.Ports:
        return mg.Ports(inlets=[mg.InletSpec(name="audio")])

    def __init__(self, config: TapConfig) -> None:
        self.tap = config.tap

    async def run(self, io: mg.NodeIO) -> None:
        async for msg in io.inlets["audio"]:
            if isinstance(msg, mg.AudioFrame):
                self.tap.add(msg)


class SpyOutput:
    """The real ``sounddevice.RawOutputStream``, with a note of each block the device consumed:
    (currentTime, outputBufferDacTime, index of its first non-silent sample or None)."""

    def __init__(self, real: Any, callback: Any, **kwargs: Any) -> None:
        self.blocks: list[tuple[float, float, int | None]] = []

        def spy(outdata: Any, frames: int, time: Any, status: Any) -> None:
            callback(outdata, frames, time, status)
            loud = np.flatnonzero(np.frombuffer(outdata, dtype=np.int16))
            self.blocks.append((time.currentTime, time.outputBufferDacTime, int(loud[0]) if loud.size else None))

        self.stream = real.RawOutputStream(callback=spy, **kwargs)
        SpyOutput.last = self

    last: SpyOutput

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


class SpySounddevice:
    """A stand-in ``sounddevice`` module: the real one, output streams spied on."""

    def __init__(self, real: Any) -> None:
        self._real = real

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def RawOutputStream(self, **kwargs: Any) -> SpyOutput:
        return SpyOutput(self._real, **kwargs)


@pytest.fixture
def pulse(monkeypatch: pytest.MonkeyPatch) -> Any:
    """A running PulseAudio server (started here if needed) as PortAudio's ``pulse`` device; yields the real
    ``sounddevice`` module."""
    started = subprocess.run(
        ["bash", str(ROOT / "tools" / "pulse.sh"), "--start"],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
        check=False,
    )
    if started.returncode != 0:
        pytest.skip(f"PulseAudio cannot be started (bash tools/pulse.sh installs it): {started.stderr.strip()}")
    monkeypatch.setenv("PULSE_SERVER", f"unix:{PULSE_DIR}/native")
    monkeypatch.setenv("PULSE_SINK", "mediagraph_out")
    monkeypatch.setenv("PULSE_SOURCE", "mediagraph_in")
    import sounddevice

    # PortAudio lists devices when it starts; start it again now that the server is reachable.
    sounddevice._terminate()
    sounddevice._initialize()
    monkeypatch.setitem(sys.modules, "sounddevice", SpySounddevice(sounddevice))
    return sounddevice


def dominant_frequency(x: npt.NDArray[np.float64]) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spectrum) * RATE / len(x))


async def test_a_tone_played_through_the_speaker_is_recorded_by_the_mic(pulse: Any) -> None:
    tap = Tap()
    g = mg.Graph("loop")
    g.add("tone", "device_test_tone", delay=0.3, frequency=1000.0, duration=0.5)
    g.add("out", "speaker", device="pulse")
    g.add("mic", "mic", device="pulse")
    g.add("tap", "device_test_tap", tap=tap)
    g.link("tone.audio", "out.audio")
    g.link("mic.audio", "tap.audio")
    log = mg.EventLog()
    played = trio.Event()
    log.listen(lambda e: played.set() if e.event == "speaker_total" else None)
    with trio.fail_after(15):
        async with mg.open_runtime() as rt:
            running = await rt.start(g, log=log)
            await tap.wait_frames(1)
            stream = SpyOutput.last.stream
            # One instant on both clocks, to put the device's times on the graph clock.
            offset = stream.time - (trio.current_time() - running.t0)
            await played.wait()
            # The tone's tail is still on its way back through the server: record 0.3 s more.
            await tap.wait_frames(len(tap.frames) + 30)
            running.stop()
            result = await running.wait()

    total = result.log.of("speaker_total", "out")[0].fields
    assert total["received"] == 50
    assert total["played"] == 50 * FRAME
    recorded = tap.samples()
    assert [f.timestamp for f in tap.frames] == [i * FRAME for i in range(len(tap.frames))]
    assert np.abs(recorded).max() > 6000, "the tone came back through the null sink's monitor"
    loud = np.flatnonzero(np.abs(recorded) > 3000)
    tone = recorded[loud[0] : loud[0] + RATE // 4]
    assert dominant_frequency(tone) == pytest.approx(1000.0, abs=10)

    started = result.log.of("playback_started", "out")
    assert len(started) == 1
    at = started[0].fields["at"]
    first = next(b for b in SpyOutput.last.blocks if b[2] is not None)
    current, dac, index = first
    assert index is not None
    assert at == pytest.approx(dac - offset + index / RATE, abs=0.005), "stamped when the DAC plays the first sample"
    assert at >= current - offset, "never before the device consumed the first sample"
    assert at > 0.3, "never when the frame was queued"
    mic_total = result.log.of("mic_total", "mic")[0].fields
    assert mic_total["frames"] >= len(tap.frames)
    print(
        f"playback_started at {at:.4f}, block consumed at {current - offset:.4f}, "
        f"mic overruns {mic_total['overruns']}, input overflows {mic_total['input_overflows']}",
    )
