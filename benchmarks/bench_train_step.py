"""Training-step throughput of latentkit against the original JointVAE code's step, measured in the same run.

    python benchmarks/bench_train_step.py [--workload mnist|dsprites] [--iters 200] [--warmup 20] [--repeats 3]

The baseline is a faithful re-statement of the original code's training step (its network modules, its sampling and its
loss, from ../shared/notes/reference-implementation.md) run in this process on the same inputs, so the ratio is
meaningful on a noisy machine; the absolute images/s are context. Set ``MALLOC_MMAP_THRESHOLD_`` /
``MALLOC_TRIM_THRESHOLD_`` in the environment to compare both under the allocator settings of ../shared/notes/machine.md.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from latentkit.build import build_model, build_objective
from latentkit.config import ChannelSpec, Component, ModelSpec

WORKLOADS = {  # image shape, continuous units, discrete sizes
    "mnist": ((1, 32, 32), 10, [10]),
    "dsprites": ((1, 64, 64), 6, [3]),
}


class OriginalModel(nn.Module):
    """The original code's modules, in its layout."""

    def __init__(self, image_shape, n_cont, disc):
        super().__init__()
        c, size, _ = image_shape
        convs = [nn.Conv2d(c, 32, 4, 2, 1), nn.ReLU()]
        if size == 64:
            convs += [nn.Conv2d(32, 32, 4, 2, 1), nn.ReLU()]
        convs += [nn.Conv2d(32, 64, 4, 2, 1), nn.ReLU(), nn.Conv2d(64, 64, 4, 2, 1), nn.ReLU()]
        self.img_to_features = nn.Sequential(*convs)
        self.features_to_hidden = nn.Sequential(nn.Linear(1024, 256), nn.ReLU())
        self.fc_mean, self.fc_log_var = nn.Linear(256, n_cont), nn.Linear(256, n_cont)
        self.fc_alphas = nn.ModuleList([nn.Linear(256, k) for k in disc])
        self.latent_to_features = nn.Sequential(nn.Linear(n_cont + sum(disc), 256), nn.ReLU(), nn.Linear(256, 1024), nn.ReLU())
        deconvs = [nn.ConvTranspose2d(64, 64, 4, 2, 1), nn.ReLU()] if size == 64 else []
        deconvs += [nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.ReLU(), nn.ConvTranspose2d(32, 32, 4, 2, 1), nn.ReLU(),
                    nn.ConvTranspose2d(32, c, 4, 2, 1), nn.Sigmoid()]
        self.features_to_img = nn.Sequential(*deconvs)

    def forward(self, x):
        hidden = self.features_to_hidden(self.img_to_features(x).view(x.size(0), -1))
        mean, log_var = self.fc_mean(hidden), self.fc_log_var(hidden)
        alphas = [F.softmax(fc(hidden), dim=1) for fc in self.fc_alphas]
        z = mean + torch.exp(0.5 * log_var) * torch.zeros(mean.size()).normal_()
        samples = [z]
        for alpha in alphas:
            u = torch.rand(alpha.size())
            g = -torch.log(-torch.log(u + 1e-12) + 1e-12)
            samples.append(F.softmax((torch.log(alpha + 1e-12) + g) / 0.67, dim=1))
        recon = self.features_to_img(self.latent_to_features(torch.cat(samples, dim=1)).view(-1, 64, 4, 4))
        return recon, mean, log_var, alphas


def original_step(model, optimizer, x, step, gamma=30.0, cap=5.0, iters=25000):
    optimizer.zero_grad()
    recon, mean, log_var, alphas = model(x)
    pixels = x.shape[2] * x.shape[3]
    recon_loss = F.binary_cross_entropy(recon.view(-1, pixels), x.view(-1, pixels)) * pixels
    kl_cont = torch.sum(torch.mean(-0.5 * (1 + log_var - mean.pow(2) - log_var.exp()), dim=0))
    kl_disc = sum(math.log(a.size(-1)) + torch.mean(torch.sum(a * torch.log(a + 1e-12), dim=1)) for a in alphas)
    c = min(cap, cap * step / iters)
    c_disc = min(c, sum(math.log(a.size(-1)) for a in alphas))
    loss = (recon_loss + gamma * torch.abs(c - kl_cont) + gamma * torch.abs(c_disc - kl_disc)) / pixels
    loss.backward()
    optimizer.step()


def latentkit_setup(image_shape, n_cont, disc):
    spec = ModelSpec(image_shape, [ChannelSpec("cont", "gaussian", {"units": n_cont}),
                                   ChannelSpec("disc", "gumbel_softmax", {"sizes": disc})])
    model = build_model(spec)
    linear = {"name": "linear", "options": {"c_max": 5.0, "steps": 25000}}
    objective = build_objective(Component("jointvae", {"terms": {
        "cont": {"gamma": 30.0, "capacity": linear}, "disc": {"gamma": 30.0, "capacity": linear}}}), model)
    return model, objective


def latentkit_step(model, objective, optimizer, x, step):
    logs = objective(x, model(x), step)
    optimizer.zero_grad(set_to_none=True)
    logs["loss"].backward()
    optimizer.step()


def time_it(fn, iters, warmup):
    for i in range(warmup):
        fn(i + 1)
    start = time.perf_counter()
    for i in range(iters):
        fn(warmup + i + 1)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", choices=sorted(WORKLOADS), default="mnist")
    parser.add_argument("--iters", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    image_shape, n_cont, disc = WORKLOADS[args.workload]
    torch.manual_seed(0)
    x = (torch.rand(args.batch, *image_shape) > 0.5).float()

    orig = OriginalModel(image_shape, n_cont, disc)
    orig_opt = torch.optim.Adam(orig.parameters(), lr=5e-4)
    ours, objective = latentkit_setup(image_shape, n_cont, disc)
    ours_opt = torch.optim.Adam(ours.parameters(), lr=5e-4)
    ours.train()

    rates = {"original": [], "latentkit": []}
    for _ in range(args.repeats):  # interleaved, so drift in machine load hits both alike
        t = time_it(lambda s: original_step(orig, orig_opt, x, s), args.iters, args.warmup)
        rates["original"].append(args.iters * args.batch / t)
        t = time_it(lambda s: latentkit_step(ours, objective, ours_opt, x, s), args.iters, args.warmup)
        rates["latentkit"].append(args.iters * args.batch / t)
    print(f"workload {args.workload}, batch {args.batch}, {args.iters} timed iterations x {args.repeats}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for name, values in rates.items():
        print(f"  {name:<10} {statistics.median(values):8.0f} images/s  (min {min(values):.0f}, max {max(values):.0f})")
    ratio = statistics.median(rates["latentkit"]) / statistics.median(rates["original"])
    print(f"  ratio latentkit / original: {ratio:.2f}")


if __name__ == "__main__":
    main()
