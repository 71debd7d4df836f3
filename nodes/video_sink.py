"""``video_sink``: discards video and counts how it would have been presented."""

from __future__ import annotations

from typing import Any, final

import attrs

import mediagraph as mg

_v = attrs.validators


@final
@attrs.frozen(kw_only=True)
class VideoSinkConfig:
    """Args:
    fps: the frame rate expected: a frame whose media time is more than 1.5 frame periods after the one before
        it follows a *pts gap*.
    max_late: seconds; a frame arriving more than this after its schedule is *late*. The schedule is set by
        the frame that came earliest for its media time (the least arrival minus media time so far): a paced
        source sets it at its start, a node releasing frames as their audio plays (``av_sync``, behind an
        avatar's latency) at its first frame; a frame is late by how much more it lagged.
    """

    fps: float = attrs.field(default=25.0, validator=[_v.gt(0), _v.le(240)])
    max_late: float = attrs.field(default=0.05, validator=[_v.ge(0), _v.le(3600)])


@final
@attrs.frozen(kw_only=True)
class VideoSinkStatistics:
    """What a video sink saw.

    Args:
        frames: video frames received.
        repeats: frames holding the very pixels object of the frame before (a repeated picture).
        pts_gaps: frames whose media time is more than 1.5 frame periods after the previous frame's.
        pts_backwards: frames whose pts is not after the previous frame's.
        max_pts_gap: the largest media-time step between consecutive frames, seconds.
        max_arrival_gap: the largest graph-time gap between consecutive frames, seconds (a stall as seen).
        late: frames arriving more than ``max_late`` after their schedule.
        max_late: the most any frame arrived after its schedule, seconds.
        interrupts, flushes: control messages received.
    """

    frames: int = 0
    repeats: int = 0
    pts_gaps: int = 0
    pts_backwards: int = 0
    max_pts_gap: float = 0.0
    max_arrival_gap: float = 0.0
    late: int = 0
    max_late: float | None = None
    interrupts: int = 0
    flushes: int = 0


@final
@mg.node_type("video_sink", config=VideoSinkConfig)
class VideoSink(mg.Transform):
    """Counts and discards video, with presentation statistics; logs them (``video_sink_total``) at the end.

    Inlets: ``video`` (``VideoFrame``). The statistics (:class:`VideoSinkStatistics`) are in ``statistics()``
    while it runs and in the event ``video_sink_total`` when the input ends.
    """

    @staticmethod
    def ports(config: VideoSinkConfig) -> mg.Ports:
        return mg.Ports(inlets=[mg.InletSpec(name="video", types=mg.VideoFrame)])

    def __init__(self, config: VideoSinkConfig) -> None:
        self.config = config
        self._period = 1 / config.fps
        self._stats = VideoSinkStatistics()
        self._last: mg.VideoFrame | None = None
        self._last_arrival = 0.0
        self._lead: float | None = None  # the least arrival minus media time so far: the schedule

    def __repr__(self) -> str:
        return f"<VideoSink frames={self._stats.frames} late={self._stats.late}>"

    def start(self, io: mg.NodeIO) -> None:
        self._io = io

    def statistics(self) -> VideoSinkStatistics:
        return self._stats

    def process(self, inlet: str, msg: Any) -> None:
        s = self._stats
        if isinstance(msg, mg.Interrupt):
            self._stats = attrs.evolve(s, interrupts=s.interrupts + 1)
            return
        if isinstance(msg, mg.Flush):
            self._stats = attrs.evolve(s, flushes=s.flushes + 1)
            return
        if not isinstance(msg, mg.VideoFrame):
            return
        now = self._io.time()
        lag = now - msg.time
        self._lead = lag if self._lead is None else min(self._lead, lag)
        lateness = lag - self._lead
        changes: dict[str, Any] = {
            "frames": s.frames + 1,
            "late": s.late + (lateness > self.config.max_late),
            "max_late": lateness if s.max_late is None else max(s.max_late, lateness),
        }
        last = self._last
        if last is not None:
            step = msg.time - last.time
            changes["repeats"] = s.repeats + (msg.pixels is last.pixels)
            changes["pts_gaps"] = s.pts_gaps + (step > 1.5 * self._period)
            changes["pts_backwards"] = s.pts_backwards + (step <= 0)
            changes["max_pts_gap"] = max(s.max_pts_gap, step)
            changes["max_arrival_gap"] = max(s.max_arrival_gap, now - self._last_arrival)
        self._stats = attrs.evolve(s, **changes)
        self._last = msg
        self._last_arrival = now

    def finish(self) -> None:
        s = self._stats
        self._io.log(
            "video_sink_total",
            **{k: round(v, 6) if isinstance(v, float) else v for k, v in attrs.asdict(s).items()},
        )
