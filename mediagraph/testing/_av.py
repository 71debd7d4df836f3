"""Checkers for the A/V synchronizer invariants, over the event log of an ``av_sync`` node.

They read the node's own events (see ``nodes/av_sync.py``): ``av_sync_started`` (fps, max_late),
``video_out`` (kind ``release`` / ``repeat`` / ``idle``, ``pts`` the output time in seconds; for a release and
a repeat ``media``, the frame's media time, and ``stamp``, the epoch the frame was stamped with on arrival; a
release's ``skew``, ``played`` and ``waited``), ``av_interrupted`` (the new epoch
and its cut, media seconds) and ``track_ended`` (track).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import mediagraph as mg

from ._checks import Violation, raise_if

__all__ = ["av_violations", "check_av"]

_Bad = Callable[..., None]

#: Times are logged rounded to the microsecond.
_EPSILON = 2e-6


def av_violations(
    log: Iterable[mg.Event], node: str, *, sink: str | None = None, slack: float = 0.0
) -> list[Violation]:
    """Every broken A/V rule in the log of ``av_sync`` node ``node`` (and of the audio sink ``sink`` below it).

    Rules:

    - ``av_skew``: a frame that waited for its audio (it arrived before it was due) is released within one
      frame period of the played media time (|skew| ≤ 1/fps) when the played time moved by at most a period
      since the node's previous decision (``since``; a larger step is media skipped below, a cut or a gap, or
      a sink's report of a whole block: the node can only be as close as the reports); no frame is released
      ahead of the played time (skew ≤ 0) or more than ``max_late`` behind it.
    - ``av_pts_order``: the output pts of every frame sent out, idle ones included, strictly increase, and so
      do the media times of releases and repeats.
    - ``av_stale``: after an interrupt, no frame stamped with an older epoch, nor one whose media time is before
      the interrupt's cut, is released or repeated.
    - ``av_end``: each track (``audio``, ``video``) ends at most once, and exactly once if the node completed;
      no frame goes out on ``video`` after its end.
    - ``av_old_audio`` (with ``sink``, the node whose playback events come back to ``node``): after an
      interrupt, the sink plays nothing of a segment begun before it beyond ``slack`` seconds: no such
      segment starts after it, and none of its later events is stamped (``at``) past the interrupt's time
      plus ``slack``. A sink may finish the block its device already took when the interrupt came (on the
      virtual clock, in the same instant): pass its block as ``slack``.
    """
    everything = list(log.events if isinstance(log, mg.EventLog) else log)
    events = [e for e in everything if e.node == node]
    out: list[Violation] = []

    def bad(rule: str, message: str, *shown: mg.Event) -> None:
        out.append(Violation(rule=rule, node=node, message=message, events=shown))

    period, max_late = float("inf"), float("inf")
    epoch, cut = 0, float("-inf")
    interrupt: mg.Event | None = None
    last: mg.Event | None = None  # the last release or repeat
    last_out: mg.Event | None = None  # the last frame out, idle included
    ended: dict[str, mg.Event] = {}
    for e in events:
        f = e.fields
        if e.event == "av_sync_started":
            period, max_late = 1.0 / float(f["fps"]), float(f["max_late"])
        elif e.event == "av_interrupted":
            epoch, cut, interrupt = int(f["epoch"]), float(f["cut"]), e
        elif e.event == "track_ended":
            track = str(f["track"])
            if track in ended:
                bad("av_end", f"track {track} ended twice", ended[track], e)
            ended.setdefault(track, e)
        elif e.event == "video_out":
            if "video" in ended:
                bad("av_end", "a frame went out on video after the track ended", ended["video"], e)
            pts = float(f["pts"])
            if last_out is not None and pts <= float(last_out.fields["pts"]) + _EPSILON / 2:
                bad("av_pts_order", f"{f['kind']} at pts {pts} after pts {last_out.fields['pts']}", last_out, e)
            last_out = e
            if f["kind"] == "idle":
                continue
            media = float(f["media"])
            if last is not None and media <= float(last.fields["media"]) + _EPSILON / 2:
                bad("av_pts_order", f"{f['kind']} of media {media} after media {last.fields['media']}", last, e)
            last = e
            if interrupt is not None and (int(f["stamp"]) < epoch or media < cut - _EPSILON):
                bad(
                    "av_stale",
                    f"{f['kind']} of media {media}, stamped {f['stamp']}, after the interrupt to epoch {epoch} "
                    f"(cut {cut})",
                    interrupt,
                    e,
                )
            if f["kind"] == "release":
                _check_skew(bad, e, period, max_late)
    finished = [e for e in events if e.event == "node_finished"]
    if finished and finished[-1].fields.get("reason") == "completed":
        for track in ("audio", "video"):
            if track not in ended:
                bad("av_end", f"track {track} never ended", finished[-1])
    if sink is not None:
        _check_old_audio(bad, [e for e in everything if e.node in (node, sink)], node, slack)
    return out


def _check_old_audio(bad: _Bad, events: list[mg.Event], node: str, slack: float) -> None:
    begun: set[object] = set()  # segments begun since the last interrupt
    old: set[object] = set()  # segments begun before it
    interrupt: mg.Event | None = None
    for e in events:
        if e.node == node:
            if e.event == "av_interrupted":
                old |= begun
                begun, interrupt = set(), e
            continue
        segment = e.fields.get("segment")
        if e.event == "playback_started" and segment not in old:
            begun.add(segment)
        elif interrupt is not None and segment in old:
            if e.event == "playback_started":
                bad("av_old_audio", f"segment {segment} of the interrupted turn started after it", interrupt, e)
            elif float(e.fields["at"]) > interrupt.t + slack + _EPSILON:
                late = float(e.fields["at"]) - interrupt.t
                bad("av_old_audio", f"segment {segment} of the interrupted turn played {late:.6f} s more", interrupt, e)


def _check_skew(bad: _Bad, e: mg.Event, period: float, max_late: float) -> None:
    skew = float(e.fields["skew"])
    if skew > _EPSILON:
        bad("av_skew", f"media {e.fields['media']} released {skew} s ahead of the played time", e)
    elif skew < -max_late - _EPSILON:
        bad("av_skew", f"media {e.fields['media']} released {-skew} s behind the played time (max_late {max_late})", e)
    elif e.fields["waited"] and abs(skew) > period + _EPSILON and _steady(e, period):
        bad("av_skew", f"media {e.fields['media']} waited and was released {-skew} s late (period {period:.6f})", e)


def _steady(e: mg.Event, period: float) -> bool:
    """Whether the played time moved by at most a period in the step that released ``e``."""
    since = e.fields.get("since")
    return since is not None and float(e.fields["played"]) - float(since) <= period + _EPSILON


def check_av(log: Iterable[mg.Event], node: str, *, sink: str | None = None, slack: float = 0.0) -> None:
    """Raise :class:`InvariantError` listing every violation :func:`av_violations` finds."""
    raise_if(av_violations(log, node, sink=sink, slack=slack))
