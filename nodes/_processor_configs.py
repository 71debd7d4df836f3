"""The processor configs (``type: apm | gain | resample | plugin``) and how a node's ``processor`` parameter
becomes one: an inline mapping, or a reference to a processor declared under the graph's ``resources:``.

Resource handling: whoever calls ``open()`` on a config owns the processor it returns and closes it exactly
once.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any, Final, final

import attrs
from livekit import rtc

import mediagraph as mg

from ._processors import ApmProcessor, GainProcessor, PluginProcessor, Processor, ResampleProcessor

__all__ = [
    "PROCESSORS",
    "ApmConfig",
    "GainConfig",
    "PluginConfig",
    "ProcessorConfig",
    "ResampleConfig",
    "processor_config",
    "processor_or_resource",
]

_v = attrs.validators


@final
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
        return ApmProcessor(self)

    def output_format(self) -> mg.AudioFormat | mg.SameAs:
        return mg.SameAs("audio")


@final
@attrs.frozen(kw_only=True)
class GainConfig:
    """``type: gain``: multiply by ``db`` decibels, clipping to the int16 range.

    Args:
        db: gain in decibels (negative attenuates).
    """

    db: float = attrs.field(validator=[_v.ge(-120), _v.le(60)])

    def open(self) -> Processor:
        return GainProcessor(self)

    def output_format(self) -> mg.AudioFormat | mg.SameAs:
        return mg.SameAs("audio")


@final
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
        return ResampleProcessor(self)

    def output_format(self) -> mg.AudioFormat | mg.SameAs:
        return mg.AudioFormat(sample_rate=self.sample_rate, channels=self.channels)


def _load_plugin(plugin: str) -> type[rtc.FrameProcessor[rtc.AudioFrame]]:
    module_name, _, name = plugin.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"plugin {plugin!r}: cannot import {module_name!r}: {exc}") from exc
    cls = getattr(module, name, None)
    if not (isinstance(cls, type) and issubclass(cls, rtc.FrameProcessor)):
        got = "nothing" if cls is None else repr(cls)
        raise ValueError(f"plugin {plugin!r}: expected a livekit.rtc.FrameProcessor subclass, got {got}")
    return cls


def _check_plugin(_: object, attribute: attrs.Attribute[Any], value: str) -> None:
    module, sep, name = value.partition(":")
    if not sep or not module or not name.isidentifier():
        raise ValueError(f"plugin must be 'package.module:Class', got {value!r}")
    if mg.may_import_code():  # a validator, not a post-init check: the error is the 'plugin' parameter's
        _load_plugin(value)


@final
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

    def load(self) -> type[rtc.FrameProcessor[rtc.AudioFrame]]:
        """The plugin class.

        Raises:
            ValueError: the module cannot be imported, has no such class, or it is no ``FrameProcessor``.
        """
        return _load_plugin(self.plugin)

    def open(self) -> Processor:
        return PluginProcessor(self)

    def output_format(self) -> mg.AudioFormat | mg.SameAs:
        return mg.SameAs("audio")


ProcessorConfig = ApmConfig | GainConfig | ResampleConfig | PluginConfig

PROCESSORS: Final[dict[str, type[ProcessorConfig]]] = {
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
        GraphDefinitionError: as :func:`processor_config`, or a resource that is not a processor.
    """
    if isinstance(value, mg.ResourceRef):
        if not isinstance(value.config, ApmConfig | GainConfig | ResampleConfig | PluginConfig):
            raise mg.GraphDefinitionError(f"processor: resource {value.name!r} is a {value.type}, not a processor")
        return value
    return processor_config(value)


def processor_config(value: Mapping[str, Any] | ProcessorConfig) -> ProcessorConfig:
    """A processor config from its mapping (``{type: apm, noise_suppression: true}``), as YAML gives it.

    Raises:
        GraphDefinitionError: not a mapping, no or an unknown ``type`` (``param`` is ``"type"``), or
            parameters the type refuses (``param`` names the processor's parameter); the message starts with
            ``processor``. A config whose field holds a processor names that field and keeps this error as
            ``__cause__``.
    """
    if isinstance(value, ApmConfig | GainConfig | ResampleConfig | PluginConfig):
        return value
    known = ", ".join(PROCESSORS)
    if not isinstance(value, Mapping):
        raise mg.GraphDefinitionError(
            f"processor must be a mapping with a 'type' ({known}), got {type(value).__name__}"
        )
    params = dict(value)
    kind = params.pop("type", None)
    cls = PROCESSORS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise mg.GraphDefinitionError(f"processor type must be one of {known}, got {kind!r}", param="type")
    return mg.config_from_mapping(cls, params, where=f"processor {kind!r}")
