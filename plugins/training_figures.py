"""Traversal grids during training: ``RUN/figures/training/traversals-step-NNNNNNNN.png`` and TensorBoard images.

Every ``train.figures_every`` steps (at the first logging step at or after each multiple) and at the end of a completed
run, every unit is traversed while the others are held at their family's neutral value
(:func:`latentkit.viz.traversal.neutral_latent`: 0 for a Gaussian or Laplace unit, category 0 for a categorical one, ½
for a relaxed Bernoulli unit, the prior mean for a Beta one, the marginal prior median for a mixture-prior one) — no
random draws, so drawing a figure never changes the training's random stream and a resumed run stays bit-identical —
with rows ordered by the KL logged at that step, most informative first. Each grid is also handed to the
``latentkit_log_images`` hook through the run's hook relay (``run.hooks``): ``run_logging`` writes it to TensorBoard;
this plugin knows nothing of who logs it.

Samples that are not images — signals ``(C, L)``, vectors ``(D,)`` — are drawn as line plots (one panel per unit,
its decoded curves coloured along the traversal; :mod:`latentkit.viz.lines`). A shape that is neither (an image of 2
or 4+ channels) gets no figures: one notice, once per run, and the training goes on.
"""

from __future__ import annotations

import sys

import numpy as np
import torch

from latentkit.plugins import hookimpl
from latentkit.viz.images import save_png
from latentkit.viz.lines import sample_grid, sample_kind
from latentkit.viz.traversal import traversal_rows

FOLDER = "figures/training"
STATE = "training_figures"
#: Values per continuous unit in a training snapshot.
VALUES = 10


def _every(run) -> int:
    return int(run.config.get("experiment", {}).get("train", {}).get("figures_every", 0) or 0)


def _drawable(run) -> bool:
    """Whether this run's samples can be drawn; says why not, once per run, when they cannot."""
    shape = tuple(run.model.image_shape)
    if sample_kind(shape) is not None:
        return True
    state = run.plugin_state.setdefault(STATE, {})
    if not state.get("skipped") and not run.quiet:
        print(f"note: training figures skipped: samples of shape {shape} are neither images with 1 or 3 channels nor "
              f"signals/vectors to plot as lines", file=sys.stderr)
    state["skipped"] = True
    return False


def draw(run, step: int, scalars: dict | None = None):
    """Write the traversal grid of ``run.model`` at ``step``; returns the PNG's path (``None`` when the samples cannot
    be drawn)."""
    if not _drawable(run):
        return None
    latent = run.model.latent
    units = [u for names in latent.unit_names().values() for u in names]
    kl = {u: scalars[f"kl_unit/{u}"] for u in units if scalars and f"kl_unit/{u}" in scalars}
    if len(kl) == len(units):
        units = sorted(units, key=lambda u: -kl[u])
    labels = [f"{u}  {kl[u]:.2f}" if u in kl else u for u in units]
    rows = traversal_rows(run.model, units, VALUES)
    image = sample_grid(sample_kind(run.model.image_shape), rows, row_labels=labels, title=f"step {step}")
    path = save_png(image, run.directory / FOLDER / f"traversals-step-{step:08d}.png")
    pixels = torch.from_numpy(np.asarray(image.convert("RGB")).copy()).permute(2, 0, 1)
    if run.hooks is not None:  # None: a run driven without hooks, so nobody to log images
        run.hooks.latentkit_log_images(run=run, step=step, images={"traversals": pixels})
    state = run.plugin_state.setdefault(STATE, {})
    state["last"] = step
    return path


@hookimpl
def latentkit_step_end(run, step, scalars):
    every = _every(run)
    if not every:
        return
    state = run.plugin_state.setdefault(STATE, {})
    state["scalars"] = scalars
    due = state.setdefault("next", ((run.resumed_from or 0) // every + 1) * every)
    if step >= due:
        draw(run, step, scalars)
        state["next"] = (step // every + 1) * every


@hookimpl
def latentkit_run_end(run, status):
    state = run.plugin_state.get(STATE, {})
    if status == "completed" and _every(run) and state.get("last") != run.step:
        draw(run, run.step, state.get("scalars"))
