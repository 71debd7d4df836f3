"""What the loader takes and gives: a command line's ``--set`` override, and a graph file once loaded.

Both are importable from ``mediagraph`` (and ``mediagraph._yaml``, which builds them).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, final

import attrs
import yaml

from . import _limits, _paths
from ._actions import ScheduledAction
from ._errors import GraphDefinitionError
from ._graph import Graph

__all__ = ["GraphFile", "Override"]


@final
@attrs.frozen(kw_only=True)
class Override:
    """A ``--set`` from the command line; ``origin`` (the argument) locates its errors.

    ``NODE.PARAM=VALUE`` sets a node's parameter; ``NODE.PARAM.KEY...=VALUE`` a key inside a parameter whose
    value is a mapping (a processor's, a slot child's: ``out.child.block_ms=20``); ``resources.NAME.PARAM...``
    a resource's. ``path`` holds the keys after ``param``.
    """

    node: str
    param: str
    value: Any
    origin: str
    path: tuple[str, ...] = ()
    resource: bool = False

    @property
    def dotted(self) -> str:
        """The parameter as written after the node: ``child.block_ms``."""
        return ".".join((self.param, *self.path))

    @property
    def keys(self) -> tuple[str, ...]:
        """Every key of the dotted path after the node: ``("child", "block_ms")``."""
        return (self.param, *self.path)

    @property
    def leaf(self) -> str:
        """The last key: what the value is for (a secret's name, say)."""
        return self.path[-1] if self.path else self.param

    @classmethod
    def parse(cls, text: str) -> Override:
        """Parse ``NODE.PARAM[.KEY...]=VALUE`` or ``resources.NAME.PARAM[.KEY...]=VALUE``; the value is YAML
        (``880``, ``true``, ``out/a.wav``, ``{type: speaker}``).

        Raises:
            ValueError: not of that form; the message says why.
        """
        target, sep, raw = text.partition("=")
        parts = target.strip().split(".")
        resource = parts[0] == "resources" and len(parts) >= 3
        if resource:
            parts = parts[1:]
        if not sep or len(parts) < 2 or not all(part.isidentifier() for part in parts) or len(parts) > 8:
            raise ValueError(
                f"expected NODE.PARAM=VALUE (or NODE.PARAM.KEY=VALUE, resources.NAME.PARAM=VALUE), "
                f"got {_limits.quote(text)}"
            )
        try:
            value = _limits.safe_load(raw, filename="--set") if raw.strip() else raw
        except GraphDefinitionError as exc:
            raise ValueError(f"{_limits.quote(text)}: {exc.message}") from None
        except yaml.YAMLError as exc:
            raise ValueError(
                f"{_limits.quote(text)}: the value is not valid YAML ({_limits.cut(str(exc), 300)})"
            ) from None
        return cls(
            node=parts[0], param=parts[1], path=tuple(parts[2:]), value=value, origin=f"--set {text}", resource=resource
        )


@final
@attrs.frozen(kw_only=True)
class GraphFile:
    """A graph file, loaded and validated.

    Args:
        path: the file (as given).
        graph: the graph, equal to the same graph built in Python.
        schedule: its actions, in time order.
        resources: resource name -> config.
        locations: node name -> ``FILE:LINE:COLUMN`` of its entry, to point at a node later on.
        paths: the files its nodes (and scheduled swaps) read and write.
        resource_locations: resource name -> ``FILE:LINE:COLUMN`` of its entry.
        secrets: the values of its parameters named like secrets, to keep out of what is printed.
    """

    path: Path
    graph: Graph
    schedule: tuple[ScheduledAction, ...]
    resources: Mapping[str, Any]
    locations: Mapping[str, str]
    paths: tuple[_paths.DeclaredPath, ...] = ()
    resource_locations: Mapping[str, str] = attrs.field(factory=dict)
    secrets: frozenset[str] = attrs.field(default=frozenset(), repr=False)
