"""Calling a plugin's factory with its own options, and only the context values it asks for.

Why: a plugin written from scratch should declare what it uses and nothing else. The framework knows a few *context
values* when it builds a component — the joint ``latent``, the ``image_shape`` of one sample, the ``registry`` (for an
objective built on another) and the training set's ``dataset_size`` — and hands a factory (a function or a class) only
those its signature names. Every other keyword is one of the plugin's own options: an option the signature does not
declare is a :class:`~latentkit.errors.ConfigError` naming it, the plugin and the options it accepts. A factory that
takes ``**kwargs`` accepts any option (it forwards them, e.g. to the objective it builds on); it still receives a
context value only by naming it.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from latentkit.errors import ConfigError

#: the values the framework may hand a factory besides its options; a factory receives those its signature names
CONTEXT = ("latent", "image_shape", "registry", "dataset_size")


def signature_of(factory: Any) -> tuple[dict[str, inspect.Parameter], bool]:
    """The keyword parameters ``factory`` declares, and whether it takes ``**kwargs`` (then: any option). A factory
    whose signature cannot be read is treated as taking anything."""
    try:
        parameters = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return {}, True
    named = {
        name: p for name, p in parameters.items()
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    }
    return named, any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())


def accepted_options(factory: Any, context: tuple[str, ...] = CONTEXT) -> list[str]:
    """The options ``factory`` declares (its keyword parameters that are not context values)."""
    return [name for name in signature_of(factory)[0] if name not in context]


def _options(what: str, options: Any) -> dict:
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise ConfigError(f"options of {what} must be a mapping of option names to values, got {options!r}")
    return dict(options)


def call_factory(what: str, factory: Any, options: Mapping | None, context: Mapping[str, Any]) -> Any:
    """``factory(**declared context, **options)`` for the component described by ``what`` (e.g. ``"objective
    'tcvae'"``). An option overrides a context value of the same name; ``None`` context values are left out (unknown
    here, so the factory's default applies). Unknown or missing options are ConfigErrors that name them."""
    options = _options(what, options)
    declared, takes_any = signature_of(factory)
    unknown = [name for name in options if name not in declared and not takes_any]
    if unknown:
        accepted = accepted_options(factory, tuple(context) + CONTEXT)
        raise ConfigError(
            f"{what} has no option {', '.join(map(repr, unknown))}; its options are "
            f"{', '.join(accepted) or '(none)'}. Remove or rename it."
        )
    given = {k: v for k, v in context.items() if k in declared and k not in options and v is not None}
    missing = [
        name for name, p in declared.items()
        if p.default is inspect.Parameter.empty and name not in options and name not in given
    ]
    if missing:
        needed = [m for m in missing if m not in context and m not in CONTEXT]
        if needed:
            raise ConfigError(f"{what} needs the option(s) {', '.join(needed)}; set them in its options")
        raise ConfigError(f"{what} needs {', '.join(missing)}, which is not known here; pass it as an option")
    try:
        return factory(**given, **options)
    except TypeError as exc:
        raise ConfigError(f"{what} cannot be built with options {options}: {exc}") from None
