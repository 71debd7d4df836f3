"""``python -m bench [W1] [W2] [W3] [AV] [BATCH] [options]``: run the workloads, a line per configuration."""

from __future__ import annotations

import argparse
import functools
import gc
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Final

from . import _av, _batch, _floors, _mg, _procs
from ._work import PERIOD, LatencyProbe

W1_PEERS: Final[dict[str, Callable[[int, int], float]]] = {
    "direct-sync": _floors.w1_direct_sync,
    "asyncio-queue-64": _floors.w1_asyncio_queue,
    "trio-chan-64": _floors.w1_trio_chan,
    **{v: functools.partial(_mg.w1, v) for v in _mg.VARIANTS},
}
W2_PEERS: Final[dict[str, Callable[[int, Path], float]]] = {
    "direct-sync": _floors.w2_direct_sync,
    "asyncio-queue-64": _floors.w2_asyncio_queue,
    "trio-chan-64": _floors.w2_trio_chan,
    **{v: functools.partial(_mg.w2, v) for v in _mg.VARIANTS},
}
W3Run = Callable[[int, float, float, LatencyProbe], _floors.Window]
W3_PEERS: Final[dict[str, W3Run]] = {
    "direct-asyncio": _floors.w3_direct_asyncio,
    "direct-trio": _floors.w3_direct_trio,
    "asyncio-queue-64": _floors.w3_asyncio_queue,
    "trio-chan-64": _floors.w3_trio_chan,
    **{v: functools.partial(_mg.w3, v) for v in _mg.VARIANTS},
}
#: Peers run when ``--peers`` is not given (the other mediagraph variants are there to look into the runtime).
DEFAULT_PEERS: Final = (
    "direct-sync",
    "direct-asyncio",
    "direct-trio",
    "asyncio-queue-64",
    "trio-chan-64",
    "mediagraph",
    "mediagraph-plain",
)
W3_HOPS: Final = _floors.W3_K + 1
W2_HOPS: Final = 5  # src->resample, resample->gain, gain->tee, tee->wav, tee->sink
P99_LIMIT_MS: Final = 20.0


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("workloads", nargs="*", metavar="{W1,W2,W3,AV,BATCH}", help="default: W1, W2 and W3")
    p.add_argument("--k", type=_ints, help="W1 chain lengths (default 1,5,20)")
    p.add_argument("--frames", type=int, help="W1/W2 frames per run (default 20000; --quick 2000)")
    p.add_argument("--sessions", type=_ints, help="W3 session counts (default 10,50,200,400,600; --quick 10,50)")
    p.add_argument("--seconds", type=float, help="W3 measured window (default 5; --quick 1); AV run length (10; 3)")
    p.add_argument("--clock", choices=["real", "virtual"], default="real", help="AV: the graph clock")
    p.add_argument("--warmup", type=float, help="W3 seconds after the last session started (default 0.5)")
    p.add_argument("--repeat", type=int, help="W1/W2 runs per configuration (default 3; --quick 1)")
    p.add_argument("--stat", choices=["best", "median"], default="best", help="how repeats combine")
    p.add_argument("--peers", type=lambda s: s.split(","), help="comma-separated peer names to run")
    p.add_argument(
        "--search", action="store_true", help="W3: then try mediagraph at --search-step steps until p99 > 20 ms"
    )
    p.add_argument("--search-step", type=int, default=200, help="W3 --search: sessions added at each step")
    p.add_argument("--search-max", type=int, default=1000, help="W3 --search: the most sessions to try")
    p.add_argument(
        "--processes",
        type=int,
        default=1,
        help="W3: also run mediagraph's sessions shared out over this many processes (one trio run each)",
    )
    p.add_argument("--files", type=int, help="BATCH: input files (default 50; --quick 6)")
    p.add_argument("--quick", action="store_true", help="a fast smoke run (well under a minute)")
    return p


def _line(peer: str, workload: str, **fields: object) -> None:
    def fmt(value: object) -> str:
        if isinstance(value, float):
            if math.isnan(value):
                return "nan"
            return f"{value:.0f}" if abs(value) >= 1000 else f"{value:.3g}" if abs(value) < 1 else f"{value:.2f}"
        return str(value)

    text = " ".join(f"{k}={fmt(v)}" for k, v in fields.items())
    print(f"peer={peer} workload={workload} {text}", flush=True)


