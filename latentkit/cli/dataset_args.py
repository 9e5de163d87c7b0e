"""``--dataset NAME`` and ``--dataset-option KEY=VALUE``: the data set a command reads, overriding the checkpoint's.

Why on the command line: a checkpoint's ``config.json`` records the data set it was trained on with its options (an
imported dSprites checkpoint names the npz ``dsprites``); evaluating or drawing it on another source of the same
samples (``--dataset-option source=procedural``, no file needed) or another registered data set must not take a hand
edit of that file. ``latentkit evaluate`` and the figure commands (traverse, sample, plot, report) share these.
"""

from __future__ import annotations

import argparse
from typing import Any


def add_dataset_arguments(p: argparse.ArgumentParser) -> None:
    """Add ``--dataset`` and ``--dataset-option`` (repeatable) to a command's parser."""
    p.add_argument(
        "--dataset", metavar="NAME", default=None,
        help="use this registered data set instead of the one the checkpoint records (e.g. "
        "dsprites_procedural); its options then come from --dataset-option alone",
    )
    p.add_argument(
        "--dataset-option", action="append", metavar="KEY=VALUE", default=None,
        help="a data-set option (repeatable; JSON values as with --set), updating the checkpoint's recorded options, "
        "e.g. source=procedural for a dSprites checkpoint trained on the npz, or n=1000",
    )


def dataset_override(args: argparse.Namespace) -> tuple[str | None, dict[str, Any]]:
    """``(name or None, {option: value})`` from the parsed ``--dataset`` and ``--dataset-option`` (malformed option:
    a :class:`~latentkit.errors.ConfigError`)."""
    from latentkit.assembly.datasets import parse_dataset_options

    return args.dataset, parse_dataset_options(args.dataset_option)
