"""An independent, strict reading of WebVTT subtitles (the recorder's ``.vtt``), for tests."""

from __future__ import annotations

import re
from typing import Final

__all__ = ["Cue", "read_vtt"]

#: A cue as read: start and end in milliseconds, and its text (``&lt;``, ``&gt;``, ``&amp;`` unescaped).
Cue = tuple[int, int, str]

_TIME: Final = r"(\d{2,}):([0-5]\d):([0-5]\d)\.(\d{3})"
_TIMING: Final = re.compile(rf"^{_TIME} --> {_TIME}$")


def _ms(h: str, m: str, s: str, frac: str) -> int:
    return ((int(h) * 60 + int(m)) * 60 + int(s)) * 1000 + int(frac)


def read_vtt(text: str) -> list[Cue]:
    """The cues of a WebVTT file, as its spec reads them.

    Raises:
        ValueError: anything a player could misread: no header, a block that is not a cue, a cue without text,
            a tag or a ``-->`` in cue text, a cue that does not end after it starts.
    """
    lines = re.split(r"\r\n|\r|\n", text)
    if lines[0] != "WEBVTT":
        raise ValueError(f"no WEBVTT header: {lines[0][:40]!r}")
    blocks: list[list[str]] = [[]]
    for line in lines[1:]:
        if line:
            blocks[-1].append(line)
        elif blocks[-1]:
            blocks.append([])
    cues = []
    for block in (b for b in blocks if b):
        timing = _TIMING.match(block[0])
        if timing is None:
            raise ValueError(f"not a cue timing line: {block[0][:60]!r}")
        start, end = _ms(*timing.groups()[:4]), _ms(*timing.groups()[4:])
        if end <= start:
            raise ValueError(f"a cue that does not end after it starts: {block[0]!r}")
        body = block[1:]
        if not body:
            raise ValueError(f"a cue without text at {block[0]!r}")
        for line in body:
            if "-->" in line or "<" in line:
                raise ValueError(f"a tag or an arrow in cue text: {line[:60]!r}")
        joined = "\n".join(body)
        cues.append((start, end, joined.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")))
    return cues
