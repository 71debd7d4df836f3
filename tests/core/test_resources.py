"""Graph resources: opened once before their first user starts, closed once after their last user finishes."""

import contextlib
from typing import Any

import attrs
import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

import mediagraph as mg

LEDGER: list[tuple[str, str]] = []  # ("open" | "close" | "use", resource label)


@attrs.frozen(kw_only=True)
class CounterConfig:
    label: str = "r"
    fail_open: bool = False
    fail_close: bool = False


class Counter:
    def __init__(self, config: CounterConfig) -> None:
        if config.fail_open:
            raise OSError("no such model")
        self.config = config
        self.closed = False
        LEDGER.append(("open", config.label))

    def close(self) -> None:
        assert not self.closed, "closed twice"
        self.closed = True
        LEDGER.append(("close", self.config.label))
        if self.config.fail_close:
            raise OSError("device busy")


mg.register_resource_type(mg.ResourceType(name="core_test_counter", config=CounterConfig, open=Counter))


@attrs.frozen(kw_only=True)
class UserConfig:
    a: mg.ResourceRef | None = None
    b: mg.ResourceRef | None = None
    fail_at: int = -1


@mg.node_type("core_test_resource_user", config=UserConfig)
class User(mg.Actor):
    """Checks on every message that its resources are open."""

    @staticmethod
    def ports(config: UserConfig) -> mg.Ports:
        return mg.Ports(inlets=[mg.InletSpec(name="audio")], outlets=[mg.OutletSpec(name="audio")])

    def __init__(self, config: UserConfig) -> None:
        self.config = config

    async def run(self, io: mg.NodeIO) -> None:
        seen = 0
        async for msg in io.inlets["audio"]:
            for ref in (self.config.a, self.config.b):
                if ref is not None:
                    assert not io.resource(ref).closed
            if seen == self.config.fail_at:
                raise RuntimeError("user failed")
            seen += 1
            await io.outlets["audio"].send(msg)


@pytest.fixture(autouse=True)
def _ledger() -> None:
    LEDGER.clear()


def graph(users: dict[str, dict[str, Any]], resources: tuple[str, ...] = ("x", "y")) -> mg.Graph:
    g = mg.Graph("res")
    for name in resources:
        g.add_resource(name, "core_test_counter", label=name)
    g.add("tone", "tone_source", duration=0.1, paced=False)
    for name, params in users.items():
        supervision = params.pop("supervision", mg.FailGraph())
        g.add(name, "core_test_resource_user", supervision=supervision, **params)
        g.link("tone.audio", f"{name}.audio")
    return g


def check_lifetimes(log: mg.EventLog, users: dict[str, set[str]]) -> None:
    """Per resource: opened at most once (once if used), before its first user started; closed once, after
    its last user finished."""
    for resource in {r for rs in users.values() for r in rs}:
        opened = [e for e in log.of("resource_opened") if e.fields["resource"] == resource]
        closed = [e for e in log.of("resource_closed") if e.fields["resource"] == resource]
        assert len(opened) == 1
        assert len(closed) == 1
        mine = [u for u, rs in users.items() if resource in rs]
        starts = [e.seq for u in mine for e in log.of("node_started", u)]
        finishes = [e.seq for u in mine for e in log.of("node_finished", u)]
        assert opened[0].seq < min(starts)
        assert closed[0].seq > max(finishes)
    assert LEDGER.count(("open", "x")) <= 1
    assert LEDGER.count(("close", "x")) == LEDGER.count(("open", "x"))


async def test_shared_by_two_users_opened_once_closed_once() -> None:
    result = await mg.run(graph({"u1": {"a": "x"}, "u2": {"a": "x", "b": "y"}, "u3": {}}))
    check_lifetimes(result.log, {"u1": {"x"}, "u2": {"x", "y"}})
    assert sorted(LEDGER) == [("close", "x"), ("close", "y"), ("open", "x"), ("open", "y")]


async def test_an_unused_resource_is_never_opened() -> None:
    await mg.run(graph({"u1": {"a": "x"}}))
    assert ("open", "y") not in LEDGER


