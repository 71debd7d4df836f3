"""Checkers for the playback-segment invariants, over the event log of a sink or slot."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import mediagraph as mg

from ._checks import Violation, raise_if

__all__ = ["check_playback", "playback_violations"]

_KINDS = ("playback_started", "playback_progress", "playback_finished")


def playback_violations(
    log: Iterable[mg.Event],
    node: str,
    *,
    closed: int | None = None,
    sent: Mapping[int, float] | None = None,
) -> list[Violation]:
    """Every broken playback rule in ``node``'s ``playback_started`` / ``playback_progress`` /
    ``playback_finished`` events.

    Rules, per segment: at most one start; at most one finish; start before finish; nothing after the
    finish; segments finish in id order; generations never go back (no stale event). Progress comes after
    the start (``progress_after_start``), with the start's generation (``progress_generation``), and its
    positions never decrease, up to the finish's position included (``progress_order``). With ``closed``,
    each of the segments ``0 .. closed-1`` finished exactly once. No position (progress or finish) exceeds
    what was sent: the event's own ``sent`` field (a sink or slot records it), else ``sent[segment]``
    (seconds queued) when given.
    """
    events = [e for e in (log.events if isinstance(log, mg.EventLog) else log) if e.node == node and e.event in _KINDS]
    out: list[Violation] = []

    def bad(rule: str, message: str, events: tuple[mg.Event, ...] = ()) -> Violation:
        return Violation(rule=rule, node=node, message=message, events=events)

    started: dict[int, mg.Event] = {}
    finished: dict[int, mg.Event] = {}
    progressed: dict[int, mg.Event] = {}  # the last progress of each segment
    last_finished: mg.Event | None = None
    last_gen: mg.Event | None = None
    for e in events:
        seg = int(e.fields["segment"])
        if seg in finished:
            out.append(bad("nothing_after_finish", f"segment {seg}: {e.event} after its finish", (finished[seg], e)))
            continue
        if last_gen is not None and e.fields["generation"] < last_gen.fields["generation"]:
            out.append(bad("stale_generation", f"segment {seg}: event of an older generation", (last_gen, e)))
        last_gen = e
        if e.event == "playback_started":
            if seg in started:
                out.append(bad("started_once", f"segment {seg} started twice", (started[seg], e)))
            started[seg] = e
            continue
        if e.event == "playback_progress":
            out.extend(_progress_violations(bad, e, started.get(seg), progressed.get(seg)))
            progressed[seg] = e
        else:
            finished[seg] = e
            if last_finished is not None and seg < int(last_finished.fields["segment"]):
                out.append(bad("finish_order", f"segment {seg} finished after a later segment", (last_finished, e)))
            last_finished = e
            before = progressed.get(seg)
            if before is not None and e.fields["position"] < before.fields["position"] - 1e-9:
                out.append(
                    bad(
                        "progress_order",
                        f"segment {seg}: finished at position {e.fields['position']}, before its progress "
                        f"{before.fields['position']}",
                        (before, e),
                    )
                )
        limit = e.fields.get("sent", sent.get(seg, 0.0) if sent is not None else None)
        if limit is not None and e.fields["position"] > limit + 1e-6:
            out.append(
                bad(
                    "position_bound",
                    f"segment {seg}: position {e.fields['position']} > {limit} sent",
                    (e,),
                )
            )
    for seg in started.keys() - finished.keys():
        if closed is not None and seg < closed:
            out.append(bad("finished_once", f"segment {seg} started but never finished", (started[seg],)))
    if closed is not None:
        missing = sorted(set(range(closed)) - finished.keys() - started.keys())
        if missing:
            out.append(bad("finished_once", f"segments {missing} never finished", ()))
    return out


def _progress_violations(
    bad: Callable[[str, str, tuple[mg.Event, ...]], Violation],
    e: mg.Event,
    start: mg.Event | None,
    before: mg.Event | None,
) -> list[Violation]:
    """What is wrong with progress ``e``, given its segment's start and last progress (if any)."""
    seg = e.fields["segment"]
    if start is None:
        return [bad("progress_after_start", f"segment {seg}: progress before its start", (e,))]
    out = []
    if e.fields["generation"] != start.fields["generation"]:
        out.append(
            bad(
                "progress_generation",
                f"segment {seg}: progress of generation {e.fields['generation']}, started in "
                f"generation {start.fields['generation']}",
                (start, e),
            )
        )
    if before is not None and e.fields["position"] < before.fields["position"] - 1e-9:
        out.append(
            bad(
                "progress_order",
                f"segment {seg}: progress went back from {before.fields['position']} to {e.fields['position']}",
                (before, e),
            )
        )
    return out


def check_playback(
    log: Iterable[mg.Event], node: str, *, closed: int | None = None, sent: Mapping[int, float] | None = None
) -> None:
    """Raise :class:`InvariantError` listing every violation :func:`playback_violations` finds."""
    raise_if(playback_violations(log, node, closed=closed, sent=sent))
