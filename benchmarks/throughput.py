"""Training and inference throughput of latentkit against a plain-PyTorch restatement of the original JointVAE code.

    python benchmarks/throughput.py                  # the full run (about 15 minutes on 2 CPU cores)
    python benchmarks/throughput.py --quick          # development: fewer steps and repeats (under 5 minutes)
    python benchmarks/throughput.py --json out.json  # also write the figures as JSON
    python benchmarks/throughput.py --device cuda    # on a GPU machine

Two configurations: MNIST-32 (10 continuous units + one 10-way variable) and dSprites-64 (6 + one 3-way). Two
comparisons, both reported, medians over repeats, baseline and latentkit alternated so drift hits both alike:

* **as used** — the baseline in a plain Python process with the default environment, against latentkit exactly as its
  CLI runs: ``latentkit.runtime.tune_allocator()`` first (as ``latentkit`` does), then the trainer built by
  ``prepare_run`` from the paper's recipe (its channels_last layout, fused Adam, uint8 data indexed on the device,
  logging every 50 steps) and, for inference, :func:`latentkit.inference.reconstruct` at its default batch. Each
  measurement is its own process.
* **same environment** — both in one process with the allocator tuned for both, so the ratio shows what latentkit's
  code itself buys.
* **trainer driven directly** — the original's model and loss trained by ``latentkit.train.Trainer`` through its public
  API against a plain PyTorch loop (same model, batch, fused Adam, threads, layout, uint8 data in memory), interleaved
  in one process: what the generic trainer costs (``--direct-only`` runs just this row, and a tiny MLP's).

The baseline does what the original does: its modules and layout, its sampling (``torch.rand`` / ``normal_`` on fresh
tensors), its loss (BCE over H·W, batch-mean KL, ``min`` capacities, divided by H·W), Adam 5e-4, batch 64, one
``loss.item()`` per step; inference in eval mode (mean and argmax) at batch 64 with autograd still recording (the
original's ``Variable(..., volatile=True)`` is a no-op since PyTorch 0.4). Inputs: random binary images of the right
shape, made once.

**bfloat16 rows**: latentkit with ``train.precision=bfloat16`` (training) and ``reconstruct(..., precision="bfloat16")``
(inference), as used and in the same environment, against the same float32 baseline (the original computes in float32;
the targets are ratios to it). The machine line names the CPU and how it computes bfloat16 (``amx_bf16``,
``avx512_bf16`` or ``emulated``); emulated rows are marked: software bfloat16 is no result.

Also: the 2048x2048 matmul rate in float32 and in bfloat16 measured in the same run (the practical compute ceiling of
each dtype), each model's FLOPs per image (counted by ``torch.utils.flop_counter``), the FLOP utilisation (of the ceiling
of the dtype the row computes in), and each worker's peak resident memory. Compile is not used on the CPU
(torch.compile measured no faster here for these networks, in float32 and in bfloat16; see docs/performance.md).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {  # recipe, image shape, continuous units, discrete sizes, data set used for the trainer (no download)
    "mnist32": ("jointvae_mnist.py", (1, 32, 32), 10, [10], ['dataset="shapes"', 'dataset_options={"size": 32}']),
    "dsprites64": ("jointvae_dsprites.py", (1, 64, 64), 6, [3],
                   ['dataset_options={"source": "procedural", "label_factor": "shape", "n": 20000}']),
}
BATCH = 64
#: what each configuration measures: (worker side, precision) per key of the results
SIDES = {
    "baseline_train": ("baseline", "float32"), "latentkit_train": ("latentkit", "float32"),
    "bf16_train": ("latentkit", "bfloat16"), "baseline_infer": ("baseline", "float32"),
    "latentkit_infer": ("latentkit", "float32"), "bf16_infer": ("latentkit", "bfloat16"),
}
LOG_EVERY = 50
INFER_IMAGES = 4096


# --- the baseline: the original code's model and step ---------------------------------------------------------------


def baseline_model(image_shape, n_cont, disc):
    import torch
    import torch.nn.functional as F
    from torch import nn

    class Original(nn.Module):
        def __init__(self):
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
            self.latent_to_features = nn.Sequential(
                nn.Linear(n_cont + sum(disc), 256), nn.ReLU(), nn.Linear(256, 1024), nn.ReLU())
            deconvs = [nn.ConvTranspose2d(64, 64, 4, 2, 1), nn.ReLU()] if size == 64 else []
            deconvs += [nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.ReLU(), nn.ConvTranspose2d(32, 32, 4, 2, 1), nn.ReLU(),
                        nn.ConvTranspose2d(32, c, 4, 2, 1), nn.Sigmoid()]
            self.features_to_img = nn.Sequential(*deconvs)

        def forward(self, x):
            hidden = self.features_to_hidden(self.img_to_features(x).view(x.size(0), -1))
            mean, log_var = self.fc_mean(hidden), self.fc_log_var(hidden)
            alphas = [F.softmax(fc(hidden), dim=1) for fc in self.fc_alphas]
            if self.training:
                eps = torch.zeros(mean.size()).normal_().to(x.device)
                samples = [mean + torch.exp(0.5 * log_var) * eps]
                for alpha in alphas:
                    u = torch.rand(alpha.size()).to(x.device)
                    g = -torch.log(-torch.log(u + 1e-12) + 1e-12)
                    samples.append(F.softmax((torch.log(alpha + 1e-12) + g) / 0.67, dim=1))
            else:
                samples = [mean] + [torch.zeros_like(a).scatter_(1, a.argmax(1, keepdim=True), 1.0) for a in alphas]
            z = torch.cat(samples, dim=1)
            recon = self.features_to_img(self.latent_to_features(z).view(-1, 64, 4, 4))
            return recon, mean, log_var, alphas

    return Original()


def baseline_trainer(image_shape, n_cont, disc, device):
    """``step(s)``: one training step of the original on a fixed batch, with its ``.item()``."""
    import torch

    torch.manual_seed(0)
    model = baseline_model(image_shape, n_cont, disc).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-4)
    x = (torch.rand(BATCH, *image_shape) > 0.5).float().to(device)
    total = [0.0]

    def step(s):
        optimizer.zero_grad()
        loss = original_loss(model(x), x, s)
        loss.backward()
        optimizer.step()
        total[0] += loss.item()

    return step


def original_loss(outputs, x, s: int):
    """The original's loss: BCE over H·W, batch-mean KLs, ``min`` capacities, divided by H·W."""
    import torch
    import torch.nn.functional as F

    recon, mean, log_var, alphas = outputs
    pixels = x.shape[-1] * x.shape[-2]
    recon_loss = F.binary_cross_entropy(recon.view(-1, pixels), x.view(-1, pixels)) * pixels
    kl_cont = torch.sum(torch.mean(-0.5 * (1 + log_var - mean.pow(2) - log_var.exp()), dim=0))
    kl_disc = sum(math.log(a.size(-1)) + torch.mean(torch.sum(a * torch.log(a + 1e-12), dim=1)) for a in alphas)
    c = min(5.0, 5.0 * s / 25000)
    c_disc = min(c, sum(math.log(a.size(-1)) for a in alphas))
    return (recon_loss + 30.0 * torch.abs(c - kl_cont) + 30.0 * torch.abs(c_disc - kl_disc)) / pixels


