"""``frame_processor``: runs an audio processor on every frame: ``apm``, ``gain``, ``resample`` or ``plugin``.

Theory of operation. A *processor* (:class:`Processor`) is an opened object that may be shared by several
streams (a noise-cancellation model, say); each node using it opens its own *stream* on it
(:class:`ProcessorStream`) for the state that belongs to one stream (re-chunking buffers, resampler state).
Stream metadata (:class:`StreamMetadata`, :class:`StreamMetadataCleared`) goes to the processor, through a
pure :class:`MetadataState` that turns messages into callbacks: in order, each change once, and a clear once
however many times it arrives.

Resource handling: whoever calls :meth:`ProcessorConfig.open` owns the processor it returns and closes it
exactly once (``with`` or :meth:`Processor.close`). A node given an inline processor opens it at start and
closes it when its input ends; a node given an opened processor (a graph resource) never closes it.
"""

from __future__ import annotations

import abc
import importlib
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from types import TracebackType
from typing import Any, Final, Self

import attrs
import numpy as np
import soxr
from livekit import rtc

import mediagraph as mg

from ._audio import Chunker, Samples, map_channels

_v = attrs.validators

#: The AudioProcessingModule (and the plugins, like LiveKit's own audio streams) take exactly 10 ms frames.
CHUNK_MS: Final = 10


# --- stream metadata --------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class StreamMetadata:
    """Who a stream belongs to and how to reach its service; sent again whenever any of it changes
    (reconnect, token refresh). The token is never shown in ``repr``.

    Args:
        room: room name.
        participant: participant identity.
        track_id: the track's publication id.
        url: the service URL (``""``: no credentials).
        token: the access token (``""``: no credentials).
    """

    room: str
    participant: str
    track_id: str
    url: str = ""
    token: str = attrs.field(default="", repr=False)


@attrs.frozen(kw_only=True)
class StreamMetadataCleared:
    """The stream left its room: stream information and credentials are gone."""

    reason: str = ""


@attrs.frozen
class StreamInfoUpdated:
    room: str
    participant: str
    track_id: str


@attrs.frozen
class StreamInfoCleared:
    pass


@attrs.frozen
class CredentialsUpdated:
    url: str
    token: str = attrs.field(repr=False)


@attrs.frozen
class CredentialsCleared:
    pass


MetadataCall = StreamInfoUpdated | StreamInfoCleared | CredentialsUpdated | CredentialsCleared


class MetadataState:
    """Turns metadata messages into the calls a processor sees (pure, no I/O).

    A message that changes the stream information gives one :class:`StreamInfoUpdated`; one that changes the
    credentials one :class:`CredentialsUpdated` (or :class:`CredentialsCleared` when they become empty); a
    message that changes nothing gives nothing. :class:`StreamMetadataCleared` gives
    :class:`StreamInfoCleared` (and :class:`CredentialsCleared` if there were credentials) once: clearing
    what is already clear gives nothing.
    """

    def __init__(self) -> None:
        self.current: StreamMetadata | None = None

    def __repr__(self) -> str:
        return f"<MetadataState {self.current!r}>"

    def apply(self, msg: StreamMetadata | StreamMetadataCleared) -> list[MetadataCall]:
        prev, calls = self.current, list[MetadataCall]()
        if isinstance(msg, StreamMetadataCleared):
            self.current = None
            if prev is not None:
                calls.append(StreamInfoCleared())
                if prev.url or prev.token:
                    calls.append(CredentialsCleared())
            return calls
        self.current = msg
        if prev is None or (prev.room, prev.participant, prev.track_id) != (msg.room, msg.participant, msg.track_id):
            calls.append(StreamInfoUpdated(msg.room, msg.participant, msg.track_id))
        before = (prev.url, prev.token) if prev is not None else ("", "")
        if (msg.url, msg.token) != before:
            calls.append(CredentialsUpdated(msg.url, msg.token) if msg.url or msg.token else CredentialsCleared())
        return calls


# --- processors and their streams -------------------------------------------------------------------------


