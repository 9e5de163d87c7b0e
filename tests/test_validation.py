"""latentkit.validation: one rule per kind of valid value, as an attrs validator and as a plain check."""

from __future__ import annotations

import math

import attrs
import pytest

from latentkit.errors import ConfigError
from latentkit.validation import (
    at_least,
    boolean,
    check,
    integer,
    non_negative_float,
    non_negative_int,
    one_of,
    optional,
    positive_float,
    positive_int,
    probability,
)

CASES = [  # rule, accepted values, refused values
    (positive_int, [1, 7], [0, -1, 2.5, True, "3", None]),
    (non_negative_int, [0, 5], [-1, 1.0, False]),
    (integer, [-3, 0, 4], [0.5, True, "1"]),
    (at_least(2), [2, 10], [1, 2.0, True]),
    (positive_float, [1e-9, 3, 2.5], [0, -0.1, math.inf, math.nan, True, "0.5"]),
    (non_negative_float, [0, 0.0, 7.5], [-1e-9, math.inf, math.nan, False]),
    (probability, [0, 0.5, 1], [-0.1, 1.01, math.nan, True]),
    (boolean, [True, False], [0, 1, "true", None]),
    (one_of("a", "b"), ["a", "b"], ["c", None, 1]),
    (optional(positive_int), [None, 3], [0, "x"]),
]


@pytest.mark.parametrize(("rule", "good", "bad"), CASES, ids=[c[0].description for c in CASES])
def test_each_rule_accepts_its_values_and_refuses_the_rest_naming_option_value_and_example(rule, good, bad):
    for value in good:
        check("opt", value, rule)
    for value in bad:
        with pytest.raises(ConfigError) as info:
            check("opt", value, rule, owner="plug")
        message = str(info.value)
        assert message.startswith("plug option opt must be ") and repr(value) in message
        assert f"(e.g. opt={rule.example})" in message


def test_check_converts_and_an_example_of_the_option_overrides_the_rule_s():
    assert type(check("n", 3, positive_float)) is float and type(check("n", True, boolean)) is bool
    with pytest.raises(ConfigError, match=r"batch_size must be a positive whole number, got 0 \(e.g. batch_size=64\)"):
        check("batch_size", 0, positive_int.such_as("64"))


def test_a_rule_is_an_attrs_validator_naming_the_field():
    @attrs.define
    class Settings:
        steps: int = attrs.field(default=10, validator=positive_int.such_as("1000"))
        shape: str = attrs.field(default="linear", validator=one_of("linear", "cosine"))

    assert Settings().steps == 10
    with pytest.raises(ConfigError, match=r"^steps must be a positive whole number, got -1 \(e.g. steps=1000\)$"):
        Settings(steps=-1)
    with pytest.raises(ConfigError, match="shape must be one of 'linear', 'cosine', got 'exp'"):
        Settings(shape="exp")
