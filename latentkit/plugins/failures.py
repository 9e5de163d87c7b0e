"""Plugins left out because they are broken: what went wrong, in one paragraph with the fix.

:class:`PluginFailure` is what :class:`~latentkit.plugins.PluginHost` records for a plugin it could not import, found
malformed, or whose registration hook raised; the functions here word the problem and the fix for each case.
"""

from __future__ import annotations

import importlib.metadata

import attrs

from latentkit.errors import PluginError
from latentkit.plugins import hookspecs
from latentkit.plugins.registry import Source

#: Entry-point names of plugins to block, separated by commas or spaces (as ``latentkit -p no:NAME`` for each).
DISABLE_ENV = "LATENTKIT_DISABLE_PLUGINS"
#: The distribution of a plugin registered in code.
NOT_INSTALLED = "(not installed)"


class PluginWarning(UserWarning):
    """A plugin is broken and left out (see :attr:`PluginHost.failures`)."""


@attrs.frozen
class PluginFailure:
    """A plugin that was left out: which, what went wrong (with the exception), and how to fix it."""

    plugin: str  #: entry-point name, or the name given to :meth:`PluginHost.register`
    distribution: str  #: the installed distribution, or "(not installed)" for plugins registered in code
    version: str
    problem: str  #: what went wrong, ending with the exception (type and message)
    fix: str

    @property
    def message(self) -> str:
        """One paragraph: the plugin, the problem, the fix."""
        if self.distribution == NOT_INSTALLED:
            return f"plugin {self.plugin!r} (registered in code) is broken: {self.problem}. {self.fix}"
        origin = f"{self.distribution} {self.version}".strip()
        return f"plugin {self.plugin!r} from {origin} is broken and left out: {self.problem}. {self.fix}"


class RegistrationFailed(Exception):
    """A plugin's ``latentkit_register_<kind>`` hook raised ``error``."""

    def __init__(self, kind: str, error: BaseException):
        super().__init__(kind, error)
        self.kind, self.error = kind, error


def _block_hint(source: Source) -> str:
    """How to leave an installed plugin out without the warning (nothing for one registered in code)."""
    if source.distribution == NOT_INSTALLED:
        return ""
    name = source.plugin
    return f"; `latentkit -p no:{name} ...` or {DISABLE_ENV}={name} leaves it out without this message"


def import_failure(source: Source, ep: importlib.metadata.EntryPoint, exc: BaseException) -> PluginFailure:
    """Name the entry point whose module failed to import, and the usual cause.

    The common case is latentkit's own: an editable install (``pip install -e .``) records the checkout's path, so a
    checkout that was moved, renamed or cloned afresh leaves entry points that point at modules Python cannot find.
    """
    missing = getattr(exc, "name", None) if isinstance(exc, ImportError) else None
    problem = f"its entry point {ep.name} = {ep.value} cannot be imported: {_exception(exc)}"
    if missing and (ep.module == missing or ep.module.startswith(missing + ".")):
        fix = (
            "If it is one of latentkit's own (latentkit_plugins.*), the install is stale (the checkout was moved, "
            "renamed or cloned again after `pip install -e .`): run `pip install -e .` in the checkout. If it is a "
            f"third-party plugin, reinstall or uninstall {source.distribution}"
        )
    else:
        fix = f"A bug in {source.distribution} or a dependency of it is missing: upgrade, reinstall or uninstall it"
    return PluginFailure(source.plugin, source.distribution, source.version, problem, f"{fix}{_block_hint(source)}.")


def malformed_failure(source: Source, detail: str) -> PluginFailure:
    detail = "; ".join(line.strip() for line in detail.splitlines() if line.strip())  # pluggy's are several lines
    return PluginFailure(
        source.plugin, source.distribution, source.version, f"it is malformed: {detail}",
        "A function marked @hookimpl, or named latentkit_*, must be named after a hook in latentkit.plugins.hookspecs "
        f"({', '.join(hook_names())}) and take only that hook's arguments{_block_hint(source)}.",
    )


def registration_failure(source: Source, exc: BaseException) -> PluginFailure:
    if isinstance(exc, RegistrationFailed):
        problem = f"it failed while registering {exc.kind}: {_exception(exc.error)}"
        fix = f"Fix the plugin's latentkit_register_{exc.kind} hook, or upgrade or uninstall {source.distribution}"
    else:  # a name another plugin registered (the registry's PluginError says which two)
        problem = str(exc) if isinstance(exc, PluginError) else _exception(exc)
        fix = "Uninstall one of the two packages"
    return PluginFailure(source.plugin, source.distribution, source.version, problem, f"{fix}{_block_hint(source)}.")


def _exception(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def hook_names() -> list[str]:
    return sorted(n for n in dir(hookspecs) if n.startswith(f"{hookspecs.PROJECT}_"))
