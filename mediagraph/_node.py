"""The node contract, node types and resource types and their registries (configs are built in ``_configs``).

A node type is a final class implementing one of three small interfaces, plus a frozen attrs config class:

- :class:`Actor` has its own task: ``async def run(self, io)`` reads inlets and sends on outlets.
- :class:`Transform` only maps messages to messages, synchronously. The runtime may run it inside the task
  of the node upstream of it; it stays an actor in every observable way (lifecycle, statistics, order).
- :class:`Source` produces messages on the graph clock; the runtime calls ``produce`` when each is due, so
  thousands of paced sources cost one clock task, not one wake-up each.
"""

from __future__ import annotations

import abc
import contextlib
import contextvars
import importlib.metadata
import typing
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol, final

import attrs

from ._configs import ResourceRef, ResourceSpec, config_from_mapping
from ._errors import GraphDefinitionError, RegistryError
from ._limits import closest, quote
from ._ports import Ports

if TYPE_CHECKING:
    from ._dataplane import NodeIO

__all__ = [
    "Actor",
    "NodeType",
    "ResourceRef",
    "ResourceSpec",
    "ResourceType",
    "get_resource_type",
    "register_resource_type",
    "resource_types",
    "Source",
    "Transform",
    "config_from_mapping",
    "get_node_type",
    "may_import_code",
    "node_type",
    "node_types",
]


class Actor(abc.ABC):
    """A node with its own task.

    Cancellation: ``run`` is cancelled when the graph is cancelled, or (for a node without inlets) when the
    graph is stopped gracefully. Resource handling: what ``run`` opens it closes with ``async with``;
    finalization that must survive cancellation goes in :meth:`cleanup`.
    """

    @abc.abstractmethod
    async def run(self, io: NodeIO) -> None:
        """Process messages until the inlets end (or forever, for a source). Returning completes the node."""

    async def cleanup(self) -> None:  # noqa: B027 - optional hook, empty by default
        """Runs after ``run`` ends, however it ends, shielded from cancellation and bounded in time."""


class Transform(abc.ABC):
    """A synchronous message mapper.

    ``process`` must not block; it emits with ``io.outlets[name].emit(msg)``. Exceptions it raises are the
    node's failure, reported with its name.
    """

    @abc.abstractmethod
    def start(self, io: NodeIO) -> None:
        """Called once before the first message; keep what you need (``io.outlets["audio"].emit``...)."""

    @abc.abstractmethod
    def process(self, inlet: str, msg: Any) -> None:
        """Handle one message that arrived on ``inlet``."""

    def finish(self) -> None:  # noqa: B027 - optional hook, empty by default
        """Every inlet has ended: emit what is still buffered. The outlets close after this returns."""

    def close(self) -> None:  # noqa: B027 - optional hook, empty by default
        """Release what ``start`` acquired; called once after ``start``, however the node ended (completed,
        cancelled, failed, or before a restart). Must not block."""


class Source(abc.ABC):
    """A producer driven by the graph clock."""

    @abc.abstractmethod
    def start(self, io: NodeIO) -> None:
        """Called once when the graph starts; keep what you need (``io.outlets["audio"].emit``...)."""

    @abc.abstractmethod
    def produce(self) -> float | None:
        """Emit the next message(s), synchronously.

        Returns:
            when to be called again, in seconds of graph time since the graph started (a time already past
            means "as soon as the graph can take it"), or ``None`` when the source is exhausted.
        """

    def close(self) -> None:  # noqa: B027 - optional hook, empty by default
        """Release what ``start`` acquired; called once after ``start``, however the node ended. Must not
        block."""


Node = Actor | Transform | Source


class NodeFactory(Protocol):
    def __call__(self, config: Any, /) -> Node: ...


@final
@attrs.frozen(kw_only=True)
class NodeType:
    """A registered node type.

    Args:
        name: the name graphs use (``type: tone_source``).
        config: a frozen attrs class holding the node's parameters.
        factory: builds a node from a config (usually the node class itself).
        ports: the node's ports for a given config.
        summary: one line for ``mediagraph nodes``.
        uses_device: whether a node of this config holds a real device (refused under a virtual clock).
        examples: parameters, by a label, whose ports ``mediagraph nodes TYPE`` shows besides the defaults':
            those that add or change ports, or that the defaults lack (``{"processor: gain": {...}}``).
        port_notes: what the ports depend on, in words, where examples cannot show it (a file's streams).
    """

    name: str
    config: type
    factory: NodeFactory
    ports: Callable[[Any], Ports]
    summary: str = ""
    uses_device: Callable[[Any], bool] = lambda _config: False
    examples: Mapping[str, Mapping[str, Any]] = attrs.field(factory=dict)
    port_notes: str = ""

    def make_config(
        self, params: Mapping[str, Any], *, where: str, resources: Mapping[str, ResourceSpec] | None = None
    ) -> Any:
        """This type's config from parameters; see :func:`config_from_mapping`."""
        return config_from_mapping(self.config, params, where=where, resources=resources)


