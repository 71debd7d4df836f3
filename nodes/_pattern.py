"""The video source's test pattern and its burned-in code: drawing it and reading it back. No trio, no clock.

Layout. The picture is cut into 12 bands of height; the top 7 hold eight colour bars (white for the whole top
when the frame *flashes*), the bottom 5 hold the **code**: 5 rows of 16 cells, each cell a solid block 1/16
of the width and 1/12 of the height, black or white. In every row the first cell is white and the last one
black (the markers: they give the row's white and black levels after any encoding, and a picture without
them is no coded frame); the 14 cells between carry 14 bits, white for 1, most significant first, row
after row: 70 bits = the frame index (24 bits), its media time in milliseconds (32 bits) and a check
(14 bits of the CRC-32 of the two), so a damaged or foreign picture reads as ``None`` (a wrong code passes
the check by chance once in 16384 damaged pictures).

Robustness. Reading averages the middle half of each cell (in both directions) and compares it with the
middle of its row's two markers, so it needs neither the exact size nor exact levels. Measured with libx264
(yuv420p, 25 fps, 320x240 drawn): 250 consecutive frames read back exactly after constant quality 40 at half
and at quarter size (80x60: a cell is 5x5 pixels), and at quality 51 (the worst) at full size; at quality 51
and half size 89% of them (the encoder skips the update of whole macroblocks). A frame that cannot be read
gives ``None``: none of these runs, nor 50 frames of random codes each, read a wrong code. Index and
milliseconds wrap at 2**24 and 2**32 (7.7 days of frames at 25 fps, 49 days of media): :func:`code_of` says
what a frame carries.
"""

from __future__ import annotations

import functools
import zlib
from typing import Final, final

import numpy as np
import numpy.typing as npt

__all__ = ["CODE_BITS", "Pattern", "code_of", "is_flash", "read_code"]

COLUMNS: Final = 16
ROWS: Final = 5
BANDS: Final = 12  # of height: the bars take BANDS - ROWS, the code ROWS
INDEX_BITS: Final = 24
MS_BITS: Final = 32
CHECK_BITS: Final = ROWS * (COLUMNS - 2) - INDEX_BITS - MS_BITS
CODE_BITS: Final = INDEX_BITS + MS_BITS + CHECK_BITS
#: The least difference between a row's white and black markers (of 255) for the row to be read at all.
MIN_CONTRAST: Final = 64
#: The mean level of the bars area (of 255) above which a picture is a flash (the bars' own mean is ~96).
FLASH_LEVEL: Final = 230

Pixels = npt.NDArray[np.uint8]

# The usual 75% colour bars: white, yellow, cyan, green, magenta, red, blue, black.
_BARS: Final = np.array(
    [[191, 191, 191], [191, 191, 0], [0, 191, 191], [0, 191, 0], [191, 0, 191], [191, 0, 0], [0, 0, 191], [0, 0, 0]],
    dtype=np.uint8,
)


def code_of(index: int, ms: int) -> tuple[int, int]:
    """What a frame of ``index`` at ``ms`` milliseconds carries (both wrap: the code has 24 and 32 bits)."""
    return index % (1 << INDEX_BITS), ms % (1 << MS_BITS)


def _check(index: int, ms: int) -> int:
    return zlib.crc32(index.to_bytes(3, "big") + ms.to_bytes(4, "big")) & ((1 << CHECK_BITS) - 1)


def _bits(index: int, ms: int) -> npt.NDArray[np.bool_]:
    index, ms = code_of(index, ms)
    word = (index << (MS_BITS + CHECK_BITS)) | (ms << CHECK_BITS) | _check(index, ms)
    bits = [(word >> (CODE_BITS - 1 - i)) & 1 for i in range(CODE_BITS)]
    return np.array(bits, dtype=bool).reshape(ROWS, COLUMNS - 2)


def _edges(size: int, parts: int) -> list[int]:
    return [round(i * size / parts) for i in range(parts + 1)]


