"""The ``latentkit`` command line.

User errors (:class:`latentkit.errors.LatentkitError`) print one paragraph and exit with status 2; ``--debug`` shows
the traceback instead.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from latentkit.errors import LatentkitError


def _cmd_plugins(args: argparse.Namespace) -> int:
    from latentkit.plugins import get_registry

    registry = get_registry()
    if args.json:
        # One list per kind, every kind present even when empty, so a consumer never has to guess a missing key.
        listing = {
            kind: [
                {
                    "name": entry.name,
                    "distribution": entry.source.distribution,
                    "version": entry.source.version,
                    "plugin": entry.source.plugin,
                }
                for entry in reg
            ]
            for kind, reg in registry.kinds.items()
        }
        print(json.dumps(listing, indent=2))
        return 0
    for kind, reg in registry.kinds.items():
        print(f"{kind}:")
        entries = list(reg)
        if not entries:
            print("  (none)")
        for entry in entries:
            src = entry.source
            print(f"  {entry.name:<20} {src.distribution} {src.version}  (plugin {src.plugin})")
    return 0


# --- check-plugin: the latent-family conformance suite on a registered family ---------------------------------------
_STATUS_WORDS = {"passed": "PASS", "failed": "FAIL", "skipped": "SKIP"}


def _registered_family(registry, name: str):
    """The registry entry of latent family ``name``; a name of another kind, or an unknown one, is a user error."""
    from latentkit.errors import UnknownNameError

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


def _conformance_results(
    family_cls: type, max_examples: int | None, on_result: Callable[[dict, Any], None]
) -> list[tuple[dict, Any]]:
    """Run every conformance check on every example config of ``family_cls``, calling ``on_result`` after each.

    A family whose ``example_configs()`` is broken gets one failed result for it rather than a traceback.
    """
    from latentkit.testing import CHECKS, CheckResult, run_check

    name = getattr(family_cls, "__name__", repr(family_cls))
    try:
        configs = list(family_cls.example_configs())
        problem = "returned no configuration" if not configs else ""
        if any(not isinstance(c, dict) for c in configs):
            problem = f"must return a list of dicts of constructor options, got {configs!r}"
    except Exception as exc:  # a plugin's bug, reported like a failed property
        configs, problem = [], f"raised {type(exc).__name__}: {exc}"
    if problem:
        result = CheckResult("example_configs", name, "failed", f"{name}.example_configs() {problem}")
        on_result({}, result)
        return [({}, result)]
    results = []
    for config in configs:
        for check in CHECKS:
            result = run_check(family_cls, config, check, max_examples=max_examples)
            on_result(config, result)
            results.append((config, result))
    return results


def _print_result(config: dict, result) -> None:
    line = f"{_STATUS_WORDS[result.status]} {result.check} on {result.family}"
    if result.message:
        first, *rest = result.message.splitlines()
        line += f": {first}" + "".join(f"\n       {more}" for more in rest)
    print(line, flush=True)  # one line per property as it finishes: the progress indication, readable in CI logs


def _cmd_check_plugin(args: argparse.Namespace) -> int:
    import contextlib
    import time

    from latentkit.errors import ConfigError
    from latentkit.plugins import get_registry

    if args.max_examples is not None and args.max_examples < 1:
        raise ConfigError(f"--max-examples must be at least 1, got {args.max_examples}")
    entry = _registered_family(get_registry(), args.name)
    try:
        import latentkit.testing  # noqa: F401  (needs Hypothesis)
    except ImportError as exc:
        raise LatentkitError(
            f"check-plugin runs latentkit's conformance suite, which needs Hypothesis: {exc}"
        ) from None
    family_cls, src = entry.value, entry.source
    where = f"{src.distribution} {src.version}".strip()
    started = time.perf_counter()
    if args.json:
        with contextlib.redirect_stdout(sys.stderr):  # stray prints of a plugin must not corrupt the JSON
            results = _conformance_results(family_cls, args.max_examples, lambda config, result: None)
    else:
        print(f"checking latent family {entry.name!r} ({getattr(family_cls, '__qualname__', family_cls)} from {where}, "
              f"plugin {src.plugin}) with the conformance suite", flush=True)
        results = _conformance_results(family_cls, args.max_examples, _print_result)
    counts = {status: sum(r.status == status for _, r in results) for status in _STATUS_WORDS}
    configs = len({json.dumps(config, sort_keys=True, default=repr) for config, _ in results})
    properties = len({r.check for _, r in results})
    seconds = time.perf_counter() - started
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
            "ok": counts["failed"] == 0,
        }
        print(json.dumps(report, indent=2, default=repr))
    else:
        verdict = "FAILED" if counts["failed"] else "OK"
        print(f"{verdict}: latent family {entry.name!r}: {counts['passed']} passed, {counts['failed']} failed, "
              f"{counts['skipped']} skipped ({properties} properties x {configs} example configs, {seconds:.1f} s)")
    return 1 if counts["failed"] else 0


def _cmd_import_jointvae(args: argparse.Namespace) -> int:
    from latentkit.interop.jointvae_original import import_original

    config = import_original(args.src, args.out)
    names = ", ".join(f"{c['name']}={c['family']}" for c in config["model"]["channels"])
    print(f"imported {args.src} -> {args.out} (dataset {config['dataset']['name']}, channels {names})")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from latentkit.assembly.evaluate import evaluate_checkpoint, format_table, parse_option_strings
    from latentkit.plugins import get_registry

    registry = get_registry()
    metric_fns = {name: registry.metrics.get(name) for name in args.metric}  # unknown name: lists the known ones
    options = parse_option_strings(args.option or [], metric_fns)
    results = evaluate_checkpoint(
        args.checkpoint,
        metrics=args.metric,
        data_root=args.data_root,
        split=args.split,
        batch_size=args.batch_size,
        device=args.device,
        registry=registry,
        options=options,
        save=not args.no_save,
        max_images=args.max_images,
    )
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        split = f", split {results['split']}" if results["split"] else ""
        if results.get("images") is not None:
            split += f", {results['images']:,} images"
        print(f"{results['checkpoint']} (data set {results['dataset']}{split})")
        print(format_table(results))
        for path in results["files"].values():
            print(f"results written to {path}")
    return 0


def _cmd_sweep(args: argparse.Namespace) -> int:
    from pathlib import Path

    from latentkit.errors import ConfigError
    from latentkit.assembly.sweep import SweepSpec, plan, run_local, run_ray, summarise

    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        raise ConfigError(f"--seeds takes whole numbers separated by commas, e.g. 0,1,2; got {args.seeds!r}") from None
    if not Path(args.recipe).is_file():
        raise ConfigError(f"no recipe file {args.recipe!r}")
    if args.jobs < 1:
        raise ConfigError(f"--jobs must be at least 1, got {args.jobs}")
    runs = plan(seeds, args.set or [])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    spec = SweepSpec(args.recipe, out, args.steps, tuple(args.metric or ["reconstruction"]), args.data_root,
                     args.threads, tuple(args.option or ()), args.max_images)
    print(f"{len(runs)} runs into {out} ({args.backend} backend)", flush=True)
    progress = functools.partial(print, flush=True)
    results = run_ray(spec, runs, progress) if args.backend == "ray" else run_local(spec, runs, args.jobs, progress)
    print(summarise(results, out))
    print(f"summary: {out / 'summary.md'}, {out / 'summary.csv'}")
    return 0 if all(r.status == "ok" for r in results) else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="latentkit", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks for user errors")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("plugins", help="list every registered family, network, schedule, objective, data set, metric")
    p.add_argument(
        "--json", action="store_true",
        help="machine-readable output: an object with one list per kind (families, networks, schedules, objectives, "
        "datasets, metrics), each entry {name, distribution, version, plugin}",
    )
    p.set_defaults(func=_cmd_plugins)

    p = sub.add_parser(
        "check-plugin",
        help="run the latent-family conformance suite on a registered family",
        description="Run latentkit's latent-family conformance suite (latentkit.testing) on the registered latent "
        "family NAME, on every configuration its example_configs() gives: one line per property and configuration "
        "(PASS, FAIL with the reason, or SKIP with the reason), then a summary. Exit status 0 when every property "
        "passes, 1 when any fails, 2 when NAME is not a registered latent family.",
    )
    p.add_argument(
        "name", metavar="NAME", help="a registered latent family, e.g. gaussian (`latentkit plugins` lists them)"
    )
    p.add_argument(
        "--max-examples", type=int, metavar="N",
        help="Hypothesis examples per property (default: each property's own, 6 to 40); fewer is faster",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_check_plugin)

    p = sub.add_parser("import-jointvae", help="convert a checkpoint of the original JointVAE code")
    p.add_argument("src", help="folder holding the original's model.pt and specs.json")
    p.add_argument("out", help="latentkit checkpoint folder to write")
    p.set_defaults(func=_cmd_import_jointvae)

    p = sub.add_parser(
        "evaluate",
        help="evaluate a checkpoint folder or run directory with one or more metrics",
        description="Evaluate a checkpoint folder or run directory with registered metrics (built in: accuracy, "
        "kl-ranking, factorvae, mig, dci, sap; `latentkit plugins` lists all). Each metric's results are written to "
        "FOLDER/evaluation/<metric>-<split>.json (metrics on a data split) or FOLDER/evaluation/<metric>.json "
        "(metrics on the ground-truth factor grid) and printed as a table.",
    )
    p.add_argument("checkpoint", help="a latentkit checkpoint folder or run directory")
    p.add_argument(
        "--metric", action="append", required=True,
        help="metric name (repeatable): accuracy, kl-ranking, factorvae, mig, dci, sap, or a plugin's",
    )
    p.add_argument("--data-root", default=None, help="folder holding the data sets (default $LATENTKIT_DATA or ./data)")
    p.add_argument("--split", default=None, help="data split of metrics that read images (default: test where the data set has it, else its only split)")
    p.add_argument("--batch-size", type=int, default=1000, help="images per encoder batch (default 1000)")
    p.add_argument("--max-images", type=int, default=None,
                   help="metrics that read images use a seeded random subset of at most this many (default: all)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument(
        "--option", action="append", metavar="[METRIC.]KEY=VALUE",
        help="a metric option (repeatable), e.g. factorvae.num_train=2000 or seed=1 (every metric with that option)",
    )
    p.add_argument("--no-save", action="store_true", help="print the results without writing them into the folder")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser(
        "sweep", help="train every combination of seeds and settings, evaluate, tabulate",
        description="Train every combination of --seeds and the values of each --set KEY=V1,V2 into its own run "
        "directory under --out, evaluate each, and write summary.csv and summary.md (per run, and mean and spread per "
        "setting). Restartable; failed runs are reported and the rest go on.",
    )
    p.add_argument("recipe", help="recipe file, e.g. recipes/jointvae_mnist.py")
    p.add_argument("--seeds", default="0", help="comma-separated seeds (default 0)")
    p.add_argument("--set", action="append", metavar="KEY=V1,V2,...", help="a setting and its values (repeatable)")
    p.add_argument("--steps", type=int, help="total steps of every run (default: the recipe's)")
    p.add_argument("--out", required=True, help="folder of the sweep's run directories and summary")
    p.add_argument("--metric", action="append", help="metric to evaluate (repeatable; default reconstruction)")
    p.add_argument("--option", action="append", metavar="METRIC.NAME=VALUE",
                   help="an evaluation option, passed to `latentkit evaluate --option` (repeatable)")
    p.add_argument("--max-images", type=int, default=None,
                   help="passed to `latentkit evaluate --max-images`: cap on the images metrics read (default: all)")
    p.add_argument("--data-root", help="folder holding the data sets")
    p.add_argument("--jobs", type=int, default=1, help="trainings at once with the local backend (default 1)")
    p.add_argument("--threads", type=int, help="torch threads per training (default: CPUs / jobs; ray: 1)")
    p.add_argument("--backend", choices=["local", "ray"], default="local",
                   help="local process pool (default) or an existing Ray cluster ($RAY_ADDRESS, else a local one)")
    p.set_defaults(func=_cmd_sweep)

    from latentkit.cli.figures import add_viz_parsers

    add_viz_parsers(sub)

    try:  # the trainer adds `train` when present
        from latentkit.cli.train import add_train_parser
    except ImportError:
        pass
    else:
        add_train_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from latentkit.runtime import tune_allocator

    tune_allocator()  # before any large allocation; see latentkit/runtime.py
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except LatentkitError as exc:
        if args.debug:
            raise
        print(f"latentkit {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"latentkit {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`latentkit plugins | head`): stop quietly, as Unix tools do
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # no second error when Python flushes stdout at exit
        return 141


if __name__ == "__main__":
    sys.exit(main())
