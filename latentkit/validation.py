"""One vocabulary for checking configuration and plugin options.

Why: the same checks ("a positive whole number, not ``True``") were written by hand in dozens of places, each with its
own wording. A :class:`Rule` says once what a valid value is and shows an example of one; it works both as an attrs
validator (``attrs.field(validator=positive_int)``) and as a plain check that returns the value converted
(``check("hidden", hidden, positive_int, owner="mlp")``). Every failure is a :class:`~latentkit.errors.ConfigError`
naming the option, the value given and a valid example, e.g. ``mlp option hidden must be a positive whole number, got
0 (e.g. hidden=256)``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Any

import attrs

from latentkit.errors import ConfigError

__all__ = [
    "Rule",
    "at_least",
    "boolean",
    "check",
    "integer",
    "non_negative_float",
    "non_negative_int",
    "one_of",
    "optional",
    "positive_float",
    "positive_int",
    "probability",
]


def _is_int(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, numbers.Integral)


def _is_real(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, numbers.Real)


@attrs.frozen
class Rule:
    """What a valid value is: ``test`` decides, ``description`` says it ("a positive whole number"), ``example`` shows
    one, and ``convert`` turns an accepted value into the type the code uses (``int``, ``float``)."""

    test: Callable[[Any], bool]
    description: str
    example: str
    convert: Callable[[Any], Any] = lambda value: value

    def such_as(self, example: str) -> Rule:
        """The same rule with the option's own example (``positive_int.such_as("64")`` for a batch size)."""
        return attrs.evolve(self, example=example)

    def __call__(self, _instance: Any, attribute: attrs.Attribute, value: Any) -> None:
        """As an attrs validator: the option is the attribute's name."""
        check(attribute.name, value, self)

    def error(self, name: str, value: Any, owner: str | None = None, example: str | None = None) -> ConfigError:
        """The error for ``value`` of option ``name`` (of plugin or setting ``owner``)."""
        subject = f"{owner} option {name}" if owner else name
        return ConfigError(
            f"{subject} must be {self.description}, got {value!r} (e.g. {name}={example or self.example})"
        )


def check(name: str, value: Any, rule: Rule, owner: str | None = None, example: str | None = None) -> Any:
    """``value`` converted by ``rule`` if it passes, else a :class:`ConfigError` naming ``owner``'s option ``name``,
    the value and a valid example (``example`` overrides the rule's, e.g. the option's default)."""
    try:
        ok = bool(rule.test(value))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise rule.error(name, value, owner, example)
    return rule.convert(value)


positive_int = Rule(lambda v: _is_int(v) and v > 0, "a positive whole number", "1", int)
non_negative_int = Rule(lambda v: _is_int(v) and v >= 0, "a whole number >= 0", "0", int)
integer = Rule(_is_int, "a whole number", "0", int)
positive_float = Rule(lambda v: _is_real(v) and 0 < v < math.inf, "a positive finite number", "0.5", float)
non_negative_float = Rule(lambda v: _is_real(v) and 0 <= v < math.inf, "a finite non-negative number", "0.0", float)
probability = Rule(lambda v: _is_real(v) and 0 <= v <= 1, "a probability, a number in [0, 1]", "0.5", float)
boolean = Rule(lambda v: isinstance(v, bool), "true or false", "true")


def at_least(minimum: int) -> Rule:
    """A whole number ``>= minimum`` (``at_least(2)``: enough points to estimate a spread)."""
    return Rule(lambda v: _is_int(v) and v >= minimum, f"a whole number >= {minimum}", str(minimum), int)


def one_of(*choices: Any) -> Rule:
    """A value among ``choices`` (compared with ``==``)."""
    return Rule(lambda v: any(v == c and type(v) is type(c) for c in choices),
                f"one of {', '.join(map(repr, choices))}", repr(choices[0]))


def optional(rule: Rule, meaning: str = "the default") -> Rule:
    """``None`` (meaning ``meaning``) or a value ``rule`` accepts."""
    return Rule(
        lambda v: v is None or rule.test(v),
        f"{rule.description}, or None for {meaning}",
        rule.example,
        lambda v: None if v is None else rule.convert(v),
    )
