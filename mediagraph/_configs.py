"""Configs built from mappings: what a graph file's (or ``Graph.add``'s) parameters become, checked by name.

:func:`config_from_mapping` builds a frozen attrs config from its parameters: unknown names are refused with
the closest known ones, simple field types (numbers, strings, booleans, their unions with ``None``) are
checked before attrs sees them, and a string given to a field that accepts a :class:`ResourceRef` names one
of the resources of the graph being built. Every error is a :class:`GraphDefinitionError` whose ``param``
names the parameter. ``mediagraph._dump`` is the inverse.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import types
import typing
from collections.abc import Iterator, Mapping
from typing import Any, final

import attrs

from ._errors import GraphDefinitionError
from ._limits import MAX_INT, closest, quote

__all__ = [
    "ResourceRef",
    "ResourceSpec",
    "building_resources",
    "config_from_mapping",
    "device_overrides",
    "overriding_devices",
    "resolve_ref",
]


@final
@attrs.frozen(kw_only=True)
class ResourceSpec:
    """A resource declared in a graph: its name, type name and validated config."""

    name: str
    type: str
    config: Any


@final
@attrs.frozen(kw_only=True)
class ResourceRef:
    """What a node's config holds where it names a graph resource (``processor: ns``).

    The referenced config is carried along so ``ports(config)`` can depend on it; at run time
    ``io.resource(ref)`` gives the opened object. Resource handling: the runtime opens and closes it; a node
    never closes a resource it was given.
    """

    name: str
    type: str
    config: Any


#: The resources of the graph whose configs are being built, so nested specs (a slot's child) resolve too.
building_resources: contextvars.ContextVar[Mapping[str, ResourceSpec]] = contextvars.ContextVar(
    "building_resources", default=types.MappingProxyType({})
)


#: Sound devices every config built meanwhile uses, by direction (``input``, ``output``): a field declared
#: ``attrs.field(metadata={"device": "output"})`` (a speaker's ``device``) takes the output's, whatever the
#: mapping says; so ``--output-device`` reaches slot children and swap targets as they are built.
device_overrides: contextvars.ContextVar[Mapping[str, str | int]] = contextvars.ContextVar(
    "device_overrides", default=types.MappingProxyType({})
)


@contextlib.contextmanager
def overriding_devices(devices: Mapping[str, str | int]) -> Iterator[None]:
    """Within the block, configs built take these devices (see :data:`device_overrides`)."""
    token = device_overrides.set(types.MappingProxyType(dict(devices)))
    try:
        yield
    finally:
        device_overrides.reset(token)


def _accepts_ref(tp: Any) -> bool:
    return tp is ResourceRef or ResourceRef in typing.get_args(tp)


def resolve_ref(name: str, *, where: str) -> ResourceRef:
    """The reference to resource ``name`` of the graph being built.

    Raises:
        GraphDefinitionError: the graph declares no such resource.
    """
    resources = building_resources.get()
    spec = resources.get(name)
    if spec is None:
        raise GraphDefinitionError(f"{where}: unknown resource {quote(name)}{closest(name, resources)}")
    return ResourceRef(name=spec.name, type=spec.type, config=spec.config)


# --- configs from mappings -------------------------------------------------------------------------------

_SCALARS: dict[type, tuple[type, ...]] = {float: (int, float), int: (int,), str: (str,), bool: (bool,)}


@final
class _OutOfRange(ValueError):
    pass


def _coerce(value: Any, tp: Any) -> tuple[bool, Any]:
    """(ok, value) for the simple field types a YAML file can hold; anything else is left to attrs.

    Raises:
        _OutOfRange: a number of the right type that no parameter can hold (an infinity, a NaN, an integer
            past 2**63 - 1).
    """
    if tp in _SCALARS:
        if isinstance(value, bool) and tp is not bool:
            return False, value
        ok = isinstance(value, _SCALARS[tp])
        if ok and tp in (int, float) and isinstance(value, int) and abs(value) > MAX_INT:
            raise _OutOfRange("is out of range (integers stay within 2**63 - 1 either way)")
        if ok and tp is float:
            value = float(value)
            if not math.isfinite(value):
                raise _OutOfRange("must be a finite number")
        return ok, value
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        args = typing.get_args(tp)
        if value is None:
            return type(None) in args, value
        for arg in args:
            if arg is not type(None):
                ok, coerced = _coerce(value, arg)
                if ok:
                    return True, coerced
        return not any(a in _SCALARS for a in args), value
    return True, value


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def config_from_mapping[C](
    cls: type[C], data: Mapping[str, Any], *, where: str, resources: Mapping[str, ResourceSpec] | None = None
) -> C:
    """Build the attrs config ``cls`` from a mapping (a YAML node's parameters, ``--set`` values...).

    Args:
        where: what the mapping belongs to, for messages (``"node 'tone'"``).
        resources: the graph's resources; a string given to a field that accepts a :class:`ResourceRef`
            names one of them. By default, those of the graph being built, if any.

    Raises:
        GraphDefinitionError: unknown parameter (with the closest names), wrong type, or a value its
            converter or validator refuses; ``.param`` names the parameter (``None`` when a check across
            parameters refuses). A nested config's error (a converter raising ``GraphDefinitionError``) is
            kept as ``__cause__`` with its own ``.param``.
    """
    token = building_resources.set(resources) if resources is not None else None
    try:
        return _build(cls, data, where)
    finally:
        if token is not None:
            building_resources.reset(token)


def _build[C](cls: type[C], data: Mapping[str, Any], where: str) -> C:
    attrs.resolve_types(cls)  # type: ignore[type-var]
    fields = {f.name: f for f in attrs.fields(cls)}  # type: ignore[arg-type]
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        field = fields.get(key)
        if field is None:
            raise GraphDefinitionError(f"{where}: unknown parameter {quote(key)}{closest(str(key), fields)}", param=key)
        if isinstance(value, str) and _accepts_ref(field.type):
            try:
                kwargs[key] = resolve_ref(value, where=f"{where}: parameter {key!r}")
            except GraphDefinitionError as exc:
                exc.param = key
                raise
            continue
        try:
            ok, coerced = _coerce(value, field.type)
        except _OutOfRange as exc:
            raise GraphDefinitionError(f"{where}: parameter {key!r} {exc}, got {quote(value)}", param=key) from None
        if not ok:
            got = f"{type(value).__name__} {quote(value)}"
            want = _type_name(field.type)
            raise GraphDefinitionError(f"{where}: parameter {key!r} must be {want}, got {got}", param=key)
        kwargs[key] = coerced
    devices = device_overrides.get()
    overridden: dict[str, str] = {}  # field -> the flag whose device it took
    for field in fields.values():
        direction = field.metadata.get("device")
        if direction in devices:
            kwargs[field.name] = devices[direction]
            overridden[field.name] = f"--{direction}-device"
    try:
        return cls(**kwargs)
    except GraphDefinitionError as exc:  # a converter that builds a nested config (a processor, a slot's child)
        raise GraphDefinitionError(f"{where}: {exc.message}", param=_blame(cls, kwargs)) from exc
    except _REFUSALS as exc:
        blamed = _blame(cls, kwargs)
        flag = f" (the value of {overridden[blamed]})" if blamed in overridden else ""
        raise GraphDefinitionError(f"{where}: {exc}{flag}", param=blamed) from exc


#: What validators and converters raise on a bad value (a converter may index or divide what it got).
_REFUSALS = (TypeError, ValueError, LookupError, AttributeError, ArithmeticError)

_FACTORY: Any = type(attrs.Factory(list))  # the class: attrs' stubs type Factory as a function


def _blame(cls: type, kwargs: Mapping[str, Any]) -> str | None:
    """The field whose value made ``cls(**kwargs)`` raise, found without reading the message: ``None`` when no
    single field is to blame (a check across fields in ``__attrs_post_init__``).

    Replays what attrs' ``__init__`` does, in its order, on a bare instance: a required field not given, then
    every converter (defaults converted too), then the validator of every field given. A validator that
    raises ``AttributeError`` read a field the bare instance lacks, which is not its own value's fault.
    ``kwargs`` holds known fields only (``_build`` checked the names).
    """
    fields: list[attrs.Attribute[Any]] = [f for f in attrs.fields(cls) if f.init]
    missing = next((f.name for f in fields if f.name not in kwargs and f.default is attrs.NOTHING), None)
    if missing is not None:
        return missing
    probe: object = object.__new__(cls)
    for f in fields:
        given = f.name in kwargs
        value: Any = kwargs[f.name] if given else f.default
        if isinstance(value, _FACTORY):
            if value.takes_self:
                continue
            value = value.factory()
        try:
            value = _convert(f, value, probe)
        except (GraphDefinitionError, *_REFUSALS):
            if given:
                return f.name
            continue
        object.__setattr__(probe, f.name, value)
    for f in fields:
        if f.validator is None or f.name not in kwargs:
            continue
        try:
            f.validator(probe, f, getattr(probe, f.name))
        except AttributeError:
            continue
        except (GraphDefinitionError, *_REFUSALS):
            return f.name
    return None


def _convert(field: attrs.Attribute[Any], value: Any, probe: object) -> Any:
    converter = field.converter
    if converter is None:
        return value
    if isinstance(converter, attrs.Converter):
        return converter.__call__(value, probe, field)  # type: ignore[operator]
    return converter(value)
