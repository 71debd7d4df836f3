"""The transcript synchronizer's pure core: text released in step with the audio actually played.

No trio, no clock, no I/O: the actor feeds it what arrives on its inlets and the playback events from below,
and sends on what it decides (:class:`Word` releases and one :class:`mediagraph.Transcript` per segment).

Theory of operation.

- **Utterances.** The audio inlet is cut into utterances as a slot or a :class:`~mediagraph.PlaybackTracker`
  cuts it into segments: the first frame after a boundary opens one; a flush closes it (an empty one if none is
  open); an interrupt closes the open one, if any. The text inlet is cut by its own flushes (end of
  utterance); the k-th text utterance is the k-th audio utterance's text, so text before or after its audio, in
  any chunking, lands in the same utterance. An interrupt also ends the text of every utterance up to the one
  it cut, and drops text that ran ahead of the audio (the producer was interrupted too): the next text belongs
  to the next utterance that gets audio.
- **Words** are the runs of non-space characters (a word may be split across chunks: it is complete once
  followed by a space or its utterance's text has ended); transcripts join them with single spaces.
- **Timing** (seconds from the utterance's first sample). A word that begins in a timed chunk
  (``start`` given) starts at ``start``, or spread over ``[start, end)`` by syllables when ``end`` is given. An
  untimed word between two timed ones is interpolated by syllables; one after the last timed word (or with
  none) runs on at ``syllables_per_second``, scaled so the text ends with the audio once the utterance's audio
  has ended with a flush (an interrupt cut the audio short, so its duration says nothing of the text's: the
  rate stands). Syllables: the groups of consecutive vowels (``aeiouy``, any case), at least one per word. A
  word never starts before the word preceding it (a start is the larger of its own and the previous one's).
  A start is *final* once nothing more can move it; only final starts are used, so a released word stays heard.
- **Segments** are the playback events' own: their ids and generations, as the slot below reports them (one
  numbering serves the sink, the slot, the recorder and this core). A new segment is placed in the
  utterances by its ``start`` (media seconds of its first frame): the first frame of an utterance, or a frame
  inside the current one (a cut below — a slot's cut swap, a dying sink — split the utterance, and the rest
  of its audio went on as a new segment). A segment without ``start`` (an empty one, or a sink that does not
  stamp) is the next utterance, if that one is empty (its audio ended without a frame) or the sink has never
  stamped a ``start``; otherwise it is the empty tail of the current utterance (a cut below after the
  utterance's last frame and before its flush gave that flush an empty segment of its own).
- **Decisions.** A word of the segment (start at or after the segment's offset in the utterance) is released
  once its start is final and strictly before the played position. The segment's :class:`mediagraph.Transcript` comes
  once it has finished and its utterance's text has ended and is final: played out, every word from its
  offset on; interrupted, the words whose start is before the played position. The words of the transcript
  not yet released are released just before it; nothing of a segment after it; transcripts in segment order,
  and a later segment's words wait for the earlier transcript.
- **Contract.** As :class:`~mediagraph.PlaybackContract`: an event of a generation older than one seen is
  stale, ignored and counted; the first event sets where ids start; an event for a finished segment, a
  segment out of order, or audio never fed raises :class:`~mediagraph.PlaybackContractError`.
"""

from __future__ import annotations

import bisect
import re
from fractions import Fraction
from typing import Final, NoReturn, final

import attrs

import mediagraph as mg

__all__ = ["Decision", "TranscriptCore", "Word", "syllables"]

_EPSILON: Final = 1e-6  # seconds: a segment's start against a frame's
_VOWELS: Final = re.compile(r"[aeiouy]+", re.IGNORECASE)
_WORD: Final = re.compile(r"\S+")


def syllables(word: str) -> int:
    """Estimated syllables of ``word``: its groups of consecutive vowels (``aeiouy``), at least one."""
    return max(1, len(_VOWELS.findall(word)))


@final
@attrs.frozen(kw_only=True)
class Word:
    """A word released: the played position of ``segment`` has passed its ``start`` (seconds into the segment)."""

    segment: int
    generation: int
    text: str
    start: float