def baseline_inference(image_shape, n_cont, disc, device):
    """``run()``: eval-mode reconstruction of INFER_IMAGES images at batch 64, autograd recording (as the original)."""
    import torch

    model = baseline_model(image_shape, n_cont, disc).to(device).eval()
    images = (torch.rand(INFER_IMAGES, *image_shape) > 0.5).float().to(device)

    def run():
        for i in range(0, INFER_IMAGES, BATCH):
            model(images[i : i + BATCH])[0].sum().item()

    return run


# --- latentkit: the trainer and the inference path as the CLI runs them ----------------------------------------------


def latentkit_trainer(config: str, steps: int, device: str, precision: str = "float32"):
    """A Trainer built by ``prepare_run`` from the paper's recipe, as ``latentkit train`` builds it."""
    from latentkit.assembly.recipe import apply_overrides, load_recipe
    from latentkit.assembly.session import prepare_run

    recipe, *_, data = CONFIGS[config]
    cfg = load_recipe(ROOT / "recipes" / recipe)
    sets = data + [f"train.steps={steps}", f"train.log_every={LOG_EVERY}", "train.checkpoint_every=10000000",
                   "train.figures_every=0", f'train.device="{device}"', f'train.precision="{precision}"']
    experiment = apply_overrides(cfg, sets).experiment()
    out = Path(tempfile.mkdtemp(prefix="latentkit-bench-")) / "run"
    return prepare_run(experiment, out=str(out), quiet=True)


