"""Fixtures shared by the node tests."""

from __future__ import annotations

import errno
import io
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from nodes import _writers
else:
    from mediagraph.nodes import _writers


class _FullDisk(io.FileIO):
    """A file on a disk that fills up after ``room`` bytes."""

    room = 0

    def write(self, data: Any) -> int:
        if self.tell() + len(memoryview(data)) > self.room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return super().write(data)


@pytest.fixture
def full_disk(monkeypatch: pytest.MonkeyPatch) -> Callable[[int, str | None], None]:
    """``full_disk(room, suffix)``: from now on, the recorder's files (those ending in ``suffix``; ``None``:
    all) are on a disk that fills up after ``room`` bytes each."""

    def fill(room: int, suffix: str | None = None) -> None:
        opened = _writers.open_part

        def open_part(path: Path) -> io.FileIO:
            real = opened(path)
            if suffix is not None and path.suffix != suffix:
                return real
            fd = os.dup(real.fileno())
            real.close()
            full = _FullDisk(fd, "w")
            full.room = room
            return full

        monkeypatch.setattr(_writers, "open_part", open_part)

    return fill


@pytest.fixture
def read_only_folder(tmp_path: Path) -> Iterator[Path]:
    """A folder this process cannot write in: a read-only one, or, for root (who writes anywhere), /sys."""
    if os.geteuid() == 0:
        yield Path("/sys")
        return
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    yield folder
    folder.chmod(0o755)
