"""Pass-through and counting nodes: ``identity`` and ``null_sink``."""

from __future__ import annotations

from typing import Any, final

import attrs

import mediagraph as mg


@final
@attrs.frozen(kw_only=True)
class IdentityConfig:
    pass


@final
@mg.node_type("identity", config=IdentityConfig)
class Identity(mg.Transform):
    """Passes every message through unchanged."""

    @staticmethod
    def ports(config: IdentityConfig) -> mg.Ports:
        return mg.Ports(
            inlets=[mg.InletSpec(name="audio")],
            outlets=[mg.OutletSpec(name="audio", format=mg.SameAs("audio"))],
        )

    def __init__(self, config: IdentityConfig) -> None:
        self.config = config

    def start(self, io: mg.NodeIO) -> None:
        self._emit = io.outlets["audio"].emit

    def process(self, inlet: str, msg: Any) -> None:
        self._emit(msg)


@final
@attrs.frozen(kw_only=True)
class NullSinkConfig:
    pass


@final
@mg.node_type("null_sink", config=NullSinkConfig)
class NullSink(mg.Transform):
    """Counts and discards audio; logs the totals (``sink_total``) when its input ends."""

    @staticmethod
    def ports(config: NullSinkConfig) -> mg.Ports:
        return mg.Ports(inlets=[mg.InletSpec(name="audio")])

    def __init__(self, config: NullSinkConfig) -> None:
        self.frames = 0
        self.samples = 0
        self.seconds = 0.0

    def __repr__(self) -> str:
        return f"<NullSink frames={self.frames} samples={self.samples}>"

    def start(self, io: mg.NodeIO) -> None:
        self._io = io

    def process(self, inlet: str, msg: Any) -> None:
        if type(msg) is mg.AudioFrame:
            self.frames += 1
            self.samples += msg.samples.shape[0]
            self.seconds += msg.samples.shape[0] / msg.sample_rate

    def finish(self) -> None:
        self._io.log("sink_total", frames=self.frames, samples=self.samples, seconds=round(self.seconds, 6))