class ProcessorStream(abc.ABC):
    """One stream's state on a processor. Frames in, frames out, synchronously."""

    @abc.abstractmethod
    def process(self, frame: mg.AudioFrame) -> list[mg.AudioFrame]:
        """The processed frames ready after ``frame`` (maybe none, maybe several)."""

    def reference(self, frame: mg.AudioFrame) -> None:  # noqa: B027 - optional, nothing by default
        """What the speaker actually played (the echo canceller's far end)."""

    def flush(self) -> list[mg.AudioFrame]:
        """Process and return whatever is buffered (at a ``Flush`` and at the end)."""
        return []

    def discard(self) -> None:  # noqa: B027 - optional, nothing by default
        """Drop whatever is buffered (at an ``Interrupt``)."""


class Processor(abc.ABC):
    """An opened audio processor, which several streams may share.

    Resource handling: returned open by :meth:`ProcessorConfig.open`; its opener closes it exactly once with
    :meth:`close` or ``with``. Users of a shared processor call :meth:`stream` and :meth:`update_metadata`,
    never :meth:`close`.
    """

    def __init__(self) -> None:
        self.metadata = MetadataState()
        self.closed = False

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    @abc.abstractmethod
    def stream(self) -> ProcessorStream:
        """A new stream on this processor, for one node's frames."""

    def update_metadata(self, msg: StreamMetadata | StreamMetadataCleared) -> None:
        """Apply a metadata message; the processor sees each change once, in order, a clear once."""
        for call in self.metadata.apply(msg):
            self._metadata(call)

    def _metadata(self, call: MetadataCall) -> None:  # noqa: B027 - optional hook
        pass

    def close(self) -> None:
        """Release what the processor holds. A second call does nothing."""
        if not self.closed:
            self.closed = True
            self._close()

    def _close(self) -> None:  # noqa: B027 - optional hook
        pass


def _rtc_frame(frame: mg.AudioFrame) -> rtc.AudioFrame:
    """A ``livekit.rtc`` frame with its own writable buffer (processors modify it in place)."""
    return rtc.AudioFrame(bytearray(frame.samples.tobytes()), frame.sample_rate, frame.channels, len(frame.samples))


def _samples(frame: rtc.AudioFrame) -> Samples:
    flat = np.frombuffer(frame.data, dtype=np.int16)
    return flat.reshape(frame.samples_per_channel, frame.num_channels)


class _ChunkedStream(ProcessorStream):
    """A stream on a processor that takes exactly 10 ms frames: re-chunks input and reference alike."""

    def __init__(
        self, process: Callable[[mg.AudioFrame], Samples], reverse: Callable[[mg.AudioFrame], Samples] | None
    ) -> None:
        self._chunks = Chunker(CHUNK_MS, process)
        self._reverse = Chunker(CHUNK_MS, reverse) if reverse is not None else None

    def process(self, frame: mg.AudioFrame) -> list[mg.AudioFrame]:
        return self._chunks.push(frame)

    def reference(self, frame: mg.AudioFrame) -> None:
        if self._reverse is not None:
            self._reverse.push(frame)

    def flush(self) -> list[mg.AudioFrame]:
        return self._chunks.flush()

    def discard(self) -> None:
        self._chunks.discard()


class _Apm(Processor):
    def __init__(self, config: ApmConfig) -> None:
        super().__init__()
        self.config = config
        self._apm = rtc.AudioProcessingModule(
            echo_cancellation=config.echo_cancellation,
            noise_suppression=config.noise_suppression,
            high_pass_filter=config.high_pass_filter,
            auto_gain_control=config.auto_gain_control,
        )

    def __repr__(self) -> str:
        return f"<apm processor {self.config!r}{' closed' if self.closed else ''}>"

    def stream(self) -> ProcessorStream:
        return _ChunkedStream(self._process, self._reverse if self.config.echo_cancellation else None)

    def _process(self, frame: mg.AudioFrame) -> Samples:
        buf = _rtc_frame(frame)
        if self.config.echo_cancellation:  # WebRTC wants the delay before each frame, and only with AEC on
            self._apm.set_stream_delay_ms(self.config.stream_delay_ms)
        self._apm.process_stream(buf)
        return _samples(buf)

    def _reverse(self, frame: mg.AudioFrame) -> Samples:
        buf = _rtc_frame(frame)
        self._apm.process_reverse_stream(buf)
        return frame.samples

    def _close(self) -> None:
        # The module has no close(); its FFI handle is kept alive by a module-level set, so GC never frees it.
        self._apm._ffi_handle.dispose()


