"""Wall time of the disentanglement metrics on dSprites against their encoding floor.

    python benchmarks/bench_metrics.py [--checkpoint RUN] [--metrics factorvae,mig,dci,sap] [--batch-size 1000]
                                       [--threads N] [--quick] [--json OUT]

The model is the dSprites JointVAE of ``recipes/jointvae_dsprites.py`` (6 Gaussian units + one 3-way categorical,
64x64 images), randomly initialised unless ``--checkpoint`` names a trained one; the ground truth is the registered
procedural dSprites (``dsprites_procedural``) when it exists, else a stand-in grid of the same sizes (3 shapes x 6
scales x 40 orientations x 32 x 32 positions) drawn here.

The *encoding floor* of a metric is the number of images it encodes divided by the encoder's inference rate, measured
first in the same process (eval mode, ``torch.inference_mode``, float inputs, the batch sizes the metric uses). The
FactorVAE score with its default protocol encodes 10,000 + 64 x 15,000 = 970,000 images; its wall time should be at most
1.3x its floor. The rate is measured again after each metric and the faster measurement sets the floor (the machine is
noisy). Also reported: the encoding time spent inside the metric and everything else (image generation runs in a
prefetch thread beside encoding), and the times of MIG, DCI and SAP. DCI is timed with both of its estimators: the
default, LightGBM's boosted trees (``dci``; at most 30 s at its defaults, 10,000 / 5,000 points), and
disentanglement_lib's scikit-learn ``GradientBoostingClassifier`` (``dci[sklearn]``, minutes; no bound) — on the same
images, so the two rows' scores are comparable too.

The machine is noisy: compare numbers from one run only.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import torch
from torch import nn

from latentkit.assembly.build import build_model
from latentkit.assembly.checkpoint import load_model
from latentkit.data.ground_truth import GroundTruthData
from latentkit.metrics import ModelRepresentation, dci_score, factor_vae_score, mig_score, sap_score
from latentkit.metrics.base import DEFAULT_CHUNK
from latentkit.plugins import get_registry
from latentkit.assembly.recipe import load_recipe

ROOT = Path(__file__).resolve().parents[1]
CORES = {"factorvae": factor_vae_score, "mig": mig_score, "dci": dci_score, "sap": sap_score}
#: the rows each requested metric is timed as: (row label, extra options); DCI once per estimator
VARIANTS = {"dci": [("dci", {"estimator": "lightgbm"}), ("dci[sklearn]", {"estimator": "sklearn"})]}
BOUNDS_S = {"dci": 30.0}  # wall-time bounds in seconds (FactorVAE's is relative: 1.3x its floor)
QUICK = {  # a smoke test of the script, not a measurement
    "factorvae": {"num_train": 200, "num_eval": 100, "num_variance_estimate": 1000},
    "mig": {"num_train": 1000},
    "dci": {"num_train": 500, "num_test": 200, "n_estimators": 5},
    "sap": {"num_train": 1000, "num_test": 500},
}


class StandInDSprites(GroundTruthData):
    """dSprites' factor grid (colour left out) with simple shapes: square, ellipse, a square-and-two-discs heart."""

    factor_names = ("shape", "scale", "orientation", "posX", "posY")
    factor_sizes = (3, 6, 40, 32, 32)
    discrete_factors = (True, False, False, False, False)

    def __init__(self) -> None:
        c = torch.arange(64, dtype=torch.float32) + 0.5
        self._yy, self._xx = torch.meshgrid(c, c, indexing="ij")

    @property
    def image_shape(self):
        return (1, 64, 64)

    def factor_values(self, factors):
        f = factors.double()
        angle = f[:, 2] * 2 * math.pi / 39
        return torch.stack([f[:, 0] + 1, 0.5 + 0.1 * f[:, 1], angle, f[:, 3] / 31, f[:, 4] / 31], 1)

    def images(self, factors):
        self.check_factors(factors)
        v = self.factor_values(factors).float()
        shape, scale, angle = v[:, 0].long() - 1, v[:, 1, None, None], v[:, 2, None, None]
        cx, cy = 16 + 32 * v[:, 3, None, None], 16 + 32 * v[:, 4, None, None]
        dx, dy = self._xx - cx, self._yy - cy
        cos, sin = torch.cos(angle), torch.sin(angle)
        u, w = (cos * dx + sin * dy) / scale, (-sin * dx + cos * dy) / scale
        out = torch.zeros(factors.shape[0], 64, 64, dtype=torch.bool)
        sq, el, he = shape == 0, shape == 1, shape == 2
        out[sq] = (u[sq].abs() <= 9.6) & (w[sq].abs() <= 9.6)
        out[el] = (u[el] / 12.76) ** 2 + (w[el] / 7.22) ** 2 <= 1
        a, b = (u[he] + w[he]) / math.sqrt(2), (u[he] - w[he]) / math.sqrt(2)
        s = 11.3
        heart = (a.abs() <= s / 2) & (b.abs() <= s / 2)
        heart |= (a + s / 2) ** 2 + b**2 <= (s / 2) ** 2
        heart |= a**2 + (b + s / 2) ** 2 <= (s / 2) ** 2
        out[he] = heart
        return out[:, None].to(torch.uint8) * 255


