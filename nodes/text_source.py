"""``text_source``: scripted utterances, or the lines of a text file, as text chunks each closed by a flush."""

from __future__ import annotations

import re
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final, NamedTuple, final

import attrs

import mediagraph as mg

__all__ = ["MAX_FILE_BYTES", "MAX_UTTERANCES", "Line", "TextSourceConfig", "TextSource", "chunks"]

_v = attrs.validators

#: The largest text file read (bytes) and the most utterances a script or file may hold.
MAX_FILE_BYTES: Final = 1 << 20
MAX_UTTERANCES: Final = 10_000


class Line(NamedTuple):
    """One utterance: ``text``, sent at graph time ``at`` (seconds). A graph file writes it ``{at: 0.5, text:
    "..."}`` (or ``[0.5, "..."]``, how a dumped graph writes it back)."""

    at: float
    text: str


def _script(value: Any) -> tuple[Line, ...]:
    """The script from a list of ``{at: SECONDS, text: TEXT}`` mappings (or :class:`Line`), in time order."""
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Sequence):
        raise ValueError(f"script must be a list of {{at: SECONDS, text: TEXT}}, got {type(value).__name__}")
    if len(value) > MAX_UTTERANCES:
        raise ValueError(f"script has {len(value)} entries, at most {MAX_UTTERANCES}")
    lines: list[Line] = []
    for i, entry in enumerate(value):
        where = f"script entry {i}"
        if isinstance(entry, Sequence) and not isinstance(entry, str | bytes) and len(entry) == 2:
            entry = {"at": entry[0], "text": entry[1]}
        if not isinstance(entry, Mapping):
            raise ValueError(f"{where}: expected a mapping {{at: SECONDS, text: TEXT}}, got {mg.quote(entry)}")
        unknown = sorted(map(str, set(entry) - {"at", "text"}))
        if unknown:
            raise ValueError(f"{where}: unknown key {mg.quote(unknown[0])} (known: at, text)")
        at, text = entry.get("at"), entry.get("text")
        if isinstance(at, bool) or not isinstance(at, int | float) or not 0 <= at <= 1e6:
            raise ValueError(f"{where}: 'at' must be seconds between 0 and 1e6, got {mg.quote(at)}")
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"{where}: 'text' must be a non-empty string, got {mg.quote(text)}")
        if lines and at < lines[-1].at:
            raise ValueError(f"{where}: at {at} comes before the previous entry's {lines[-1].at} (keep time order)")
        lines.append(Line(at=float(at), text=text))
    return tuple(lines)


def _optional_path(value: Any) -> Path | None:
    return None if value is None else Path(value)


def _read_lines(config: TextSourceConfig, _: attrs.Attribute[Path | None], path: Path | None) -> None:
    """Read the file when the config is built, so a missing or unreadable one is the ``path`` parameter's error
    before the graph runs; its utterances go into ``config.lines`` (timed by ``every`` when the node starts)."""
    if path is None:
        return
    try:
        st = path.stat()
        if not stat.S_ISREG(st.st_mode):
            raise ValueError(f"path {str(path)!r}: not a regular file")
        if st.st_size > MAX_FILE_BYTES:
            raise ValueError(f"path {str(path)!r}: {st.st_size} bytes, at most {MAX_FILE_BYTES}")
        with open(path, "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise ValueError(f"path {str(path)!r}: no such file") from None
    except OSError as exc:
        raise ValueError(f"path {str(path)!r}: cannot read it ({exc.strerror})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"path {str(path)!r}: not UTF-8 text (byte {exc.start})") from None
    found = [line.strip() for line in text.splitlines() if line.strip()]
    if len(found) > MAX_UTTERANCES:
        raise ValueError(f"path {str(path)!r}: {len(found)} lines of text, at most {MAX_UTTERANCES}")
    object.__setattr__(config, "file_lines", tuple(found))


@final
@attrs.frozen(kw_only=True)
class TextSourceConfig:
    """Args:
    script: the utterances, ``[{at: SECONDS, text: TEXT}, ...]`` in time order (graph-clock seconds).
    path: a UTF-8 text file instead of a script: one utterance per non-empty line (read when the graph is
        built).
    every: with ``path``, seconds between the starts of two lines (0: all at once, back to back).
    chunk_words: words per chunk (0: each utterance in one chunk).
    """

    script: tuple[Line, ...] = attrs.field(default=(), converter=_script)
    path: Path | None = attrs.field(
        default=None, converter=_optional_path, validator=_read_lines, metadata={"path": "input"}
    )
    every: float = attrs.field(default=0.0, validator=[_v.ge(0), _v.le(1e6)])
    chunk_words: int = attrs.field(default=0, validator=[_v.ge(0), _v.le(MAX_UTTERANCES)])
    file_lines: tuple[str, ...] = attrs.field(init=False, default=(), eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        if self.path is not None and self.script:
            raise ValueError("give either script or path, not both")

    @property
    def lines(self) -> tuple[Line, ...]:
        """The utterances to send, in time order."""
        if self.path is None:
            return self.script
        return tuple(Line(at=i * self.every, text=text) for i, text in enumerate(self.file_lines))


def chunks(text: str, words: int) -> list[str]:
    """``text`` in pieces of ``words`` words (0: one piece); the pieces joined give ``text`` back, each word's
    trailing space going with it."""
    if words <= 0:
        return [text]
    pieces = re.findall(r"\s*\S+\s*", text)
    if not pieces:
        return [text]
    out = ["".join(pieces[i : i + words]) for i in range(0, len(pieces), words)]
    return out


@final
@mg.node_type("text_source", config=TextSourceConfig)
class TextSource(mg.Source):
    """Scripted utterances, or a text file's lines, as text chunks on the graph clock, each closed by a flush.

    Outlet: ``text`` (``TextChunk``: an utterance in one chunk, or ``chunk_words`` words per chunk, then a
    ``Flush``); it ends after the last utterance. One utterance goes out per clock tick (the pacer's
    millisecond), so utterances due at the same time leave a tick apart, each waiting for room downstream.
    """

    @staticmethod
    def ports(config: TextSourceConfig) -> mg.Ports:
        return mg.Ports(outlets=[mg.OutletSpec(name="text", types=mg.TextChunk)])

    def __init__(self, config: TextSourceConfig) -> None:
        self.config = config
        self.lines = config.lines
        self.sent = 0  # utterances sent

    def __repr__(self) -> str:
        return f"<TextSource {self.sent}/{len(self.lines)} utterances sent>"

    def start(self, io: mg.NodeIO) -> None:
        self._emit = io.outlets["text"].emit
        self._time = io.time

    def produce(self) -> float | None:
        lines = self.lines
        if self.sent < len(lines) and lines[self.sent].at <= self._time():  # one utterance a call: backpressure
            for piece in chunks(lines[self.sent].text, self.config.chunk_words):
                self._emit(mg.TextChunk(text=piece))
            self._emit(mg.Flush())
            self.sent += 1
        return lines[self.sent].at if self.sent < len(lines) else None
