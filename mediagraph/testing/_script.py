"""A scripted audio source for playback tests: ``test_audio_script``. Importing this module registers it."""

from __future__ import annotations

from collections.abc import Iterable
from typing import final

import attrs
import numpy as np

import mediagraph as mg

__all__ = ["AudioScript", "ScriptConfig", "Step"]

#: One step of a :class:`ScriptConfig` script: ``("frame", 0)`` one frame, ``("flush", 0)``, ``("interrupt", 0)``,
#: or ``("wait", seconds)``.
Step = tuple[str, float]
_STEP_KINDS = ("frame", "flush", "interrupt", "wait")


def _steps(steps: Iterable[Step]) -> tuple[Step, ...]:
    out = tuple((str(kind), float(value)) for kind, value in steps)
    for kind, value in out:
        if kind not in _STEP_KINDS or value < 0:
            raise ValueError(f"script step ({kind!r}, {value}): expected one of {', '.join(_STEP_KINDS)}, value >= 0")
    return out


@final
@attrs.frozen(kw_only=True)
class ScriptConfig:
    """Args:
    script: the steps, played on the graph clock: each frame takes its own duration, each wait its seconds,
        flushes and interrupts none.
    sample_rate: Hz, mono.
    frame_samples: samples per frame.
    """

    script: tuple[Step, ...] = attrs.field(default=(), converter=_steps)
    sample_rate: int = attrs.field(default=48000, validator=attrs.validators.gt(0))
    frame_samples: int = attrs.field(default=480, validator=attrs.validators.gt(0))


@final
@mg.node_type("test_audio_script", config=ScriptConfig)
class AudioScript(mg.Source):
    """Plays a script of audio frames, flushes, interrupts and pauses on the graph clock. Frame ``n`` holds the
    value ``n + 1`` in every sample and has timestamp ``n * frame_samples``, so a sink can tell which it got."""

    @staticmethod
    def ports(config: ScriptConfig) -> mg.Ports:
        fmt = mg.AudioFormat(sample_rate=config.sample_rate, channels=1)
        return mg.Ports(outlets=[mg.OutletSpec(name="audio", format=fmt)])

    def __init__(self, config: ScriptConfig) -> None:
        self.config = config
        self.steps = list(config.script)
        self.at = 0.0
        self.frames = 0

    def start(self, io: mg.NodeIO) -> None:
        self.emit = io.outlets["audio"].emit

    def produce(self) -> float | None:
        cfg = self.config
        while self.steps:
            kind, value = self.steps.pop(0)
            if kind == "frame":
                samples = np.full((cfg.frame_samples, 1), self.frames + 1, np.int16)
                timestamp = self.frames * cfg.frame_samples
                self.emit(mg.AudioFrame(samples=samples, sample_rate=cfg.sample_rate, channels=1, timestamp=timestamp))
                self.frames += 1
                self.at += cfg.frame_samples / cfg.sample_rate
                return self.at
            if kind == "wait":
                self.at += value
                return self.at
            self.emit(mg.Flush() if kind == "flush" else mg.Interrupt())
        return None
