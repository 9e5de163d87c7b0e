"""The run-time hooks the trainer calls, from whatever the caller hands it.

The trainer calls ``latentkit_run_start``, ``latentkit_step_end``, ``latentkit_evaluate``, ``latentkit_checkpoint`` and
``latentkit_run_end`` (specified in :mod:`latentkit.plugins.hookspecs`) through a pluggy *relay*. Three kinds of caller:

* the ``latentkit`` command hands its plugin manager's relay (``plugin_manager.hook``): every installed run-time plugin;
* a script hands plain objects (``hooks=[Printer()]``): each implements any of the hooks as methods named after them,
  taking any subset of the hook's arguments. They are registered on a plugin manager of their own, so they are checked
  and called exactly as plugins are, in the order given;
* nothing (``hooks=None``): no hook is called.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import pluggy

from latentkit.errors import ConfigError
from latentkit.plugins import hookspecs
from latentkit.plugins.manager import new_plugin_manager


class NoHooks:
    """A relay that calls nothing: for ``hooks=None``, and on every rank but 0 (rank 0 alone logs and writes)."""

    def __getattr__(self, name: str) -> Callable[..., list[Any]]:
        if name.startswith("__"):
            raise AttributeError(name)
        return lambda **_kwargs: []


def as_relay(hooks: pluggy.HookRelay | Iterable[object] | object | None) -> Any:
    """The relay the trainer calls, from pluggy's relay, a list of plain objects, one plain object, or ``None``.

    A plain object's method named ``latentkit_...`` that is no hook, or that asks for an argument its hook does not
    pass, is a :class:`~latentkit.errors.ConfigError` (a misspelt hook is never silently ignored)."""
    if hooks is None:
        return NoHooks()
    if isinstance(hooks, (pluggy.HookRelay, NoHooks)):
        return hooks
    objects = list(hooks) if isinstance(hooks, (list, tuple)) else [hooks]
    pm = new_plugin_manager()
    try:
        for index, plugin in reversed(list(enumerate(objects))):  # pluggy calls the last registered first
            pm.register(plugin, name=f"hooks[{index}]")
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        unknown = sorted(set(pm.hook.__dict__) - set(vars(hookspecs)))
        what = f"{unknown} is not a run-time hook" if unknown else "a hook asks for an argument the hook does not pass"
        raise ConfigError(
            f"{type(exc.plugin).__name__}: {what} ({exc}); name methods after the hooks in "
            f"latentkit.plugins.hookspecs and take only the arguments they pass"
        ) from None
    return pm.hook
