"""The speech node's pure core: text in, utterances out; synthesized audio and word events in, frames and
timed text chunks out. No trio, no clock, no thread: the actor (:mod:`.speech`) feeds it and sends what it
returns. The rules, which the tests check:

- **Utterances.** :class:`TextBuffer` joins the texts of the :class:`~mediagraph.TextChunk` messages as they
  come; a :class:`~mediagraph.Flush` makes them one utterance (possibly empty: an empty segment downstream too,
  so segments stay one for one); an :class:`~mediagraph.Interrupt` drops the text not flushed yet. More than
  ``MAX_CHARS`` characters without a flush is refused (``ValueError``).
- **Audio.** espeak speaks mono at its own rate (22050 Hz); :func:`resample` takes it to 48 kHz with soxr in
  one call per utterance (``round(n * 48000 / rate)`` samples, the same on every run). :func:`cut` cuts an
  utterance into frames of ``frame_len`` samples, the last one padded with silence, stamped consecutively from
  the utterance's start.
- **Timeline.** :class:`Timeline` places each utterance on one media timeline (48 kHz samples): right after the
  previous one, or, when paced, at the graph time it is ready if that is later (the silence between is a gap
  in timestamps, so a recorder places the voice where it was heard). An interrupted utterance takes only the
  part it sent (:meth:`Timeline.cut`). Timestamps never go back.
- **Words.** :func:`word_chunks` turns espeak's word events into one TextChunk per word, in text order:
  ``start`` is where espeak put the word (seconds from the utterance's first sample), ``end`` where the next
  word or clause boundary begins (else the end of the audio), both within the audio. Each chunk's text runs
  from its word to the next word (the text before the first word goes with the first, the rest after the last
  with the last), so the chunks joined give back the utterance's text exactly. A text in which espeak found no
  word but some non-space is one chunk spanning the audio.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, final

import numpy as np
import numpy.typing as npt
import soxr

import mediagraph as mg

from ._espeak import Word

__all__ = ["MAX_CHARS", "RATE", "TextBuffer", "Timeline", "cut", "resample", "word_chunks"]

#: The rate of the audio the speech node sends.
RATE: Final = 48000
#: The longest utterance (characters) taken without a flush.
MAX_CHARS: Final = 10_000

Samples = npt.NDArray[np.int16]


@final
class TextBuffer:
    """The text of the utterance being received."""

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._len = 0

    def __repr__(self) -> str:
        return f"<TextBuffer {self._len} characters pending>"

    def __len__(self) -> int:
        return self._len

    def add(self, chunk: mg.TextChunk) -> None:
        """Append a chunk's text.

        Raises:
            ValueError: the utterance would pass ``MAX_CHARS`` characters (nothing is added).
        """
        if self._len + len(chunk.text) > MAX_CHARS:
            raise ValueError(
                f"an utterance of more than {MAX_CHARS} characters without a Flush (send a Flush after each "
                "sentence or turn)"
            )
        self._parts.append(chunk.text)
        self._len += len(chunk.text)

    def flush(self) -> str:
        """The utterance received so far (maybe empty); the buffer is empty afterwards."""
        text = "".join(self._parts)
        self.drop()
        return text

    def drop(self) -> None:
        self._parts.clear()
        self._len = 0


def resample(samples: Samples, rate: int) -> Samples:
    """Mono int16 ``samples`` at ``rate`` as mono int16 at :data:`RATE`: ``round(n * RATE / rate)`` samples."""
    flat = np.ascontiguousarray(samples.reshape(-1))
    if rate == RATE or not len(flat):
        return flat.copy()
    out = soxr.resample(flat, rate, RATE)
    return np.asarray(out, dtype=np.int16)


def cut(samples: Samples, *, start: int, frame_len: int) -> list[mg.AudioFrame]:
    """Mono ``samples`` at :data:`RATE` as frames of ``frame_len`` samples (the last padded with silence),
    stamped ``start``, ``start + frame_len``...; none for no samples."""
    flat = samples.reshape(-1)
    count = -(-len(flat) // frame_len)
    padded = np.zeros((count * frame_len, 1), np.int16)
    padded[: len(flat), 0] = flat
    padded.flags.writeable = False
    return [
        mg.AudioFrame(
            samples=padded[i * frame_len : (i + 1) * frame_len],
            sample_rate=RATE,
            channels=1,
            timestamp=start + i * frame_len,
        )
        for i in range(count)
    ]


@final
class Timeline:
    """Where the next utterance goes on the media timeline (samples at :data:`RATE`)."""

    def __init__(self) -> None:
        self.position = 0  # the first sample after the last utterance placed
        self.sent = 0  # the first sample after the audio sent

    def __repr__(self) -> str:
        return f"<Timeline at {self.position} samples>"

    def place(self, length: int, *, now: float | None = None) -> int:
        """The timestamp of an utterance of ``length`` samples: right after the previous one, or at graph time
        ``now`` (seconds) if given and later."""
        start = self.position if now is None else max(self.position, round(now * RATE))
        self.position = start + length
        self.sent = max(self.sent, start)
        return start

    def note_sent(self, end: int) -> None:
        """The audio up to ``end`` was sent."""
        self.sent = max(self.sent, end)

    def cut(self) -> None:
        """The utterance being sent was interrupted: what it did not send never takes place on the timeline, so
        the next one may start right after what was sent."""
        self.position = self.sent


def word_chunks(text: str, words: Sequence[Word], duration: float) -> list[mg.TextChunk]:
    """One timed chunk per word espeak spoke of ``text`` (whose audio lasts ``duration`` seconds).

    Words out of text order, or repeating a position (espeak may announce one written token as several
    spoken words), join the word before them.
    """
    groups: list[list[Word]] = []  # a kept word, then the words joining it
    for word in words:
        if groups and not (groups[-1][0].position < word.position < len(text)):
            groups[-1].append(word)
        elif 0 <= word.position < len(text):
            groups.append([word])
    if not groups:  # nothing espeak called a word (punctuation only, say): the text, timed as the whole audio
        return [mg.TextChunk(text=text, start=0.0, end=duration)] if text.strip() else []
    chunks: list[mg.TextChunk] = []
    for i, group in enumerate(groups):
        first, last = group[0], group[-1]
        after = groups[i + 1][0] if i + 1 < len(groups) else None
        begin = 0 if i == 0 else first.position
        stop = after.position if after is not None else len(text)
        start = min(first.ms / 1000, duration)
        end_ms = last.end_ms if last.end_ms is not None else (after.ms if after is not None else None)
        end = duration if end_ms is None else min(max(end_ms / 1000, start), duration)
        chunks.append(mg.TextChunk(text=text[begin:stop], start=start, end=end))
    return chunks
