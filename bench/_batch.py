"""BATCH: a denoise-and-record graph (``graphs/denoise_file.yaml``: a file through livekit's noise suppression
into an Ogg/Opus file) over N copies of the bundled noisy speech, three ways, in one run:

- ``one-process``: the files one after another in this process, each graph on the virtual clock (what a
  script calling :func:`mediagraph.run_virtual` in a loop gets);
- ``pool-1``: ``mediagraph batch`` on the local pool with one worker process (the pool's own cost);
- ``pool-P``: the same with P worker processes, one session each at a time.

Each line gives the wall seconds, files and media seconds per wall second, and the speed against
``one-process``. Every output is checked to exist and to hold the whole input.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Final

import av
import trio

import mediagraph as mg
from mediagraph.cluster import open_pool, plan_batch, run_batch, substitute

ROOT: Final = Path(__file__).resolve().parents[1]
GRAPH: Final = ROOT / "graphs" / "denoise_file.yaml"
SAMPLE: Final = ROOT / "graphs" / "media" / "noisy_speech.ogg"
SETS: Final = ("source.path={file}", "cleaned.path={dir}/out/{stem}.ogg")


def _inputs(folder: Path, count: int) -> list[Path]:
    folder.mkdir(parents=True)
    paths = [folder / f"call{i:03d}.ogg" for i in range(count)]
    for path in paths:
        shutil.copyfile(SAMPLE, path)
    return paths


def _seconds(path: Path) -> float:
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        return float(sum(frame.samples for frame in container.decode(stream)) / stream.rate)


def _check(outputs: list[Path], media: float) -> None:
    for path in outputs:
        got = _seconds(path)
        if abs(got - media) > 0.1:
            raise SystemExit(f"bench BATCH: {path} holds {got:.2f} s, expected {media:.2f} s")


def _one_process(paths: list[Path]) -> list[Path]:
    outputs: list[Path] = []
    for index, path in enumerate(paths):
        overrides = [mg.Override.parse(substitute(text, path, index)) for text in SETS]
        gf = mg.load_graph(GRAPH, overrides=overrides)
        mg.run_virtual(mg.run, gf.graph)
        outputs.extend(p.path for p in gf.paths if p.role == "output")
    return outputs


def _pool(paths: list[Path], processes: int) -> list[Path]:
    plan = plan_batch(GRAPH, paths, SETS)

    async def main() -> None:
        async with open_pool(processes=processes, clock="virtual", sessions_per_worker=1) as pool:
            await run_batch(pool, plan, parallel=processes)

    trio.run(main)
    failed = [item for item in plan.items if item.state != "ok"]
    if failed:
        raise SystemExit(f"bench BATCH: {failed[0].path} {failed[0].state}: {failed[0].error}")
    return [output for item in plan.items for output in item.outputs]


def run(count: int, processes: int) -> list[dict[str, object]]:
    """The three ways over ``count`` files; a dict of fields per way, in order."""
    media = _seconds(SAMPLE)
    lines = []
    floor = None
    with tempfile.TemporaryDirectory(prefix="mediagraph-bench-batch-") as tmp:
        ways = [("one-process", 0), ("pool-1", 1), (f"pool-{processes}", processes)]
        for name, workers in ways:
            folder = Path(tmp) / name
            paths = _inputs(folder, count)
            began = time.perf_counter()
            outputs = _one_process(paths) if workers == 0 else _pool(paths, workers)
            wall = time.perf_counter() - began
            _check(outputs, media)
            floor = floor or wall
            lines.append(
                {
                    "way": name,
                    "files": count,
                    "media_s": count * media,
                    "wall_s": wall,
                    "files_per_s": count / wall,
                    "media_s_per_s": count * media / wall,
                    "vs_one_process": floor / wall,
                }
            )
    return lines