def time_trainer(config: str, warmup: int, steps: int, device: str, precision: str = "float32") -> float:
    """Images/s of ``Trainer.fit()`` between the end of step ``warmup`` and step ``warmup + steps``, timed by a plugin
    on the ``latentkit_step_end`` hook (registered before the trainer is built, as plugins are)."""
    from latentkit.plugins import hookimpl, register_plugin, unregister_plugin

    marks: dict[int, float] = {}

    class Timer:
        @hookimpl
        def latentkit_step_end(self, run, step, scalars):
            sync(device)
            marks[step] = time.perf_counter()

    name = register_plugin(Timer(), name="bench-timer")
    try:
        latentkit_trainer(config, warmup + steps, device, precision).fit()
    finally:
        unregister_plugin(name)
    return steps * BATCH / (marks[warmup + steps] - marks[warmup])


def latentkit_inference(config: str, device: str, precision: str = "float32"):
    import torch

    from latentkit.assembly.build import build_model
    from latentkit.specs import ChannelSpec, Component, ModelSpec
    from latentkit.inference import reconstruct

    _, image_shape, n_cont, disc, _ = CONFIGS[config]
    spec = ModelSpec(image_shape, [ChannelSpec("cont", "gaussian", {"units": n_cont}),
                                   ChannelSpec("disc", "gumbel_softmax", {"sizes": disc})], Component("jointvae_conv"))
    model = build_model(spec).to(device)
    images = (torch.rand(INFER_IMAGES, *image_shape) > 0.5).to(torch.uint8).mul_(255).to(device)
    return lambda: reconstruct(model, images, device=device, precision=precision)


def time_calls(fn, n_images: int, warmup: int = 1, repeats: int = 3) -> float:
    for _ in range(warmup):
        fn()
    rates = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        rates.append(n_images / (time.perf_counter() - t))
    return statistics.median(rates)