def ground_truth() -> tuple[GroundTruthData, str]:
    """The registered procedural dSprites; its module directly while it is not yet an entry point; else the stand-in."""
    registry = get_registry()
    if "dsprites_procedural" in registry.datasets:
        gt = registry.datasets.get("dsprites_procedural")().ground_truth(None)
        if gt is not None:
            return gt, "dsprites_procedural (registered)"
    try:
        from latentkit_plugins.procedural_dsprites import DSpritesProcedural
    except ImportError:
        return StandInDSprites(), "stand-in (dsprites_procedural is not available)"
    return DSpritesProcedural().ground_truth(None), "dsprites_procedural (latentkit_plugins.procedural_dsprites)"


def build(checkpoint: str | None, images: torch.Tensor):
    """The model; a random one gets its Gaussian means spread to about unit scale, so the FactorVAE protocol prunes no
    unit (a freshly initialised encoder's means vary by less than the 0.05 threshold, and nothing would be voted on)."""
    if checkpoint:
        model, _ = load_model(checkpoint)
        return model, checkpoint
    torch.manual_seed(0)
    spec = load_recipe(ROOT / "recipes" / "jointvae_dsprites.py").experiment().model
    model = build_model(spec).eval()
    last = [m for m in model.encoder.modules() if isinstance(m, nn.Linear)][-1]
    with torch.no_grad():
        features = model.encoder(images.float() / 255)
        offset = 0
        for _, family in model.latent.items():
            if family.family_name == "gaussian":
                rows = slice(offset, offset + family.unit_count)  # a Gaussian channel's features: means, then logvars
                std = features[:, rows].std(0).clamp_min(1e-6)
                last.weight[rows] /= std[:, None]
                last.bias[rows] /= std
            offset += family.param_size
    return model, "recipes/jointvae_dsprites.py, random init (Gaussian means rescaled to unit spread)"


