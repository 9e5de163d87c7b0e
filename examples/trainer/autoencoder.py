"""A plain autoencoder trained by latentkit's trainer, through its public API only.

    python examples/trainer/autoencoder.py [--out DIR] [--steps N]

It trains an MLP autoencoder on 8x8 "bars" images (uint8, which the trainer scales to [0, 1]) for half the steps,
stops, resumes from the checkpoint to the full count, and checks that the weights equal those of an uninterrupted run,
bit for bit. A plain object passed as a hook prints the loss.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
from torch import nn

from latentkit.train import BaseTask, StepContext, TrainConfig, Trainer


def bars(n: int, size: int = 8, seed: int = 0) -> torch.Tensor:
    """``n`` uint8 images ``(n, 1, size, size)``: each a few random horizontal and vertical bars."""
    gen = torch.Generator().manual_seed(seed)
    rows = torch.rand(n, size, 1, generator=gen) < 0.2
    cols = torch.rand(n, 1, size, generator=gen) < 0.2
    return ((rows | cols).to(torch.uint8) * 255).unsqueeze(1)


class Autoencoder(BaseTask):
    """The task: a module and a training step. BaseTask supplies the rest (no extra parameters)."""

    def __init__(self, size: int = 8, code: int = 6):
        self.module = nn.Sequential(
            nn.Flatten(), nn.Linear(size * size, 32), nn.ReLU(), nn.Linear(32, code),  # encoder
            nn.Linear(code, 32), nn.ReLU(), nn.Linear(32, size * size), nn.Unflatten(1, (1, size, size)),  # decoder
        )

    def training_step(self, batch: torch.Tensor, step: int, context: StepContext) -> dict[str, torch.Tensor]:
        # A mean over this process's rows, made the whole batch's mean: the same code trains under torchrun.
        error = ((self.module(batch) - batch) ** 2).mean()
        return {"loss": context.global_mean({"mse": error})["mse"]}


class PrintLoss:
    """A run-time hook: any object with methods named after the hooks in latentkit.plugins.hookspecs."""

    def latentkit_step_end(self, run, step, scalars):
        print(f"{run.directory.name}: step {step:3d}  loss {scalars['loss']:.4f}")


def train(directory: Path, steps: int, resume: bool = False) -> dict[str, torch.Tensor]:
    config = TrainConfig(steps=steps, batch_size=32, lr=3e-3, log_every=10, checkpoint_every=10, threads=1,
                         device="cpu")
    torch.manual_seed(0)  # the initial weights (a resumed run loads its checkpoint's over them)
    trainer = Trainer(Autoencoder(), bars(512), config, directory, hooks=[PrintLoss()])
    if resume:
        print(f"{directory.name}: resumed at step {trainer.resume_from_latest()}")
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
