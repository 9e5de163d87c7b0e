"""``latentkit plugins``, ``latentkit check-plugin``, and the global ``-p no:NAME`` that leaves a plugin out.

Broken plugins (see :mod:`latentkit.plugins.manager`) are left out of every command; other commands print one warning
per broken plugin, and these two list them and exit with status 1, so that a plugin's author notices.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import importlib.util
import inspect
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

from latentkit.errors import ConfigError, LatentkitError, UnknownNameError
from latentkit.plugins import DISABLE_ENV, PluginFailure, PluginHost, default_host, use_host
from latentkit.plugins.manager import blocked_by_environment

_STATUS_WORDS = {"passed": "PASS", "failed": "FAIL", "skipped": "SKIP"}
_BLOCK_PREFIX = "no:"


# --- -p no:NAME and $LATENTKIT_DISABLE_PLUGINS ----------------------------------------------------------------------
def add_plugin_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-p", dest="plugin_options", action="append", default=[], metavar="no:NAME",
        help=f"leave out the plugin with entry-point name NAME (repeatable; `latentkit plugins` shows the names); "
        f"${DISABLE_ENV}=NAME1,NAME2 does the same for every command",
    )


def _requested_blocks(options: list[str], known: list[str]) -> set[str]:
    """The names of ``-p no:NAME`` options; anything else, or a name no plugin has, is a user error."""
    names = set()
    for option in options:
        name = option[len(_BLOCK_PREFIX):] if option.startswith(_BLOCK_PREFIX) else ""
        if not name:
            raise ConfigError(f"-p takes no:NAME to leave out the plugin NAME (as pytest's -p no:NAME), got {option!r}")
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(
                f"-p no:{name}: no plugin is named {name!r}.{hint} Plugins: {', '.join(known) or '(none)'}."
            )
        names.add(name)
    return names


@contextlib.contextmanager
def plugin_host(options: list[str]) -> Iterator[PluginHost]:
    """The host a command runs with: the default one, less the plugins ``-p no:NAME`` and ``$LATENTKIT_DISABLE_PLUGINS``
    name (the environment is read again here, so that a change since start-up counts).

    An unknown name after ``-p`` is an error (a typo on the command line is right there to fix); an unknown name in the
    environment variable is a warning (it may name a plugin uninstalled since, and must not stop every command). The
    names given with ``-p`` are added to ``$LATENTKIT_DISABLE_PLUGINS`` while the command runs, so that the latentkit
    processes it starts (``sweep``'s runs) leave them out too.
    """
    base = default_host()
    known = base.known_names()
    requested = _requested_blocks(options, known)
    from_environment = blocked_by_environment()
    for name in from_environment:
        if name not in known:
            print(f"latentkit: warning: ${DISABLE_ENV} names {name!r}, which no installed plugin is called; ignored. "
                  f"Plugins: {', '.join(known) or '(none)'}.", file=sys.stderr)
    blocked = requested | {name for name in from_environment if name in known}
    with _environment(DISABLE_ENV, ",".join([*from_environment, *sorted(requested - set(from_environment))])):
        if blocked <= base.blocked:
            yield base
        else:
            with use_host(base.derive(blocked=blocked)) as host:
                yield host


@contextlib.contextmanager
def _environment(name: str, value: str) -> Iterator[None]:
    """``os.environ[name] = value`` (unset when empty) for the ``with`` block."""
    previous = os.environ.get(name)
    if value:
        os.environ[name] = value
    else:
        os.environ.pop(name, None)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = previous


def warn_broken(failures: tuple[PluginFailure, ...]) -> None:
    for failure in failures:
        print(f"latentkit: warning: {failure.message}", file=sys.stderr)


def broken_note(failures: tuple[PluginFailure, ...]) -> str:
    """Appended to an unknown-name error: one of the broken plugins may be the one that provides the name."""
    if not failures:
        return ""
    return " The name may come from a plugin left out because it is broken: " + " ".join(f.message for f in failures)


def _failure_json(failure: PluginFailure) -> dict[str, str]:
    return {"plugin": failure.plugin, "distribution": failure.distribution, "version": failure.version,
            "problem": failure.problem, "fix": failure.fix}


# --- latentkit plugins -----------------------------------------------------------------------------------------------
def cmd_plugins(args: argparse.Namespace) -> int:
    host = default_host()
    registry, failures = host.registry, host.failures
    if args.json:
        # One list per kind, every kind present even when empty, so a consumer never has to guess a missing key.
        listing: dict[str, Any] = {
            kind: [
                {"name": e.name, "distribution": e.source.distribution, "version": e.source.version,
                 "plugin": e.source.plugin}
                for e in reg
            ]
            for kind, reg in registry.kinds.items()
        }
        listing["broken"] = [_failure_json(f) for f in failures]
        print(json.dumps(listing, indent=2))
        return 1 if failures else 0
    for kind, reg in registry.kinds.items():
        print(f"{kind}:")
        entries = list(reg)
        if not entries:
            print("  (none)")
        for entry in entries:
            src = entry.source
            print(f"  {entry.name:<20} {src.distribution} {src.version}  (plugin {src.plugin})")
    blocked = sorted(host.blocked & set(host.known_names()))
    if blocked:
        print(f"blocked: {', '.join(blocked)}")
    if failures:
        print("broken (left out):")
        for failure in failures:
            print(f"  {failure.message}")
    return 1 if failures else 0


# --- latentkit check-plugin: the latent-family conformance suite on a registered family -----------------------------
def _registered_family(registry, name: str):
    """The registry entry of latent family ``name``; a name of another kind, or an unknown one, is a user error."""
    if name not in registry.families:
        for reg in registry.kinds.values():
            if reg is not registry.families and name in reg:
                src = reg.entry(name).source
                raise UnknownNameError(
                    f"{name!r} is a {reg.singular} (from {src.distribution}, plugin {src.plugin}), not a latent "
                    f"family: check-plugin checks latent families only. Registered latent families: "
                    f"{', '.join(registry.families.names()) or '(none)'}."
                )
    return registry.families.entry(name)  # unknown: the registry's message, with its close-match hint


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _uses_default_example_configs(family_cls: type) -> bool:
    from latentkit.core import LatentFamily

    own = getattr(getattr(family_cls, "example_configs", None), "__func__", None)
    return own is LatentFamily.example_configs.__func__


def _buildable_configs(family_cls: Any, failed: Callable[[str, str, str], None]) -> list[dict]:
    """The example configurations ``family_cls`` can be built with; ``failed(check, label, reason)`` once for each
    problem that keeps the suite from running (an abstract class, a broken ``example_configs``, a constructor that
    raises), so that one problem is one line rather than a traceback per property."""
    from latentkit.testing.conformance import family_label

    name = getattr(family_cls, "__name__", repr(family_cls))
    if inspect.isclass(family_cls) and inspect.isabstract(family_cls):
        missing = ", ".join(sorted(family_cls.__abstractmethods__))
        failed("construct", name, f"{name} cannot be instantiated: it does not implement the abstract methods "
               f"{missing} of LatentFamily; implement them")
        return []
    try:
        configs = list(family_cls.example_configs())
    except Exception as exc:  # noqa: BLE001 - a plugin's bug, reported like a failed property
        failed("example_configs", name, f"{name}.example_configs() raised {_one_line(exc)}")
        return []
    if not configs or any(not isinstance(c, dict) for c in configs):
        failed("example_configs", name, f"{name}.example_configs() must return a non-empty list of dicts of "
               f"constructor options, got {configs!r}")
        return []
    buildable = []
    for config in configs:
        try:
            family_cls(**config)
        except Exception as exc:  # noqa: BLE001 - reported as one FAIL line, as the suite reports a crash
            if _uses_default_example_configs(family_cls):
                label = family_label(family_cls, config)
                failed("example_configs", name, f"{label} raised {_one_line(exc)}: {name} does not "
                       "override example_configs(), whose default [{}] builds it with no options; override "
                       "example_configs() to return constructor options that build it, e.g. [{'units': 2}]")
            else:
                failed("construct", family_label(family_cls, config), f"the constructor raised {_one_line(exc)} on this "
                       "configuration from example_configs(); fix the constructor or the configuration")
        else:
            buildable.append(config)
    return buildable


def _conformance_results(
    family_cls: Any, max_examples: int | None, on_result: Callable[[dict, Any], None]
) -> list[tuple[dict, Any]]:
    """Run every conformance check on every buildable example config of ``family_cls``, calling ``on_result`` after
    each (a configuration that cannot be built gets one failed result, not one per check)."""
    from latentkit.testing import CHECKS, CheckResult, run_check

    results = []

    def record(config: dict, result: Any) -> None:
        on_result(config, result)
        results.append((config, result))

    configs = _buildable_configs(family_cls, lambda check, label, reason: record(
        {}, CheckResult(check, label, "failed", reason)))
    for config in configs:
        for check in CHECKS:
            record(config, run_check(family_cls, config, check, max_examples=max_examples))
    return results


def _print_result(config: dict, result: Any) -> None:
    line = f"{_STATUS_WORDS[result.status]} {result.check} on {result.family}"
    if result.message:
        first, *rest = result.message.splitlines()
        line += f": {first}" + "".join(f"\n       {more}" for more in rest)
    print(line, flush=True)  # one line per property as it finishes: the progress indication, readable in CI logs


def _import_testing() -> None:
    """``latentkit.testing`` needs Hypothesis, which only the ``testing`` extra brings."""
    if importlib.util.find_spec("hypothesis") is None:
        raise LatentkitError(
            "check-plugin runs latentkit's conformance suite, which needs Hypothesis (not installed): "
            'pip install "latentkit[testing]"'
        )
    import latentkit.testing  # noqa: F401


def cmd_check_plugin(args: argparse.Namespace) -> int:
    if args.max_examples is not None and args.max_examples < 1:
        raise ConfigError(f"--max-examples must be at least 1, got {args.max_examples}")
    host = default_host()
    entry = _registered_family(host.registry, args.name)
    _import_testing()
    failures = host.failures
    family_cls, src = entry.value, entry.source
    where = f"{src.distribution} {src.version}".strip()
    started = time.perf_counter()
    if args.json:
        with contextlib.redirect_stdout(sys.stderr):  # stray prints of a plugin must not corrupt the JSON
            results = _conformance_results(family_cls, args.max_examples, lambda config, result: None)
    else:
        for failure in failures:
            print(f"BROKEN {failure.message}", flush=True)
        print(f"checking latent family {entry.name!r} ({getattr(family_cls, '__qualname__', family_cls)} from {where}, "
              f"plugin {src.plugin}) with the conformance suite", flush=True)
        results = _conformance_results(family_cls, args.max_examples, _print_result)
    counts = {status: sum(r.status == status for _, r in results) for status in _STATUS_WORDS}
    configs = len({json.dumps(config, sort_keys=True, default=repr) for config, _ in results})
    properties = len({r.check for _, r in results})
    seconds = time.perf_counter() - started
    ok = counts["failed"] == 0 and not failures
    if args.json:
        report = {
            "family": entry.name,
            "class": f"{getattr(family_cls, '__module__', '?')}.{getattr(family_cls, '__qualname__', family_cls)}",
            "distribution": src.distribution,
            "version": src.version,
            "plugin": src.plugin,
            "max_examples": args.max_examples,
            "results": [
                {"config": config, "label": r.family, "property": r.check, "status": r.status, "reason": r.message}
                for config, r in results
            ],
            "summary": {**counts, "total": len(results), "properties": properties, "configs": configs,
                        "seconds": round(seconds, 2)},
            "broken": [_failure_json(f) for f in failures],
            "ok": ok,
        }
        print(json.dumps(report, indent=2, default=repr))
    else:
        broken = f"; {len(failures)} broken plugin(s) left out (above)" if failures else ""
        print(f"{'OK' if ok else 'FAILED'}: latent family {entry.name!r}: {counts['passed']} passed, "
              f"{counts['failed']} failed, {counts['skipped']} skipped ({properties} properties x {configs} example "
              f"configs, {seconds:.1f} s){broken}")
    return 0 if ok else 1


# --- the parsers ---------------------------------------------------------------------------------------------------
def add_plugin_parsers(sub) -> None:
    p = sub.add_parser(
        "plugins", help="list every registered family, network, schedule, objective, data set, metric",
        description="List every registered component with the plugin and distribution it came from, the blocked "
        "plugins, and the broken plugins left out (with the error and the fix). Exit status 1 when a plugin is broken.",
    )
    p.add_argument(
        "--json", action="store_true",
        help="machine-readable output: an object with one list per kind (families, networks, schedules, objectives, "
        "datasets, metrics), each entry {name, distribution, version, plugin}, and 'broken': a list of "
        "{plugin, distribution, version, problem, fix}",
    )
    p.set_defaults(func=cmd_plugins)

    p = sub.add_parser(
        "check-plugin",
        help="run the latent-family conformance suite on a registered family",
        description="Run latentkit's latent-family conformance suite (latentkit.testing) on the registered latent "
        "family NAME, on every configuration its example_configs() gives: one line per property and configuration "
        "(PASS, FAIL with the reason, or SKIP with the reason), then a summary. A class that cannot be built gets one "
        "FAIL line per problem instead. Exit status 0 when every property passes, 1 when any fails or a plugin is "
        'broken, 2 when NAME is not a registered latent family. Needs Hypothesis: pip install "latentkit[testing]".',
    )
    p.add_argument(
        "name", metavar="NAME", help="a registered latent family, e.g. gaussian (`latentkit plugins` lists them)"
    )
    p.add_argument(
        "--max-examples", type=int, metavar="N",
        help="Hypothesis examples per property (default: each property's own, 6 to 40); fewer is faster",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_check_plugin)