Decision = Word | mg.Transcript


@final
@attrs.define
class _Utterance:
    frame_starts: list[float] = attrs.Factory(list)  # media seconds of each frame
    frame_offsets: list[Fraction] = attrs.Factory(list)  # seconds of the utterance before each frame
    duration: Fraction = Fraction(0)
    audio_closed: bool = False
    cut: bool = False  # closed by an interrupt: its duration is not the text's
    text: str = ""
    chunks: list[int] = attrs.Factory(list)  # where each chunk begins in text
    timings: list[tuple[float | None, float | None]] = attrs.Factory(list)  # each chunk's (start, end)
    text_closed: bool = False


@final
@attrs.define
class _Segment:
    id: int
    generation: int
    utterance: int
    offset: float  # seconds of the utterance before the segment's first sample
    position: float = 0.0
    finished: bool = False
    interrupted: bool = False
    start: float | None = None  # the segment's media time, as its playback events give it
    t: float = 0.0  # graph time of its last playback event
    released: int = 0  # words of the segment released so far


@final
class TranscriptCore:
    """Feed it audio, text and playback events; each call returns the decisions now due, in order.

    Args:
        syllables_per_second: the speaking rate untimed text is estimated at (see the module's docstring).
        name: the node's name, for errors.

    Raises:
        ValueError: a rate that is not positive.
    """

    def __init__(self, *, syllables_per_second: float = 4.0, name: str = "transcript_sync") -> None:
        if not syllables_per_second > 0:
            raise ValueError(f"syllables_per_second must be positive, got {syllables_per_second!r}")
        self.rate = syllables_per_second
        self.name = name
        self.stale = 0  # playback events ignored for an older generation
        self.dropped_words = 0  # text that ran ahead of an interrupt
        self._utterances: dict[int, _Utterance] = {}
        self._audio = mg.SegmentCounter()  # utterances of the audio, numbered as the segments below number them
        self._text_at = 0  # the utterance text goes to
        self._segments: list[_Segment] = []  # without a transcript yet, in id order
        self._next_id: int | None = None  # the id a new segment must have
        self._placed = -1  # the utterance of the last segment placed
        self._stamped = False  # an event has carried a start: the sink below stamps its segments
        self._generation = 0

    def __repr__(self) -> str:
        segments = [s.id for s in self._segments]
        return f"<TranscriptCore audio_at={self._audio_at} text_at={self._text_at} segments={segments}>"

    @property
    def _audio_at(self) -> int:
        """The utterance audio goes to: the open one, else the next."""
        return self._audio.next if self._audio.open is None else self._audio.open

    def _utterance(self, index: int) -> _Utterance:
        return self._utterances.setdefault(index, _Utterance())

    # --- inputs ---------------------------------------------------------------------------------------------

    def audio(self, start: float, samples: int, sample_rate: int) -> list[Decision]:
        """A frame of ``samples`` at ``sample_rate`` whose first sample is at media time ``start`` (seconds)."""
        utt = self._utterance(self._audio.frame())
        utt.frame_starts.append(start)
        utt.frame_offsets.append(utt.duration)
        utt.duration += Fraction(samples, sample_rate)
        return self._advance()

    def audio_end(self) -> list[Decision]:
        """A flush on the audio inlet: the utterance's audio is complete (an empty utterance if none is open)."""
        self._utterance(self._audio.flush()).audio_closed = True
        return self._advance()

    def text(self, text: str, start: float | None = None, end: float | None = None) -> list[Decision]:
        """A chunk of the current utterance's text; ``start``/``end``: seconds into the utterance's audio."""
        utt = self._utterance(self._text_at)
        utt.chunks.append(len(utt.text))
        utt.timings.append((start, end))
        utt.text += text
        return self._advance()

    def text_end(self) -> list[Decision]:
        """A flush on the text inlet: the utterance's text is complete."""
        self._utterance(self._text_at).text_closed = True
        self._text_at += 1
        return self._advance()

    def interrupt(self) -> list[Decision]:
        """Barge-in: the open utterance (if any) is cut; text up to it is complete, text beyond it dropped."""
        cut = self._audio.cut()
        if cut is not None:
            utt = self._utterance(cut)
            utt.audio_closed = utt.cut = True
        self._close_text()
        return self._advance()

    def end(self) -> list[Decision]:
        """Every inlet has ended: the open utterance closes as after a flush; text is complete."""
        ended = self._audio.cut()
        if ended is not None:
            self._utterance(ended).audio_closed = True
        self._close_text()
        return self._advance()

    def _close_text(self) -> None:
        for index in [i for i in self._utterances if i >= self._audio_at]:
            self.dropped_words += len(_WORD.findall(self._utterances.pop(index).text))
        for utt in self._utterances.values():
            utt.text_closed = True
        self._text_at = self._audio_at

    def playback(self, event: mg.PlaybackEvent) -> list[Decision]:
        """A playback event from below.

        Raises:
            mediagraph.PlaybackContractError: an event for a finished segment, for a segment out of order, or
                for audio this core was never fed.
        """
        if event.generation < self._generation:
            self.stale += 1
            return []
        self._generation = event.generation
        current = self._segments[-1] if self._segments and not self._segments[-1].finished else None
        if self._next_id is None:
            self._next_id = event.segment
        if current is None or current.id != event.segment:
            if current is not None or event.segment != self._next_id:
                rule = "nothing_after_finish" if event.segment < self._next_id else "finish_order"
                expected = current.id if current is not None else self._next_id
                self._breach(rule, f"event for segment {event.segment} while expecting segment {expected}")
            utterance, offset = self._place(event)
            current = _Segment(id=event.segment, generation=event.generation, utterance=utterance, offset=offset)
            self._segments.append(current)
            self._next_id += 1
        current.generation = event.generation
        current.start = event.start if event.start is not None else current.start
        current.t = event.t
        if isinstance(event, mg.PlaybackProgress | mg.PlaybackFinished):
            current.position = max(current.position, event.position)
        if isinstance(event, mg.PlaybackFinished):
            current.finished, current.interrupted = True, event.interrupted
        return self._advance()

    def _place(self, event: mg.PlaybackEvent) -> tuple[int, float]:
        """The utterance a new segment plays and its offset there."""
        if event.start is None and self._stamped and not self._empty(self._placed + 1) and self._placed >= 0:
            # An empty segment that is no empty utterance: a cut below (a slot's cut swap, a dying sink) closed the
            # placed utterance's segment before its flush, and the flush went on as an empty segment of its own.
            index, offset = self._placed, self._utterances[self._placed].duration
        elif event.start is None:
            index, offset = self._placed + 1, Fraction(0)
            if not self._fed(index):
                self._breach("segment_sent", f"segment {event.segment}: no utterance {index} was fed")
        else:
            self._stamped = True
            found = self._find(event.start)
            if found is None:
                self._breach("segment_sent", f"segment {event.segment} starts at {event.start:.6f} s, no frame did")
            index, offset = found
        self._placed = index
        return index, float(offset)

    def _empty(self, index: int) -> bool:
        """Whether utterance ``index`` was fed and is empty: its audio ended without a frame."""
        utt = self._utterances.get(index)
        return self._fed(index) and utt is not None and not utt.frame_starts

    def _fed(self, index: int) -> bool:
        utt = self._utterances.get(index)
        return utt is not None and (index < self._audio_at or bool(utt.frame_starts))

    def _find(self, start: float) -> tuple[int, Fraction] | None:
        """The utterance (from the current one on) with a frame at media time ``start``, and its offset there:
        the first frame of a later utterance, or a frame after the first of the current one (a split)."""
        for index in sorted(i for i in self._utterances if i >= max(self._placed, 0)):
            utt = self._utterances[index]
            for j, at in enumerate(utt.frame_starts):
                if abs(at - start) <= _EPSILON and (j > 0) == (index == self._placed):
                    return index, utt.frame_offsets[j]
        return None

    def _breach(self, rule: str, message: str) -> NoReturn:
        raise mg.PlaybackContractError(self.name, "playback", rule, message)

    # --- decisions ------------------------------------------------------------------------------------------

    def _advance(self) -> list[Decision]:
        out: list[Decision] = []
        while self._segments:
            seg = self._segments[0]
            words, whole = self._words(self._utterances[seg.utterance])
            mine = [(w, at) for w, at in words if at >= seg.offset]
            heard = seg.offset + seg.position
            if seg.finished and whole:
                due = mine if not seg.interrupted else [(w, at) for w, at in mine if at < heard]
            else:
                due = [(w, at) for w, at in mine if at < heard]
            for text, at in due[seg.released :]:
                out.append(Word(segment=seg.id, generation=seg.generation, text=text, start=at - seg.offset))
            seg.released = max(seg.released, len(due))
            if not (seg.finished and whole):
                break
            out.append(
                mg.Transcript(
                    segment=seg.id,
                    generation=seg.generation,
                    interrupted=seg.interrupted,
                    position=seg.position,
                    text=" ".join(w for w, _ in due),
                    start=seg.start,
                    t=seg.t,
                )
            )
            self._segments.pop(0)
            keep = self._segments[0].utterance if self._segments else self._placed
            for index in [i for i in self._utterances if i < keep]:
                del self._utterances[index]
        return out

    def _words(self, utt: _Utterance) -> tuple[list[tuple[str, float]], bool]:
        """The utterance's complete words whose start is final, with their starts, and whether that is all."""
        found = [(m.start(), m.group()) for m in _WORD.finditer(utt.text)]
        if found and not utt.text_closed and found[-1][0] + len(found[-1][1]) == len(utt.text):
            found.pop()  # the next chunk may go on with it
        counts = [syllables(w) for _, w in found]
        before = [0]  # syllables before each word
        for c in counts:
            before.append(before[-1] + c)
        timed = self._timed(utt, found, counts)
        anchors = [i for i, at in enumerate(timed) if at is not None]
        starts: list[float] = []
        for i, at in enumerate(timed):
            if at is None:
                k = bisect.bisect_left(anchors, i)
                a_syl, a_at = (before[anchors[k - 1]], timed[anchors[k - 1]]) if k else (0, 0.0)
                assert a_at is not None
                if k < len(anchors):  # between two timed words
                    b_at = timed[anchors[k]]
                    assert b_at is not None
                    at = a_at + (b_at - a_at) * (before[i] - a_syl) / (before[anchors[k]] - a_syl)
                elif not (utt.text_closed and utt.audio_closed):
                    return self._ordered(found, starts), False
                elif not utt.cut and utt.duration > a_at:
                    at = a_at + (float(utt.duration) - a_at) * (before[i] - a_syl) / (before[-1] - a_syl)
                else:
                    at = a_at + (before[i] - a_syl) / self.rate
            starts.append(at)
        return self._ordered(found, starts), utt.text_closed

    @staticmethod
    def _timed(utt: _Utterance, found: list[tuple[int, str]], counts: list[int]) -> list[float | None]:
        """Each word's start from the timed chunk it begins in, or ``None``."""
        chunk_of = [bisect.bisect_right(utt.chunks, at) - 1 for at, _ in found]
        in_chunk: dict[int, int] = {}  # syllables of the words beginning in each chunk
        for c, n in zip(chunk_of, counts, strict=True):
            in_chunk[c] = in_chunk.get(c, 0) + n
        seen: dict[int, int] = {}
        out: list[float | None] = []
        for c, n in zip(chunk_of, counts, strict=True):
            start, end = utt.timings[c]
            done = seen.get(c, 0)
            seen[c] = done + n
            out.append(None if start is None else start if end is None else start + (end - start) * done / in_chunk[c])
        return out

    @staticmethod
    def _ordered(found: list[tuple[int, str]], starts: list[float]) -> list[tuple[str, float]]:
        out: list[tuple[str, float]] = []
        for (_, word), at in zip(found, starts, strict=False):
            out.append((word, max(at, out[-1][1]) if out else at))
        return out
