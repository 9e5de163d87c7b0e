"""Registries of named plugin components, with the distribution each came from."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator, Mapping
from typing import Any, Generic, TypeVar

import attrs

from latentkit.errors import ConfigError, PluginError, UnknownNameError
from latentkit.plugins.factories import CONTEXT, accepted_options, call_factory, signature_of

T = TypeVar("T")

#: a registered name: an identifier, or identifier-like words joined by single hyphens (``kl-ranking``)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:-[A-Za-z0-9_]+)*")

KINDS = ("families", "networks", "schedules", "objectives", "datasets", "metrics")
_SINGULAR = {
    "families": "latent family",
    "networks": "network",
    "schedules": "capacity schedule",
    "objectives": "objective",
    "datasets": "data set",
    "metrics": "metric",
}


@attrs.frozen
class Source:
    """Where a registered component came from."""

    plugin: str  #: the plugin's name in the plugin manager (entry-point name or given name)
    distribution: str  #: the installed distribution, or "(not installed)" for plugins registered in code
    version: str


@attrs.frozen
class Entry(Generic[T]):
    name: str
    value: T
    source: Source


class KindRegistry(Generic[T]):
    """Components of one kind (families, networks, ...) by name."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}
        self._current_source: Source | None = None

    def add(self, name: str, value: T) -> None:
        """Register ``value`` under ``name``; called by plugins from their hook."""
        if not isinstance(name, str) or not (name.isidentifier() or _NAME.fullmatch(name)):
            raise PluginError(
                f"{self.singular} name {name!r} must be an identifier such as 'gumbel_softmax' (words may be joined by "
                f"single hyphens, as in 'kl-ranking')"
            )
        source = self._current_source or Source("(unknown)", "(not installed)", "")
        if name in self._entries:
            other = self._entries[name].source
            raise PluginError(
                f"two plugins register a {self.singular} named {name!r}: {other.plugin} ({other.distribution}) and "
                f"{source.plugin} ({source.distribution}); uninstall or disable one of them"
            )
        self._entries[name] = Entry(name, value, source)

    @property
    def singular(self) -> str:
        return _SINGULAR.get(self.kind, self.kind)

    def get(self, name: str) -> T:
        return self.entry(name).value

    def build(self, name: str, options: Mapping[str, Any] | None = None, /, **context: Any) -> Any:
        """The component registered as ``name``, built with its own ``options`` and, of the ``context`` values
        (``latent``, ``image_shape``, ``registry``, ``dataset_size``), only those its factory's signature names
        (:func:`latentkit.plugins.factories.call_factory`)."""
        return call_factory(f"{self.singular} {name!r}", self.get(name), options, context)

    def entry(self, name: str) -> Entry[T]:
        try:
            return self._entries[name]
        except KeyError:
            known = sorted(self._entries)
            close = difflib.get_close_matches(str(name), known, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise UnknownNameError(
                f"no {self.singular} named {name!r} is registered.{hint} Known {self.kind}: "
                f"{', '.join(known) or '(none)'}. Install the plugin that provides it, or fix the name "
                f"(`latentkit plugins` lists everything registered)."
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(sorted(self._entries.values(), key=lambda e: e.name))

    def names(self) -> list[str]:
        return sorted(self._entries)


class Registry:
    """Every kind's registry (``families``, ``networks``, ``schedules``, ``objectives``, ``datasets``, ``metrics``),
    as the plugins' ``latentkit_register_*`` hooks filled them.

    Each is a :class:`KindRegistry`: ``get(name)`` the registered class or function, ``build(name, options,
    **context)`` it built with its own options and the context values it names, ``names()``, and ``entry(name).source``
    the plugin and distribution that registered it. :meth:`build_objective` and :meth:`extend_objective` are how an
    objective is built, by the assembly or by another objective plugin (a plugin never imports another plugin).
    Obtain the process's with :func:`latentkit.plugins.get_registry`, or a host's as ``PluginHost(...).registry``.

    Attributes:
        kinds: ``{kind: KindRegistry}`` for the six kinds.
    """

    def __init__(self) -> None:
        self.kinds: dict[str, KindRegistry[Any]] = {kind: KindRegistry(kind) for kind in KINDS}

    @property
    def families(self) -> KindRegistry[Any]:
        return self.kinds["families"]

    @property
    def networks(self) -> KindRegistry[Any]:
        return self.kinds["networks"]

    @property
    def schedules(self) -> KindRegistry[Any]:
        return self.kinds["schedules"]

    @property
    def objectives(self) -> KindRegistry[Any]:
        return self.kinds["objectives"]

    @property
    def datasets(self) -> KindRegistry[Any]:
        return self.kinds["datasets"]

    @property
    def metrics(self) -> KindRegistry[Any]:
        return self.kinds["metrics"]

    def build_objective(self, name: str, options: Mapping[str, Any] | None = None, /, **context: Any) -> Any:
        """The objective registered as ``name``, built as :meth:`KindRegistry.build` does, with this registry among
        the context values: how the assembly builds a run's objective, and how an objective plugin builds another it
        adds a term to (never by importing that plugin, nor the assembly)."""
        built = self.objectives.build(name, options, **{**context, "registry": self})
        if not callable(built):
            raise ConfigError(f"objective {name!r} did not build a callable objective (got {type(built).__name__})")
        return built

    def extend_objective(self, base: str, cls: type, /, **options_and_context: Any) -> Any:
        """``cls(base=<objective base>, ...)``: an objective that adds terms to the objective registered as ``base``.

        ``options_and_context`` is what the plugin's factory received and passes on: its ``**options`` and the context
        values it named (``latent``, ``image_shape``, ``dataset_size``). The options ``cls.__init__`` declares go to
        ``cls``, every other option builds ``base`` (so each default is written once, in ``cls``); each context value
        goes to whichever of the two declares it. An option neither accepts is a ConfigError listing both's options::

            def build_tcvae(registry, latent, image_shape, dataset_size=None, **options):
                return registry.extend_objective("jointvae", TCVAEObjective, latent=latent, image_shape=image_shape,
                                                 dataset_size=dataset_size, **options)
        """
        context = {k: v for k, v in options_and_context.items() if k in CONTEXT and k != "registry"}
        options = {k: v for k, v in options_and_context.items() if k not in CONTEXT}
        own_names = set(signature_of(cls)[0]) - {"base"}
        own = {k: v for k, v in options.items() if k in own_names}
        rest = {k: v for k, v in options.items() if k not in own_names}
        name = getattr(cls, "objective_name", "") or cls.__name__
        base_factory = self.objectives.get(base)
        base_names, base_takes_any = signature_of(base_factory)
        unknown = [k for k in rest if k not in base_names and not base_takes_any]
        if unknown:
            raise ConfigError(
                f"objective {name!r} has no option {', '.join(map(repr, unknown))}; its own options are "
                f"{', '.join(accepted_options(cls, CONTEXT + ('base',))) or '(none)'}, and it passes on those of the "
                f"{base!r} objective it adds to: {', '.join(accepted_options(base_factory)) or '(none)'}"
            )
        built_base = self.build_objective(base, rest, **context)
        return call_factory(f"objective {name!r}", cls, own, {**context, "registry": self, "base": built_base})

    def versions(self) -> dict[str, str]:
        """``{distribution: version}`` of every distribution that registered something."""
        out = {}
        for kind in self.kinds.values():
            for entry in kind:
                out[entry.source.distribution] = entry.source.version
        return dict(sorted(out.items()))
