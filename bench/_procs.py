"""W3 over P processes: one trio run per process, the sessions shared out, their windows lined up.

Each process (``spawn``: a fresh interpreter, as the session pool's workers are) imports the harness, waits for
a common start moment on the wall clock (so the paced windows overlap: every process measures while all the
others run their sessions too), runs :func:`bench._mg.w3` with its share of the sessions, and hands back its
lateness samples and its window. The samples are merged, so the percentiles are over every frame of every
session, and the CPU is summed: ``cpu_pct`` 200 is two cores busy.
"""

from __future__ import annotations

import multiprocessing
import time
from array import array
from concurrent.futures import ProcessPoolExecutor
from typing import Final

from . import _floors, _mg
from ._work import LatencyProbe

#: Seconds from submitting the work to the common start: long enough for every process to spawn and import.
START_DELAY: Final = 3.0


def shares(n: int, processes: int) -> list[int]:
    """``n`` sessions shared out over ``processes`` as evenly as they go (each process gets at least one)."""
    count = min(processes, n)
    return [n // count + (1 if i < n % count else 0) for i in range(count)]


def _child(n: int, seconds: float, warmup: float, start_at: float) -> tuple[bytes, float, float, int]:
    """One process's part: its sessions' lateness samples, CPU and wall seconds of its window, sessions started."""
    time.sleep(max(0.0, start_at - time.time()))
    probe = LatencyProbe()
    window = _mg.w3("mediagraph", n, seconds, warmup, probe)
    return probe.lateness.tobytes(), window.cpu, window.wall, window.started


def w3_processes(
    n: int, seconds: float, warmup: float, probe: LatencyProbe, processes: int, start_delay: float = START_DELAY
) -> _floors.Window:
    """W3 with ``n`` sessions over ``processes`` processes; the merged samples go into ``probe``."""
    parts = shares(n, processes)
    window = _floors.Window()
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(len(parts), mp_context=context) as pool:
        start_at = time.time() + start_delay
        futures = [pool.submit(_child, share, seconds, warmup, start_at) for share in parts]
        for future in futures:
            samples, cpu, wall, started = future.result()
            probe.lateness.extend(array("d", samples))
            window.cpu += cpu
            window.wall = max(window.wall, wall)
            window.started += started
    return window