async def test_a_failing_user_still_closes_exactly_once() -> None:
    log = mg.EventLog()
    with pytest.raises(mg.NodeFailedError, match="node 'u1' failed"):
        await mg.run(graph({"u1": {"a": "x", "fail_at": 2}, "u2": {"a": "x"}}), log=log)
    check_lifetimes(log, {"u1": {"x"}, "u2": {"x"}})


async def test_isolated_and_restarted_users_keep_the_resource_until_the_last_finishes() -> None:
    users = {
        "u1": {"a": "x", "fail_at": 1, "supervision": mg.Isolate()},
        "u2": {"a": "x", "fail_at": 3, "supervision": mg.Restart(max_restarts=2, backoff=0)},
    }
    result = await mg.run(graph(users))
    check_lifetimes(result.log, {"u1": {"x"}, "u2": {"x"}})


async def test_open_failure_starts_nothing_and_names_the_resource() -> None:
    g = mg.Graph()
    g.add_resource("bad", "core_test_counter", fail_open=True)
    g.add("tone", "tone_source", duration=0.1, paced=False)
    g.add("u", "core_test_resource_user", a="bad")
    g.link("tone.audio", "u.audio")
    log = mg.EventLog()
    with pytest.raises(mg.ProviderError, match=r"resource 'bad' \(core_test_counter\) failed to open: no such model"):
        await mg.run(g, log=log)
    assert log.of("node_started") == []
    assert log.events[-1].fields["reason"] == "failed"


async def test_close_failure_is_reported_with_the_resource_name() -> None:
    g = mg.Graph()
    g.add_resource("dev", "core_test_counter", label="dev", fail_close=True)
    g.add("tone", "tone_source", duration=0.1, paced=False)
    g.add("u", "core_test_resource_user", a="dev")
    g.link("tone.audio", "u.audio")
    log = mg.EventLog()
    with pytest.raises(mg.ProviderError, match="resource 'dev' failed to close: device busy"):
        await mg.run(g, log=log)
    assert log.of("resource_closed")[0].fields == {"resource": "dev", "error": "OSError: device busy"}


def test_definition_errors() -> None:
    g = mg.Graph()
    with pytest.raises(mg.GraphDefinitionError, match=r"unknown resource type 'core_test_countr' \(did you mean"):
        g.add_resource("x", "core_test_countr")
    g.add_resource("x", "core_test_counter")
    with pytest.raises(mg.GraphDefinitionError, match="duplicate resource name 'x'"):
        g.add_resource("x", "core_test_counter")
    with pytest.raises(mg.GraphDefinitionError, match=r"parameter 'a': unknown resource 'z' \(known: x\)") as info:
        g.add("u", "core_test_resource_user", a="z")
    assert (info.value.node, info.value.param) == ("u", "a")


async def test_a_resource_named_by_a_slot_child_outlives_swaps(autojump_clock: trio.testing.MockClock) -> None:
    g = mg.Graph()
    g.add_resource("x", "core_test_counter", label="x")
    g.add_resource("y", "core_test_counter", label="y")
    g.add("tone", "tone_source", duration=1.0)
    g.add("s", "slot", child={"type": "core_test_resource_user", "a": "x"})
    g.link("tone.audio", "s.audio")
    async with mg.open_runtime() as rt:
        running = await rt.start(g)
        await trio.sleep(0.2)
        await running.swap("s", {"type": "core_test_resource_user", "a": "x", "b": "y"})
        await trio.sleep(0.2)
        assert LEDGER == [("open", "x"), ("open", "y")]
        await running.swap("s", {"type": "core_test_resource_user", "a": "x"})  # y's only user swapped out
        assert LEDGER == [("open", "x"), ("open", "y"), ("close", "y")]
        result = await running.wait()
    assert LEDGER == [("open", "x"), ("open", "y"), ("close", "y"), ("close", "x")]
    assert result.reason == "completed"


