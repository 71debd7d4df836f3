"""Sound devices as PortAudio sees them (``mediagraph devices``), and the graph behind ``mediagraph play``.

``sounddevice`` loads the system library PortAudio when imported; it is imported here only when a command
asks, so the rest of the command line works on a machine without it. The device names listed are what a
speaker's or a mic's ``device`` parameter, ``--output-device`` and ``--input-device`` take (a name, a part of
one, or the index).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Final

from ._errors import MediaGraphError
from ._graph import Graph
from ._node import get_node_type

__all__ = ["INSTALL", "check_output", "device_table", "play_graph"]

#: The command that installs the system library ``sounddevice`` needs (Debian, Ubuntu).
INSTALL: Final = "apt-get install libportaudio2"


def _sounddevice() -> Any:
    try:
        return importlib.import_module("sounddevice")
    except OSError as exc:  # the package is there, the system library it loads is not
        raise MediaGraphError(
            f"the PortAudio library (libportaudio2) is not installed, so there are no sound devices to list "
            f"({exc}); install it with: {INSTALL}"
        ) from exc
    except ImportError as exc:
        raise MediaGraphError(
            f"the Python package sounddevice is not installed ({exc}): pip install sounddevice"
        ) from exc


def device_table() -> str:
    """The output and input devices, one line each: index, name, channels, default rate, host API; the
    defaults marked with ``*``.

    Raises:
        MediaGraphError: no PortAudio, or PortAudio cannot list its devices.
    """
    sd = _sounddevice()
    try:
        devices = list(sd.query_devices())
        default_in, default_out = (int(d) if d is not None else -1 for d in sd.default.device)
        apis = [api["name"] for api in sd.query_hostapis()]
    except Exception as exc:  # a broken PortAudio: say what it said
        raise MediaGraphError(f"PortAudio cannot list its devices: {exc}") from exc
    lines: list[str] = []
    for title, key, default in (
        ("output", "max_output_channels", default_out),
        ("input", "max_input_channels", default_in),
    ):
        found = [d for d in devices if d[key] > 0]
        none = f"{title} devices: none (PortAudio sees no sound card, and no sound server such as PulseAudio)"
        lines.append(f"{title} devices ({len(found)}):" if found else none)
        for d in found:
            mark = "*" if d["index"] == default else " "
            api = apis[d["hostapi"]] if 0 <= d["hostapi"] < len(apis) else "?"
            lines.append(
                f" {mark} {d['index']:>3}  {d['name']:<40} {d[key]:>3} ch  {d['default_samplerate']:>7.0f} Hz  {api}"
            )
    if any(d["max_output_channels"] > 0 or d["max_input_channels"] > 0 for d in devices):
        lines.append("* the default (device: default). Use a name, a part of one, or the index: --output-device pulse")
    return "\n".join(lines)


def check_output(device: str | int) -> None:
    """Before playing on ``device``: there is an output device at all (a clear error, not a node's).

    Raises:
        MediaGraphError: no PortAudio, or no output device.
    """
    if device == "virtual":
        return
    sd = _sounddevice()
    try:
        outputs = [d for d in sd.query_devices() if d["max_output_channels"] > 0]
    except Exception as exc:
        raise MediaGraphError(f"PortAudio cannot list its devices: {exc}") from exc
    if not outputs:
        raise MediaGraphError(
            "there is no sound output device (PortAudio sees no sound card and no sound server); "
            "'mediagraph devices' lists what it sees, and --output-device virtual plays on the graph clock, silently"
        )


def play_graph(path: Path, device: str | int) -> Graph:
    """A graph that plays the media file ``path`` on ``device`` (``virtual``: on the graph clock, silently):
    a ``file_source`` resampled to 48 kHz, mono or stereo as the file (more channels are mixed to two), into a
    ``speaker``.

    Raises:
        GraphDefinitionError: the file is missing or not a media file with audio (it is probed), or the device
            parameter is refused.
    """
    probe = get_node_type("file_source").make_config({"path": path}, where="node 'file' (file_source)")
    channels = min(probe.format.channels or 2, 2)
    graph = Graph(path.stem or "play")
    graph.add("file", "file_source", path=path, sample_rate=48000, channels=channels)
    graph.add("out", "speaker", device=device, channels=channels)
    graph.link("file.audio", "out.audio")
    graph.validate()
    return graph
