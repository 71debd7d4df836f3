"""The recorder's subtitles core: :class:`Subtitles` turns :class:`mediagraph.Transcript` messages (what the
listener heard of each segment) into WebVTT cues on the recording's timeline. No trio, no clock, no I/O: the
recorder feeds it and writes the text it returns (:class:`~._writers.SubtitleFile`). The rules, which the
property tests check:

- **Timeline.** The recording's sample ``n`` is media time ``n / 48000`` seconds (:mod:`._conversation`
  places a frame at its timestamp over its rate, from media time 0), so a cue's times are media times: a
  transcript covers ``start`` to ``start + position``, which is exactly the agent audio the recording keeps
  of the segment (an interrupted segment's audio is trimmed at ``start + position``, its cue ends there).
  Times are written to the millisecond (rounded); a cue lasts at least 1 ms (players drop empty cues).
- **Untimed transcripts.** A transcript without ``start`` (its sink did not stamp its playback events) takes
  the media time of its segment's first agent frame, the agent's segments numbered by
  :class:`mediagraph.SegmentCounter` as the recorder numbers them for playback events without ``start``.
  When that segment is unknown (no agent inlet, or numbering given up once a transcript carried ``start``)
  the cue is skipped and counted (``untimed_cues``). A transcript whose text is empty makes no cue.
- **Text.** Every run of whitespace (line breaks included) becomes one space, so a cue is one line and never
  holds a blank line; ``&``, ``<`` and ``>`` are escaped (``&amp;``, ``&lt;``, ``&gt;``), so no text reads as
  a tag nor holds ``-->``; a NUL becomes U+FFFD, as a WebVTT parser would read it.
- **Order.** Cues are appended as transcripts come, which is time order when segments play in order (they
  do: a sink finishes them in order, and media time increases along the agent stream); :attr:`in_order` says
  whether that held, and :meth:`document` gives every cue sorted by start time (stable), for the final file.
"""

from __future__ import annotations

import bisect
from typing import Final, final

import attrs

import mediagraph as mg

__all__ = ["HEADER", "Cue", "Subtitles", "cue_text", "timestamp"]

#: What a WebVTT file starts with; every cue block after it starts with a blank line.
HEADER: Final = "WEBVTT\n"
#: Segments whose first frame's media time is remembered at most, for transcripts without ``start``.
_MAX_STARTS: Final = 4096


def cue_text(text: str) -> str:
    """``text`` as one line of WebVTT cue text (see the module's docstring); empty if it holds no word."""
    line = " ".join(text.replace("\0", "\ufffd").split())
    return line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def timestamp(ms: int) -> str:
    """``HH:MM:SS.mmm`` (hours grow past two digits when needed)."""
    seconds, milli = divmod(ms, 1000)
    minutes, sec = divmod(seconds, 60)
    hours, minute = divmod(minutes, 60)
    return f"{hours:02d}:{minute:02d}:{sec:02d}.{milli:03d}"


@final
@attrs.frozen(kw_only=True)
class Cue:
    """One cue: from ``start`` to ``end`` (milliseconds on the recording's timeline), escaped ``text``."""

    start: int
    end: int
    text: str

    def block(self) -> str:
        return f"\n{timestamp(self.start)} --> {timestamp(self.end)}\n{self.text}\n"


@final
class Subtitles:
    """Feed it the agent's stream (for transcripts without ``start``) and the transcripts; take cue text out."""

    def __init__(self) -> None:
        self.cues: list[Cue] = []  # sorted by start (stable: by arrival among equal starts)
        self.untimed_cues = 0
        self.in_order = True  # every cue appended so far starts at or after the ones before it
        self._counter: mg.SegmentCounter | None = mg.SegmentCounter()  # None: the transcripts carry start
        self._starts: dict[int, float] = {}  # counted segment -> media seconds of its first frame
        self._last_start = 0

    def __repr__(self) -> str:
        return f"<Subtitles cues={len(self.cues)} untimed={self.untimed_cues} in_order={self.in_order}>"

    def agent(self, msg: object) -> None:
        """A message of the agent's stream: frames and boundaries number its segments."""
        counter = self._counter
        if counter is None:
            return
        if isinstance(msg, mg.AudioFrame):
            segment = counter.frame()
            if segment not in self._starts:
                self._starts[segment] = msg.timestamp / msg.sample_rate
                if len(self._starts) > _MAX_STARTS:
                    del self._starts[next(iter(self._starts))]
        elif isinstance(msg, mg.Flush):
            counter.flush()
        elif isinstance(msg, mg.Interrupt):
            counter.cut()

    def end_agent(self) -> None:
        """The agent's stream ended: its open segment, if any, is complete."""
        if self._counter is not None:
            self._counter.cut()

    def transcript(self, msg: object) -> str:
        """A transcript: the WebVTT text to append for it (a cue block, or nothing)."""
        if not isinstance(msg, mg.Transcript):
            return ""
        start = msg.start
        if start is not None:
            self._counter = None  # the sink says where its segments are: counting is not needed, nor right
            self._starts.clear()
        else:
            start = self._starts.get(msg.segment)
            for segment in [s for s in self._starts if s <= msg.segment]:
                del self._starts[segment]  # transcripts come in segment order: nothing will ask for these
        text = cue_text(msg.text)
        if not text:
            return ""
        if start is None:
            self.untimed_cues += 1
            return ""
        begin = max(0, round(start * 1000))
        cue = Cue(start=begin, end=max(begin + 1, round((start + max(0.0, msg.position)) * 1000)), text=text)
        if cue.start < self._last_start:
            self.in_order = False
        self._last_start = max(self._last_start, cue.start)
        bisect.insort(self.cues, cue, key=lambda c: c.start)
        return cue.block()

    def document(self) -> str:
        """The whole file: the header and every cue, sorted by start time."""
        return HEADER + "".join(cue.block() for cue in self.cues)

    def statistics(self) -> dict[str, int]:
        return {"cues": len(self.cues), "untimed_cues": self.untimed_cues}
