"""Checkers for the transcript invariants, over the event log of a transcript synchronizer and the node below it."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import mediagraph as mg

from ._checks import Violation, raise_if

__all__ = ["check_transcripts", "transcript_violations"]

#: Positions are logged rounded to the microsecond.
_EPSILON = 2e-6

_Bad = Callable[[str, str, tuple[mg.Event, ...]], None]


def transcript_violations(log: Iterable[mg.Event], node: str, below: str) -> list[Violation]:
    """Every broken transcript rule in the log of transcript synchronizer ``node`` (its ``transcript_finished``
    and ``words_released`` events) against the playback events of ``below``, the sink or slot it listens to.

    Rules: every segment ``below`` finished has exactly one transcript (``transcript_once``; at most one if
    ``node`` did not complete: a graph that fails is cancelled), and nothing else has one
    (``transcript_unplayed``); it says what the finish says — generation, ``interrupted``, position
    (``transcript_matches``); transcripts come in segment order (``transcript_order``). Words are released only
    once the played position has passed their start, by the latest position ``below`` reported before the
    release (``words_ahead``), in order: within a segment by start, and a segment's only once every earlier
    segment with words has its transcript (``words_order``), never after their segment's transcript
    (``words_after_transcript``), and a segment's released words are as many as the words of its transcript
    (``words_match``).
    """
    events = list(log.events if isinstance(log, mg.EventLog) else log)
    out: list[Violation] = []

    def bad(rule: str, message: str, shown: tuple[mg.Event, ...]) -> None:
        out.append(Violation(rule=rule, node=node, message=message, events=shown))

    played: dict[int, float] = {}  # segment -> latest position reported below
    finishes: dict[int, mg.Event] = {}
    transcripts: dict[int, mg.Event] = {}
    released: dict[int, int] = {}  # segment -> words released
    lasts: dict[int, float] = {}  # segment -> start of the last word released
    last: mg.Event | None = None
    for e in events:
        if e.node == below and e.event in ("playback_progress", "playback_finished"):
            seg = int(e.fields["segment"])
            played[seg] = max(played.get(seg, 0.0), float(e.fields["position"]))
            if e.event == "playback_finished":
                finishes.setdefault(seg, e)
                if not e.fields["interrupted"]:
                    played[seg] = float("inf")  # played out: every word of it was heard
        elif e.node == node and e.event == "words_released":
            seg = int(e.fields["segment"])
            earlier = [s for s in released if s < seg and s not in transcripts]
            if earlier:
                bad("words_order", f"segment {seg}: words before segment {earlier[0]}'s transcript", (e,))
            if seg in lasts and float(e.fields["last"]) < lasts[seg]:
                bad(
                    "words_order",
                    f"segment {seg}: a word starting at {e.fields['last']} s after one at {lasts[seg]} s",
                    (e,),
                )
            lasts[seg] = max(lasts.get(seg, 0.0), float(e.fields["last"]))
            if seg in transcripts:
                bad(
                    "words_after_transcript",
                    f"segment {seg}: words released after its transcript",
                    (transcripts[seg], e),
                )
            elif float(e.fields["last"]) >= played.get(seg, 0.0) + _EPSILON:
                bad(
                    "words_ahead",
                    f"segment {seg}: a word starting at {e.fields['last']} s released when "
                    f"{played.get(seg, 0.0)} s was played",
                    (e,),
                )
            released[seg] = released.get(seg, 0) + int(e.fields["words"])
        elif e.node == node and e.event == "transcript_finished":
            seg = int(e.fields["segment"])
            if seg in transcripts:
                bad("transcript_once", f"segment {seg}: a second transcript", (transcripts[seg], e))
                continue
            transcripts[seg] = e
            if last is not None and seg < int(last.fields["segment"]):
                bad(
                    "transcript_order", f"segment {seg}: transcript after segment {last.fields['segment']}'s", (last, e)
                )
            last = e
            _check_against_finish(bad, e, finishes.get(seg), released.get(seg, 0))
    ends = [e for e in events if e.node == node and e.event == "node_finished"]
    completed = not ends or ends[-1].fields.get("reason") == "completed"
    for seg, finish in finishes.items() if completed else ():  # a cancelled node owes nothing more
        if seg not in transcripts:
            bad("transcript_once", f"segment {seg} finished below and has no transcript", (finish,))
    return out


def _check_against_finish(bad: _Bad, transcript: mg.Event, finish: mg.Event | None, released: int) -> None:
    seg = transcript.fields["segment"]
    if finish is None:
        bad(
            "transcript_unplayed", f"segment {seg}: a transcript for a segment that did not finish below", (transcript,)
        )
        return
    said = transcript.fields
    heard = finish.fields
    if (said["generation"], said["interrupted"]) != (heard["generation"], heard["interrupted"]) or abs(
        float(said["position"]) - float(heard["position"])
    ) > _EPSILON:
        bad(
            "transcript_matches",
            f"segment {seg}: the transcript does not say what the finish says",
            (finish, transcript),
        )
    words = len(str(said["text"]).split())
    if released != words:
        bad("words_match", f"segment {seg}: {released} words released, {words} in the transcript", (transcript,))


def check_transcripts(log: Iterable[mg.Event], node: str, below: str) -> None:
    """Raise :class:`InvariantError` listing every violation :func:`transcript_violations` finds."""
    raise_if(transcript_violations(log, node, below))