class _GainStream(ProcessorStream):
    def __init__(self, factor: float) -> None:
        self.factor = factor

    def process(self, frame: mg.AudioFrame) -> list[mg.AudioFrame]:
        if self.factor == 1.0:
            return [frame]
        scaled = np.clip(np.rint(frame.samples * self.factor), -32768, 32767).astype(np.int16)
        return [attrs.evolve(frame, samples=scaled)]


class _Gain(Processor):
    def __init__(self, config: GainConfig) -> None:
        super().__init__()
        self.factor = 10 ** (config.db / 20)

    def stream(self) -> ProcessorStream:
        return _GainStream(self.factor)


class _ResampleStream(ProcessorStream):
    """soxr's streaming resampler; a gap in timestamps or a new input format starts a new run.

    Channels are mapped before resampling when they decrease and after when they increase, so soxr always
    works on the fewest channels and upmixed channels are exact copies.
    """

    def __init__(self, config: ResampleConfig) -> None:
        self.config = config
        self._rate = 0
        self._channels = 0
        self._next: int | None = None  # the input timestamp that continues the current run
        self._out = 0  # the output timestamp of the next sample
        self._resampler: soxr.ResampleStream | None = None

    def process(self, frame: mg.AudioFrame) -> list[mg.AudioFrame]:
        out: list[mg.AudioFrame] = []
        if (frame.sample_rate, frame.channels, frame.timestamp) != (self._rate, self._channels, self._next):
            out = self.flush()
            self._rate, self._channels = frame.sample_rate, frame.channels
            self._out = round(frame.timestamp * self.config.sample_rate / frame.sample_rate)
            if frame.sample_rate != self.config.sample_rate:
                self._resampler = soxr.ResampleStream(
                    frame.sample_rate,
                    self.config.sample_rate,
                    min(frame.channels, self._target),
                    dtype="int16",
                    quality=self.config.quality,
                )
        self._next = frame.timestamp + frame.samples_per_channel
        samples = frame.samples
        if self._target < frame.channels:
            samples = map_channels(samples, self._target)
        if self._resampler is not None:
            samples = self._resampler.resample_chunk(samples)
        return out + self._frames(samples)

    @property
    def _target(self) -> int:
        return self.config.channels or self._channels

    def flush(self) -> list[mg.AudioFrame]:
        resampler, self._resampler, self._next = self._resampler, None, None
        if resampler is None:
            return []
        empty = np.zeros((0, min(self._channels, self._target)), dtype=np.int16)
        return self._frames(resampler.resample_chunk(empty, last=True))

    def discard(self) -> None:
        self._resampler, self._next = None, None

    def _frames(self, samples: Samples) -> list[mg.AudioFrame]:
        if not len(samples):
            return []
        if samples.ndim == 1:
            samples = samples[:, None]
        samples = map_channels(samples, self._target)
        frame = mg.AudioFrame(
            samples=samples, sample_rate=self.config.sample_rate, channels=samples.shape[1], timestamp=self._out
        )
        self._out += len(samples)
        return [frame]


class _Resample(Processor):
    def __init__(self, config: ResampleConfig) -> None:
        super().__init__()
        self.config = config

    def stream(self) -> ProcessorStream:
        return _ResampleStream(self.config)


