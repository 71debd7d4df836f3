"""The Ray engine on a simulated three-node cluster: placement on named nodes, a batch over files with one
corrupt input, a node removed under a session."""

from __future__ import annotations

import os
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import trio

os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a local test cluster: no token to hand round
ray = pytest.importorskip("ray", reason="the ray engine's tests need Ray: pip install 'mediagraph[ray]'")

from ray.cluster_utils import Cluster  # noqa: E402 - after the skip

from mediagraph.cluster import (  # noqa: E402
    SessionFailed,
    SessionResult,
    SessionSpec,
    WorkerLost,
    expand_inputs,
    open_pool,
    plan_batch,
    run_batch,
)

ROOT = Path(__file__).resolve().parents[2]
TONE = ROOT / "graphs" / "tone_demo.yaml"

ENDLESS = """
nodes:
  tone: {type: tone_source}
  sink: null_sink
links:
  - tone.audio -> sink.audio
"""

COPY = """
nodes:
  mic: {type: file_source, path: in.wav, paced: false}
  out: {type: file_sink, path: out.wav}
links:
  - mic.audio -> out.audio
"""


@pytest.fixture(scope="module")
def nodes() -> Iterator[dict[str, Any]]:
    """Three Ray nodes offering the custom resources node_a (the head), node_b and node_c."""
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "resources": {"node_a": 1}})
    try:
        b = cluster.add_node(num_cpus=1, resources={"node_b": 1})
        c = cluster.add_node(num_cpus=1, resources={"node_c": 1})
        ray.init(address=cluster.address, log_to_driver=False)
        cluster.wait_for_nodes()
        yield {"cluster": cluster, "a": cluster.head_node.node_id, "b": b.node_id, "c": c}
    finally:
        ray.shutdown()
        cluster.shutdown()


async def test_sessions_are_placed_on_named_nodes(nodes: dict[str, Any]) -> None:
    async with open_pool("ray", clock="virtual", cpus_per_session=0.1) as pool:
        by_resource = await pool.start(SessionSpec.from_file(TONE, sets=["tone.duration=2"], node="node_b"))
        by_id = await pool.start(SessionSpec.from_file(TONE, node=nodes["a"]))
        first = await pool.result(by_resource)
        second = await pool.result(by_id)
        events = [e async for e in pool.events(by_resource)]
    assert (first.reason, first.ray_node, first.worker) == ("completed", nodes["b"], f"ray node {nodes['b']}")
    assert first.statistics["sink"].frames_in == 200
    assert (second.reason, second.ray_node) == ("completed", nodes["a"])
    assert [e.seq for e in events] == list(range(len(events))) and events[-1].event == "graph_finished"


def write_wav(path: Path, seconds: float) -> None:
    samples = (np.sin(np.arange(int(16000 * seconds)) * 0.05) * 8000).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(samples.tobytes())


async def test_a_batch_over_files_reports_the_corrupt_input_and_finishes_the_others(
    nodes: dict[str, Any], tmp_path: Path
) -> None:
    inputs = []
    for i, seconds in enumerate([0.5, 1.0, 1.5]):
        write_wav(tmp_path / f"in{i}.wav", seconds)
        inputs.append(tmp_path / f"in{i}.wav")
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really")
    inputs.insert(1, corrupt)
    outcomes: dict[str, SessionResult | SessionFailed] = {}
    async with open_pool("ray", clock="virtual", cpus_per_session=0.1) as pool:

        async def one(source: Path) -> None:
            sets = [f"mic.path={source}", f"out.path={tmp_path / ('out_' + source.name)}"]
            spec = SessionSpec(graph_text=COPY, base_dir=str(tmp_path), name="copy", sets=sets)
            try:
                outcomes[source.name] = await pool.result(await pool.start(spec))
            except SessionFailed as exc:
                outcomes[source.name] = exc

        async with trio.open_nursery() as nursery:
            for source in inputs:
                nursery.start_soon(one, source)
    failed = outcomes.pop("corrupt.wav")
    assert isinstance(failed, SessionFailed) and failed.definition and failed.node == "mic"
    assert "corrupt.wav" in str(failed)
    for name, outcome in outcomes.items():
        assert isinstance(outcome, SessionResult) and outcome.reason == "completed", name
        with wave.open(str(tmp_path / f"out_{name}")) as w, wave.open(str(tmp_path / name)) as original:
            assert w.getnframes() == original.getnframes()


async def test_a_planned_batch_runs_on_ray_its_corrupt_input_failed_before_anything_ran(
    nodes: dict[str, Any], tmp_path: Path
) -> None:
    graph = tmp_path / "copy.yaml"
    graph.write_text(COPY)
    for i, seconds in enumerate([0.5, 1.0]):
        write_wav(tmp_path / f"in{i}.wav", seconds)
    (tmp_path / "in2.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really")
    inputs = expand_inputs([f"{tmp_path}/in*.wav"])
    plan = plan_batch(graph, inputs, ["mic.path={file}", "out.path={dir}/out_{stem}.wav"])
    async with open_pool("ray", clock="virtual", cpus_per_session=0.1) as pool:
        await run_batch(pool, plan, parallel=3)
    assert [item.state for item in plan.items] == ["ok", "ok", "failed"]
    assert "node 'mic' (file_source)" in str(plan.items[2].error)
    for item in plan.items[:2]:
        assert item.result is not None and item.result.ray_node is not None
        with wave.open(str(tmp_path / f"out_{item.path.stem}.wav")) as w, wave.open(str(item.path)) as original:
            assert w.getnframes() == original.getnframes()


async def test_a_node_removed_under_a_session_loses_it_by_name(nodes: dict[str, Any], tmp_path: Path) -> None:
    """Last in the module: it takes node_c away."""
    node_c = nodes["c"]
    async with open_pool("ray", cpus_per_session=0.1) as pool:
        doomed = await pool.start(SessionSpec(graph_text=ENDLESS, base_dir=str(tmp_path), node="node_c"))
        other = await pool.start(SessionSpec(graph_text=ENDLESS, base_dir=str(tmp_path), node="node_b"))
        assert {w.ray_node for w in pool.status().workers} == {node_c.node_id, nodes["b"]}
        await trio.to_thread.run_sync(nodes["cluster"].remove_node, node_c)
        with pytest.raises(WorkerLost) as caught:
            await pool.result(doomed)
        assert str(caught.value) == f"session 's1': ray node {node_c.node_id} removed while running it"
        assert caught.value.ray_node == node_c.node_id
        await pool.stop(other)
        assert (await pool.result(other)).reason == "stopped"