def _measure_all[K](runs: Mapping[K, Callable[[], float]], repeat: int, stat: str) -> dict[K, float]:
    """Run every configuration ``repeat`` times, in rounds of one run each, and combine each one's times.

    Interleaved so that a change in the machine's speed during a workload (a shared VM drifts by tens of percent
    over minutes) reaches every peer alike, and the ratios between peers of one run stay meaningful.
    """
    times: dict[K, list[float]] = {key: [] for key in runs}
    for _ in range(repeat):
        for key, fn in runs.items():
            gc.collect()
            times[key].append(fn())
    return {key: min(t) if stat == "best" else statistics.median(t) for key, t in times.items()}


def run_w1(peers: Sequence[str], ks: Sequence[int], n: int, repeat: int, stat: str) -> None:
    ks = sorted(set(ks))
    chosen = [p for p in W1_PEERS if p in peers]
    runs = {(peer, k): functools.partial(W1_PEERS[peer], k, n) for peer in chosen for k in ks}
    per_frame = {key: t / n for key, t in _measure_all(runs, repeat, stat).items()}
    lo, hi = ks[0], ks[-1]
    for peer in chosen:
        for k in ks:
            fields: dict[str, object] = {
                "k": k,
                "frames": n,
                "hops_per_frame": k + 1,
                "frames_per_s": 1 / per_frame[peer, k],
                "us_per_hop": per_frame[peer, k] / (k + 1) * 1e6,
                "us_per_frame": per_frame[peer, k] * 1e6,
            }
            if k == hi and lo < hi:
                fields["us_per_hop_marginal"] = (per_frame[peer, hi] - per_frame[peer, lo]) / (hi - lo) * 1e6
            _line(peer, "W1", **fields)


def run_w2(peers: Sequence[str], n: int, repeat: int, stat: str) -> None:
    with tempfile.TemporaryDirectory(prefix="mediagraph-bench-") as tmp:
        chosen = [p for p in W2_PEERS if p in peers]
        runs = {peer: functools.partial(W2_PEERS[peer], n, Path(tmp) / f"{peer}.wav") for peer in chosen}
        per_frame = {peer: t / n for peer, t in _measure_all(runs, repeat, stat).items()}
    floor = per_frame.get("direct-sync")
    for peer in chosen:
        fields: dict[str, object] = {
            "frames": n,
            "hops_per_frame": W2_HOPS,
            "frames_per_s": 1 / per_frame[peer],
            "us_per_hop": per_frame[peer] / W2_HOPS * 1e6,
            "us_per_frame": per_frame[peer] * 1e6,
        }
        if floor is not None:
            fields["vs_direct_sync"] = floor / per_frame[peer]
        _line(peer, "W2", **fields)


def _w3_once(peer: str, n: int, seconds: float, warmup: float, processes: int = 1) -> float:
    """Run one W3 configuration, print its line, return its p99 lateness in ms (inf if not all started).
    ``processes`` > 1: mediagraph's sessions shared out over that many processes (``_procs``)."""
    gc.collect()
    probe = LatencyProbe()
    if processes > 1:
        window = _procs.w3_processes(n, seconds, warmup, probe, processes)
    else:
        window = W3_PEERS[peer](n, seconds, warmup, probe)
    frames = len(probe.lateness)
    p50, p99, worst = probe.percentiles_ms()
    _line(
        peer,
        "W3",
        **({"processes": processes} if processes > 1 else {}),
        frames=frames,
        hops_per_frame=W3_HOPS,
        frames_per_s=frames / window.wall,
        us_per_hop=window.cpu / max(frames, 1) / W3_HOPS * 1e6,  # CPU time
        sessions=n,
        p50_late_ms=p50,
        p99_late_ms=p99,
        cpu_pct=window.cpu / window.wall * 100,
        max_late_ms=worst,
        delivered_pct=frames / (n * window.wall / PERIOD) * 100,
        started=window.started,
        load1=os.getloadavg()[0],
    )
    return p99 if window.started == n else math.inf