@functools.lru_cache(maxsize=8)
def _base(width: int, height: int) -> Pixels:
    """The bars and the markers, shared read-only by every frame of that size."""
    picture = np.zeros((height, width, 3), dtype=np.uint8)
    xs, ys = _edges(width, COLUMNS), _edges(height, BANDS)
    bar_edges = _edges(width, len(_BARS))
    for i, colour in enumerate(_BARS):
        picture[: ys[BANDS - ROWS], bar_edges[i] : bar_edges[i + 1]] = colour
    picture[ys[BANDS - ROWS] :, xs[0] : xs[1]] = 255  # white markers; the black ones are the zeros
    picture.flags.writeable = False
    return picture


@final
class Pattern:
    """Draws coded frames of one size.

    Args:
        width, height: in pixels, at least 16 x 12 (a cell must be one pixel); the video source asks for
            even sizes of at least 64 x 48, which H.264 encodes.
    """

    def __init__(self, width: int, height: int) -> None:
        if width < COLUMNS or height < BANDS:
            raise ValueError(f"a pattern needs at least {COLUMNS}x{BANDS} pixels, got {width}x{height}")
        self.width = width
        self.height = height
        self._xs = _edges(width, COLUMNS)
        self._ys = _edges(height, BANDS)[BANDS - ROWS :]

    def __repr__(self) -> str:
        return f"<Pattern {self.width}x{self.height}>"

    def draw(self, index: int, ms: int, *, flash: bool = False) -> Pixels:
        """A new read-only rgb24 picture (height, width, 3) carrying ``code_of(index, ms)``; ``flash``: the
        area above the code is white."""
        picture = _base(self.width, self.height).copy()
        if flash:
            picture[: self._ys[0]] = 255
        xs, ys = self._xs, self._ys
        for r, row in enumerate(_bits(index, ms)):
            for c in np.flatnonzero(row):
                picture[ys[r] : ys[r + 1], xs[c + 1] : xs[c + 2]] = 255
        picture.flags.writeable = False
        return picture


def _luma(pixels: npt.NDArray[np.generic]) -> npt.NDArray[np.float64]:
    if pixels.ndim == 3:
        luma: npt.NDArray[np.float64] = pixels[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])
        return luma
    if pixels.ndim == 2:
        return pixels.astype(np.float64)
    raise ValueError(f"expected pixels (height, width[, channels]), got an array of shape {pixels.shape}")


def _middle(lo: int, hi: int) -> slice:
    quarter = (hi - lo) / 4
    return slice(round(lo + quarter), max(round(hi - quarter), round(lo + quarter) + 1))


def read_code(pixels: npt.NDArray[np.generic]) -> tuple[int, int] | None:
    """The ``(index, ms)`` burned into a picture of any size, or ``None`` if it carries no readable code.

    Args:
        pixels: rgb (height, width, 3) or grey (height, width), any integer or float dtype on a 0-255 scale.
    """
    luma = _luma(np.asarray(pixels))
    height, width = luma.shape
    if width < COLUMNS or height < BANDS:
        return None
    xs, ys = _edges(width, COLUMNS), _edges(height, BANDS)[BANDS - ROWS :]
    word = 0
    for r in range(ROWS):
        rows = _middle(ys[r], ys[r + 1])
        levels = [float(luma[rows, _middle(xs[c], xs[c + 1])].mean()) for c in range(COLUMNS)]
        white, black = levels[0], levels[-1]
        if white - black < MIN_CONTRAST:
            return None
        threshold = (white + black) / 2
        for level in levels[1:-1]:
            word = (word << 1) | (level > threshold)
    check = word & ((1 << CHECK_BITS) - 1)
    ms = (word >> CHECK_BITS) & ((1 << MS_BITS) - 1)
    index = word >> (MS_BITS + CHECK_BITS)
    return (index, ms) if check == _check(index, ms) else None


def is_flash(pixels: npt.NDArray[np.generic]) -> bool:
    """Whether the area above the code is white (a frame drawn with ``flash``), at any size and after encoding."""
    luma = _luma(np.asarray(pixels))
    top = _edges(luma.shape[0], BANDS)[BANDS - ROWS]
    return bool(top > 0 and luma[:top].mean() > FLASH_LEVEL)