_registry: dict[str, NodeType] = {}
_loaded = False

ENTRY_POINT_GROUP = "mediagraph.nodes"


def _register(nt: NodeType) -> None:
    existing = _registry.get(nt.name)
    if existing is not None and existing.factory is not nt.factory:
        raise RegistryError("node type", nt.name, f"is already registered by {existing.factory!r}")
    _registry[nt.name] = nt


class _Described(Protocol):
    __doc__: str | None

    @staticmethod
    def ports(config: Any, /) -> Ports: ...


def node_type[T: _Described](
    name: str,
    *,
    config: type,
    uses_device: Callable[[Any], bool] | None = None,
    examples: Mapping[str, Mapping[str, Any]] | None = None,
    port_notes: str = "",
) -> Callable[[type[T]], type[T]]:
    """Class decorator registering a node type; the class takes its config as its only argument and
    declares ``ports(config)`` as a static method. The first docstring line becomes the summary;
    ``examples`` and ``port_notes`` are as :class:`NodeType` says."""

    def decorate(cls: type[T]) -> type[T]:
        doc = (cls.__doc__ or "").strip().splitlines()
        _register(
            NodeType(
                name=name,
                config=config,
                factory=typing.cast(NodeFactory, cls),
                ports=cls.ports,
                summary=doc[0] if doc else "",
                uses_device=uses_device or (lambda _config: False),
                examples=dict(examples or {}),
                port_notes=port_notes,
            )
        )
        return cls

    return decorate


def _load_plugins() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        ep.load()


def node_types() -> Mapping[str, NodeType]:
    """Every registered node type, the installed plugins (entry point group ``mediagraph.nodes``) included;
    names starting with ``_`` are the runtime's own and not listed."""
    _load_plugins()
    return {name: nt for name, nt in sorted(_registry.items()) if not name.startswith("_")}


def get_node_type(name: str) -> NodeType:
    """The registered type called ``name``.

    Raises:
        GraphDefinitionError: no such type; the message lists the closest known names.
    """
    _load_plugins()
    try:
        return _registry[name]
    except KeyError:
        raise GraphDefinitionError(f"unknown node type {quote(name)}{closest(name, node_types())}") from None


# --- resources --------------------------------------------------------------------------------------------


@final
@attrs.frozen(kw_only=True)
class ResourceType:
    """A kind of object shared by several nodes (a noise-suppression model, a session, a device).

    Args:
        name: the name graphs use (``type: apm`` under ``resources:``).
        config: a frozen attrs class holding its parameters.
        open: opens one from a config. The result has a synchronous ``close()``, which the runtime calls
            exactly once, after the last node using it has finished.
        summary: one line for ``mediagraph nodes``.
    """

    name: str
    config: type
    open: Callable[[Any], Any]
    summary: str = ""


_resource_types: dict[str, ResourceType] = {}


def register_resource_type(rt: ResourceType) -> None:
    """Make ``type: rt.name`` usable under ``resources:``.

    Raises:
        RegistryError: another resource type already has this name.
    """
    existing = _resource_types.get(rt.name)
    if existing is not None and existing != rt:
        raise RegistryError("resource type", rt.name, "is already registered")
    _resource_types[rt.name] = rt


def resource_types() -> Mapping[str, ResourceType]:
    """Every registered resource type, the installed plugins' included."""
    _load_plugins()
    return dict(sorted(_resource_types.items()))


def get_resource_type(name: str) -> ResourceType:
    """The registered resource type ``name``.

    Raises:
        GraphDefinitionError: no such type; the message lists the closest known names.
    """
    types_ = resource_types()
    try:
        return types_[name]
    except KeyError:
        hint = closest(name, types_) or " (no resource types are installed)"
        raise GraphDefinitionError(f"unknown resource type {quote(name)}{hint}") from None


_code_imports: contextvars.ContextVar[bool] = contextvars.ContextVar("code_imports", default=True)


def may_import_code() -> bool:
    """Whether a config being built may import code it names (a plugin class given as ``module:Class``).

    ``False`` while ``mediagraph check`` or ``draw`` loads a graph file: checking a graph never runs its
    code unless asked (``--import-plugins``). Such a config then checks only the form of the name; the
    import happens when the graph runs.
    """
    return _code_imports.get()


@contextlib.contextmanager
def importing_code(allowed: bool) -> Iterator[None]:
    """Within the block, :func:`may_import_code` answers ``allowed``."""
    token = _code_imports.set(allowed)
    try:
        yield
    finally:
        _code_imports.reset(token)
