"""``tone_source``: a sine tone, paced by the graph clock or as fast as the graph takes it."""

from __future__ import annotations

import functools
import math
from typing import final

import attrs
import numpy as np
import numpy.typing as npt

import mediagraph as mg

from ._audio import holds_a_sample, passes_own_check

_v = attrs.validators


def _below_nyquist(config: ToneConfig, _: attrs.Attribute[float], value: float) -> None:
    if passes_own_check(config, "sample_rate") and value > config.sample_rate / 2:
        raise ValueError(f"frequency {value} Hz is above half the sample rate {config.sample_rate} Hz")


@final
@attrs.frozen(kw_only=True)
class ToneConfig:
    """Args:
    frequency: Hz, between 0 and half the sample rate.
    amplitude: peak level, 0 to 1 of full scale.
    sample_rate: Hz.
    channels: the same tone on each channel.
    frame_ms: frame length in milliseconds.
    duration: seconds of tone; ``None`` for endless (stop the graph to end it).
    paced: release each frame at its media time on the graph clock; ``False``: as fast as possible.
    """

    frequency: float = attrs.field(default=440.0, validator=[_v.ge(0), _below_nyquist])
    amplitude: float = attrs.field(default=0.5, validator=[_v.ge(0), _v.le(1)])
    sample_rate: int = attrs.field(default=48000, validator=[_v.ge(8000), _v.le(384000)])
    channels: int = attrs.field(default=1, validator=[_v.ge(1), _v.le(8)])
    frame_ms: float = attrs.field(
        default=10.0, validator=[_v.gt(0), _v.le(1000), holds_a_sample(lambda c: c.sample_rate)]
    )
    duration: float | None = attrs.field(default=None, validator=_v.optional(_v.ge(0)))
    paced: bool = True

    @property
    def media_seconds(self) -> float | None:
        """How long it plays (``None``: endless), for the command line's progress."""
        return self.duration


def _render(
    frequency: float, amplitude: float, rate: int, channels: int, start: int, count: int
) -> npt.NDArray[np.int16]:
    n = np.arange(start, start + count, dtype=np.float64)
    mono = np.round(np.sin(2 * math.pi * frequency * n / rate) * (amplitude * 32767)).astype(np.int16)
    return np.repeat(mono[:, None], channels, axis=1) if channels > 1 else mono[:, None]


@functools.lru_cache(maxsize=32)
def _cycle(
    frequency: float, amplitude: float, rate: int, channels: int, frame_len: int
) -> tuple[npt.NDArray[np.int16], ...]:
    """One second of a whole-Hz tone cut into frames: views shared by every source playing it (never written to)."""
    samples = _render(frequency, amplitude, rate, channels, 0, rate)
    samples.flags.writeable = False
    return tuple(samples[i : i + frame_len] for i in range(0, rate, frame_len))


@final
@mg.node_type("tone_source", config=ToneConfig)
class ToneSource(mg.Source):
    """A sine tone in int16 frames with exact timestamps."""

    @staticmethod
    def ports(config: ToneConfig) -> mg.Ports:
        fmt = mg.AudioFormat(sample_rate=config.sample_rate, channels=config.channels)
        return mg.Ports(outlets=[mg.OutletSpec(name="audio", format=fmt)])

    def __init__(self, config: ToneConfig) -> None:
        self.config = config
        self.frame_len = round(config.sample_rate * config.frame_ms / 1000)
        self.total = None if config.duration is None else round(config.duration * config.sample_rate)
        self.position = 0  # samples emitted
        self._rate = config.sample_rate
        self._channels = config.channels
        self._paced = config.paced
        # For a whole-Hz tone one second of samples repeats exactly; when frames tile that second, every frame
        # is one of the same views into it and producing one costs no numpy work at all.
        self._views: tuple[npt.NDArray[np.int16], ...] | None = None
        if config.frequency.is_integer() and config.sample_rate % self.frame_len == 0:
            cfg = config
            self._views = _cycle(cfg.frequency, cfg.amplitude, cfg.sample_rate, cfg.channels, self.frame_len)

    def __repr__(self) -> str:
        return f"<ToneSource {self.config.frequency} Hz at {self.position} samples>"

    def _render(self, start: int, count: int) -> npt.NDArray[np.int16]:
        cfg = self.config
        return _render(cfg.frequency, cfg.amplitude, cfg.sample_rate, cfg.channels, start, count)

    def start(self, io: mg.NodeIO) -> None:
        self._emit = io.outlets["audio"].emit

    def produce(self) -> float | None:
        position = self.position
        count = self.frame_len
        if self.total is not None and position + count > self.total:
            count = self.total - position
            if count <= 0:
                return None
        rate = self._rate
        if self._views is not None and count == self.frame_len:
            samples = self._views[position % rate // count]
        else:
            samples = self._render(position, count)
        self._emit(mg.AudioFrame(samples=samples, sample_rate=rate, channels=self._channels, timestamp=position))
        self.position = position = position + count
        if self.total is not None and position >= self.total:
            return None
        return position / rate if self._paced else 0.0