def encoder_rate(model, images: torch.Tensor, batch_size: int, seconds: float = 20.0) -> float:
    """Images per second of ``model.encode`` alone on float inputs, in the batches a metric chunk is split into."""
    model.eval()
    n_parts = math.ceil(images.shape[0] / batch_size)
    parts = [p.float().div(255) for p in torch.tensor_split(images, n_parts)]
    with torch.inference_mode():
        model.encode(parts[0])  # warm-up
        done, start = 0, time.perf_counter()
        while True:
            for x in parts:
                model.encode(x)
                done += x.shape[0]
            elapsed = time.perf_counter() - start
            if elapsed >= seconds:
                return done / elapsed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None, help="a trained dSprites checkpoint folder or run directory")
    parser.add_argument("--metrics", default="factorvae,mig,dci,sap")
    parser.add_argument("--batch-size", type=int, default=1000, help="encoder batch (latentkit evaluate's default)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads (default: all cores)")
    parser.add_argument("--rate-seconds", type=float, default=20.0, help="how long to measure the encoder's rate")
    parser.add_argument("--quick", action="store_true", help="tiny settings: check the script runs")
    parser.add_argument("--json", default=None, help="also write the numbers to this file")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    gt, gt_desc = ground_truth()
    model, model_desc = build(args.checkpoint, gt.images(gt.sample_factors(2000, torch.Generator().manual_seed(1))))
    print(f"model: {model_desc}; ground truth: {gt_desc}; torch {torch.__version__}, {torch.get_num_threads()} "
          f"threads, encoder batch {args.batch_size}, chunk {DEFAULT_CHUNK} images", flush=True)

    gen = torch.Generator().manual_seed(0)
    sample = gt.images(gt.sample_factors(DEFAULT_CHUNK, gen))
    start = time.perf_counter()
    for _ in range(3):
        gt.images(gt.sample_factors(DEFAULT_CHUNK, gen))
    gen_rate = 3 * DEFAULT_CHUNK / (time.perf_counter() - start)
    rate = encoder_rate(model, sample, args.batch_size, 2.0 if args.quick else args.rate_seconds)
    print(f"encoder inference rate: {rate:,.0f} images/s; image generation: {gen_rate:,.0f} images/s", flush=True)

    report = {"model": model_desc, "ground_truth": gt_desc, "threads": torch.get_num_threads(),
              "batch_size": args.batch_size, "encoder_images_per_s": rate, "generation_images_per_s": gen_rate,
              "metrics": {}}
    requested = [m.strip() for m in args.metrics.split(",") if m.strip()]
    rows = [(label, m, extra) for m in requested for label, extra in VARIANTS.get(m, [(m, {})])]
    for label, name, extra in rows:
        represent = ModelRepresentation(model, args.batch_size)
        timers = {"generate": 0.0, "encode": 0.0}

        def timed_represent(images, _inner=represent):
            t0 = time.perf_counter()
            out = _inner(images)
            timers["encode"] += time.perf_counter() - t0
            return out

        # the model's per-column spread under its prior: factorvae prunes relative to it, as `latentkit evaluate` does
        timed_represent.prior_scale = represent.prior_scale
        original_images = gt.images

        def timed_images(factors, _inner=original_images):
            t0 = time.perf_counter()
            out = _inner(factors)
            timers["generate"] += time.perf_counter() - t0
            return out

        gt.images = timed_images  # an instance attribute shadows the method for this metric only
        try:
            start = time.perf_counter()
            result = CORES[name](gt, timed_represent, names=represent.names, **(QUICK[name] if args.quick else {}),
                                 **extra)
            wall = time.perf_counter() - start
        finally:
            del gt.images
        # The machine is noisy: the rate is measured again after each metric, and the floor uses the faster of the
        # two measurements (the stricter floor).
        rate_after = encoder_rate(model, sample, args.batch_size, 2.0 if args.quick else args.rate_seconds)
        best_rate = max(rate, rate_after)
        floor = represent.images_encoded / best_rate
        row = {"wall_s": wall, "images_encoded": represent.images_encoded, "floor_s": floor, "ratio": wall / floor,
               "encoder_images_per_s_before": rate, "encoder_images_per_s_after": rate_after,
               "generate_s": timers["generate"], "encode_s": timers["encode"],
               "beyond_encoding_s": wall - timers["encode"],
               "options": extra, "bound_s": BOUNDS_S.get(label),
               "result": {k: v for k, v in result.items() if isinstance(v, (int, float, str))}}
        report["metrics"][label] = row
        print(f"{label:<12} wall {wall:8.1f} s  encoded {represent.images_encoded:>9,}  floor {floor:8.1f} s  "
              f"ratio {wall / floor:5.2f}  (encoder {rate:,.0f} / {rate_after:,.0f} images/s before / after; inside "
              f"the metric: encoding {timers['encode']:.1f} s, everything else {wall - timers['encode']:.1f} s, "
              f"image generation {timers['generate']:.1f} s of it in a prefetch thread)", flush=True)
        if label in BOUNDS_S:
            verdict = "within" if wall <= BOUNDS_S[label] else "OVER"
            print(f"{'':<12} {verdict} its {BOUNDS_S[label]:.0f} s bound", flush=True)
        print(f"{'':<12} {row['result']}", flush=True)
        rate = rate_after
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
