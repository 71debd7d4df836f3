"""The recorder's files: an in-progress name until finalized, readable at any moment in every format, never
written through a symbolic link, and failures that say what went wrong and never claim a finished recording."""

from __future__ import annotations

import errno
import shutil
import wave
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import pytest
import trio
import trio.testing

import mediagraph as mg

RATE = 48000


def tone_graph(path: Path, duration: float | None = None) -> mg.Graph:
    g = mg.Graph()
    g.add("tone", "tone_source", frequency=440, duration=duration)
    g.add("rec", "recorder", path=path)
    g.link("tone.audio", "rec.user")
    return g


def decoded_seconds(path: Path) -> float:
    with av.open(str(path)) as container:
        return sum(f.samples for f in container.decode(audio=0)) / RATE


@pytest.mark.parametrize("ext", [".wav", ".ogg", ".mp4"])
async def test_the_file_in_progress_is_readable_at_any_moment_and_takes_its_name_when_finalized(
    tmp_path: Path, ext: str, autojump_clock: trio.testing.MockClock
) -> None:
    out = tmp_path / f"call{ext}"
    part = tmp_path / f"call{ext}.part"
    snapshots = []
    async with mg.open_runtime() as runtime:
        running = await runtime.start(tone_graph(out))
        for i, at in enumerate((1.5, 3.0)):
            await trio.sleep_until(running.t0 + at)
            assert not out.exists(), "nothing under the final name until finalized"
            snapshots.append(tmp_path / f"snapshot{i}{ext}")
            shutil.copy(part, snapshots[-1])  # what a process killed now would leave
        running.stop()
        result = await running.wait()
    assert out.exists() and not part.exists()
    assert result.log.of("recording_started")[0].fields == {"path": str(out), "part": str(part)}
    for at, snapshot in zip((1.5, 3.0), snapshots, strict=True):
        assert at - 0.75 <= decoded_seconds(snapshot) <= at, f"{snapshot.name}: at most ~0.5 s behind"
    if ext == ".wav":
        # The header counts exactly the samples there.
        with wave.open(str(snapshots[1])) as w:
            assert w.getnframes() * 4 + 44 == snapshots[1].stat().st_size
    assert decoded_seconds(out) == pytest.approx(3.0, abs=0.1)


async def test_a_symbolic_link_at_the_path_is_refused_and_its_target_untouched(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    out = tmp_path / "call.wav"
    out.symlink_to(target)
    with pytest.raises(mg.NodeFailedError) as info:
        await mg.run(tone_graph(out, duration=0.5))
    assert isinstance(info.value.__cause__, mg.ProviderError)
    assert str(info.value.__cause__) == (
        f"cannot create recording '{out}': it is a symbolic link, and a recording is never written through one "
        f"(remove it)"
    )
    assert target.read_text() == "keep me"
    assert out.is_symlink() and not (tmp_path / "call.wav.part").exists()


async def test_a_leftover_part_is_replaced_never_followed(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    out = tmp_path / "call.wav"
    (tmp_path / "call.wav.part").symlink_to(target)  # planted, or left by a killed run
    result = await mg.run(tone_graph(out, duration=0.5))
    assert result.log.of("recording_finished")
    assert target.read_text() == "keep me"
    assert decoded_seconds(out) == pytest.approx(0.5)


async def test_an_existing_recording_is_replaced_only_by_a_complete_one(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    out = tmp_path / "call.wav"
    await mg.run(tone_graph(out, duration=0.5))
    async with mg.open_runtime() as runtime:
        running = await runtime.start(tone_graph(out, duration=2.0))
        await trio.sleep_until(running.t0 + 1.0)
        assert decoded_seconds(out) == pytest.approx(0.5), "the old one stays whole meanwhile"
        await running.wait()
    assert decoded_seconds(out) == pytest.approx(2.0)


async def failed(g: mg.Graph) -> tuple[str, mg.EventLog]:
    log = mg.EventLog()
    with pytest.raises(mg.NodeFailedError) as info:
        await mg.run(g, log=log)
    assert info.value.node == "rec"
    assert isinstance(info.value.__cause__, mg.ProviderError)
    assert not log.of("recording_finished"), "a failed recording never claims to be finished"
    return str(info.value.__cause__), log


async def test_a_file_where_a_folder_is_expected_is_named(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    (tmp_path / "out").write_text("")
    path = tmp_path / "out" / "deeper" / "call.ogg"
    message, _ = await failed(tone_graph(path, duration=0.1))
    assert message == f"cannot create recording '{path}': '{tmp_path / 'out'}' is a file, not a folder"


async def test_a_folder_at_the_path_is_named(tmp_path: Path, autojump_clock: trio.testing.MockClock) -> None:
    (tmp_path / "call.ogg").mkdir()
    message, _ = await failed(tone_graph(tmp_path / "call.ogg", duration=0.1))
    assert message == f"cannot create recording '{tmp_path / 'call.ogg'}': it is a folder"


async def test_a_read_only_folder_fails_at_start_and_never_logs_recording_finished(
    read_only_folder: Path, autojump_clock: trio.testing.MockClock
) -> None:
    path = read_only_folder / "call.wav"
    message, log = await failed(tone_graph(path, duration=0.1))
    assert message == f"cannot create recording '{path}': no permission to write in the folder '{read_only_folder}'"
    assert not log.of("recording_started")
    assert not path.exists() and not path.with_name("call.wav.part").exists()
    message, _ = await failed(tone_graph(read_only_folder / "new" / "call.wav", duration=0.1))
    assert message.endswith(f": no permission to create a folder in '{read_only_folder}'")


@pytest.mark.parametrize("ext", [".wav", ".ogg", ".mp4"])
async def test_a_full_disk_fails_naming_the_file_keeps_what_was_written_and_never_logs_recording_finished(
    tmp_path: Path, ext: str, full_disk: Callable[[int, str | None], None], autojump_clock: trio.testing.MockClock
) -> None:
    full_disk(100_000, None)
    out = tmp_path / f"call{ext}"
    part = tmp_path / f"call{ext}.part"
    message, log = await failed(tone_graph(out, duration=60))
    assert message.startswith(f"writing recording '{out}' failed: [Errno {errno.ENOSPC}] No space left on device")
    assert message.endswith(f"what was written so far is in '{part}'")
    assert [e.fields for e in log.of("recording_failed")] == [
        {"path": str(out), "part": str(part), "reason": f"[Errno {errno.ENOSPC}] No space left on device"}
    ]
    assert not out.exists()
    kept = decoded_seconds(part)
    assert kept > 0.1, "what reached the disk is readable"
    if ext == ".wav":
        assert kept == pytest.approx((part.stat().st_size - 44) / 4 / RATE)
    assert np.isfinite(kept)
