"""A Gaussian VAE with its objective written from scratch, trained by latentkit's trainer through its public API only.

    python examples/trainer/vae.py [--out DIR] [--steps N]

The model draws its noise from the step's per-sample noise (``context.noise``), so a row's draw depends only on the
run seed, the step and the row — never on the rest of the batch or on which process holds it. The objective is a
β-weighted ELBO computed from batch means made global (``context.global_mean``), so the same task trains under
``torchrun``. A hook object writes the KL per logging step to ``RUN/kl.csv``. The run stops halfway, resumes, and must
end with the weights of an uninterrupted run, bit for bit.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from latentkit.core import SampleNoise
from latentkit.train import BaseTask, StepContext, TrainConfig, Trainer


def blobs(n: int, size: int = 8, seed: int = 0) -> torch.Tensor:
    """``n`` float32 images ``(n, 1, size, size)`` in [0, 1]: one Gaussian blob each, at a random place and width."""
    gen = torch.Generator().manual_seed(seed)
    centre = torch.rand(n, 2, 1, 1, generator=gen) * (size - 1)
    width = 0.8 + 1.5 * torch.rand(n, 1, 1, generator=gen)
    grid = torch.arange(size, dtype=torch.float32)
    d2 = (grid.view(1, size, 1) - centre[:, 0]) ** 2 + (grid.view(1, 1, size) - centre[:, 1]) ** 2
    return torch.exp(-d2 / (2 * width**2)).unsqueeze(1)


class GaussianVAE(nn.Module):
    def __init__(self, size: int = 8, units: int = 3):
        super().__init__()
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(size * size, 64), nn.ReLU(), nn.Linear(64, 2 * units))
        self.decoder = nn.Sequential(nn.Linear(units, 64), nn.ReLU(), nn.Linear(64, size * size),
                                     nn.Unflatten(1, (1, size, size)))

    def forward(self, x: torch.Tensor, noise: SampleNoise) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mean, logvar = self.encoder(x).chunk(2, dim=1)
        eps = noise.normal(mean.shape[1], dtype=mean.dtype, device=mean.device)  # (rows, units), keyed per row
        return self.decoder(mean + (0.5 * logvar).exp() * eps), mean, logvar


class BetaVAETask(BaseTask):
    """The objective, from scratch: Bernoulli reconstruction (summed over pixels) + beta * KL to N(0, I)."""

    def __init__(self, beta: float = 2.0):
        self.module = GaussianVAE()
        self.beta = beta

    def training_step(self, batch: torch.Tensor, step: int, context: StepContext) -> dict[str, torch.Tensor]:
        logits, mean, logvar = self.module(batch, context.noise)
        recon = F.binary_cross_entropy_with_logits(logits, batch, reduction="none").flatten(1).sum(1)
        kl = 0.5 * (mean**2 + logvar.exp() - 1 - logvar).sum(1)
        means = context.global_mean({"recon": recon.mean(), "kl": kl.mean()})  # this process's rows -> whole batch
        return {"loss": means["recon"] + self.beta * means["kl"], **means}


class KLLog:
    """A run-time hook with two hooks: the KL of each logging step into RUN/kl.csv, and a line when the run ends."""

    def latentkit_step_end(self, run, step, scalars):
        with open(run.directory / "kl.csv", "a") as out:
            out.write(f"{step},{scalars['kl']:.5f}\n")

    def latentkit_run_end(self, run, status):
        print(f"{run.directory.name}: {status} at step {run.step}; KL {(run.directory / 'kl.csv').read_text().split()}")


def train(directory: Path, steps: int, resume: bool = False) -> dict[str, torch.Tensor]:
    config = TrainConfig(steps=steps, batch_size=32, lr=2e-3, seed=7, log_every=10, checkpoint_every=10, threads=1,
                         device="cpu")
    torch.manual_seed(0)  # the initial weights (a resumed run loads its checkpoint's over them)
    trainer = Trainer(BetaVAETask(), blobs(512), config, directory, hooks=[KLLog()])
    if resume:
        trainer.resume_from_latest()
    trainer.fit()  # the last checkpoint is DIRECTORY/final
    return trainer.model.state_dict()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="folder for the runs (default: a temporary one)")
    parser.add_argument("--steps", type=int, default=60)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        straight = train(out / "straight", args.steps)
        train(out / "resumed", args.steps // 2)
        resumed = train(out / "resumed", args.steps, resume=True)
        assert all(torch.equal(straight[k], resumed[k]) for k in straight), "resume changed the weights"
        print("resumed run == uninterrupted run, bit for bit")


if __name__ == "__main__":
    main()