def sync(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


# --- workers (one measurement per process for "as used") -------------------------------------------------------------


def worker(args) -> dict:
    if args.side == "latentkit":
        from latentkit.runtime import tune_allocator

        allocator = tune_allocator()  # what the `latentkit` command does first
    else:
        allocator = "default"
    import torch

    _, image_shape, n_cont, disc, _ = CONFIGS[args.config]
    result = {"allocator": allocator, "threads": torch.get_num_threads()}
    if args.what == "train":
        if args.side == "latentkit":
            result["images_per_s"] = time_trainer(args.config, args.warmup, args.steps, args.device, args.precision)
        else:
            step = baseline_trainer(image_shape, n_cont, disc, args.device)
            for s in range(1, args.warmup + 1):
                step(s)
            sync(args.device)
            t = time.perf_counter()
            for s in range(args.warmup + 1, args.warmup + args.steps + 1):
                step(s)
            sync(args.device)
            result["images_per_s"] = args.steps * BATCH / (time.perf_counter() - t)
    else:
        run = latentkit_inference(args.config, args.device, args.precision) if args.side == "latentkit" else \
            baseline_inference(image_shape, n_cont, disc, args.device)
        result["images_per_s"] = time_calls(run, INFER_IMAGES)
    result["peak_rss_mib"] = peak_rss_mib()
    if args.device == "cuda":
        result["peak_cuda_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return result


def peak_rss_mib() -> float:
    """This process's peak resident memory (VmHWM; ru_maxrss would carry the parent's peak over fork and exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_worker(config: str, side: str, what: str, steps: int, warmup: int, device: str,
               precision: str = "float32") -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "LATENTKIT_MALLOC"}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "--config", config, "--side", side,
           "--what", what, "--steps", str(steps), "--warmup", str(warmup), "--device", device]
    cmd += ["--precision", precision]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise SystemExit(f"worker {' '.join(cmd[2:])} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --- same environment: both in this process ---------------------------------------------------------------------------


def same_env(config: str, steps: int, warmup: int, repeats: int, device: str) -> dict:
    _, image_shape, n_cont, disc, _ = CONFIGS[config]
    base_train = baseline_trainer(image_shape, n_cont, disc, device)
    base_infer = baseline_inference(image_shape, n_cont, disc, device)
    ours_infer = latentkit_inference(config, device)
    ours_infer_bf16 = latentkit_inference(config, device, "bfloat16")
    rates = {key: [] for key in SIDES}
    s0 = 0

    def baseline_rate() -> float:
        nonlocal s0
        for s in range(s0 + 1, s0 + warmup + 1):
            base_train(s)
        sync(device)
        t = time.perf_counter()
        for s in range(s0 + warmup + 1, s0 + warmup + steps + 1):
            base_train(s)
        sync(device)
        s0 += warmup + steps
        return steps * BATCH / (time.perf_counter() - t)

    jobs = {
        "baseline_train": baseline_rate,
        "latentkit_train": lambda: time_trainer(config, warmup, steps, device),
        "bf16_train": lambda: time_trainer(config, warmup, steps, device, "bfloat16"),
        "baseline_infer": lambda: time_calls(base_infer, INFER_IMAGES, repeats=1),
        "latentkit_infer": lambda: time_calls(ours_infer, INFER_IMAGES, repeats=1),
        "bf16_infer": lambda: time_calls(ours_infer_bf16, INFER_IMAGES, repeats=1),
    }
    for r in range(repeats):  # ABBA: which side goes first alternates
        for key in list(jobs)[:: 1 if r % 2 == 0 else -1]:
            rates[key].append(jobs[key]())
    return {k: statistics.median(v) for k, v in rates.items()} | {"samples": rates}


# --- the trainer driven directly (public API) against a plain PyTorch loop -------------------------------------------


def direct_vs_plain(config: str, steps: int, warmup: int, repeats: int, device: str) -> dict:
    """Images/s of the original's model and loss trained (a) by a plain PyTorch loop and (b) by ``latentkit.train.Trainer``
    driven directly through its public API (a ``BaseTask``, a hook object as timer) — same model and initial weights,
    batch, fused Adam, threads, memory layout (contiguous) and uint8 data in memory (a random batch per step, divided by
    255). Interleaved in this process, the side that goes first alternating. The trainer's own work per step: the
    batch order, per-sample noise keys (when a task reads them), the finite-loss check, the hooks.

    ``config`` ``"mlp8"``: a tiny MLP autoencoder on 8x8 images at batch 32 with a mean-squared error, where the
    trainer's fixed cost per step shows most."""
    import torch

    if config == "mlp8":
        image_shape, batch = (1, 8, 8), 32

        def make_model():
            from torch import nn

            return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 6), nn.Linear(6, 32),
                                 nn.ReLU(), nn.Linear(32, 64), nn.Sigmoid())

        def loss_fn(net, x, _step):
            return ((net(x) - x.flatten(1)) ** 2).mean()
    else:
        _, image_shape, n_cont, disc, _ = CONFIGS[config]
        batch = BATCH

        def make_model():
            return baseline_model(image_shape, n_cont, disc)

        def loss_fn(net, x, step):
            return original_loss(net(x), x, step)

    images = (torch.rand(batch * 64, *image_shape) > 0.5).to(torch.uint8).mul_(255).to(device)
    return _race(make_model, loss_fn, images, batch, steps, warmup, repeats, device)


