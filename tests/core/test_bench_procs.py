"""W3 over several processes (``python -m bench W3 --processes P``): the sessions are shared out, every
process's samples come back and are merged, and the window is the processes' (CPU summed); the BATCH workload
runs its three ways and checks every output it times. What the figures are is the bench's to say, never a
test's."""

from __future__ import annotations

import pytest

from bench import _procs
from bench._work import PERIOD, LatencyProbe


@pytest.mark.parametrize(("n", "processes", "expected"), [(5, 2, [3, 2]), (1, 2, [1]), (600, 3, [200] * 3)])
def test_sessions_are_shared_out_evenly(n: int, processes: int, expected: list[int]) -> None:
    assert _procs.shares(n, processes) == expected


def test_every_process_s_samples_are_merged() -> None:
    probe = LatencyProbe()
    window = _procs.w3_processes(4, 0.3, 0.1, probe, 2, start_delay=0.5)
    assert window.started == 4
    assert window.cpu > 0 and window.wall >= 0.3
    # Four 10 ms sessions over a 0.3 s window: about 120 frames, from both processes' windows.
    assert 0.5 * 4 * 0.3 / PERIOD <= len(probe.lateness) <= 1.5 * 4 * window.wall / PERIOD


def test_the_batch_workload_checks_every_output_of_each_way() -> None:
    from bench import _batch

    lines = _batch.run(2, 2)
    assert [line["way"] for line in lines] == ["one-process", "pool-1", "pool-2"]
    assert all(line["files"] == 2 and line["media_s"] == pytest.approx(2 * 13.35, abs=0.1) for line in lines)
    assert lines[0]["vs_one_process"] == 1.0
