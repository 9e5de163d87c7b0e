"""The plugin manager: loads plugins from the ``latentkit`` entry-point group and fills the registries."""

from __future__ import annotations

import functools
import importlib.metadata
import inspect
from collections.abc import Iterable

import pluggy

from latentkit.errors import PluginError
from latentkit.plugins import hookspecs
from latentkit.plugins.registry import KINDS, Registry, Source

ENTRY_POINT_GROUP = "latentkit"

# Plugins registered in code (tests, notebooks) on top of the entry points: name -> plugin object.
_extra_plugins: dict[str, object] = {}
_blocked: set[str] = set()


class _PluginManager(pluggy.PluginManager):
    """Treats every function named ``latentkit_*`` as a hook implementation, marked or not (as pytest does for
    ``pytest_*``), so that a misspelt, unmarked hook fails ``check_pending`` instead of being silently ignored."""

    def parse_hookimpl_opts(self, plugin, name):
        opts = super().parse_hookimpl_opts(plugin, name)
        if opts is None and name.startswith(f"{hookspecs.PROJECT}_"):
            method = getattr(plugin, name, None)
            if inspect.isroutine(method):
                return {}
        return opts


def make_plugin_manager(extra: dict[str, object] | None = None, blocked: Iterable[str] = ()) -> pluggy.PluginManager:
    """A fresh manager with every entry-point plugin plus ``extra``; validates hook names at once."""
    pm = _PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    for name in blocked:
        pm.set_blocked(name)
    try:
        pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
        for name, plugin in (extra or {}).items():
            pm.register(plugin, name=name)
        pm.check_pending()
    except ImportError as exc:
        raise PluginError(_unimportable_entry_point_message(exc)) from exc
    except pluggy.PluginValidationError as exc:
        raise PluginError(
            f"plugin {pm.get_name(exc.plugin) if exc.plugin is not None else '?'!r} is malformed: {exc}. A function marked @hookimpl must be "
            f"named after a hook in latentkit.plugins.hookspecs ({', '.join(_hook_names())})."
        ) from exc
    return pm


def _unimportable_entry_point_message(exc: ImportError) -> str:
    """Name the entry point whose module failed to import, and the usual cause: a stale install.

    The common case is latentkit's own: an editable install (``pip install -e .``) records the checkout's path, so a
    checkout that was moved, renamed or cloned afresh leaves entry points that point at modules Python cannot find.
    Without this, every command fails with a traceback from deep inside pluggy and importlib.
    """
    missing = getattr(exc, "name", None)
    failed = next((ep for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
                   if missing and (ep.module == missing or ep.module.startswith(missing + "."))), None)
    culprit = f" {failed.name} = {failed.value} (from {failed.dist.name} {failed.dist.version})" if failed else ""
    return (
        f"the plugin entry point{culprit or ' of a package in the ' + repr(ENTRY_POINT_GROUP) + ' group'} cannot be "
        f"imported: {type(exc).__name__}: {exc}. If it is one of latentkit's own (latentkit_plugins.*), the install is "
        "stale (the checkout was moved, renamed or cloned again after `pip install -e .`): run `pip install -e .` in "
        "the checkout. If it is a third-party plugin, reinstall or uninstall that package."
    )


def _hook_names() -> list[str]:
    return sorted(n for n in dir(hookspecs) if n.startswith("latentkit_"))


def _source(pm: pluggy.PluginManager, plugin: object) -> Source:
    name = pm.get_name(plugin) or repr(plugin)
    for plug, dist in pm.list_plugin_distinfo():
        if plug is plugin:
            return Source(name, dist.project_name, dist.version)
    return Source(name, "(not installed)", "")


def build_registry(pm: pluggy.PluginManager) -> Registry:
    """Call every ``latentkit_register_*`` hook, recording which plugin added each component."""
    registry = Registry()
    for kind in KINDS:
        hook = getattr(pm.hook, f"latentkit_register_{kind}")
        target = registry.kinds[kind]
        # One implementation at a time, so each entry knows its source distribution.
        for impl in reversed(hook.get_hookimpls()):
            target._current_source = _source(pm, impl.plugin)
            try:
                impl.function(*[{"registry": target}[arg] for arg in impl.argnames])
            except PluginError:
                raise
            except Exception as exc:
                raise PluginError(
                    f"plugin {target._current_source.plugin!r} failed while registering {kind}: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            finally:
                target._current_source = None
    return registry


@functools.lru_cache(maxsize=1)
def _cached(key: tuple) -> tuple[pluggy.PluginManager, Registry]:
    pm = make_plugin_manager(dict(_extra_plugins), _blocked)
    return pm, build_registry(pm)


def _current() -> tuple[pluggy.PluginManager, Registry]:
    return _cached((tuple((k, id(v)) for k, v in _extra_plugins.items()), tuple(sorted(_blocked))))


def get_registry() -> Registry:
    """The registry of every installed plugin plus those added with :func:`register_plugin` (cached)."""
    return _current()[1]


def get_plugin_manager() -> pluggy.PluginManager:
    """The plugin manager behind :func:`get_registry`; its ``hook`` attribute calls the run-time hooks."""
    return _current()[0]


def register_plugin(plugin: object, name: str | None = None) -> str:
    """Add a plugin object (module or instance with ``@hookimpl`` functions) in code; returns its name.

    Validation happens at once, so a misspelt hook fails here rather than later.
    """
    name = name or getattr(plugin, "__name__", None) or f"plugin-{id(plugin)}"
    _extra_plugins[name] = plugin
    try:
        get_registry()
    except Exception:
        del _extra_plugins[name]
        raise
    return name


def unregister_plugin(name: str) -> None:
    _extra_plugins.pop(name, None)


def block_plugin(name: str) -> None:
    """Disable an installed plugin by entry-point name (as pytest's ``-p no:NAME``)."""
    _blocked.add(name)


def unblock_plugin(name: str) -> None:
    _blocked.discard(name)
