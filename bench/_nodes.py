"""The benchmark's own node types, written as a user would: only the public API of ``mediagraph``.

Importing this module registers ``bench_resample``, ``bench_gain``, ``bench_tee``, ``bench_wav`` and
``bench_latency_sink``. Each is a thin shell around a core of :mod:`bench._work`, the same core the floors call.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import trio

import mediagraph as mg

from ._work import OUT_RATE, RATE, LatencyProbe, Resampler, WavWriter, apply_gain

_MONO_48K = mg.AudioFormat(sample_rate=RATE, channels=1)
_MONO_16K = mg.AudioFormat(sample_rate=OUT_RATE, channels=1)


@attrs.frozen(kw_only=True)
class NoConfig:
    pass


@mg.node_type("bench_resample", config=NoConfig)
class BenchResample(mg.Transform):
    """48 kHz to 16 kHz mono with soxr's streaming resampler (VHQ); control messages pass through."""

    @staticmethod
    def ports(config: NoConfig) -> mg.Ports:
        return mg.Ports(
            inlets=[mg.InletSpec(name="audio", format=_MONO_48K)],
            outlets=[mg.OutletSpec(name="audio", format=_MONO_16K)],
        )

    def __init__(self, config: NoConfig) -> None:
        self._core = Resampler()

    def start(self, io: mg.NodeIO) -> None:
        self._emit = io.outlets["audio"].emit

    def process(self, inlet: str, msg: Any) -> None:
        if type(msg) is mg.AudioFrame:
            out = self._core.process(msg)
            if out is not None:
                self._emit(out)
        else:
            self._emit(msg)

    def finish(self) -> None:
        tail = self._core.flush()
        if tail is not None:
            self._emit(tail)


@mg.node_type("bench_gain", config=NoConfig)
class BenchGain(mg.Transform):
    """Gain 0.5 with clipping to int16."""

    @staticmethod
    def ports(config: NoConfig) -> mg.Ports:
        return mg.Ports(
            inlets=[mg.InletSpec(name="audio")],
            outlets=[mg.OutletSpec(name="audio", format=mg.SameAs("audio"))],
        )

    def __init__(self, config: NoConfig) -> None:
        pass

    def start(self, io: mg.NodeIO) -> None:
        self._emit = io.outlets["audio"].emit

    def process(self, inlet: str, msg: Any) -> None:
        self._emit(apply_gain(msg) if type(msg) is mg.AudioFrame else msg)


@mg.node_type("bench_tee", config=NoConfig)
class BenchTee(mg.Transform):
    """Sends every message to both outlets, ``a`` then ``b``."""

    @staticmethod
    def ports(config: NoConfig) -> mg.Ports:
        return mg.Ports(
            inlets=[mg.InletSpec(name="audio")],
            outlets=[
                mg.OutletSpec(name="a", format=mg.SameAs("audio")),
                mg.OutletSpec(name="b", format=mg.SameAs("audio")),
            ],
        )

    def __init__(self, config: NoConfig) -> None:
        pass

    def start(self, io: mg.NodeIO) -> None:
        self._a = io.outlets["a"].emit
        self._b = io.outlets["b"].emit

    def process(self, inlet: str, msg: Any) -> None:
        self._a(msg)
        self._b(msg)


@attrs.frozen(kw_only=True)
class WavConfig:
    path: str


@mg.node_type("bench_wav", config=WavConfig)
class BenchWav(mg.Actor):
    """Writes its audio to a WAV file with the stdlib ``wave`` module (``WavWriter``: 64 frames per write).

    Resource handling: the file is opened at the first frame and finalized when the input ends, or in
    :meth:`cleanup` if the node is cancelled first.
    """

    @staticmethod
    def ports(config: WavConfig) -> mg.Ports:
        return mg.Ports(inlets=[mg.InletSpec(name="audio", format=mg.AudioFormat(channels=1))])

    def __init__(self, config: WavConfig) -> None:
        self._writer = WavWriter(Path(config.path))

    async def run(self, io: mg.NodeIO) -> None:
        inlet = io.inlets["audio"]
        while True:
            try:
                batch = await inlet.receive_batch()
            except trio.EndOfChannel:
                break
            # Blocking file I/O inside the task, as the floors do: a few hundred bytes per frame, page cache only.
            self._writer.add(m for m in batch if type(m) is mg.AudioFrame)
        self._writer.close()
        io.log("wav_total", samples=self._writer.samples)

    async def cleanup(self) -> None:
        self._writer.close()


@attrs.frozen(kw_only=True)
class LatencySinkConfig:
    probe: LatencyProbe


@mg.node_type("bench_latency_sink", config=LatencySinkConfig)
class BenchLatencySink(mg.Transform):
    """Records each frame's lateness (arrival on the graph clock minus its media time) into a probe."""

    @staticmethod
    def ports(config: LatencySinkConfig) -> mg.Ports:
        return mg.Ports(inlets=[mg.InletSpec(name="audio")])

    def __init__(self, config: LatencySinkConfig) -> None:
        self._probe = config.probe
        self._record = config.probe.lateness.append

    def start(self, io: mg.NodeIO) -> None:
        self._io = io

    def process(self, inlet: str, msg: Any) -> None:
        if self._probe.active and type(msg) is mg.AudioFrame:
            self._record(self._io.time() - msg.timestamp / msg.sample_rate)
