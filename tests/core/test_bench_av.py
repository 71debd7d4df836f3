"""The AV workload's figures (``python -m bench AV``), on the virtual clock: what they count is what happened."""

from __future__ import annotations

import pytest

from bench import _av


@pytest.mark.parametrize("pattern", list(_av.PATTERNS))
def test_the_av_workload_measures_each_pattern(pattern: str) -> None:
    got = _av.run_pattern(pattern, 5.0, "virtual")
    assert got["interrupts"] == (2 if pattern == "interrupt" else 0)  # at 2 s and 4 s
    assert (got["stale_shown"], got["old_video_ms"], got["old_audio_ms"]) == (0, 0.0, 0.0)
    # Every frame the avatar made (5 s at 25 fps) is released or dropped, once.
    assert sum(got[k] for k in ("released", "late", "stale_dropped", "unplayed")) == 125  # type: ignore[misc]
    if pattern != "interrupt":
        assert (got["released"], got["repeated"]) == (125, 0)
    assert 0 <= got["p50_skew_ms"] <= got["p99_skew_ms"] <= got["max_skew_ms"] <= 40.0  # type: ignore[operator]