class _Plugin(Processor):
    """A ``livekit.rtc.FrameProcessor[rtc.AudioFrame]``, given exactly 10 ms frames."""

    def __init__(self, config: PluginConfig) -> None:
        super().__init__()
        self.config = config
        self.plugin: rtc.FrameProcessor[rtc.AudioFrame] = config.load()(**config.options)

    def __repr__(self) -> str:
        return f"<plugin processor {self.config.plugin}{' closed' if self.closed else ''}>"

    def stream(self) -> ProcessorStream:
        return _ChunkedStream(self._process, None)

    def _process(self, frame: mg.AudioFrame) -> Samples:
        if not self.plugin.enabled:
            return frame.samples
        result = self.plugin._process(_rtc_frame(frame))
        samples = _samples(result)
        if samples.shape != frame.samples.shape:
            raise mg.ProviderError(
                f"plugin {self.config.plugin} returned {samples.shape[0]} samples x {samples.shape[1]} channels "
                f"for a frame of {frame.samples.shape[0]} x {frame.samples.shape[1]}"
            )
        return samples

    def _metadata(self, call: MetadataCall) -> None:
        match call:
            case StreamInfoUpdated(room, participant, track_id):
                self.plugin._on_stream_info_updated(
                    room_name=room, participant_identity=participant, publication_sid=track_id
                )
            case StreamInfoCleared():
                self.plugin._on_stream_info_cleared()
            case CredentialsUpdated(url, token):
                self.plugin._on_credentials_updated(token=token, url=url)
            case CredentialsCleared():
                self.plugin._on_credentials_cleared()

    def _close(self) -> None:
        self.plugin._close()


# --- processor configs ------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class ApmConfig:
    """``type: apm``: WebRTC's AudioProcessingModule (from ``livekit.rtc``) on exact 10 ms frames.

    Args:
        noise_suppression: suppress stationary noise.
        echo_cancellation: cancel the echo of what the ``reference`` inlet says was played.
        high_pass_filter: remove DC and low rumble.
        auto_gain_control: level the voice.
        stream_delay_ms: with echo cancellation, the delay from playing a sample to capturing its echo.
    """

    noise_suppression: bool = False
    echo_cancellation: bool = False
    high_pass_filter: bool = False
    auto_gain_control: bool = False
    stream_delay_ms: int = attrs.field(default=0, validator=[_v.ge(0), _v.le(1000)])

    def open(self) -> Processor:
        return _Apm(self)

    def output_format(self) -> mg.AudioFormat | mg.SameAs:
        return mg.SameAs("audio")


@attrs.frozen(kw_only=True)
class GainConfig:
    """``type: gain``: multiply by ``db`` decibels, clipping to the int16 range.

    Args:
        db: gain in decibels (negative attenuates).
    """

    db: float = attrs.field(validator=[_v.ge(-120), _v.le(60)])

    def open(self) -> Processor:
        return _Gain(self)

    def output_format(self) -> mg.AudioFormat | mg.SameAs:
        return mg.SameAs("audio")


@attrs.frozen(kw_only=True)
class ResampleConfig:
    """``type: resample``: soxr's streaming resampler (timestamps follow at the new rate).

    Args:
        sample_rate: target rate in Hz.
        channels: target channel count (downmix to mono by averaging, upmix from mono by copying);
            ``None``: unchanged.
        quality: soxr quality: ``QQ``, ``LQ``, ``MQ``, ``HQ`` or ``VHQ``.
    """

    sample_rate: int = attrs.field(validator=[_v.ge(8000), _v.le(384000)])
    channels: int | None = attrs.field(default=None, validator=_v.optional([_v.ge(1), _v.le(8)]))
    quality: str = attrs.field(default="HQ", validator=_v.in_(("QQ", "LQ", "MQ", "HQ", "VHQ")))

    def open(self) -> Processor:
        return _Resample(self)

    def output_format(self) -> mg.AudioFormat | mg.SameAs:
        return mg.AudioFormat(sample_rate=self.sample_rate, channels=self.channels)


