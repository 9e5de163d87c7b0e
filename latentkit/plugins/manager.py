"""The plugin host: loads plugins from the ``latentkit`` entry-point group, leaves out broken ones, fills the registry.

Why an object: which plugins are registered in code, which are blocked, and the registry built from them are one
piece of state. A :class:`PluginHost` owns it, so a test, a notebook or a command line with ``-p no:NAME`` can work
with a host of its own instead of mutating the process's. :func:`default_host` is the process's host, the one
:func:`get_registry` and :func:`get_plugin_manager` (and so the trainer's sessions) use.

Why broken plugins are left out instead of failing start-up: one third-party package with a stale install or a bug
must not disable every command — evaluating old runs and ``latentkit plugins`` included. A plugin that cannot be
imported, is malformed (a misspelt hook, a hook with wrong arguments) or raises while registering is recorded as a
:class:`PluginFailure` and takes no part in anything; only a command that needs one of its names fails, and
``latentkit plugins`` / ``check-plugin`` list the failures and exit non-zero so that its author notices. A plugin
registered in code (:meth:`PluginHost.register`) is the exception: its caller is right there, so it raises at once.
"""

from __future__ import annotations

import contextlib
import difflib
import importlib.metadata
import inspect
import os
import warnings
from collections.abc import Iterable, Iterator, Mapping

import attrs
import pluggy

from latentkit.errors import PluginError
from latentkit.plugins import hookspecs
from latentkit.plugins.failures import (
    DISABLE_ENV,
    NOT_INSTALLED,
    PluginFailure,
    PluginWarning,
    RegistrationFailed,
    hook_names,
    import_failure,
    malformed_failure,
    registration_failure,
)
from latentkit.plugins.registry import KINDS, KindRegistry, Registry, Source

ENTRY_POINT_GROUP = "latentkit"


class _PluginManager(pluggy.PluginManager):
    """Treats every function named ``latentkit_*`` as a hook implementation, marked or not (as pytest does for
    ``pytest_*``), so that a misspelt, unmarked hook is caught instead of being silently ignored."""

    def parse_hookimpl_opts(self, plugin, name):
        opts = super().parse_hookimpl_opts(plugin, name)
        if opts is None and name.startswith(f"{hookspecs.PROJECT}_"):
            method = getattr(plugin, name, None)
            if inspect.isroutine(method):
                return {}
        return opts


def new_plugin_manager() -> pluggy.PluginManager:
    """An empty plugin manager that knows latentkit's hooks and treats every ``latentkit_*`` method as an implementation
    (see :class:`_PluginManager`): what a host loads plugins into, and what the trainer relays plain hook objects
    through."""
    pm = _PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    return pm


@attrs.frozen
class _Loaded:
    state: tuple  #: the host's ``_state()`` this was loaded for
    plugin_manager: pluggy.PluginManager
    registry: Registry
    failures: tuple[PluginFailure, ...]