def run_w3(
    peers: Sequence[str],
    sizes: Sequence[int],
    seconds: float,
    warmup: float,
    search: int | None,
    processes: int = 1,
    step: int = 200,
) -> None:
    """Each peer at each size; with ``processes`` > 1, mediagraph over that many processes too (peer key
    ``mediagraph xP``); with ``search``, mediagraph (and over the processes) at 200-session steps further, until
    its p99 passes 20 ms (``step`` sessions at a time)."""
    runs: dict[str, tuple[str, int]] = {peer: (peer, 1) for peer in W3_PEERS if peer in peers}
    if processes > 1 and "mediagraph" in peers:
        runs[f"mediagraph x{processes}"] = ("mediagraph", processes)
    results: dict[str, dict[int, float]] = {}
    for n in sizes:
        for key, (peer, count) in runs.items():
            results.setdefault(key, {})[n] = _w3_once(peer, n, seconds, warmup, count)
    for key, (peer, count) in runs.items():
        if search is None or peer != "mediagraph":
            continue
        tried = results.setdefault(key, {})
        n = (max(sizes, default=0) // step + 1) * step  # the next multiple of the step above what was tried
        while n <= search and (not tried or tried[max(tried)] <= P99_LIMIT_MS):
            tried[n] = _w3_once(peer, n, seconds, warmup, count)
            n += step
    most: dict[str, int] = {}
    for key, tried in results.items():
        ok = [n for n, p99 in tried.items() if p99 <= P99_LIMIT_MS]
        best = most[key] = max(ok, default=0)
        peer, count = runs[key]
        ratio = {}
        if count > 1 and most.get(peer):
            ratio = {"vs_one_process": best / most[peer]}
        _line(
            peer,
            "W3-max",
            **({"processes": count} if count > 1 else {}),
            hops_per_frame=W3_HOPS,
            sessions_tried=",".join(map(str, sorted(tried))),
            p99_late_ms=tried.get(best, math.nan),
            load1=os.getloadavg()[0],
            max_sessions_p99_le_20ms=best,
            **ratio,
        )


def run_av(seconds: float, clock: str) -> None:
    for pattern in _av.PATTERNS:
        gc.collect()
        _line(
            "mediagraph",
            "AV",
            pattern=pattern,
            clock=clock,
            seconds=seconds,
            **_av.run_pattern(pattern, seconds, clock),
        )


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    quick = args.quick
    workloads = args.workloads or ["W1", "W2", "W3"]
    known_workloads = {"W1", "W2", "W3", "AV", "BATCH"}
    if not set(workloads) <= known_workloads:
        _parser().error(f"unknown workload(s) {', '.join(sorted(set(workloads) - known_workloads))}")
    peers = args.peers or list(DEFAULT_PEERS)
    known = set(W1_PEERS) | set(W2_PEERS) | set(W3_PEERS)
    unknown = [p for p in peers if p not in known]
    if unknown:
        _parser().error(f"unknown peer(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    frames = args.frames or (2000 if quick else 20000)
    repeat = args.repeat or (1 if quick else 3)
    print(
        f"# mediagraph bench {time.strftime('%Y-%m-%d %H:%M')} python {platform.python_version()} "
        f"{platform.machine()} cpus={os.cpu_count()} load1={os.getloadavg()[0]:.2f} stat={args.stat} repeat={repeat}",
        file=sys.stderr,
        flush=True,
    )
    if "W1" in workloads:
        run_w1(peers, args.k or [1, 5, 20], frames, repeat, args.stat)
    if "W2" in workloads:
        run_w2(peers, frames, repeat, args.stat)
    if "W3" in workloads:
        run_w3(
            peers,
            args.sessions or ([10, 50] if quick else [10, 50, 200, 400, 600]),
            args.seconds or (1.0 if quick else 5.0),
            args.warmup if args.warmup is not None else (0.3 if quick else 0.5),
            args.search_max if args.search else None,
            args.processes,
            args.search_step,
        )
    if "AV" in workloads:
        run_av(args.seconds or (3.0 if quick else 10.0), args.clock)
    if "BATCH" in workloads:
        processes = args.processes if args.processes > 1 else os.cpu_count() or 1
        for fields in _batch.run(args.files or (6 if quick else 50), processes):
            _line("mediagraph", "BATCH", **fields)
    return 0
