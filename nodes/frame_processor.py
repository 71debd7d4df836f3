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

Layout: the metadata messages and :class:`MetadataState` live in ``_stream_metadata``, the processors and
their streams in ``_processors`` (both trio-free), their configs in ``_processor_configs``; this module holds
the node and re-exports their public names.
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any, final

import attrs

import mediagraph as mg

from ._processor_configs import (
    PROCESSORS,
    ApmConfig,
    GainConfig,
    PluginConfig,
    ProcessorConfig,
    ResampleConfig,
    processor_config,
    processor_or_resource,
)
from ._processors import CHUNK_MS, Processor, ProcessorStream
from ._stream_metadata import (
    CredentialsCleared,
    CredentialsUpdated,
    MetadataCall,
    MetadataState,
    StreamInfoCleared,
    StreamInfoUpdated,
    StreamMetadata,
    StreamMetadataCleared,
)

__all__ = [
    "CHUNK_MS",
    "ApmConfig",
    "CredentialsCleared",
    "CredentialsUpdated",
    "FrameProcessorConfig",
    "FrameProcessorNode",
    "GainConfig",
    "MetadataCall",
    "MetadataState",
    "PluginConfig",
    "Processor",
    "ProcessorConfig",
    "ProcessorStream",
    "ResampleConfig",
    "StreamInfoCleared",
    "StreamInfoUpdated",
    "StreamMetadata",
    "StreamMetadataCleared",
    "processor_config",
    "processor_or_resource",
]


@final
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


@final
@mg.node_type(
    "frame_processor",
    config=FrameProcessorConfig,
    examples={
        "processor: {type: gain, db: 6}": {"processor": {"type": "gain", "db": 6}},
        "processor: {type: apm, echo_cancellation: true}": {"processor": {"type": "apm", "echo_cancellation": True}},
        "processor: {type: resample, sample_rate: 16000}": {"processor": {"type": "resample", "sample_rate": 16000}},
    },
)
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


for _kind, _cls in PROCESSORS.items():
    mg.register_resource_type(
        mg.ResourceType(
            name=_kind,
            config=_cls,
            open=_cls.open,
            summary=f"a {_kind} processor shared by the frame_processor nodes that name it",
        )
    )
