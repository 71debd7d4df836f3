"""mediagraph's side of each workload: graphs of registered node types, run through the public API."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Final

import trio

import mediagraph as mg

from . import _nodes  # noqa: F401 - registers the bench_* node types
from ._floors import W3_K, Window, check
from ._work import FRAME, OUT_RATE, PERIOD, RATE, LatencyProbe, wav_samples

#: name -> (fuse, pace): the runtime's options each mediagraph peer runs with.
VARIANTS: Final = {
    "mediagraph": (True, True),
    "mediagraph-plain": (False, False),
    "mediagraph-unfused": (False, True),
    "mediagraph-unpaced": (True, False),
}

#: W3 starts at most this many sessions per frame period, so session phases stay spread when starting is slow.
STARTS_PER_PERIOD: Final = 50
#: W3 stops starting sessions after this many seconds (plus so many per session); the line then says how many
#: started. Each start waits for the graph's nodes to be scheduled, which under overload takes very long.
START_BUDGET: Final = 1.0
START_BUDGET_PER_SESSION: Final = 0.01


def _chain(g: mg.Graph, src: str, k: int) -> str:
    """Append K identity nodes after ``src``; the last node's name."""
    prev = src
    for i in range(k):
        g.add(f"id{i}", "identity")
        g.link(f"{prev}.audio", f"id{i}.audio")
        prev = f"id{i}"
    return prev


def _field(result: mg.GraphResult, event: str, name: str) -> Any:
    (entry,) = result.log.of(event)
    return entry.fields[name]


def w1_graph(k: int, n: int) -> mg.Graph:
    g = mg.Graph(f"w1-k{k}")
    g.add("src", "tone_source", paced=False, duration=n * PERIOD)
    g.add("sink", "null_sink")
    g.link(f"{_chain(g, 'src', k)}.audio", "sink.audio")
    return g


def w1(variant: str, k: int, n: int) -> float:
    fuse, pace = VARIANTS[variant]
    graph = w1_graph(k, n)

    async def main() -> float:
        t = time.perf_counter()
        result = await mg.run(graph, fuse=fuse, pace=pace)
        elapsed = time.perf_counter() - t
        check(f"{variant} W1 sink frames", _field(result, "sink_total", "frames"), n)
        return elapsed

    return trio.run(main)


def w2_graph(n: int, path: Path) -> mg.Graph:
    g = mg.Graph("w2")
    g.add("src", "tone_source", paced=False, duration=n * PERIOD)
    g.add("resample", "bench_resample")
    g.add("gain", "bench_gain")
    g.add("tee", "bench_tee")
    g.add("wav", "bench_wav", path=str(path))
    g.add("sink", "null_sink")
    g.link("src.audio", "resample.audio")
    g.link("resample.audio", "gain.audio")
    g.link("gain.audio", "tee.audio")
    g.link("tee.a", "wav.audio")
    g.link("tee.b", "sink.audio")
    return g


def w2(variant: str, n: int, path: Path) -> float:
    fuse, pace = VARIANTS[variant]
    graph = w2_graph(n, path)

    async def main() -> float:
        t = time.perf_counter()
        result = await mg.run(graph, fuse=fuse, pace=pace)
        elapsed = time.perf_counter() - t
        samples = _field(result, "sink_total", "samples")
        check(f"{variant} W2 sink samples", samples, n * FRAME * OUT_RATE // RATE)
        check(f"{variant} W2 WAV samples (logged)", _field(result, "wav_total", "samples"), samples)
        check(f"{variant} W2 WAV samples (on disk)", wav_samples(path), samples)
        return elapsed

    return trio.run(main)


def w3_graph(i: int, probe: LatencyProbe) -> mg.Graph:
    g = mg.Graph(f"session{i}")
    g.add("src", "tone_source", paced=True)
    g.add("sink", "bench_latency_sink", probe=probe)
    g.link(f"{_chain(g, 'src', W3_K)}.audio", "sink.audio")
    return g


def w3(variant: str, n: int, seconds: float, warmup: float, probe: LatencyProbe) -> Window:
    """N sessions on one runtime, so paced sources share its pacer; each graph's start sets its phase."""
    fuse, pace = VARIANTS[variant]
    graphs = [w3_graph(i, probe) for i in range(n)]

    async def main() -> Window:
        window = Window()
        async with mg.open_runtime() as rt:
            base = trio.current_time() + 0.05
            give_up = base + START_BUDGET + n * START_BUDGET_PER_SESSION
            running = []
            for i, graph in enumerate(graphs):
                if trio.current_time() > give_up:  # overloaded: starting the rest could take minutes
                    break
                await trio.sleep_until(base + (i // STARTS_PER_PERIOD + i / n) * PERIOD)
                running.append(await rt.start(graph, fuse=fuse, pace=pace))
            window.started = len(running)
            await trio.sleep(warmup)
            await window.measure(probe, seconds, trio.sleep)
            for run in running:
                run.stop()
        return window

    return trio.run(main)
