"""The slot under concurrent calls, dying children, bad children, restarts, stop and cancel (issue 11)."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

import mediagraph as mg
from mediagraph.testing import InjectedFault, check_lifecycle, playback_violations

RATE = 48000
FRAME = 0.01  # seconds: test_audio_script's 480 samples
SINK: dict[str, Any] = {"type": "test_faulty_sink"}
UTTERANCE: list[tuple[str, float]] = [("frame", 0.0)] * 30 + [("flush", 0.0)]


def slot_graph(
    script: Sequence[tuple[str, float]],
    child: dict[str, Any] | None = SINK,
    supervision: mg.Supervision | None = None,
) -> mg.Graph:
    g = mg.Graph("slot")
    g.add("src", "test_audio_script", script=tuple(script))
    g.add("out", "slot", child=child, like="speaker", supervision=supervision or mg.FailGraph())
    g.link("src.audio", "out.audio")
    return g


def dying(**fault: Any) -> dict[str, Any]:
    return {"type": "test_faulty_sink", **fault}


def finished(log: mg.EventLog, node: str = "out") -> list[tuple[int, bool, float]]:
    return [
        (e.fields["segment"], e.fields["interrupted"], e.fields["position"]) for e in log.of("playback_finished", node)
    ]


def swaps(log: mg.EventLog) -> list[str]:
    return [e.event for e in log if e.node == "out" and e.event.startswith("swap_")]


def children(log: mg.EventLog) -> list[str]:
    return [str(e.node) for e in log.of("node_started") if str(e.node).startswith("out/")]


# --- 1. overlapping swaps ------------------------------------------------------------------------------------


@pytest.mark.parametrize("second", ["boundary", "cut"])
async def test_a_second_swap_while_a_boundary_swap_waits_is_queued_and_both_are_done(
    autojump_clock: trio.testing.MockClock, second: str
) -> None:
    log = mg.EventLog()
    answered: list[str] = []
    async with mg.open_runtime() as rt:
        running = await rt.start(slot_graph(UTTERANCE * 2), log=log)

        async def swap(name: str, policy: str) -> None:
            await running.swap("out", SINK, policy=policy)
            answered.append(name)

        await trio.sleep_until(running.t0 + 0.15)  # mid-utterance: the boundary swap waits
        async with trio.open_nursery() as callers:
            callers.start_soon(swap, "first", "boundary")
            await trio.testing.wait_all_tasks_blocked()
            callers.start_soon(swap, "second", second)
        result = await running.wait()
    assert answered == ["first", "second"]
    assert swaps(result.log) == ["swap_started", "swap_finished"] * 2
    assert children(result.log) == ["out/child1", "out/child2", "out/child3"]
    assert playback_violations(result.log, "out", closed=3 if second == "cut" else 2) == []
    if second == "cut":  # the cut interrupts the open segment: that is the boundary the first one waited for
        assert finished(result.log)[0][:2] == (0, True)
    else:  # both at segment boundaries: nothing cut
        assert [interrupted for _, interrupted, _ in finished(result.log)] == [False, False]


# --- 2. a boundary swap pending when the child dies ------------------------------------------------------------


@pytest.mark.parametrize("policy", [mg.FailGraph(), mg.Isolate(), mg.Restart(max_restarts=1, backoff=0.05)])
async def test_a_boundary_swap_pending_when_the_child_dies_is_answered(
    autojump_clock: trio.testing.MockClock, policy: mg.Supervision
) -> None:
    log = mg.EventLog()
    async with mg.open_runtime() as rt:
        running = await rt.start(slot_graph(UTTERANCE * 2, child=dying(die_at_frame=20), supervision=policy), log=log)
        await trio.sleep_until(running.t0 + 0.05)
        with trio.fail_after(10), pytest.raises(mg.MediaGraphError, match="'out'"):
            await running.swap("out", SINK, policy="boundary")
        with contextlib.suppress(mg.NodeFailedError):  # under the default policy the graph fails: expected
            await running.wait()
    check_lifecycle(log)
    assert playback_violations(log, "out") == []
    failures = [e.fields["error"] for e in log.of("node_finished", "out/child1") if "error" in e.fields]
    assert failures and "InjectedFault" in failures[0]


# --- 3. a child that dies while it is stopped --------------------------------------------------------------


async def test_a_child_dying_while_cut_fails_the_swap_and_the_slot_after_finishing_its_segment(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log = mg.EventLog()
    async with mg.open_runtime() as rt:
        running = await rt.start(slot_graph(UTTERANCE * 2, child=dying(die_at_interrupt=True)), log=log)
        await trio.sleep_until(running.t0 + 0.15)
        with pytest.raises(mg.NodeFailedError, match="node 'out/child1' failed: InjectedFault") as swap:
            await running.swap("out", SINK, policy="cut")
        assert isinstance(swap.value.__cause__, InjectedFault)
        with pytest.raises(mg.NodeFailedError, match="node 'out' failed: .*out/child1"):
            await running.wait()
    assert swaps(log) == ["swap_started", "swap_failed"]
    seg = finished(log)
    assert len(seg) == 1 and seg[0][:2] == (0, True)
    assert seg[0][2] == pytest.approx(0.15, abs=0.011)  # what it really played, not 0
    assert playback_violations(log, "out", closed=1) == []


async def test_a_child_dying_on_the_last_message_still_gets_its_segment_finished(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log = mg.EventLog()
    with pytest.raises(mg.NodeFailedError, match="out/child1"):
        await mg.run(slot_graph([("frame", 0.0)] * 30, child=dying(die_at_frame=30)), log=log)
    [(segment, interrupted, position)] = finished(log)
    assert (segment, interrupted) == (0, True)
    assert position == pytest.approx(29 * FRAME), "the position it really played, not 0"


# --- 4. a boundary swap never runs mid-segment -----------------------------------------------------------------


async def test_a_cut_and_a_boundary_swap_at_the_same_instant_never_split_an_utterance_as_finished(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log = mg.EventLog()
    async with mg.open_runtime() as rt:
        running = await rt.start(slot_graph(UTTERANCE * 2), log=log)
        await trio.sleep_until(running.t0 + 0.15)
        async with trio.open_nursery() as callers:
            callers.start_soon(running.swap, "out", SINK, "cut")
            callers.start_soon(running.swap, "out", SINK, "boundary")
        await running.wait()
    segs = log.of("playback_finished", "out")
    assert segs[0].fields["interrupted"], "the utterance's first part is cut, so it is reported interrupted"
    assert all(e.fields["interrupted"] or e.fields["position"] == e.fields["sent"] for e in segs)
    assert playback_violations(log, "out") == []


# --- 5. restarts -----------------------------------------------------------------------------------------------


async def test_a_restarted_slot_continues_its_numbering_and_never_reuses_a_child_name(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log = mg.EventLog()
    policy = mg.Restart(max_restarts=2, backoff=0.1)
    outcomes: list[str] = []
    async with mg.open_runtime() as rt:
        running = await rt.start(slot_graph(UTTERANCE * 3, child=dying(die_at_frame=40), supervision=policy), log=log)
        restarted = False
        while not restarted:  # swap during the restart's backoff
            await trio.sleep(0.01)
            restarted = bool(log.of("node_restarted", "out"))
        try:
            await running.swap("out", SINK, policy="cut")
            outcomes.append("done")
        except mg.MediaGraphError as exc:
            outcomes.append(str(exc))
        await running.wait_finished()
    assert len(outcomes) == 1 and "RuntimeError" not in outcomes[0] and "Nursery" not in outcomes[0]
    names = children(log)
    assert len(names) == len(set(names)), names
    assert playback_violations(log, "out") == []
    ids = [e.fields["segment"] for e in log.of("playback_finished", "out")]
    assert ids == list(range(len(ids))), "segment ids run on across restarts"
    assert swaps(log).count("swap_started") == swaps(log).count("swap_finished") + swaps(log).count("swap_failed")


# --- 6. swap racing cancel -------------------------------------------------------------------------------------


@pytest.mark.parametrize("order", ["swap first", "cancel first"])
async def test_a_swap_racing_cancel_raises_a_mediagraph_error(
    autojump_clock: trio.testing.MockClock, order: str
) -> None:
    raised: list[BaseException] = []

    async def swap(running: mg.RunningGraph) -> None:
        try:
            await running.swap("out", SINK, "boundary")
        except BaseException as exc:
            raised.append(exc)
            raise

    async with mg.open_runtime() as rt:
        running = await rt.start(slot_graph(UTTERANCE * 2))
        await trio.sleep_until(running.t0 + 0.15)
        with contextlib.suppress(BaseExceptionGroup):
            async with trio.open_nursery() as callers:
                if order == "cancel first":
                    running.cancel()
                callers.start_soon(swap, running)
                await trio.testing.wait_all_tasks_blocked()
                running.cancel()
        await running.wait_finished()
    assert running.result is not None and running.result.reason == "cancelled"
    assert len(raised) == 1 and type(raised[0]) is mg.MediaGraphError, raised


# --- 9. the runtime checks every playback outlet ---------------------------------------------------------------

BREACHES = {
    "second_start": "started_once",
    "second_finish": "nothing_after_finish",
    "start_after_finish": "nothing_after_finish",
    "lost_finish": "finish_order",
    "position_beyond_sent": "position_bound",
    "inflated_sent": "position_bound",
}


@pytest.mark.parametrize("breach", sorted(BREACHES))
async def test_a_child_breaking_the_contract_fails_naming_the_rule_and_the_slot_finishes_what_it_owed(
    autojump_clock: trio.testing.MockClock, breach: str
) -> None:
    log = mg.EventLog()
    with pytest.raises(mg.NodeFailedError, match="out/child1") as failed:
        await mg.run(slot_graph(UTTERANCE * 3, child=dying(breach=breach, breach_segment=0)), log=log)
    cause = failed.value.__cause__
    assert isinstance(cause, mg.NodeFailedError) and cause.node == "out/child1"
    assert isinstance(cause.__cause__, mg.PlaybackContractError)
    assert cause.__cause__.rule == BREACHES[breach]
    assert playback_violations(log, "out") == [], "nothing of the breach passed the slot"
    ids = [e.fields["segment"] for e in log.of("playback_finished", "out")]
    assert ids == sorted(set(ids)) and ids[:1] == [0]


@pytest.mark.parametrize("breach", sorted(set(BREACHES) - {"inflated_sent"}))  # only a slot knows what it sent
async def test_a_top_level_sink_breaking_the_contract_fails_with_its_name_and_the_rule(
    autojump_clock: trio.testing.MockClock, breach: str
) -> None:
    g = mg.Graph()
    g.add("src", "test_audio_script", script=tuple(UTTERANCE * 3))
    g.add("sink", "test_faulty_sink", breach=breach, breach_segment=1)
    g.link("src.audio", "sink.audio")
    with pytest.raises(mg.NodeFailedError, match="node 'sink' failed: PlaybackContractError") as failed:
        await mg.run(g)
    assert f"({BREACHES[breach]})" in str(failed.value)


async def test_events_of_a_superseded_generation_are_dropped_by_the_runtime(
    autojump_clock: trio.testing.MockClock,
) -> None:
    script = [*UTTERANCE[:20], ("interrupt", 0.0), *UTTERANCE]
    result = await mg.run(slot_graph(script, child=dying(breach="stale")))
    assert result.reason == "completed"
    generations = [e.fields["generation"] for e in result.log if e.node == "out/child1" and "playback" in e.event]
    assert generations == sorted(generations), "the stale progress never left the child"
    assert playback_violations(result.log, "out", closed=2) == []


# --- smaller -------------------------------------------------------------------------------------------------


async def test_an_interrupt_reaching_an_empty_slot_raises_the_generation(
    autojump_clock: trio.testing.MockClock,
) -> None:
    script = [("frame", 0.0)] * 3 + [("interrupt", 0.0)] + [("frame", 0.0)] * 3 + [("flush", 0.0)]
    result = await mg.run(slot_graph(script, child=None))
    assert [e.fields["generation"] for e in result.log.of("playback_finished", "out")] == [0, 1]


async def test_an_interrupted_segment_is_never_stamped_before_its_start(autojump_clock: trio.testing.MockClock) -> None:
    for at in (0.155, 0.165, 0.175):
        log = mg.EventLog()
        async with mg.open_runtime() as rt:
            running = await rt.start(slot_graph(UTTERANCE, child={"type": "speaker", "block_ms": 20.0}), log=log)
            await trio.sleep_until(running.t0 + at)
            running.interrupt("out")
            await running.wait()
        start = log.of("playback_started", "out")[0].fields["at"]
        assert all(e.fields["at"] >= start for e in log.of("playback_finished", "out"))


# --- the property: concurrent callers, faults, policies, stop and cancel ------------------------------------

CHILDREN = st.sampled_from(
    [
        SINK,
        None,
        dying(die_at_frame=5),
        dying(die_at_interrupt=True),
        dying(breach="lost_finish"),
        dying(breach="stale"),
        dying(breach="inflated_sent"),
    ]
)
ACTIONS = st.lists(
    st.tuples(
        st.floats(0.0, 1.2),
        st.sampled_from(["cut", "boundary", "interrupt", "stop", "cancel"]),
        CHILDREN,
    ),
    max_size=6,
)
SCRIPTS = st.lists(
    st.one_of(
        st.lists(st.just(("frame", 0.0)), min_size=1, max_size=15),
        st.just([("flush", 0.0)]),
        st.just([("interrupt", 0.0)]),
        st.floats(0.005, 0.2).map(lambda w: [("wait", w)]),
    ),
    max_size=10,
).map(lambda chunks: [step for chunk in chunks for step in chunk])
POLICIES = st.sampled_from([mg.FailGraph(), mg.Isolate(), mg.Restart(max_restarts=2, backoff=0.02)])


@settings(deadline=None, max_examples=150)
@given(script=SCRIPTS, actions=ACTIONS, first=CHILDREN, policy=POLICIES)
def test_every_call_is_answered_and_the_segment_contract_holds_whatever_happens_at_once(
    script: list[tuple[str, float]], actions: list[tuple[float, str, Any]], first: Any, policy: mg.Supervision
) -> None:
    outcomes: list[str] = []

    async def act(running: mg.RunningGraph, at: float, what: str, child: Any) -> None:
        await trio.sleep_until(running.t0 + at)
        try:
            if what == "interrupt":
                running.interrupt("out")
            elif what == "stop":
                running.stop()
            elif what == "cancel":
                running.cancel()
            else:
                await running.swap("out", child, policy=what)
            outcomes.append("done")
        except mg.MediaGraphError as exc:  # refused or failed: always one of ours, never a trio error
            outcomes.append(type(exc).__name__)

    async def main() -> mg.EventLog:
        log = mg.EventLog()
        g = slot_graph(script, first, policy)
        with trio.fail_after(600):  # virtual seconds: a call left waiting becomes an error at once
            try:
                async with mg.open_runtime() as rt:
                    running = await rt.start(g, log=log)
                    async with trio.open_nursery() as callers:  # each call in its own task
                        for at, what, child in actions:
                            callers.start_soon(act, running, at, what, child)
                    await running.wait()
            except mg.MediaGraphError:  # the graph failed: checked below, from the log
                pass
        return log

    log = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert len(outcomes) == len(actions), "every call returned or raised"
    check_lifecycle(log)
    cancelled = any(e.event == "graph_finished" and e.fields["reason"] == "cancelled" for e in log)
    seen = [e.fields["segment"] for e in log if e.node == "out" and e.event.startswith("playback_")]
    closed = None if cancelled or not seen else max(seen) + 1
    assert playback_violations(log, "out", closed=closed) == []
    started = swaps(log).count("swap_started")
    assert started == swaps(log).count("swap_finished") + swaps(log).count("swap_failed") or cancelled
    names = children(log)
    assert len(names) == len(set(names))
    totals = log.of("slot_total", "out")
    ended_early = any(e.event == "node_finished" and e.fields["reason"] != "completed" for e in log)
    if totals and not ended_early and not any(what in ("stop", "cancel") for _, what, _ in actions):
        frames = sum(1 for kind, _ in script if kind == "frame")
        received = sum(e.fields["received"] for e in log.of("sink_total"))
        assert received + sum(e.fields["discarded"] for e in totals) == frames


# --- 7. schedule actions fire at their times -----------------------------------------------------------------

SCHEDULED = """\
graph: scheduled
nodes:
  tone: {type: tone_source, duration: 4.0}
  out: {type: slot, child: {type: speaker}}
