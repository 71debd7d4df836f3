"""The registries of node, resource and schedule action types: a name taken is refused with a RegistryError."""

from __future__ import annotations

from typing import Any

import attrs
import pytest

import mediagraph as mg
from mediagraph import _actions, _node


@attrs.frozen(kw_only=True)
class _Config:
    pass


class _Other(mg.Transform):
    """Not the tone source."""

    @staticmethod
    def ports(config: Any) -> mg.Ports:
        return mg.Ports()

    def __init__(self, config: Any) -> None:
        pass

    def start(self, io: mg.NodeIO) -> None:
        pass

    def process(self, inlet: str, msg: Any) -> None:
        pass


def test_a_node_type_name_taken_by_another_class_is_refused() -> None:
    tone = mg.get_node_type("tone_source")
    with pytest.raises(mg.RegistryError, match="node type 'tone_source' is already registered") as info:
        mg.node_type("tone_source", config=_Config)(_Other)
    assert isinstance(info.value, mg.MediaGraphError) and not isinstance(info.value, ValueError)
    assert (info.value.kind, info.value.name) == ("node type", "tone_source")
    assert mg.get_node_type("tone_source") is tone  # unchanged


def test_a_resource_type_name_taken_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_node, "_resource_types", dict(_node._resource_types))
    rt = mg.ResourceType(name="registry_test_model", config=_Config, open=lambda c: c)
    mg.register_resource_type(rt)
    mg.register_resource_type(rt)  # the same type again: accepted
    other = attrs.evolve(rt, summary="another")
    with pytest.raises(mg.RegistryError, match="resource type 'registry_test_model' is already registered"):
        mg.register_resource_type(other)
    assert mg.resource_types()["registry_test_model"] == rt


def test_an_action_type_name_taken_or_reserved_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_actions, "_action_types", dict(_actions._action_types))
    stop = mg.action_types()["stop"]
    mg.register_action_type(stop)  # the same type again: accepted
    with pytest.raises(mg.RegistryError, match="schedule action 'stop' is already registered"):
        mg.register_action_type(attrs.evolve(stop, summary="another stop"))
    with pytest.raises(mg.RegistryError, match="schedule action 'at' is reserved") as info:
        mg.register_action_type(attrs.evolve(stop, name="at"))
    assert (info.value.kind, info.value.name) == ("schedule action", "at")
    assert mg.action_types()["stop"] == stop