class PluginHost:
    """The plugins of one process (or one test): entry points plus plugins registered in code, less blocked ones.

    Everything is loaded lazily, on the first access to :attr:`registry`, :attr:`hook`, :attr:`plugin_manager` or
    :attr:`failures`, and again after the set of plugins changed (:meth:`register`, :meth:`block`, ...).
    ``entry_points=False`` gives a host of in-code plugins alone (tests).

    Why an object, not module state: a command with ``-p no:NAME``, a test with plugins of its own and the process's
    default need different sets of plugins in one process; :func:`use_host` makes one the default for a block.
    A plugin that cannot be imported, is malformed or whose registration hook raises is left out whole and recorded in
    :attr:`failures` (a :class:`PluginFailure` each), so one broken plugin never stops the others.
    """

    def __init__(
        self,
        *,
        blocked: Iterable[str] = (),
        plugins: Mapping[str, object] | None = None,
        entry_points: bool = True,
    ) -> None:
        self._blocked: set[str] = set(blocked)
        self._extra: dict[str, object] = dict(plugins or {})
        self._entry_points = entry_points
        self._loaded: _Loaded | None = None

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> PluginHost:
        """A host blocking the plugins named in ``$LATENTKIT_DISABLE_PLUGINS``."""
        return cls(blocked=blocked_by_environment(environ))

    def derive(self, *, blocked: Iterable[str] = ()) -> PluginHost:
        """A new host with this one's plugins and blocked names, blocking ``blocked`` too."""
        return PluginHost(blocked=self._blocked | set(blocked), plugins=self._extra, entry_points=self._entry_points)

    # --- which plugins --------------------------------------------------------------------------------------------
    @property
    def blocked(self) -> frozenset[str]:
        return frozenset(self._blocked)

    def block(self, name: str) -> None:
        """Leave out the plugin named ``name`` (entry-point name or in-code name), as ``latentkit -p no:NAME``."""
        self._blocked.add(name)

    def unblock(self, name: str) -> None:
        self._blocked.discard(name)

    def register(self, plugin: object, name: str | None = None) -> str:
        """Add a plugin object (module or instance with ``@hookimpl`` functions) in code; returns its name.

        Loads at once: a malformed plugin, or one whose registration hook raises or registers a name already taken,
        raises :class:`~latentkit.errors.PluginError` here and is not kept.
        """
        name = name or getattr(plugin, "__name__", None) or f"plugin-{id(plugin)}"
        self._extra[name] = plugin
        with warnings.catch_warnings():  # raised below instead
            warnings.simplefilter("ignore", PluginWarning)
            failures = self.failures
        failure = next((f for f in failures if f.plugin == name and f.distribution == NOT_INSTALLED), None)
        if failure is not None:
            self.unregister(name)
            raise PluginError(failure.message)
        return name

    def unregister(self, name: str) -> None:
        """Remove a plugin registered with :meth:`register` (a name never registered is ignored)."""
        self._extra.pop(name, None)

    def known_names(self) -> list[str]:
        """Every plugin name this host could load: entry-point names and in-code names (blocked ones included)."""
        names = set(self._extra)
        if self._entry_points:
            names.update(ep.name for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))
        return sorted(names)

    # --- what they provide ----------------------------------------------------------------------------------------
    @property
    def plugin_manager(self) -> pluggy.PluginManager:
        """The pluggy manager holding every loaded plugin (broken ones left out)."""
        return self._current().plugin_manager

    @property
    def hook(self) -> pluggy.HookRelay:
        """The run-time hook relay: ``host.hook.latentkit_step_end(run=..., step=..., scalars=...)``."""
        return self.plugin_manager.hook

    @property
    def registry(self) -> Registry:
        """Every component the loaded plugins registered, each with its :class:`~latentkit.plugins.registry.Source`."""
        return self._current().registry

    @property
    def failures(self) -> tuple[PluginFailure, ...]:
        """The plugins left out because they are broken, in load order."""
        return self._current().failures

    def _state(self) -> tuple:
        """What the loaded plugins depend on. Taken afresh at every access, so that every change to the plugins is
        seen."""
        return tuple(self._extra), tuple(self._extra.values()), frozenset(self._blocked), self._entry_points

    def _current(self) -> _Loaded:
        state = self._state()
        if self._loaded is None or not _same_state(self._loaded.state, state):
            self._loaded = _load(state, self._extra, self._blocked, self._entry_points)
            for failure in self._loaded.failures:
                warnings.warn(failure.message, PluginWarning, stacklevel=3)
        return self._loaded


def _same_state(old: tuple, new: tuple) -> bool:
    """Equal names, blocked names and entry-point choice, and the very same plugin objects (by identity: an equal but
    different object has different bound hook functions)."""
    (old_names, old_plugins, *old_rest), (new_names, new_plugins, *new_rest) = old, new
    return (old_names, old_rest) == (new_names, new_rest) and all(a is b for a, b in zip(old_plugins, new_plugins))


def blocked_by_environment(environ: Mapping[str, str] | None = None) -> list[str]:
    """The plugin names in ``$LATENTKIT_DISABLE_PLUGINS`` (commas or spaces between them)."""
    value = (os.environ if environ is None else environ).get(DISABLE_ENV, "")
    return [name for name in value.replace(",", " ").split() if name]


# --- loading ------------------------------------------------------------------------------------------------------
def _load(state: tuple, extra: Mapping[str, object], blocked: Iterable[str], entry_points: bool) -> _Loaded:
    pm = new_plugin_manager()
    for name in blocked:
        pm.set_blocked(name)
    failures: list[PluginFailure] = []
    sources: dict[str, Source] = {}
    if entry_points:
        for ep in _entry_points():
            if pm.is_blocked(ep.name) or pm.has_plugin(ep.name):  # as pluggy: the first of two equal names wins
                continue
            source = Source(ep.name, ep.dist.name if ep.dist else "(unknown)", ep.dist.version if ep.dist else "")
            try:
                plugin = ep.load()
            except Exception as exc:  # noqa: BLE001 - a plugin's import error must not take the host down
                failures.append(import_failure(source, ep, exc))
                continue
            _add(pm, plugin, source, sources, failures)
    for name, plugin in extra.items():
        if not pm.is_blocked(name):
            _add(pm, plugin, Source(name, NOT_INSTALLED, ""), sources, failures)
    registry = _fill_registry(pm, sources, failures)
    return _Loaded(state, pm, registry, tuple(failures))


def _entry_points() -> list[importlib.metadata.EntryPoint]:
    """latentkit's own plugins first, then the others by distribution and name: a load order that does not depend on
    ``sys.path``, so that of two plugins registering one name it is always the same one — never a built-in — that is
    left out."""

    def order(ep: importlib.metadata.EntryPoint) -> tuple:
        dist = (ep.dist.name if ep.dist else "").lower().replace("_", "-")
        return dist != "latentkit", dist, ep.name

    return sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=order)


