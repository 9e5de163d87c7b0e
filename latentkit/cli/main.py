"""The ``latentkit`` command line.

User errors (:class:`latentkit.errors.LatentkitError`) print one paragraph and exit with status 2; ``--debug`` shows
the traceback instead. ``-p no:NAME`` (before the command, repeatable) and ``$LATENTKIT_DISABLE_PLUGINS`` leave plugins
out; a broken plugin is left out with a warning (see :mod:`latentkit.cli.plugins`).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import warnings
from collections.abc import Sequence

from latentkit.cli.dataset_args import add_dataset_arguments, dataset_override
from latentkit.cli.figures import add_viz_parsers
from latentkit.cli.plugins import (
    add_plugin_option,
    add_plugin_parsers,
    broken_note,
    cmd_check_plugin,
    cmd_plugins,
    plugin_host,
    warn_broken,
)
from latentkit.cli.train import add_train_parser
from latentkit.errors import LatentkitError, UnknownNameError
from latentkit.precision import PRECISIONS
from latentkit.plugins import PluginWarning


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
    dataset, dataset_options = dataset_override(args)
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
        dataset=dataset,
        dataset_options=dataset_options,
        precision=args.precision,
    )
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        split = f", split {results['split']}" if results["split"] else ""
        if results.get("images") is not None:
            split += f", {results['images']:,} images"
        given = ", ".join(f"{k}={json.dumps(v)}" for k, v in results.get("dataset_options", {}).items())
        dataset = f"{results['dataset']} ({given})" if given else results["dataset"]
        print(f"{results['checkpoint']} (data set {dataset}{split})")
        print(format_table(results))
        for path in results["files"].values():
            print(f"results written to {path}")
    return 0


def _cmd_sweep(args: argparse.Namespace) -> int:
    from pathlib import Path

    from latentkit.assembly.sweep import SweepSpec, plan, run_local, run_ray, summarise
    from latentkit.errors import ConfigError

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


def _add_import_parser(sub) -> None:
    p = sub.add_parser("import-jointvae", help="convert a checkpoint of the original JointVAE code")
    p.add_argument("src", help="folder holding the original's model.pt and specs.json")
    p.add_argument("out", help="latentkit checkpoint folder to write")
    p.set_defaults(func=_cmd_import_jointvae)


def _add_evaluate_parser(sub) -> None:
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
    add_dataset_arguments(p)
    p.add_argument("--split", default=None, help="data split of metrics that read images (default: test where the data set has it, else its only split)")
    p.add_argument("--batch-size", type=int, default=1000, help="images per encoder batch (default 1000)")
    p.add_argument("--max-images", type=int, default=None,
                   help="metrics that read images use a seeded random subset of at most this many (default: all)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--precision", choices=PRECISIONS, default="float32",
                   help="float32 (default, exact) or bfloat16 (the networks under autocast; codes in float32); "
                   "recorded in each result, whose file name gets -bfloat16")
    p.add_argument(
        "--option", action="append", metavar="[METRIC.]KEY=VALUE",
        help="a metric option (repeatable), e.g. factorvae.num_train=2000 or seed=1 (every metric with that option)",
    )
    p.add_argument("--no-save", action="store_true", help="print the results without writing them into the folder")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_evaluate)


def _add_sweep_parser(sub) -> None:
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


def build_parser() -> argparse.ArgumentParser:
    """The ``latentkit`` parser: global options, then one subcommand group after another."""
    parser = argparse.ArgumentParser(prog="latentkit", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks for user errors")
    add_plugin_option(parser)
    sub = parser.add_subparsers(dest="command", required=True)
    add_plugin_parsers(sub)
    _add_import_parser(sub)
    _add_evaluate_parser(sub)
    _add_sweep_parser(sub)
    add_viz_parsers(sub)
    add_train_parser(sub)
    return parser


def _run(args: argparse.Namespace) -> int:
    """Run the parsed command under its plugin host. Broken plugins are reported once: by ``plugins`` and
    ``check-plugin`` in their listing, by every other command as warnings, and again after an unknown-name error (the
    broken plugin may be the one that provides the name)."""
    with plugin_host(args.plugin_options) as host, warnings.catch_warnings():
        warnings.simplefilter("ignore", PluginWarning)  # reported here in the CLI's words instead
        failures = host.failures
        if args.func not in (cmd_plugins, cmd_check_plugin):
            warn_broken(failures)
        try:
            return int(args.func(args) or 0)
        except UnknownNameError as exc:
            if not failures:
                raise
            raise UnknownNameError(f"{exc}{broken_note(failures)}") from exc


def main(argv: Sequence[str] | None = None) -> int:
    from latentkit.runtime import tune_allocator

    tune_allocator()  # before any large allocation; see latentkit/runtime.py
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return _run(args)
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
