"""``latentkit traverse | sample | plot | report | encode | edit``: every figure of the paper one command away."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from latentkit.cli.dataset_args import add_dataset_arguments, dataset_override

FIGURES_DIR = "figures"


def _common(p: argparse.ArgumentParser, out_help: str | None = None) -> None:
    p.add_argument("folder", metavar="RUN", help="a run directory (latentkit train) or a checkpoint folder")
    if out_help:
        p.add_argument("--out", help=out_help)
    p.add_argument("--data-root", help="folder holding the data sets (default: the run's, else $LATENTKIT_DATA or ./data)")
    add_dataset_arguments(p)
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")


def _with_precision(p: argparse.ArgumentParser, command) -> None:
    """``--precision`` for a figure command, and the command run under it (:mod:`latentkit.precision`)."""
    from latentkit.precision import PRECISIONS

    p.add_argument("--precision", choices=PRECISIONS, default="float32",
                   help="float32 (default, exact) or bfloat16: the networks under autocast, faster where the CPU or "
                   "GPU computes bfloat16 natively; latents and images are handed on in float32")

    def run(args: argparse.Namespace) -> int:
        from latentkit.devices import resolve_device
        from latentkit.precision import autocast

        with autocast(args.precision, resolve_device(args.device)):
            return command(args)

    p.set_defaults(func=run)


def _grid_options(p: argparse.ArgumentParser, n_help: str, seed_help: str) -> None:
    p.add_argument("--n", type=int, default=10, help=f"{n_help} (default 10)")
    p.add_argument("--seed", type=int, default=0, help=f"{seed_help} (default 0)")
    p.add_argument("--scale", type=int, default=2, help="pixel upscaling of the images (default 2)")


def _source(args: argparse.Namespace):
    from latentkit.viz.source import open_source

    dataset, options = dataset_override(args) if hasattr(args, "dataset_option") else (None, {})  # encode, edit: none
    return open_source(args.folder, data_root=args.data_root, device=args.device, dataset=dataset,
                       dataset_options=options)


def _out_dir(args: argparse.Namespace) -> Path:
    return Path(args.out) if args.out else Path(args.folder) / FIGURES_DIR


def _finish(source, figures) -> int:
    for note in dict.fromkeys(source.notices):
        print(f"note: {note}", file=sys.stderr)
    for figure in figures:
        print(figure.path)
    return 0


def _split_units(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    return [u.strip() for value in values for u in value.split(",") if u.strip()]


def _parse_pairs(values: list[str] | None) -> list[tuple[str, str]] | None:
    from latentkit.errors import ConfigError

    if not values:
        return None
    pairs = []
    for value in values:
        parts = [u.strip() for u in value.split(",")]
        if len(parts) != 2 or not all(parts):
            raise ConfigError(f"--pair takes two units separated by a comma, e.g. --pair disc.0,cont.3; got {value!r}")
        pairs.append((parts[0], parts[1]))
    return pairs


def _cmd_traverse(args: argparse.Namespace) -> int:
    from latentkit.viz.figures import write_traversals

    source = _source(args)
    figures = write_traversals(
        source, _out_dir(args), units=_split_units(args.units), n=args.n, base=args.base, seed=args.seed,
        pairs=_parse_pairs(args.pair), gif=not args.no_gif, scale=args.scale,
    )
    return _finish(source, figures)


def _cmd_sample(args: argparse.Namespace) -> int:
    from latentkit.viz.figures import write_samples

    source = _source(args)
    figures = write_samples(source, _out_dir(args), n=args.n, seed=args.seed, recon=args.recon, scale=args.scale)
    return _finish(source, figures)


def _cmd_plot(args: argparse.Namespace) -> int:
    from latentkit.errors import ConfigError
    from latentkit.viz.figures import write_plots

    source = _source(args)
    figures = write_plots(source, _out_dir(args))
    if not figures:
        raise ConfigError(" ".join(source.notices) + " — nothing to plot; train a run, or pass --data-root so that "
                          "the KL per unit can be measured")
    return _finish(source, figures)


def _cmd_report(args: argparse.Namespace) -> int:
    from latentkit.viz.figures import write_plots, write_samples, write_traversals
    from latentkit.viz.report import write_report

    source = _source(args)
    out = Path(args.out) if args.out else Path(args.folder) / "report.html"
    figures_dir = out.parent / FIGURES_DIR
    figures = write_plots(source, figures_dir)
    figures += write_traversals(source, figures_dir, n=args.n, seed=args.seed)
    figures += write_samples(source, figures_dir, n=args.n, seed=args.seed)
    page = write_report(source, figures, out)
    for note in dict.fromkeys(source.notices):
        print(f"note: {note}", file=sys.stderr)
    print(f"report: {page} ({len(figures)} figures in {figures_dir})")
    return 0


def _cmd_encode(args: argparse.Namespace) -> int:
    from latentkit.editing import encode_images, load_images, save_codes

    source = _source(args)
    loaded = load_images(args.images, tuple(source.model.image_shape), convert=not args.strict)
    for note in loaded.notices:
        print(f"note: {note}", file=sys.stderr)
    codes = encode_images(source.model, loaded.images, batch_size=args.batch_size, device=source.device)
    path = save_codes(codes, loaded.names, args.out)
    keys = ", ".join(k for k in codes if k != "latent")
    print(f"{len(loaded.names)} image(s) encoded -> {path} (arrays: {keys}, latent, files)")
    return 0


def _cmd_edit(args: argparse.Namespace) -> int:
    import torch

    from latentkit.errors import ConfigError
    from latentkit.viz.images import image_grid, save_png
    from latentkit.editing import edit_images, load_images, parse_assignments

    source = _source(args)
    assignments = parse_assignments(source.model.latent, args.latent)
    loaded = load_images([args.image], tuple(source.model.image_shape), convert=not args.strict)
    for note in loaded.notices:
        print(f"note: {note}", file=sys.stderr)
    if len(loaded.names) != 1:
        raise ConfigError(f"edit takes one image; {args.image!r} holds {len(loaded.names)} (name one file)")
    edit = edit_images(source.model, loaded.images, assignments, device=source.device)
    out = Path(args.out)
    if out.suffix.lower() != ".png":
        raise ConfigError(f"--out must name a .png file, got {args.out!r}")
    save_png(image_grid([edit.edited[:1]], padding=0), out)  # exactly the model's size
    compare = out.with_name(f"{out.stem}-compare.png")
    strip = torch.stack([edit.original[0], edit.reconstruction[0], edit.edited[0]]).unsqueeze(0)
    save_png(image_grid(strip, col_labels=["original", "recon", "edited"], scale=args.scale), compare)
    changes = ", ".join(f"{unit}={value}" for unit, value in assignments.items())
    print(f"{out} (edited: {changes}); {compare} (original, reconstruction, edited)")
    return 0


def add_viz_parsers(sub) -> None:
    p = sub.add_parser("traverse", help="latent traversal grids (PNG) and an animated GIF",
                       description="Write traversals.png (a row per unit, most informative first), traversals.gif and "
                       "pair grids (a discrete unit against continuous ones) into --out (default RUN/figures). The "
                       "units not traversed are held at their neutral value (see --base).")
    _common(p, "output folder (default RUN/figures)")
    p.add_argument("--units", action="append", metavar="UNIT[,UNIT...]",
                   help="traverse only these units, in this order (e.g. cont.3,disc.0); default all, by KL")
    p.add_argument("--pair", action="append", metavar="ROW_UNIT,COL_UNIT",
                   help="a grid of two units against each other (repeatable), e.g. disc.0,cont.3")
    _grid_options(p, "values per continuous unit", "seed of the prior draw for --base prior")
    p.add_argument("--base", choices=["neutral", "prior"], default="neutral",
                   help="where the units not traversed are held: neutral (default) holds them at their neutral "
                   "value (the prior's representative: 0 for a Gaussian unit, category 0 for a categorical one, "
                   "0.5 for a relaxed Bernoulli unit, the prior mean for a Beta unit: inside a bounded unit's "
                   "support, not at its edge 0); prior holds them at one draw from the prior (--seed)")
    p.add_argument("--no-gif", action="store_true", help="skip the animated GIF")
    _with_precision(p, _cmd_traverse)

    p = sub.add_parser("sample", help="prior samples, samples given each category, reconstructions",
                       description="Write samples-prior.png, samples-given-<unit>.png (a row per category, as the "
                       "paper's Fig. 4a) and reconstructions.png into --out (default RUN/figures).")
    _common(p, "output folder (default RUN/figures)")
    _grid_options(p, "samples per row", "seed of the prior draws and of the images reconstructed")
    p.add_argument("--recon", type=int, default=10, help="images to reconstruct (0: none; default 10)")
    _with_precision(p, _cmd_sample)

    p = sub.add_parser("plot", help="KL per unit over training with the capacities, and units ranked by KL",
                       description="Write kl-curves.png (from the run's metrics.jsonl: the paper's Fig. 7a) and "
                       "kl-ranking.png (units by KL with their traversals: Fig. 7b) into --out (default RUN/figures).")
    _common(p, "output folder (default RUN/figures)")
    _with_precision(p, _cmd_plot)

    p = sub.add_parser("report", help="one self-contained HTML page with the config, metrics and every figure",
                       description="Write RUN/report.html (images embedded, readable offline) and its figures into "
                       "RUN/figures.")
    _common(p, "the HTML file (default RUN/report.html; figures go beside it in figures/)")
    p.add_argument("--n", type=int, default=10, help="values per traversal row and samples per row (default 10)")
    p.add_argument("--seed", type=int, default=0)
    _with_precision(p, _cmd_report)

    p = sub.add_parser("encode", help="encode image files into latent codes (.npz)",
                       description="Encode images (files or folders) and write means, log-variances, category "
                       "probabilities, argmax categories, per-unit KL and the decoder's latent vector to an .npz.")
    p.add_argument("folder", metavar="RUN", help="a run directory or checkpoint folder")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files or folders of images")
    p.add_argument("--out", required=True, help="the .npz file to write")
    p.add_argument("--strict", action="store_true", help="refuse images of another size or mode instead of converting")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--data-root", help=argparse.SUPPRESS)
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    _with_precision(p, _cmd_encode)

    p = sub.add_parser("edit", help="edit an image through the latent: change named units, decode",
                       description="Encode IMAGE, set the named units (e.g. --latent cont.3=1.5 --latent disc.0=7), "
                       "decode. Writes OUT (the edited image at the model's size) and OUT-compare.png (original, "
                       "reconstruction, edited).")
    p.add_argument("folder", metavar="RUN", help="a run directory or checkpoint folder")
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("--latent", action="append", required=True, metavar="UNIT=VALUE",
                   help="a unit and its new value (repeatable): cont.3=1.5 (a number), disc.0=7 (a category)")
    p.add_argument("--out", required=True, help="the PNG to write")
    p.add_argument("--strict", action="store_true", help="refuse an image of another size or mode instead of converting")
    p.add_argument("--scale", type=int, default=4, help="pixel upscaling of the comparison strip (default 4)")
    p.add_argument("--data-root", help=argparse.SUPPRESS)
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    _with_precision(p, _cmd_edit)