async def test_a_real_processor_shared_by_two_streams() -> None:
    g = mg.Graph()
    g.add_resource("ns", "apm", noise_suppression=True)
    for name in ("a", "b"):
        g.add(f"tone_{name}", "tone_source", duration=0.2, paced=False)
        g.add(f"fp_{name}", "frame_processor", processor="ns")
        g.add(f"sink_{name}", "null_sink")
        g.link(f"tone_{name}.audio", f"fp_{name}.audio")
        g.link(f"fp_{name}.audio", f"sink_{name}.audio")
    result = await mg.run(g)
    assert [e.fields["resource"] for e in result.log.of("resource_opened")] == ["ns"]
    assert [e.fields["resource"] for e in result.log.of("resource_closed")] == ["ns"]
    assert [e.fields["frames"] for e in result.log.of("sink_total")] == [20, 20]


user_plans = st.dictionaries(
    st.sampled_from(["u1", "u2", "u3", "u4"]),
    st.fixed_dictionaries(
        {
            "a": st.sampled_from([None, "x", "y"]),
            "b": st.sampled_from([None, "y"]),
            "fail_at": st.sampled_from([-1, -1, 0, 3]),
            "supervision": st.sampled_from([mg.FailGraph(), mg.Isolate(), mg.Restart(max_restarts=1, backoff=0.01)]),
        }
    ),
    min_size=1,
)


@settings(deadline=None)
@given(plans=user_plans)
def test_lifetimes_over_generated_users_and_failures(plans: dict[str, dict[str, Any]]) -> None:
    LEDGER.clear()
    users = {u: {p[k] for k in ("a", "b") if p[k]} for u, p in plans.items()}
    params = {u: {k: v for k, v in p.items() if v is not None} for u, p in plans.items()}

    async def main() -> mg.EventLog:
        log = mg.EventLog()
        with contextlib.suppress(mg.NodeFailedError):
            await mg.run(graph(params), log=log)
        return log

    log = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    check_lifetimes(log, users)
    assert (
        LEDGER.count(("open", "x"))
        == LEDGER.count(("close", "x"))
        == (1 if any("x" in r for r in users.values()) else 0)
    )


swap_plans = st.lists(
    st.tuples(
        st.floats(0.0, 0.12),
        st.sampled_from(["cut", "boundary"]),
        st.sampled_from([None, "x", "y"]),
        st.sampled_from([None, "y"]),
    ),
    max_size=4,
).map(lambda plans: sorted(plans, key=lambda p: p[0]))


@settings(deadline=None)
@given(first=st.sampled_from([None, "x", "y"]), swaps=swap_plans, other_user=st.booleans())
def test_lifetimes_over_generated_slot_swaps(
    first: str | None, swaps: list[tuple[float, str, str | None, str | None]], other_user: bool
) -> None:
    """Children using different resources are swapped in and out of a slot: every open is matched by one
    close, no two instances are open at once, no user ever sees a closed one, nothing is left open."""
    LEDGER.clear()

    def child(a: str | None, b: str | None) -> dict[str, Any]:
        return {"type": "core_test_resource_user", **({"a": a} if a else {}), **({"b": b} if b else {})}

    async def main() -> mg.GraphResult:
        g = mg.Graph()
        g.add_resource("x", "core_test_counter", label="x")
        g.add_resource("y", "core_test_counter", label="y")
        g.add("tone", "tone_source", duration=0.15)
        g.add("s", "slot", child=child(first, None))
        g.link("tone.audio", "s.audio")
        if other_user:
            g.add("u", "core_test_resource_user", a="x")
            g.link("tone.audio", "u.audio")
        async with mg.open_runtime() as rt:
            running = await rt.start(g)
            for at, policy, a, b in swaps:
                await trio.sleep_until(running.t0 + at)
                try:
                    await running.swap("s", child(a, b), policy=policy)
                except mg.MediaGraphError as exc:  # the slot's input had ended
                    if "nothing to swap" not in str(exc):
                        raise
            return await running.wait()

    result = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert result.reason == "completed"
    for label in ("x", "y"):
        mine = [kind for kind, name in LEDGER if name == label]
        assert mine == ["open", "close"] * (len(mine) // 2), f"{label}: {mine}"  # alternating: never two open
    assert [e.fields["resource"] for e in result.log.of("resource_opened")].count("x") == LEDGER.count(("open", "x"))
