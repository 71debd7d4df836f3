"""A custom node type in a dozen lines: a level meter that logs the loudest frame of each second.

    python examples/custom_node.py

A node type is a frozen attrs config plus a class implementing one small interface (here ``Transform``:
synchronous, so the runtime may run it inside the task upstream of it) and declaring its ports.
"""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np
import trio

import mediagraph as mg


@attrs.frozen(kw_only=True)
class LevelMeterConfig:
    """Args:
    window: seconds of media per report.
    """

    window: float = attrs.field(default=1.0, validator=attrs.validators.gt(0))


@mg.node_type("level_meter", config=LevelMeterConfig)
class LevelMeter(mg.Transform):
    """Passes audio through and logs its peak level (dBFS) once per window."""

    @staticmethod
    def ports(config: LevelMeterConfig) -> mg.Ports:
        return mg.Ports(
            inlets=[mg.InletSpec(name="audio")],
            outlets=[mg.OutletSpec(name="audio", format=mg.SameAs("audio"))],
        )

    def __init__(self, config: LevelMeterConfig) -> None:
        self.config = config
        self.peak = 0
        self.seconds = 0.0

    def start(self, io: mg.NodeIO) -> None:
        self.io = io
        self.emit = io.outlets["audio"].emit

    def process(self, inlet: str, msg: Any) -> None:
        if isinstance(msg, mg.AudioFrame):
            self.peak = max(self.peak, int(np.abs(msg.samples.astype(np.int32)).max(initial=0)))
            self.seconds += msg.duration
            if self.seconds >= self.config.window:
                self.report()
        self.emit(msg)

    def finish(self) -> None:
        if self.seconds:
            self.report()

    def report(self) -> None:
        dbfs = 20 * np.log10(max(self.peak, 1) / 32768)
        self.io.log("level", peak_dbfs=round(float(dbfs), 1), seconds=round(self.seconds, 3))
        self.peak, self.seconds = 0, 0.0


async def main() -> mg.GraphResult:
    g = mg.Graph("meter")
    g.add("tone", "tone_source", amplitude=0.25, duration=2.5)
    g.add("meter", "level_meter")
    g.add("sink", "null_sink")
    g.link("tone.audio", "meter.audio")
    g.link("meter.audio", "sink.audio")
    result = await mg.run(g)
    for event in result.log.of("level"):
        print(f"{event.t:5.2f}s  peak {event.fields['peak_dbfs']} dBFS over {event.fields['seconds']} s")
    return result


if __name__ == "__main__":
    trio.run(main)
