"""What the device nodes share about PortAudio: loading it lazily, finding a device, clear errors.

``sounddevice`` loads the system library PortAudio when it is imported, and raises ``OSError`` where that
library is missing. It is therefore imported here, only when a device node starts: ``import mediagraph``
and every graph without a device node work on a machine without PortAudio.

Tests replace the library by putting a stand-in module in ``sys.modules["sounddevice"]``; nothing else in
the nodes needs to know.
"""

from __future__ import annotations

import importlib
from typing import Any, Literal

import mediagraph as mg

__all__ = ["INSTALL", "find_device", "load_sounddevice", "map_clock", "open_stream"]

#: The command that installs the system library ``sounddevice`` needs (Debian, Ubuntu).
INSTALL = "apt-get install libportaudio2"

Kind = Literal["input", "output"]


def load_sounddevice(who: str) -> Any:
    """The ``sounddevice`` module.

    Args:
        who: the node, for messages (``"speaker 'out'"``).

    Raises:
        ProviderError: PortAudio or ``sounddevice`` is missing; the message names what is missing and the
            command that installs it.
    """
    try:
        return importlib.import_module("sounddevice")
    except OSError as exc:  # sounddevice is there, the system library it loads is not
        raise mg.ProviderError(
            f"{who}: the PortAudio library (libportaudio2) is not installed, so no sound device can be opened "
            f"({exc}); install it with: {INSTALL}"
        ) from exc
    except ImportError as exc:
        raise mg.ProviderError(
            f"{who}: the Python package sounddevice is not installed ({exc}); install it with: "
            f"pip install sounddevice (it needs the PortAudio library too: {INSTALL})"
        ) from exc


def _listing(sd: Any) -> str:
    try:
        text = str(sd.query_devices()).rstrip()
    except Exception as exc:  # a broken PortAudio cannot list: say so instead of hiding the first error
        return f"(cannot list them: {exc})"
    return text or "(none)"


def find_device(sd: Any, who: str, device: str | int, kind: Kind, channels: int) -> Any:
    """PortAudio's description of ``device`` (a name, part of one, or an index) for ``kind`` streams.

    Raises:
        ProviderError: no such device, several match, or it has fewer than ``channels`` channels; the
            message lists the available devices.
    """
    wanted = int(device) if isinstance(device, str) and device.isdigit() else device
    try:
        info = sd.query_devices(wanted, kind)
    except (ValueError, sd.PortAudioError) as exc:
        raise mg.ProviderError(
            f"{who}: no usable {kind} device {device!r} ({exc}); available devices:\n{_listing(sd)}"
        ) from None
    has = int(info[f"max_{kind}_channels"])
    if has < channels:
        raise mg.ProviderError(
            f"{who}: {kind} device {device!r} ({info['name']}) has {has} {kind} channels, {channels} wanted; "
            f"available devices:\n{_listing(sd)}"
        )
    return info


def open_stream(
    who: str,
    kind: Kind,
    device: str | int,
    rate: int,
    channels: int,
    blocksize: int,
    callback: Any,
    finished_callback: Any = None,
) -> tuple[Any, Any]:
    """Load PortAudio, find ``device`` and open and start a raw int16 stream calling ``callback`` per block.

    Blocking (loading PortAudio lists every device; opening a stream takes tens of milliseconds): run it
    with ``trio.to_thread.run_sync``.

    ``finished_callback`` (no arguments), if given, is called once the stream becomes inactive, in
    PortAudio's thread or in the one that stopped it: after ``stop()`` or ``abort()``, or when the stream ended
    by itself (its device gone, or the callback raised).

    Returns:
        the started stream (``sounddevice.RawOutputStream`` or ``RawInputStream``) and the device's
        description.

    Raises:
        ProviderError: PortAudio is missing, no such device, or it cannot be opened as asked; the message
            names the node and the device.

    Resource handling: the caller closes the stream (``close()``); it is closed here if starting it failed.
    """
    sd = load_sounddevice(who)
    info = find_device(sd, who, device, kind, channels)
    stream_type = sd.RawOutputStream if kind == "output" else sd.RawInputStream
    what = f"{who}: cannot open {kind} device {device!r} at {rate} Hz, {channels} channels, int16"
    try:
        stream = stream_type(
            device=info["index"],
            samplerate=rate,
            channels=channels,
            dtype="int16",
            blocksize=blocksize,
            callback=callback,
            finished_callback=finished_callback,
        )
    except sd.PortAudioError as exc:
        raise mg.ProviderError(f"{what}: {exc}") from exc
    try:
        stream.start()
    except sd.PortAudioError as exc:
        stream.close(ignore_errors=True)
        raise mg.ProviderError(f"{what}: {exc}") from exc
    return stream, info


def map_clock(stream_time: float, graph_time: float, t: float) -> float:
    """``t``, a time on the stream's clock, on the graph clock, given one instant read on both clocks.

    PortAudio stamps callbacks on its own clock (``Pa_GetStreamTime``); reading both clocks again for each
    batch of observations keeps the mapping right even if the two clocks drift apart.
    """
    return t - (stream_time - graph_time)