def _check_plugin(_: object, attribute: attrs.Attribute[Any], value: str) -> None:
    module, sep, name = value.partition(":")
    if not sep or not module or not name.isidentifier():
        raise ValueError(f"plugin must be 'package.module:Class', got {value!r}")


@attrs.frozen(kw_only=True)
class PluginConfig:
    """``type: plugin``: any ``livekit.rtc.FrameProcessor`` for audio, given exactly 10 ms frames.

    Args:
        plugin: ``package.module:Class``; the class is imported when the config is built, unless
            :func:`mediagraph.may_import_code` says no (``mediagraph check``): then when the node starts.
        options: keyword arguments for the class's constructor (secret-named ones are masked in the repr).
    """

    plugin: str = attrs.field(validator=_check_plugin)
    options: dict[str, Any] = attrs.field(factory=dict, hash=False, repr=lambda o: repr(mg.mask_secrets(o)))

    def __attrs_post_init__(self) -> None:
        if mg.may_import_code():
            self.load()

    def load(self) -> type[rtc.FrameProcessor[rtc.AudioFrame]]:
        """The plugin class.

        Raises:
            ValueError: the module cannot be imported, has no such class, or it is no ``FrameProcessor``.
        """
        module_name, _, name = self.plugin.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ValueError(f"plugin {self.plugin!r}: cannot import {module_name!r}: {exc}") from exc
        cls = getattr(module, name, None)
        if not (isinstance(cls, type) and issubclass(cls, rtc.FrameProcessor)):
            got = "nothing" if cls is None else repr(cls)
            raise ValueError(f"plugin {self.plugin!r}: expected a livekit.rtc.FrameProcessor subclass, got {got}")
        return cls

    def open(self) -> Processor:
        return _Plugin(self)

    def output_format(self) -> mg.AudioFormat | mg.SameAs:
        return mg.SameAs("audio")


ProcessorConfig = ApmConfig | GainConfig | ResampleConfig | PluginConfig

_PROCESSORS: Final[dict[str, type[ProcessorConfig]]] = {
    "apm": ApmConfig,
    "gain": GainConfig,
    "resample": ResampleConfig,
    "plugin": PluginConfig,
}


def processor_or_resource(
    value: Mapping[str, Any] | ProcessorConfig | mg.ResourceRef,
) -> ProcessorConfig | mg.ResourceRef:
    """An inline processor config, or a reference to a processor declared under the graph's ``resources:``.

    Raises:
        ValueError: as :func:`processor_config`, or a resource that is not a processor.
    """
    if isinstance(value, mg.ResourceRef):
        if not isinstance(value.config, ApmConfig | GainConfig | ResampleConfig | PluginConfig):
            raise ValueError(f"processor: resource {value.name!r} is a {value.type}, not a processor")
        return value
    return processor_config(value)


def processor_config(value: Mapping[str, Any] | ProcessorConfig) -> ProcessorConfig:
    """A processor config from its mapping (``{type: apm, noise_suppression: true}``), as YAML gives it.

    Raises:
        ValueError: not a mapping, no or an unknown ``type``, or parameters the type refuses; the message
            starts with ``processor`` and names the parameter.
    """
    if isinstance(value, ApmConfig | GainConfig | ResampleConfig | PluginConfig):
        return value
    known = ", ".join(_PROCESSORS)
    if not isinstance(value, Mapping):
        raise ValueError(f"processor must be a mapping with a 'type' ({known}), got {type(value).__name__}")
    params = dict(value)
    kind = params.pop("type", None)
    cls = _PROCESSORS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ValueError(f"processor type must be one of {known}, got {kind!r}")
    try:
        return mg.config_from_mapping(cls, params, where=f"processor {kind!r}")
    except mg.GraphDefinitionError as exc:
        raise ValueError(exc.message) from exc


