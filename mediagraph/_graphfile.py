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
    """A ``--set NODE.PARAM=VALUE`` from the command line; ``origin`` (the argument) locates its errors."""

    node: str
    param: str
    value: Any
    origin: str

    @classmethod
    def parse(cls, text: str) -> Override:
        """Parse ``NODE.PARAM=VALUE``; the value is a YAML scalar (``880``, ``true``, ``out/a.wav``).

        Raises:
            ValueError: not of that form; the message says why.
        """
        target, sep, raw = text.partition("=")
        node, dot, param = target.strip().partition(".")
        if not sep or not dot or not node.isidentifier() or not param.isidentifier():
            raise ValueError(f"expected NODE.PARAM=VALUE, got {_limits.quote(text)}")
        try:
            value = _limits.safe_load(raw, filename="--set") if raw.strip() else raw
        except GraphDefinitionError as exc:
            raise ValueError(f"{_limits.quote(text)}: {exc.message}") from None
        except yaml.YAMLError as exc:
            raise ValueError(
                f"{_limits.quote(text)}: the value is not valid YAML ({_limits.cut(str(exc), 300)})"
            ) from None
        return cls(node=node, param=param, value=value, origin=f"--set {text}")


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