links: [tone.audio -> out.audio]
schedule:
  - {at: 2.27, swap: out, to: {type: speaker}, policy: boundary}
  - {at: 2.91, interrupt: out}
  - {at: 3.13, swap: out, to: {type: speaker, block_ms: 20}, policy: cut}
"""


def test_a_waiting_boundary_swap_never_delays_the_schedule(tmp_path: Path) -> None:
    graph = tmp_path / "scheduled.yaml"
    graph.write_text(SCHEDULED)
    ran = subprocess.run(
        [str(Path(sys.executable).parent / "mediagraph"), "run", str(graph), "--clock", "virtual", "--events", "ev"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ran.returncode == 0, ran.stderr
    log = [json.loads(line) for line in (tmp_path / "ev").read_text().splitlines()]
    assert not [e for e in log if e["event"] == "schedule_action_failed"]
    interrupt = next(e for e in log if e["event"] == "interrupt_requested")
    assert interrupt["t"] == pytest.approx(2.91, abs=1e-6), "the interrupt fires at its time"
    done = [e for e in log if e["event"] == "swap_finished"]
    assert len(done) == 2
    assert 2.91 <= done[0]["t"] < 3.13, "the interrupt closed the segment: the boundary swap's boundary"
    assert done[1]["t"] == pytest.approx(3.13, abs=0.05)
    finished = [e for e in log if e["event"] == "playback_finished" and e["node"] == "out"]
    assert finished[0]["interrupted"] and finished[0]["position"] == pytest.approx(2.91, abs=0.03)


def test_supervision_belongs_to_the_slot_not_its_child() -> None:
    with pytest.raises(mg.GraphDefinitionError, match="a slot's child takes no 'supervision'; give it to the slot"):
        mg.Graph().add("out", "slot", child={"type": "speaker", "supervision": "restart"})
