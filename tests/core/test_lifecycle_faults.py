"""Faults at the edges of a node's life (constructor, start, mid-stream, finish, close, cleanup, hang) under every
supervision policy leave a complete event log: one node_finished per node, graph_finished last, the right reason."""

from __future__ import annotations

from typing import Any

import attrs
import pytest
import trio
import trio.testing

import mediagraph as mg
from mediagraph.testing import check_failure, check_lifecycle


class Boom(Exception):
    pass


@attrs.frozen(kw_only=True)
class FaultConfig:
    fail_in: str = "none"


@mg.node_type("lf_transform", config=FaultConfig)
class FaultyTransform(mg.Transform):
    """A pass-through that raises where told: constructor, start, process, finish or close."""

    @staticmethod
    def ports(config: FaultConfig) -> mg.Ports:
        return mg.Ports(inlets=[mg.InletSpec(name="audio")], outlets=[mg.OutletSpec(name="audio")])

    def __init__(self, config: FaultConfig) -> None:
        self.fail_in = config.fail_in
        self._raise_if("constructor")

    def _raise_if(self, where: str) -> None:
        if self.fail_in == where:
            raise Boom(f"in {where}")

    def start(self, io: mg.NodeIO) -> None:
        self._raise_if("start")
        self.emit = io.outlets["audio"].emit

    def process(self, inlet: str, msg: Any) -> None:
        self._raise_if("process")
        self.emit(msg)

    def finish(self) -> None:
        self._raise_if("finish")

    def close(self) -> None:
        self._raise_if("close")


@mg.node_type("lf_actor", config=FaultConfig)
class FaultyActor(mg.Actor):
    """A pass-through with its own task that raises where told: constructor, run, cleanup, or hangs in cleanup."""

    @staticmethod
    def ports(config: FaultConfig) -> mg.Ports:
        return mg.Ports(inlets=[mg.InletSpec(name="audio")], outlets=[mg.OutletSpec(name="audio")])

    def __init__(self, config: FaultConfig) -> None:
        self.fail_in = config.fail_in
        if self.fail_in == "constructor":
            raise Boom("in constructor")

    async def run(self, io: mg.NodeIO) -> None:
        async for msg in io.inlets["audio"]:
            if self.fail_in == "run":
                raise Boom("in run")
            await io.outlets["audio"].send(msg)

    async def cleanup(self) -> None:
        if self.fail_in == "cleanup":
            raise Boom("in cleanup")
        if self.fail_in == "hang":
            await trio.sleep_forever()


POLICIES = [mg.FailGraph(), mg.Isolate(), mg.Restart(max_restarts=1, backoff=0.01)]
CASES = [("lf_transform", w) for w in ("constructor", "start", "process", "finish", "close")] + [
    ("lf_actor", w) for w in ("constructor", "run", "cleanup", "hang")
]


@pytest.mark.parametrize("fuse", [True, False])
@pytest.mark.parametrize("policy", POLICIES, ids=lambda p: type(p).__name__)
@pytest.mark.parametrize(("kind", "fail_in"), CASES)
async def test_every_lifecycle_fault_leaves_a_complete_event_log(
    autojump_clock: trio.testing.MockClock, kind: str, fail_in: str, policy: mg.Supervision, fuse: bool
) -> None:
    g = mg.Graph("faults")
    g.add("tone", "tone_source", duration=0.05)
    g.add("node", kind, fail_in=fail_in, supervision=policy)
    g.add("sink", "null_sink")
    g.link("tone.audio", "node.audio")
    g.link("node.audio", "sink.audio")
    log = mg.EventLog()
    error: BaseException | None = None
    with trio.fail_after(60):
        try:
            result = await mg.run(g, log=log, fuse=fuse, cleanup_timeout=0.5)
        except mg.MediaGraphError as exc:
            error = exc
            result = None
    check_lifecycle(log)
    if error is not None:
        check_failure(log, error)
    names = [str(e.node) for e in log.of("node_finished")]
    assert sorted(names) == ["node", "sink", "tone"], names
    assert log.events[-1].event == "graph_finished"
    node_end = log.of("node_finished", "node")[0].fields
    if fail_in == "hang":  # a cleanup that hangs is bounded, not a failure
        assert log.of("cleanup_timeout", "node")
        assert error is None
        return
    assert node_end["reason"] == "failed" or isinstance(policy, mg.Restart), node_end
    if isinstance(policy, mg.Isolate):
        assert error is None and result is not None and "node" in result.isolated
    elif isinstance(policy, mg.FailGraph):
        assert isinstance(error, mg.NodeFailedError) and error.node == "node", error
        assert "Boom" in str(error)


async def test_a_chain_of_500_fused_nodes_runs(autojump_clock: trio.testing.MockClock) -> None:
    g = mg.Graph("long")
    g.add("tone", "tone_source", duration=0.1)
    previous = "tone"
    for i in range(500):
        g.add(f"n{i}", "identity")
        g.link(f"{previous}.audio", f"n{i}.audio")
        previous = f"n{i}"
    g.add("sink", "null_sink")
    g.link(f"{previous}.audio", "sink.audio")
    result = await mg.run(g)
    assert result.reason == "completed"
    assert result.statistics["sink"].frames_in == 10
    check_lifecycle(result.log)
    fused = [s.fused for name, s in result.statistics.items() if name.startswith("n")]
    assert 0 < fused.count(False) < 50, "split every so often, fused in between"
