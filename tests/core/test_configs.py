"""Configs from mappings: a refused value is blamed on its own parameter, found without reading the message."""

from __future__ import annotations

from typing import Any

import attrs
import pytest

import mediagraph as mg


def _other_name(_: object, attribute: attrs.Attribute[int], value: int) -> None:
    if value < 0:
        raise ValueError(f"must be at least 'first', got {value}")  # names another field, not its own


def _no_name(_: object, attribute: attrs.Attribute[int], value: int) -> None:
    if value > 10:
        raise ValueError(f"too big: {value}")


def _halve(value: int) -> int:
    if value % 2:
        raise ValueError(f"{value} is odd; 'first' and 'second' are even")
    return value // 2


def _below_first(config: Probe, _: attrs.Attribute[int], value: int) -> None:
    if value >= config.first:  # a validator reading another field: blamed on its own
        raise ValueError(f"second must be below first ({config.first}), got {value}")


@attrs.frozen(kw_only=True)
class Probe:
    first: int = 0
    second: int = attrs.field(default=0, validator=_other_name)
    third: int = attrs.field(default=0, validator=_no_name)
    fourth: int = attrs.field(default=0, converter=_halve)
    fifth: int = attrs.field(default=-1, validator=_below_first)
    required: int = 0

    def __attrs_post_init__(self) -> None:
        if self.first + self.third == 7:  # across fields: nobody's alone
            raise ValueError("first and third must not add up to 7")


def error(**params: Any) -> mg.GraphDefinitionError:
    with pytest.raises(mg.GraphDefinitionError) as info:
        mg.config_from_mapping(Probe, params, where="probe")
    return info.value


@pytest.mark.parametrize(
    ("params", "param", "message"),
    [
        ({"second": -1}, "second", "probe: must be at least 'first', got -1"),
        ({"first": 1, "second": -1}, "second", "probe: must be at least 'first', got -1"),
        ({"third": 11}, "third", "probe: too big: 11"),
        ({"fourth": 3}, "fourth", "probe: 3 is odd; 'first' and 'second' are even"),
        ({"first": 1, "fifth": 2}, "fifth", "probe: second must be below first (1), got 2"),
        ({"first": 3, "third": 4}, None, "probe: first and third must not add up to 7"),
    ],
)
def test_a_refused_value_is_blamed_on_its_own_field(params: dict[str, Any], param: str | None, message: str) -> None:
    exc = error(**params)
    assert exc.param == param
    assert exc.message == message
    assert isinstance(exc.__cause__, ValueError)


def test_the_first_field_attrs_refuses_is_the_one_blamed() -> None:
    # attrs converts every field before it validates any: a converter's refusal wins over an earlier validator's
    assert error(second=-1, fourth=3).param == "fourth"
    assert error(second=-1, third=11).param == "second"


@attrs.frozen(kw_only=True)
class Needs:
    a: int = attrs.field(validator=attrs.validators.ge(0))
    b: int


def test_a_missing_required_parameter_is_named() -> None:
    with pytest.raises(mg.GraphDefinitionError, match="missing 1 required keyword-only argument: 'b'") as info:
        mg.config_from_mapping(Needs, {"a": 1}, where="needs")
    assert info.value.param == "b"


def _nested(value: Any) -> Any:
    return mg.config_from_mapping(Needs, value, where="inner")


@attrs.frozen(kw_only=True)
class Outer:
    before: int = 0
    inner: Needs = attrs.field(converter=_nested)


def test_a_nested_config_error_keeps_its_class_and_names_both_parameters() -> None:
    with pytest.raises(mg.GraphDefinitionError) as info:
        mg.config_from_mapping(Outer, {"before": 1, "inner": {"a": -1, "b": 0}}, where="outer")
    assert info.value.param == "inner"
    assert info.value.message == "outer: inner: 'a' must be >= 0: -1"
    assert isinstance(info.value.__cause__, mg.GraphDefinitionError)
    assert info.value.__cause__.param == "a"


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"sample_rate": 8000, "frequency": 5000}, "frequency"),
        ({"sample_rate": 100, "frequency": 440}, "sample_rate"),  # the rate's own error, not the frequency's
        ({"sample_rate": 8000, "frame_ms": 0.01}, "frame_ms"),
    ],
)
def test_checks_that_read_another_parameter_blame_their_own(params: dict[str, Any], param: str) -> None:
    with pytest.raises(mg.GraphDefinitionError) as info:
        mg.Graph().add("t", "tone_source", **params)
    assert info.value.param == param
