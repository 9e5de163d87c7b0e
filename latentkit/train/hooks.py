"""The run-time hooks the trainer calls, from whatever the caller hands it.

The trainer calls ``latentkit_run_start``, ``latentkit_step_end``, ``latentkit_evaluate``, ``latentkit_checkpoint`` and
``latentkit_run_end`` (specified in :mod:`latentkit.plugins.hookspecs`) through a *relay*: an object with one method
per hook, taking the hook's arguments by keyword. Three kinds of caller:

* the ``latentkit`` command hands pluggy's relay (``plugin_manager.hook``): every installed run-time plugin;
* a script hands plain objects (``hooks=[Printer()]``): each implements any of the hooks as methods named after them,
  taking any subset of the hook's arguments (as with pluggy) — :class:`HookList` calls them in the order given;
* nothing (``hooks=None``): no hook is called.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import Any

import pluggy

from latentkit.errors import ConfigError
from latentkit.plugins import hookspecs

_REGISTER_PREFIX = f"{hookspecs.PROJECT}_register_"


def run_hook_names() -> tuple[str, ...]:
    """Every run-time hook in :mod:`latentkit.plugins.hookspecs` (the registration hooks are called elsewhere)."""
    marker = f"{hookspecs.PROJECT}_spec"
    return tuple(
        name for name, value in vars(hookspecs).items()
        if callable(value) and hasattr(value, marker) and not name.startswith(_REGISTER_PREFIX)
    )


class HookList:
    """A relay over plain objects: ``relay.latentkit_step_end(run=..., step=..., scalars=...)`` calls every object's
    ``latentkit_step_end`` with the arguments it names, in the order the objects were given; returns their results.

    A method named ``latentkit_...`` that is no run-time hook is a :class:`~latentkit.errors.ConfigError` (a misspelt
    hook is never silently ignored); so is one that asks for an argument its hook does not pass."""

    def __init__(self, plugins: Iterable[object]):
        names = run_hook_names()
        self._calls: dict[str, list[tuple[Callable[..., Any], tuple[str, ...]]]] = {name: [] for name in names}
        for plugin in plugins:
            for attr in dir(plugin):
                if not attr.startswith(f"{hookspecs.PROJECT}_") or attr.startswith(_REGISTER_PREFIX):
                    continue
                if attr not in self._calls:
                    raise ConfigError(
                        f"{type(plugin).__name__}.{attr} is not a run-time hook; name a method after one of {list(names)}"
                    )
                method = getattr(plugin, attr)
                self._calls[attr].append((method, _argument_names(method, attr, plugin)))

    def __getattr__(self, name: str) -> Callable[..., list[Any]]:
        calls = self.__dict__.get("_calls", {})
        if name not in calls:
            raise AttributeError(name)
        return lambda **kwargs: [method(**{k: kwargs[k] for k in wanted}) for method, wanted in calls[name]]


def _argument_names(method: Callable[..., Any], hook: str, plugin: object) -> tuple[str, ...]:
    spec = getattr(hookspecs, hook)
    offered = tuple(inspect.signature(spec).parameters)
    wanted = tuple(inspect.signature(method).parameters)
    unknown = [name for name in wanted if name not in offered]
    if unknown:
        raise ConfigError(
            f"{type(plugin).__name__}.{hook} asks for {unknown}, which the hook does not pass; it passes {list(offered)}"
        )
    return wanted


class NoHooks:
    """A relay that calls nothing: for ``hooks=None``, and on every rank but 0 (rank 0 alone logs and writes)."""

    def __getattr__(self, name: str) -> Callable[..., list[Any]]:
        if name.startswith("__"):
            raise AttributeError(name)
        return lambda **_kwargs: []


def as_relay(hooks: pluggy.HookRelay | Iterable[object] | object | None) -> Any:
    """The relay the trainer calls, from pluggy's relay, a list of plain objects, one plain object, or ``None``."""
    if hooks is None:
        return NoHooks()
    if isinstance(hooks, (pluggy.HookRelay, HookList, NoHooks)):
        return hooks
    if isinstance(hooks, (list, tuple)):
        return HookList(hooks)
    return HookList([hooks])
