"""Property-test an ordering invariant of your own graph with hypothesis and ``mediagraph.testing``.

    pip install 'mediagraph[testing]'     # hypothesis, which the testing kit's strategies use
    python examples/property_test.py

Hypothesis generates when to interrupt and when to hot-swap the speaker behind a slot; each schedule runs on
trio's mock clock (a few seconds of media in milliseconds, deterministically) and the checkers verify the
lifecycle and playback invariants on the event log: every node finishes once after it started, at most one
playback_started and exactly one playback_finished per segment, in order, nothing stale.
"""

from __future__ import annotations

import trio
import trio.testing

try:
    from hypothesis import given, settings
    from hypothesis import strategies as st
except ImportError:  # the base install has no hypothesis
    raise SystemExit("this example needs hypothesis: pip install 'mediagraph[testing]'") from None

import mediagraph as mg
from mediagraph.testing import check_lifecycle, check_playback

Action = tuple[float, str]  # (graph time, "interrupt" | "cut" | "boundary")


async def run_schedule(actions: list[Action]) -> mg.GraphResult:
    g = mg.Graph("under_test")
    g.add("voice", "tone_source", duration=2.0)
    g.add("out", "slot", child={"type": "speaker"})
    g.link("voice.audio", "out.audio")
    async with mg.open_runtime() as runtime:
        running = await runtime.start(g)
        for at, what in sorted(actions):
            await trio.sleep_until(running.t0 + at)
            if running.result is not None:
                break
            try:
                if what == "interrupt":
                    running.interrupt("out")
                else:
                    await running.swap("out", {"type": "speaker"}, policy=what)
            except mg.MediaGraphError:  # the slot's input already ended: nothing to interrupt or swap
                pass
        return await running.wait()


@settings(deadline=None, max_examples=50)
@given(st.lists(st.tuples(st.floats(0, 2.5), st.sampled_from(["interrupt", "cut", "boundary"])), max_size=5))
def test_playback_invariants(actions: list[Action]) -> None:
    result = trio.run(run_schedule, actions, clock=trio.testing.MockClock(autojump_threshold=0))
    check_lifecycle(result.log)
    segments = result.log.of("slot_total", "out")[0].fields["segments"]
    check_playback(result.log, "out", closed=segments)


def main() -> None:
    test_playback_invariants()
    print("playback invariants hold over 50 generated schedules")


if __name__ == "__main__":
    main()