def _add(pm: pluggy.PluginManager, plugin: object, source: Source, sources: dict, failures: list) -> None:
    """Register ``plugin``; a malformed one is unregistered again and recorded."""
    try:
        pm.register(plugin, name=source.plugin)
    except (pluggy.PluginValidationError, ValueError) as exc:  # ValueError: the same object under two names
        if pm.get_plugin(source.plugin) is plugin:
            pm.unregister(plugin)  # pluggy leaves a half-registered plugin behind
        failures.append(malformed_failure(source, str(exc)))
        return
    unknown = [
        caller.name for caller in pm.get_hookcallers(plugin) or []
        if not caller.has_spec()
        and not any(impl.optionalhook for impl in caller.get_hookimpls() if impl.plugin is plugin)
    ]
    if unknown:
        pm.unregister(plugin)
        hints = [f"{name} (did you mean {close[0]}?)" if (close := difflib.get_close_matches(name, hook_names(), n=1))
                 else name for name in unknown]
        failures.append(malformed_failure(source, f"unknown hook {', '.join(hints)}"))
        return
    sources[source.plugin] = source


def _fill_registry(pm: pluggy.PluginManager, sources: Mapping[str, Source], failures: list) -> Registry:
    """Call each plugin's ``latentkit_register_*`` hooks through ``pm`` (one plugin at a time, each with a registry of
    its own, so every entry knows its source), then merge. A plugin that raises, or registers a name another plugin
    already has, is left out whole — its run-time hooks too."""
    registry = Registry()
    for name, plugin in pm.list_name_plugin():
        if plugin is None:  # blocked
            continue
        try:
            own = _own_registrations(pm, plugin, sources[name])
            _merge(registry, own)
        except Exception as exc:  # noqa: BLE001 - a plugin's bug in its hook must not take the host down
            pm.unregister(plugin)
            failures.append(registration_failure(sources[name], exc))
    return registry


def _own_registrations(pm: pluggy.PluginManager, plugin: object, source: Source) -> Registry:
    own = Registry()
    others = [p for p in pm.get_plugins() if p is not plugin]
    for kind in KINDS:
        hook_name = f"latentkit_register_{kind}"
        if not any(impl.plugin is plugin for impl in getattr(pm.hook, hook_name).get_hookimpls()):
            continue
        target = own.kinds[kind]
        with _adding_as(target, source):
            try:
                pm.subset_hook_caller(hook_name, remove_plugins=others)(registry=target)
            except Exception as exc:
                raise RegistrationFailed(kind, exc) from exc
    return own


def _merge(registry: Registry, own: Registry) -> None:
    """Add one plugin's entries to ``registry``, all or none: a name clash raises before anything is added."""
    pairs = [(registry.kinds[kind], entry) for kind in KINDS for entry in own.kinds[kind]]
    pairs.sort(key=lambda pair: pair[1].name not in pair[0])  # clashes first: the first add raises the clash's error
    for target, entry in pairs:
        with _adding_as(target, entry.source):
            target.add(entry.name, entry.value)


@contextlib.contextmanager
def _adding_as(target: KindRegistry, source: Source) -> Iterator[None]:
    """Entries added to ``target`` meanwhile record ``source`` as where they came from."""
    target._current_source = source
    try:
        yield
    finally:
        target._current_source = None


# --- the process's host, and the functions that use it ------------------------------------------------------------
_default = PluginHost.from_environment()  # loads nothing until first used


def default_host() -> PluginHost:
    """The process's plugin host: blocks the plugins named in ``$LATENTKIT_DISABLE_PLUGINS`` (read at import)."""
    return _default


@contextlib.contextmanager
def use_host(host: PluginHost) -> Iterator[PluginHost]:
    """Make ``host`` the process's default for the ``with`` block (the CLI's ``-p no:NAME``; tests)."""
    global _default
    previous = _default
    _default = host
    try:
        yield host
    finally:
        _default = previous


def get_registry() -> Registry:
    """The default host's registry: every installed plugin plus those added with :func:`register_plugin`."""
    return default_host().registry


def get_plugin_manager() -> pluggy.PluginManager:
    """The default host's pluggy manager; its ``hook`` attribute calls the run-time hooks."""
    return default_host().plugin_manager


def register_plugin(plugin: object, name: str | None = None) -> str:
    """:meth:`PluginHost.register` on the default host."""
    return default_host().register(plugin, name)


def unregister_plugin(name: str) -> None:
    """:meth:`PluginHost.unregister` on the default host."""
    default_host().unregister(name)


def block_plugin(name: str) -> None:
    """:meth:`PluginHost.block` on the default host (as pytest's ``-p no:NAME``)."""
    default_host().block(name)


def unblock_plugin(name: str) -> None:
    """:meth:`PluginHost.unblock` on the default host."""
    default_host().unblock(name)