def _race(make_model, loss_fn, images, batch: int, steps: int, warmup: int, repeats: int, device: str) -> dict:
    import torch

    from latentkit.train import BaseTask, TrainConfig, Trainer

    def model():
        torch.manual_seed(0)
        return make_model().to(device)

    def plain_rate() -> float:
        net = model()
        optimizer = torch.optim.Adam(net.parameters(), lr=5e-4, fused=True)
        order = torch.Generator().manual_seed(0)
        t = 0.0
        for s in range(1, warmup + steps + 1):
            if s == warmup + 1:
                sync(device)
                t = time.perf_counter()
            idx = torch.randint(0, images.shape[0], (batch,), generator=order).to(device)
            x = images.index_select(0, idx).float().div_(255)
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(net, x, s)
            loss.backward()
            optimizer.step()
            loss.item()
        sync(device)
        return steps * batch / (time.perf_counter() - t)

    class Task(BaseTask):
        def __init__(self):
            self.module = model()

        def training_step(self, x, step, context):
            return {"loss": loss_fn(self.module, x, step)}

    class Timer:
        def __init__(self):
            self.marks: dict[int, float] = {}

        def latentkit_step_end(self, step):
            sync(device)
            self.marks[step] = time.perf_counter()

    def trainer_rate() -> float:
        timer = Timer()
        settings = TrainConfig(steps=warmup + steps, batch_size=batch, lr=5e-4, device=device, log_every=LOG_EVERY,
                               checkpoint_every=10**9, memory_format="contiguous", threads=torch.get_num_threads())
        with tempfile.TemporaryDirectory(prefix="latentkit-bench-") as tmp:
            Trainer(Task(), images, settings, Path(tmp) / "run", hooks=[timer]).fit()
        return steps * batch / (timer.marks[warmup + steps] - timer.marks[warmup])

    rates: dict[str, list[float]] = {"plain_loop": [], "trainer_direct": []}
    jobs = {"plain_loop": plain_rate, "trainer_direct": trainer_rate}
    for r in range(repeats):
        for key in list(jobs)[:: 1 if r % 2 == 0 else -1]:
            rates[key].append(jobs[key]())
    medians = {k: statistics.median(v) for k, v in rates.items()}
    # each repeat's two measurements ran back to back: the median of their ratios is robust to a machine whose load
    # drifts between repeats (the ratio of the medians is printed too)
    pairs = [t / p for p, t in zip(rates["plain_loop"], rates["trainer_direct"])]
    return medians | {"ratio": statistics.median(pairs), "ratio_of_medians": medians["trainer_direct"] /
                      medians["plain_loop"], "samples": rates}


def print_direct(config: str, entry: dict) -> None:
    print(f"| {config + ' trainer direct':<36} | {entry['plain_loop']:9.0f} | {entry['trainer_direct']:9.0f} | "
          f"{entry['ratio']:5.2f}x | {'(baseline: plain loop)':>22} |", flush=True)
    print(f"  {config} trainer direct: median of paired ratios {entry['ratio']:.3f}, ratio of medians "
          f"{entry['ratio_of_medians']:.3f}")


# --- FLOPs and the ceiling --------------------------------------------------------------------------------------------


def flops_per_image(config: str) -> dict:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    _, image_shape, n_cont, disc, _ = CONFIGS[config]
    model = baseline_model(image_shape, n_cont, disc)
    x = (torch.rand(BATCH, *image_shape) > 0.5).float()
    with FlopCounterMode(display=False) as counter:
        recon = model(x)[0]
        torch.nn.functional.binary_cross_entropy(recon, x).backward()
    train = counter.get_total_flops() / BATCH
    model.eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    return {"train": train, "infer": counter.get_total_flops() / BATCH}