# --- the node ---------------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class FrameProcessorConfig:
    """Args:
    processor: the processor, inline: a mapping with its ``type`` (``apm``, ``gain``, ``resample``,
        ``plugin``) and that type's parameters (see :class:`ApmConfig`, :class:`GainConfig`,
        :class:`ResampleConfig`, :class:`PluginConfig`); or the name of a processor declared under the
        graph's ``resources:``, shared with the other nodes naming it.
    """

    processor: ProcessorConfig | mg.ResourceRef = attrs.field(converter=processor_or_resource)

    @property
    def processor_config(self) -> ProcessorConfig:
        proc = self.processor
        return proc.config if isinstance(proc, mg.ResourceRef) else proc


@mg.node_type("frame_processor", config=FrameProcessorConfig)
class FrameProcessorNode(mg.Transform):
    """Runs a processor on every audio frame: noise suppression, echo cancellation, gain, resampling, plugins.

    Inlets: ``audio`` (``AudioFrame``); ``metadata`` (optional: :class:`StreamMetadata` and
    :class:`StreamMetadataCleared`, applied in order); ``reference`` (optional, ``apm`` with echo
    cancellation only: what the speaker actually played). Outlet: ``audio`` (same format as the input, or
    the ``resample`` target).

    ``apm`` and ``plugin`` processors get exactly 10 ms frames whatever arrives: input is re-chunked (timestamps
    kept exact) and the outlet carries 10 ms frames; at a ``Flush`` and at the end the last partial chunk is
    processed (padded with silence, trimmed back) and sent. An ``Interrupt`` drops it. Control messages pass
    through in order.

    Resource handling: an inline processor is opened when the node starts and closed when the node ends,
    however it ends; a processor given by resource name is the graph's, opened and closed by the runtime.
    """

    @staticmethod
    def ports(config: FrameProcessorConfig) -> mg.Ports:
        proc = config.processor_config
        inlets = [
            mg.InletSpec(name="audio"),
            mg.InletSpec(name="metadata", types=(StreamMetadata, StreamMetadataCleared), required=False),
        ]
        if isinstance(proc, ApmConfig) and proc.echo_cancellation:
            inlets.append(mg.InletSpec(name="reference", required=False))
        return mg.Ports(inlets=inlets, outlets=[mg.OutletSpec(name="audio", format=proc.output_format())])

    def __init__(self, config: FrameProcessorConfig) -> None:
        self.config = config
        self.frames_in = 0
        self.frames_out = 0
        self._opened = ExitStack()  # exactly what this node opened, closed when it finishes

    def __repr__(self) -> str:
        kind = type(self.config.processor_config).__name__.removesuffix("Config").lower()
        return f"<FrameProcessorNode {kind} in={self.frames_in} out={self.frames_out}>"

    def start(self, io: mg.NodeIO) -> None:
        self._emit = io.outlets["audio"].emit
        proc = self.config.processor
        if isinstance(proc, mg.ResourceRef):
            self._processor = io.resource(proc)
        else:
            self._processor = self._opened.enter_context(proc.open())
        self._stream = self._processor.stream()

    def _send(self, frames: list[mg.AudioFrame]) -> None:
        for frame in frames:
            self.frames_out += 1
            self._emit(frame)

    def process(self, inlet: str, msg: Any) -> None:
        if inlet == "audio":
            if type(msg) is mg.AudioFrame:
                self.frames_in += 1
                self._send(self._stream.process(msg))
                return
            if isinstance(msg, mg.Flush):
                self._send(self._stream.flush())
            elif isinstance(msg, mg.Interrupt):
                self._stream.discard()
            self._emit(msg)
        elif inlet == "metadata":
            if isinstance(msg, StreamMetadata | StreamMetadataCleared):
                self._processor.update_metadata(msg)
        elif inlet == "reference" and type(msg) is mg.AudioFrame:
            self._stream.reference(msg)

    def finish(self) -> None:
        self._send(self._stream.flush())

    def close(self) -> None:
        self._opened.close()


for _kind, _cls in _PROCESSORS.items():
    mg.register_resource_type(
        mg.ResourceType(
            name=_kind,
            config=_cls,
            open=_cls.open,
            summary=f"a {_kind} processor shared by the frame_processor nodes that name it",
        )
    )
