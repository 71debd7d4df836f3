"""Hot-swap the output device mid-utterance from Python, without disturbing the recorder above it.

    python examples/hot_swap.py            # about 3 s on the real clock, no sound card needed

A tone plays into a ``slot`` holding a virtual speaker while a recorder records it and takes the slot's
playback events. At 1.2 s the slot swaps to another speaker with policy ``cut`` (the utterance playing
finishes as interrupted at the position reached), at 2 s back with policy ``boundary``. The recorder keeps
recording through both: it is linked to the slot, never to a speaker.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import trio

import mediagraph as mg


def build(recording: Path) -> mg.Graph:
    g = mg.Graph("hot_swap")
    g.add("voice", "tone_source", frequency=330, duration=3.0)
    g.add("out", "slot", child={"type": "speaker"})
    g.add("rec", "recorder", path=recording)
    g.link("voice.audio", "out.audio")
    g.link("voice.audio", "rec.agent")
    g.link("out.playback", "rec.playback")
    return g


async def main(recording: Path | None = None) -> mg.GraphResult:
    recording = recording or Path(tempfile.mkdtemp()) / "hot_swap.wav"
    async with mg.open_runtime() as runtime:
        running = await runtime.start(build(recording))
        await trio.sleep_until(running.t0 + 1.2)
        await running.swap("out", {"type": "speaker", "block_ms": 20}, policy="cut")
        await trio.sleep_until(running.t0 + 2.0)
        await running.swap("out", {"type": "speaker"}, policy="boundary")
        result = await running.wait()
    for event in result.log:
        if event.node == "out" and event.event.startswith(("swap_", "playback_")):
            print(f"{event.t:6.3f}s  {event.event:18} {event.fields}")
    print(f"recording: {recording}")
    return result


if __name__ == "__main__":
    trio.run(main, Path(sys.argv[1]) if len(sys.argv) > 1 else None)