def matmul_ceiling(device: str, repeats: int = 5, dtype: str = "float32") -> float:
    import torch

    a, b = (torch.randn(2048, 2048, device=device, dtype=getattr(torch, dtype)) for _ in range(2))
    rates = []
    for _ in range(repeats + 1):
        sync(device)
        t = time.perf_counter()
        for _ in range(10 if device == "cuda" else 2):
            a @ b
        sync(device)
        rates.append((10 if device == "cuda" else 2) * 2 * 2048**3 / (time.perf_counter() - t))
    return statistics.median(rates[1:])


# --- the report -------------------------------------------------------------------------------------------------------


def machine() -> dict:
    import platform

    import torch

    from latentkit.precision import bfloat16_support, cpu_flags, cpu_model

    info = {"python": platform.python_version(), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "cpu": cpu_model(), "cores": os.cpu_count()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    info["bfloat16"] = bfloat16_support("cuda" if torch.cuda.is_available() else "cpu")["how"]
    info["cpu_bf16_flags"] = sorted(f for f in cpu_flags() if "bf16" in f)
    return info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps and repeats (development)")
    parser.add_argument("--json", help="write the results to this file")
    parser.add_argument("--configs", default=",".join(CONFIGS), help=f"comma-separated, from {list(CONFIGS)}")
    parser.add_argument("--repeats", type=int, help="repeats per measurement (default 5; --quick 2)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--direct-only", action="store_true",
                        help="only the row 'trainer driven directly vs a plain PyTorch loop' (one process, minutes)")
    parser.add_argument("--direct-steps", type=int, help="timed steps per measurement of that row (a multiple of 50)")
    # worker mode (internal)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    parser.add_argument("--side", choices=["baseline", "latentkit"], help=argparse.SUPPRESS)
    parser.add_argument("--what", choices=["train", "infer"], help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--warmup", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--precision", default="float32", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args)))
        return

    from latentkit.runtime import tune_allocator

    repeats = args.repeats or (2 if args.quick else 5)
    steps = {"mnist32": 100 if args.quick else 400, "dsprites64": 50 if args.quick else 150}
    if args.device == "cuda":
        steps = {k: 10 * v for k, v in steps.items()}
    warmup = LOG_EVERY
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    if args.direct_only:
        tune_allocator()
        for config in configs + ["mlp8"]:
            n = args.direct_steps or steps.get(config, 10 * LOG_EVERY)
            entry = direct_vs_plain(config, n, warmup, repeats, args.device)
            print(f"  {config}: plain loop {entry['samples']['plain_loop']}, trainer {entry['samples']['trainer_direct']}")
            print_direct(config, entry)
        return
    results: dict = {"machine": machine(), "device": args.device, "repeats": repeats, "steps": steps}
    t_start = time.perf_counter()
    results["matmul_gflops"] = matmul_ceiling(args.device) / 1e9
    results["matmul_gflops_bf16"] = matmul_ceiling(args.device, dtype="bfloat16") / 1e9
    print(f"matmul 2048x2048: float32 {results['matmul_gflops']:.0f} GFLOP/s, bfloat16 "
          f"{results['matmul_gflops_bf16']:.0f} GFLOP/s ({results['machine']})", flush=True)
    for config in configs:
        n = steps[config]
        flops = flops_per_image(config)
        as_used: dict[str, list[float]] = {key: [] for key in SIDES}
        peaks: dict[str, float] = {}
        for r in range(repeats):  # alternated, and which goes first alternates too (ABBA: load drift is fair)
            for key in list(SIDES)[:: 1 if r % 2 == 0 else -1]:
                side, precision = SIDES[key]
                res = run_worker(config, side, key.rsplit("_", 1)[1], n, warmup, args.device, precision)
                as_used[key].append(res["images_per_s"])
                peaks[key] = max(peaks.get(key, 0), res["peak_rss_mib"])
            print(f"  {config} as used, repeat {r + 1}/{repeats}: " + ", ".join(
                f"{k} {v[-1]:.0f}" for k, v in as_used.items()), flush=True)
        entry = {"flops_per_image": flops, "as_used": {k: statistics.median(v) for k, v in as_used.items()},
                 "as_used_samples": as_used, "peak_rss_mib": peaks}
        tune_allocator()  # same environment: the launcher's allocator for both, in this process
        entry["same_env"] = same_env(config, n, warmup, repeats, args.device)
        entry["trainer_direct"] = direct_vs_plain(config, n, warmup, repeats, args.device)
        au, se = entry["as_used"], entry["same_env"]
        entry["train_ratio_as_used"] = au["latentkit_train"] / au["baseline_train"]
        entry["infer_ratio_as_used"] = au["latentkit_infer"] / au["baseline_infer"]
        entry["train_ratio_same_env"] = se["latentkit_train"] / se["baseline_train"]
        entry["infer_ratio_same_env"] = se["latentkit_infer"] / se["baseline_infer"]
        for what in ("train", "infer"):
            entry[f"bf16_{what}_ratio_as_used"] = au[f"bf16_{what}"] / au[f"baseline_{what}"]
            entry[f"bf16_{what}_ratio_same_env"] = se[f"bf16_{what}"] / se[f"baseline_{what}"]
        ceilings = {"float32": results["matmul_gflops"] * 1e9, "bfloat16": results["matmul_gflops_bf16"] * 1e9}
        entry["flop_utilisation"] = {k: au[k] * flops["train" if "train" in k else "infer"] / ceilings[SIDES[k][1]]
                                     for k in au}
        results[config] = entry
    results["wall_s"] = time.perf_counter() - t_start
    print_table(results, configs)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
        print(f"written to {args.json}")


