"""``latentkit train``."""

from __future__ import annotations

import argparse

import attrs

from latentkit.assembly.recipe import apply_overrides, config_class_path, config_to_dict, load_recipe


def add_train_parser(sub) -> None:
    p = sub.add_parser("train", help="train a recipe (or resume a run)")
    p.add_argument("recipe", nargs="?", help="recipe file, e.g. recipes/jointvae_mnist.py (omit with --resume)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe setting (repeatable), e.g. --set train.lr=1e-4 --set disc_sizes=[20]")
    p.add_argument("--steps", type=int, help="total number of training steps")
    p.add_argument("--out", help="run directory (default runs/<recipe>-<time>)")
    p.add_argument("--data-root", help="folder holding the data sets (default $LATENTKIT_DATA or ./data)")
    p.add_argument("--seed", type=int)
    p.add_argument("--device", choices=["auto", "cpu", "cuda"])
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its latest checkpoint")
    p.add_argument("--branch", metavar="CHECKPOINT",
                   help="start a new run (--out) from a checkpoint folder (RUN/checkpoints/step-N or RUN/final) with "
                        "training settings changed (--set train.KEY=VALUE, --steps); the parent is left as it is")
    p.add_argument("--quiet", action="store_true", help="no progress display")
    p.set_defaults(func=cmd_train)


def _train_changes(overrides: list[str]) -> dict:
    """``--set train.KEY=VALUE`` items as ``{KEY: value}``; anything else is refused (a branch keeps model and data)."""
    from latentkit.assembly.recipe import json_or_text
    from latentkit.errors import ConfigError

    changes = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.startswith("train."):
            raise ConfigError(f"--branch changes training settings only (--set train.KEY=VALUE), got {item!r}; a "
                              f"change of model, objective or data is a new run")
        changes[key[len("train."):]] = json_or_text(raw)
    return changes


def cmd_train(args: argparse.Namespace) -> int:
    from latentkit.errors import ConfigError
    from latentkit.assembly.session import branch_run, prepare_run, resume_experiment

    if args.branch:
        if args.recipe or args.resume or args.seed is not None or not args.out:
            raise ConfigError("--branch CHECKPOINT needs --out NEW_DIR and takes no recipe, --resume or --seed; change "
                              "training settings with --set train.KEY=VALUE")
        changes = _train_changes(args.overrides)
        changes.update({k: v for k, v in (("steps", args.steps), ("device", args.device)) if v is not None})
        run_dir = branch_run(args.branch, args.out, changes)
        experiment = resume_experiment(str(run_dir), None, None)
        trainer = prepare_run(experiment, resume=str(run_dir), data_root=args.data_root, quiet=args.quiet)
        if trainer.is_main:
            print(f"branch {run_dir} from {args.branch} (step {trainer.run.step}) to {experiment.train.steps}: {changes}")
    elif args.resume:
        if args.recipe or args.overrides or args.seed is not None:
            raise ConfigError("--resume continues a run with its saved settings; pass only --steps, --device, --data-root")
        experiment = resume_experiment(args.resume, args.steps, args.device)
        trainer = prepare_run(experiment, resume=args.resume, data_root=args.data_root, quiet=args.quiet)
        if trainer.is_main:
            print(f"resuming {args.resume} from step {trainer.run.step} to {experiment.train.steps}")
    else:
        if not args.recipe:
            raise ConfigError("name a recipe file (e.g. recipes/jointvae_mnist.py) or --resume RUN_DIR")
        cfg = load_recipe(args.recipe)
        cfg = apply_overrides(cfg, args.overrides)
        train_changes = {k: v for k, v in (("steps", args.steps), ("seed", args.seed), ("device", args.device)) if v is not None}
        if train_changes:
            if not hasattr(cfg, "train"):
                raise ConfigError("this recipe's config has no 'train' settings; use --set instead of --steps/--seed")
            cfg = attrs.evolve(cfg, train=attrs.evolve(cfg.train, **train_changes))
        experiment = cfg.experiment()
        trainer = prepare_run(
            experiment, recipe=args.recipe, recipe_config=config_to_dict(cfg), recipe_class=config_class_path(cfg),
            out=args.out, data_root=args.data_root, quiet=args.quiet,
        )
        if trainer.is_main:
            print(f"run directory: {trainer.run.directory}")
    from latentkit.train.distributed import shutdown

    try:
        run = trainer.fit()
    finally:
        shutdown(trainer.processes)
    if trainer.is_main:
        print(f"done: {run.step} steps; run directory: {run.directory}; final checkpoint: {run.last_checkpoint}")
    return 0
