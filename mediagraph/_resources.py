"""Resources: shared objects opened once before their first user and closed once after their last."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, final

import attrs

from ._errors import ProviderError
from ._node import ResourceRef, ResourceSpec, get_resource_type

if TYPE_CHECKING:
    from ._runtime import RunningGraph

__all__: list[str] = []


def _refs(value: Any) -> set[str]:
    """Names of the resources a config refers to, however deeply (a slot child's config included)."""
    if isinstance(value, ResourceRef):
        return {value.name}
    if attrs.has(type(value)):
        return set().union(*(_refs(getattr(value, f.name)) for f in attrs.fields(type(value))))
    if isinstance(value, (list, tuple)):
        return set().union(*map(_refs, value))
    if isinstance(value, Mapping):
        return set().union(*map(_refs, value.values()))
    return set()


@final
class _Resources:
    """The open resources of a graph and of the graphs nested in its slots, counted by user."""

    def __init__(self, specs: Mapping[str, ResourceSpec], graph: RunningGraph) -> None:
        self.specs = specs
        self.graph = graph  # the top-level graph, which records the events
        self.users: dict[str, int] = {}
        self.values: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"<resources open={sorted(self.values)} users={self.users}>"

    def acquire(self, names: set[str]) -> None:
        for name in sorted(names):
            if name not in self.values:
                spec = self.specs[name]
                try:
                    self.values[name] = get_resource_type(spec.type).open(spec.config)
                except Exception as exc:
                    raise ProviderError(f"resource {name!r} ({spec.type}) failed to open: {exc}") from exc
                self.graph.log.record(self.graph.time(), None, "resource_opened", resource=name, type=spec.type)
            self.users[name] = self.users.get(name, 0) + 1

    def release(self, names: set[str]) -> None:
        for name in sorted(names):
            self.users[name] -= 1
            if self.users[name] == 0:
                self.close(name)

    def close(self, name: str) -> None:
        value = self.values.pop(name, None)
        if value is None:
            return
        fields: dict[str, Any] = {"resource": name}
        try:
            value.close()
        except Exception as exc:
            fields["error"] = f"{type(exc).__name__}: {exc}"
            self.graph.supervisor.fail_with(ProviderError(f"resource {name!r} failed to close: {exc}"), exc)
        self.graph.log.record(self.graph.time(), None, "resource_closed", **fields)