def print_table(results: dict, configs: list[str]) -> None:
    emulated = results["machine"].get("bfloat16") == "emulated"
    print(f"\n{results['machine']}; device {results['device']}; matmul ceiling float32 "
          f"{results['matmul_gflops']:.0f} GFLOP/s, bfloat16 {results['matmul_gflops_bf16']:.0f} GFLOP/s; "
          f"medians of {results['repeats']} repeats; wall {results['wall_s']:.0f} s")
    if emulated:
        print("this CPU has no native bfloat16 (no avx512_bf16, no amx_bf16): the bf16 rows are emulated, not results")
    head = f"| {'configuration':<36} | {'baseline':>9} | {'latentkit':>9} | {'ratio':>6} | {'latentkit % of ceiling':>22} |"
    print(head)
    print("|" + "|".join("-" * (len(c)) for c in head.split("|")[1:-1]) + "|")
    for config in configs:
        e = results[config]
        for what in ("train", "infer"):
            for side, tag in (("latentkit", ""), ("bf16", " bf16" + ("(emul.)" if emulated else ""))):
                for mode in ("as_used", "same_env"):
                    b, o = e[mode][f"baseline_{what}"], e[mode][f"{side}_{what}"]
                    util = e["flop_utilisation"][f"{side}_{what}"] if mode == "as_used" else float("nan")
                    label = f"{config} {what}{tag} {mode.replace('_', ' ')}"
                    util_s = f"{util:.0%}" if not math.isnan(util) else ""
                    print(f"| {label:<36} | {b:9.0f} | {o:9.0f} | {o / b:5.2f}x | {util_s:>22} |")
        if "trainer_direct" in e:
            print_direct(config, e["trainer_direct"])
        peaks = ", ".join(f"{k} {v:.0f}" for k, v in e["peak_rss_mib"].items())
        print(f"  {config}: FLOPs per image train {e['flops_per_image']['train'] / 1e6:.1f} M, inference "
              f"{e['flops_per_image']['infer'] / 1e6:.1f} M; peak RSS MiB: {peaks}")


if __name__ == "__main__":
    main()
