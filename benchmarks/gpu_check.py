"""The CUDA check: one prepared script that proves latentkit's CUDA path on a lent GPU machine in under 8 minutes.

    python3 -m pip install -q --no-deps --no-build-isolation -e . ; bash benchmarks/gpu_check.sh    # a GPU machine
    python benchmarks/gpu_check.py --device cpu --skip throughput,compile     # the same checks on the CPU, as CI does

A lent GPU machine has no internet: ``pip install -e ".[dev]"`` fails there (the image lacks lightgbm, ray and mkdocs,
and an isolated build fetches setuptools), so install with ``--no-deps --no-build-isolation``; where even that fails the
script runs from the checkout uninstalled (:func:`make_shim`), and the ``environment`` check says which happened.

Why one script: a GPU machine is lent for minutes, so everything that needs one runs in a single prepared command that
writes its results as it goes (``OUT/results.jsonl``, one JSON line per check, and ``OUT/summary.md``, rewritten after
every check) and keeps going when a check fails (the failure is recorded with its error's tail). Each check has its own
time limit, and all of them share one budget (``--budget``, default 470 s).

The checks, in order (``--skip NAME,...`` leaves some out; names as listed):

* ``environment`` — GPU name, compute capability, torch / CUDA / cuDNN / NCCL versions, how the device computes
  bfloat16 (:func:`latentkit.precision.bfloat16_support`), and that latentkit's plugins are installed.
* ``fixtures`` — the original JointVAE's reference fixtures (tests/test_reference_fixtures.py; the folder
  ``jointvae-original`` from ``--reference``, ``$LATENTKIT_REFERENCE``, ``shared/reference_models`` in the checkout or
  beside it) recomputed on the device in float32 with TF32 off: encoder outputs and reconstructions within 1e-5
  absolute, the loss and its terms within 1e-5 relative.
* ``train_resume_float32``, ``train_resume_bfloat16`` — a tiny ``latentkit train`` run (recipes/jointvae_shapes.py,
  256 images, batch 32) of ``--steps`` steps straight against half of them plus ``--resume``, under
  ``torch.use_deterministic_algorithms`` with ``CUBLAS_WORKSPACE_CONFIG=:4096:8``: the final weights and the logged
  metrics must be bit-identical within each precision.
* ``torchrun`` — ``torch.distributed.run --nproc_per_node 1`` launching ``latentkit train`` (NCCL on CUDA, gloo on the
  CPU), compared with a plain single-process run of the same settings. At ``WORLD_SIZE=1`` latentkit would take its
  single-process path and never join a process group, so the worker makes it join one (its own ``initialise``, with
  ``launched_by_torchrun`` patched): NCCL is initialised, the run trains in it, and an all-reduce, a broadcast and a
  barrier then run on that group.
* ``throughput`` (CUDA only) — ``benchmarks/throughput.py --device cuda`` (``--throughput-args``, default
  ``--quick --repeats 1``), its output in ``OUT/throughput.txt`` and ``OUT/throughput.json``, its table in the summary.
* ``compile`` (CUDA only, optional, last) — the MNIST-32 training step under bfloat16 autocast, eager against
  ``torch.compile`` of the encoder and decoder (default mode, then ``reduce-overhead``: CUDA graphs), img/s, inside
  90 s; a variant that fails is recorded as such and the others stand.

The training checks run in worker processes of this script (``--worker``), so that deterministic mode and the
environment variables it needs are set before CUDA starts, and so that a hung check can be ended at its limit. Runs go
to a scratch folder (``--work``), never to ``OUT``, which holds at most five files.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "jointvae_shapes.py"
FIXTURE_NAMES = ("mnist", "chairs", "celeba")
ATOL = 1e-5  #: encoder outputs and reconstructions against the original's fixtures (values in [0, 1] or O(1))
RTOL = 1e-5  #: the loss and its terms, relative
TAIL = 3000  #: characters of a failure's output kept in its record


class Skip(Exception):
    """A check that does not apply here (no CUDA, no fixtures): recorded as skipped with this reason."""


class TimeLimit(Exception):
    """An in-process check ran past its limit."""


# --- the checks -------------------------------------------------------------------------------------------------------


class Context:
    """What the checks share: the device, folders, the budget and the earlier checks' results."""

    def __init__(self, args: argparse.Namespace):
        self.device: str = args.device
        self.out = Path(args.out)
        self.work = Path(args.work or tempfile.mkdtemp(prefix="latentkit-gpu-check-"))
        self.steps: int = args.steps
        self.reference: str | None = args.reference
        self.throughput_args: list[str] = args.throughput_args.split()
        self.deadline = time.monotonic() + args.budget
        self.results: list[dict] = []
        self.environment: dict = {}
        self.plain_float32_run: Path | None = None  #: the straight float32 run of train_resume, reused by torchrun
        self.limit: float = 0.0  #: the running check's time limit (its own, cut to the budget left)
        self.install: str = "installed"  #: how latentkit is found (:func:`ensure_importable`)

    def remaining(self) -> float:
        return self.deadline - time.monotonic()


def check_environment(ctx: Context) -> dict:
    import importlib.metadata

    import torch

    from latentkit.precision import bfloat16_support, cpu_flags, cpu_model

    info: dict[str, Any] = {
        "python": sys.version.split()[0], "torch": torch.__version__, "cuda": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(), "cpu": cpu_model(), "cores": os.cpu_count(),
        "cpu_bf16_flags": sorted(f for f in cpu_flags() if "bf16" in f),
        "latentkit": importlib.metadata.version("latentkit"), "commit": _git_commit(), "install": ctx.install,
    }
    if ctx.device == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("--device cuda was asked for, but PyTorch sees no CUDA GPU here")
        props = torch.cuda.get_device_properties(0)
        info |= {"gpu": props.name, "capability": ".".join(map(str, torch.cuda.get_device_capability(0))),
                 "gpu_memory_gib": round(props.total_memory / 2**30, 1), "gpus": torch.cuda.device_count(),
                 "cudnn": torch.backends.cudnn.version(), "nccl": _nccl_version()}
    info["bfloat16"] = bfloat16_support(ctx.device)
    where = f"{info['gpu']} (sm {info['capability']})" if ctx.device == "cuda" else info["cpu"]
    info["result"] = (f"{where}; torch {info['torch']}, CUDA {info['cuda']}; bfloat16 "
                      f"{'native' if info['bfloat16']['native'] else 'emulated'} ({info['bfloat16']['how']})")
    plugins = sorted(ep.name for ep in importlib.metadata.entry_points(group="latentkit"))
    info["plugins"] = len(plugins)
    ctx.environment = info
    if not plugins:
        info["passed"] = False
        info["error"] = ("no latentkit plugins are installed (entry-point group 'latentkit' is empty): install the "
                         "checkout first, `python -m pip install --no-deps --no-build-isolation -e .`")
    return info


def check_fixtures(ctx: Context) -> dict:
    """The original's fixtures on the device, float32, TF32 off (the comparison of tests/test_reference_fixtures.py)."""
    import numpy as np
    import torch

    from latentkit.assembly.build import build_objective
    from latentkit.assembly.checkpoint import load_model
    from latentkit.interop.jointvae_original import import_original
    from latentkit.specs import Component

    reference = _reference_folder(ctx.reference)
    device = torch.device(ctx.device)
    flags = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    details: dict[str, Any] = {"reference": str(reference), "tf32": False, "atol": ATOL, "rtol": RTOL}
    try:
        for name in FIXTURE_NAMES:
            src = reference / name
            if not (src / "model.pt").is_file() or not (src / "fixture.npz").is_file():
                details[name] = "absent"
                continue
            out = ctx.work / "fixtures" / name
            import_original(src, out)
            model, config = load_model(out)
            model = model.to(device).eval()
            with np.load(src / "fixture.npz", allow_pickle=False) as f:
                fixture = {k: f[k] for k in f.files}
            x = torch.from_numpy(fixture["images"]).to(device)
            with torch.no_grad():
                output = model(x)
                objective = build_objective(Component(**config["objective"]), model)
                logs = [objective(x, output, int(s)) for s in fixture["loss_steps"]]
            cont, disc = output.params["cont"], output.params["disc"]
            alphas = torch.split(disc["alpha"], list(model.latent.channels["disc"].unit_sizes()), dim=-1)
            got = {"mean": cont["mean"], "logvar": cont["logvar"], "recon_eval": output.reconstruction}
            got |= {f"alpha_{i}": a for i, a in enumerate(alphas)}
            abs_err = {k: (v.detach().cpu() - torch.from_numpy(fixture[k])).abs().max().item() for k, v in got.items()}
            rel = {f"loss@{int(s)}": _rel(log["loss"].item(), float(e))
                   for s, e, log in zip(fixture["loss_steps"], fixture["loss_values"], logs)}
            last = logs[-1]
            rel |= {"recon": _rel(last["recon"].item(), float(fixture["recon_bce_sum_mean"])),
                    "kl/cont": _rel(last["kl/cont"].item(), float(fixture["kl_cont"])),
                    "kl/disc": _rel(last["kl/disc"].item(), float(fixture["kl_disc"]))}
            details[name] = {"max_abs_error": max(abs_err.values()), "max_rel_error": max(rel.values()),
                             "abs": abs_err, "rel": rel}
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = flags
    compared = [n for n in FIXTURE_NAMES if isinstance(details[n], dict)]
    if not compared:
        raise Skip(f"no reference fixtures under {reference} (expected {', '.join(FIXTURE_NAMES)}/model.pt, "
                   "fixture.npz)")
    details["passed"] = all(details[n]["max_abs_error"] <= ATOL and details[n]["max_rel_error"] <= RTOL
                            for n in compared)
    details["result"] = ", ".join(f"{n}: abs {details[n]['max_abs_error']:.1e}, rel {details[n]['max_rel_error']:.1e}"
                                  for n in compared)
    return details


def check_train_resume(precision: str) -> Callable[[Context], dict]:
    def check(ctx: Context) -> dict:
        folder = ctx.work / f"train-{precision}"
        details = _run_worker(ctx, ["--worker", "train_resume", "--precision", precision, "--dir", str(folder)],
                              limit=ctx.limit)
        if precision == "float32" and details.get("passed"):
            ctx.plain_float32_run = folder / "straight"
        return details

    check.__name__ = f"check_train_resume_{precision}"
    return check


def check_torchrun(ctx: Context) -> dict:
    folder = ctx.work / "torchrun"
    start = time.monotonic()
    cmd = [*_python(), "-m", "torch.distributed.run", "--nproc_per_node", "1", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), str(Path(__file__).resolve()), "--worker", "torchrun",
           "--device", ctx.device, "--steps", str(ctx.steps), "--dir", str(folder / "torchrun")]
    details = _run(cmd, ctx.limit, ctx.work / "torchrun.log")
    if details["rc"] != 0:
        return details
    plain = ctx.plain_float32_run
    details["plain_run"] = "train_resume_float32's straight run (same settings)" if plain else "run here"
    if plain is None:
        left = ctx.limit - (time.monotonic() - start)
        own = _run_worker(ctx, ["--worker", "train", "--precision", "float32", "--dir", str(folder / "plain")],
                          limit=left)
        if own["rc"] != 0:
            return details | {"passed": False, "error": "the plain run failed: " + own.get("error", ""),
                              "tail": own.get("tail", "")}
        plain = folder / "plain" / "straight"
    diff = _weight_difference(folder / "torchrun" / "final", plain / "final")
    details |= diff
    details["passed"] = bool(details.get("passed")) and diff["identical"]
    details["result"] = (f"backend {details.get('backend')}, world size {details.get('world_size')}, "
                         + ("bit-identical to the plain run" if diff["identical"]
                            else f"differs from the plain run by up to {diff['max_abs_difference']:.2e}"))
    return details


def check_compile(ctx: Context) -> dict:
    if ctx.device != "cuda":
        raise Skip("CUDA only: torch.compile measured no faster on the CPU for these networks (docs/performance.md)")
    return _run_worker(ctx, ["--worker", "compile"], limit=ctx.limit, partial_ok=True)


def check_throughput(ctx: Context) -> dict:
    if ctx.device != "cuda":
        raise Skip("CUDA only here: on the CPU the benchmark takes minutes; run benchmarks/throughput.py itself")
    text, json_path = ctx.out / "throughput.txt", ctx.out / "throughput.json"
    cmd = [*_python(), str(ROOT / "benchmarks" / "throughput.py"), "--device", "cuda", *ctx.throughput_args,
           "--json", str(json_path)]
    details = _run(cmd, ctx.limit, text)
    details["table"] = table_of(text.read_text(errors="replace") if text.is_file() else "")
    details["passed"] = details["rc"] == 0 and json_path.is_file()
    details["result"] = f"{json_path.name} written" if details["passed"] else "incomplete (see the table's tail)"
    return details


def table_of(output: str) -> str:
    """The table benchmarks/throughput.py prints at its end, with the machine line above it; the output's last 40
    lines where it printed none (it was cut off)."""
    lines = output.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("| configuration")), None)
    if start is None:
        return "\n".join(["(no table: the benchmark did not finish; its last lines)"] + lines[-40:])
    return "\n".join(lines[max(start - 2, 0):])


#: name, function, own time limit in seconds (the shared budget may cut it)
CHECKS: list[tuple[str, Callable[[Context], dict], float]] = [
    ("environment", check_environment, 60),
    ("fixtures", check_fixtures, 60),
    ("train_resume_float32", check_train_resume("float32"), 120),
    ("train_resume_bfloat16", check_train_resume("bfloat16"), 120),
    ("torchrun", check_torchrun, 120),
    ("throughput", check_throughput, 270),
    ("compile", check_compile, 90),
]


# --- running the checks -----------------------------------------------------------------------------------------------


def run_checks(ctx: Context, checks: list[tuple[str, Callable[[Context], dict], float]], skip: set[str]) -> list[dict]:
    """Run ``checks`` in order, recording each (``results.jsonl``, ``summary.md``) as soon as it ends; a check that
    raises is recorded as failed and the others still run."""
    ctx.out.mkdir(parents=True, exist_ok=True)
    (ctx.out / "results.jsonl").write_text("")
    for name, fn, limit in checks:
        ctx.limit = min(limit, ctx.remaining())
        record: dict[str, Any] = {"check": name, "device": ctx.device, "limit_s": round(ctx.limit, 1)}
        start = time.monotonic()
        print(f"[gpu_check] {name} (limit {ctx.limit:.0f} s) ...", flush=True)
        try:
            if name in skip:
                raise Skip("left out with --skip")
            if ctx.remaining() < 5:
                raise Skip(f"the total budget is spent ({ctx.remaining():.0f} s left)")
            with _time_limit(ctx.limit):
                details = fn(ctx)
            record["status"] = "pass" if details.pop("passed", True) else "fail"
            record |= details
        except Skip as exc:
            record |= {"status": "skip", "reason": str(exc)}
        except Exception as exc:  # noqa: BLE001 - recorded, and the next check runs
            record |= {"status": "fail", "error": f"{type(exc).__name__}: {exc}",
                       "tail": traceback.format_exc()[-TAIL:]}
        record["seconds"] = round(time.monotonic() - start, 1)
        ctx.results.append(record)
        with open(ctx.out / "results.jsonl", "a") as f:
            f.write(json.dumps(record, default=str) + "\n")
        write_summary(ctx)
        print(f"[gpu_check] {name}: {record['status']} in {record['seconds']} s "
              f"{record.get('result') or record.get('reason') or record.get('error') or ''}", flush=True)
    return ctx.results


def write_summary(ctx: Context) -> None:
    env = ctx.environment
    lines = ["# latentkit CUDA check", "",
             f"{_dt.datetime.now().isoformat(timespec='seconds')}; device `{ctx.device}`; `{' '.join(sys.argv)}`", ""]
    if env:
        rows = [f"| {k} | {v} |" for k, v in env.items() if k not in ("passed", "result")]
        lines += ["| machine | |", "|---|---|", *rows, ""]
    lines += ["| check | status | seconds | limit | result |", "|---|---|---:|---:|---|"]
    for r in ctx.results:
        what = r.get("result") or r.get("reason") or r.get("error") or ""
        lines.append(f"| {r['check']} | {r['status'].upper()} | {r['seconds']} | {r['limit_s']} | {what} |")
    for r in ctx.results:
        if r["status"] == "fail" and r.get("tail") and not r.get("table"):  # a cut-off table shows its tail
            lines += ["", f"## {r['check']}: failure", "", "```", r["tail"].strip(), "```"]
        if r.get("table"):
            lines += ["", f"## {r['check']}", "", "```", r["table"].strip(), "```"]
        if r.get("rates"):
            lines += ["", f"## {r['check']}", ""] + [f"* {k}: {v}" for k, v in r["rates"].items()]
    (ctx.out / "summary.md").write_text("\n".join(lines) + "\n")


def _run(cmd: list[str], limit: float, log: Path) -> dict:
    """Run ``cmd`` (its own process group, ended at ``limit``), its output to ``log``; its last JSON line's fields,
    ``rc`` and, on failure, the output's tail."""
    log.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, CUBLAS_WORKSPACE_CONFIG=":4096:8", PYTHONUNBUFFERED="1", OMP_NUM_THREADS=os.environ.get(
        "OMP_NUM_THREADS", "1"), LATENTKIT_DIST_TIMEOUT="60")
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=ROOT, start_new_session=True)
        try:
            rc = proc.wait(timeout=max(limit, 1))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the worker's own group: torchrun's children too
            proc.wait()
            rc = None
    output = log.read_text(errors="replace")
    details: dict[str, Any] = {}
    for line in output.splitlines():
        if line.startswith("{"):
            try:
                details |= json.loads(line)
            except json.JSONDecodeError:
                pass
    details["rc"] = rc
    if rc != 0:
        details["passed"] = False
        details["tail"] = output[-TAIL:]
        details.setdefault("error", "timed out" if rc is None else f"exit status {rc}")
    return details


def _run_worker(ctx: Context, worker_args: list[str], limit: float, partial_ok: bool = False) -> dict:
    cmd = [*_python(), str(Path(__file__).resolve()), *worker_args, "--device", ctx.device,
           "--steps", str(ctx.steps)]
    details = _run(cmd, limit, ctx.work / f"{worker_args[1]}-{len(os.listdir(ctx.work))}.log")
    if partial_ok and details.get("rates") and details["rc"] is None:
        details["passed"] = True  # the time box ended it: what it measured stands
        details["result"] = "time-boxed: " + details.get("result", "")
    return details


# --- the worker processes ---------------------------------------------------------------------------------------------


def _train_args(device: str, steps: int, precision: str) -> list[str]:
    half = max(steps // 2, 1)
    return [str(RECIPE), "--set", 'dataset_options={"n": 256, "size": 32}', "--set", "train.batch_size=32",
            "--set", f"train.log_every={max(half // 2, 1)}", "--set", f"train.checkpoint_every={half}",
            "--set", "train.figures_every=0", "--set", f'train.precision="{precision}"', "--device", device, "--quiet"]


def _deterministic() -> list[str]:
    """Deterministic algorithms (warnings, not errors, for ops without one: they are recorded and named)."""
    import torch

    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
    warnings.simplefilter("always")
    caught: list[str] = []
    shown = warnings.showwarning

    def record(message, category, filename, lineno, file=None, line=None):
        if "deterministic" in str(message):
            caught.append(str(message).splitlines()[0][:200])
        shown(message, category, filename, lineno, file, line)

    warnings.showwarning = record
    return caught


def worker_train(args: argparse.Namespace, resume: bool) -> dict:
    from latentkit import cli

    nondeterministic = _deterministic()
    folder = Path(args.dir)
    train_args = _train_args(args.device, args.steps, args.precision)
    rc = cli.main(["train", *train_args, "--steps", str(args.steps), "--out", str(folder / "straight")])
    if rc != 0:
        return {"passed": False, "error": f"the straight run failed (exit status {rc})"}
    if not resume:
        return {"passed": True}
    half = max(args.steps // 2, 1)
    rc = cli.main(["train", *train_args, "--steps", str(half), "--out", str(folder / "resumed")])
    rc = rc or cli.main(["train", "--resume", str(folder / "resumed"), "--steps", str(args.steps), "--quiet"])
    if rc != 0:
        return {"passed": False, "error": f"the interrupted run or its resume failed (exit status {rc})"}
    diff = _weight_difference(folder / "straight" / "final", folder / "resumed" / "final")
    metrics = [(folder / run / "metrics.jsonl").read_text() for run in ("straight", "resumed")]
    same_metrics = metrics[0] == metrics[1] and bool(metrics[0])
    result = (f"{args.steps} straight vs {half} + resume: "
              + ("bit-identical" if diff["identical"] else f"differs by up to {diff['max_abs_difference']:.2e}")
              + ("" if same_metrics else "; logged metrics differ"))
    return diff | {"passed": diff["identical"] and same_metrics, "metrics_identical": same_metrics,
                   "steps": args.steps, "precision": args.precision, "result": result,
                   "nondeterministic_ops": sorted(set(nondeterministic))}


def worker_torchrun(args: argparse.Namespace) -> dict:
    """Under torchrun at one process: make latentkit join a process group (it would not at WORLD_SIZE=1), train, then
    run a few collectives on the group latentkit made."""
    import torch
    import torch.distributed as dist

    from latentkit import cli
    from latentkit.train import distributed

    _deterministic()
    distributed.launched_by_torchrun = lambda: "LOCAL_RANK" in os.environ
    train_args = _train_args(args.device, args.steps, "float32")
    rc = cli.main(["train", *train_args, "--steps", str(args.steps), "--out", args.dir])
    if not dist.is_initialized():
        return {"passed": False, "rc_train": rc, "error": "latentkit joined no process group under torchrun"}
    backend = dist.get_backend()
    device = torch.device("cuda", torch.cuda.current_device()) if backend == "nccl" else torch.device("cpu")
    t = torch.full((4,), 2.0, device=device)
    dist.all_reduce(t)
    box = [{"rank": dist.get_rank()}]
    dist.broadcast_object_list(box, src=0)
    dist.barrier()
    seen = {"backend": backend, "world_size": dist.get_world_size(),
            "all_reduce_ok": bool(torch.equal(t.cpu(), torch.full((4,), 2.0))), "broadcast_ok": box[0]["rank"] == 0}
    dist.destroy_process_group()  # latentkit's shutdown() leaves only groups of several processes
    want = "nccl" if args.device == "cuda" else "gloo"
    ok = rc == 0 and seen["all_reduce_ok"] and seen["broadcast_ok"] and backend == want
    return seen | {"passed": ok, "rc_train": rc, "expected_backend": want}


def worker_compile(args: argparse.Namespace) -> None:
    """img/s of the MNIST-32 training step under bfloat16 autocast: eager, then the encoder and decoder compiled.

    Prints one JSON line per variant as it is measured, so a time-boxed run keeps what it measured."""
    import torch

    from latentkit.assembly.recipe import apply_overrides, load_recipe
    from latentkit.assembly.session import prepare_run
    from latentkit.plugins import hookimpl, register_plugin

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from throughput import BATCH, CONFIGS

    recipe, *_, data = CONFIGS["mnist32"]
    warmup, steps, log_every = 50, args.timed_steps, 50
    marks: dict[int, float] = {}

    class Timer:
        @hookimpl
        def latentkit_step_end(self, run, step, scalars):
            if args.device == "cuda":
                torch.cuda.synchronize()
            marks[step] = time.perf_counter()

    register_plugin(Timer(), name="gpu-check-timer")
    rates: dict[str, str] = {}
    for variant in args.variants.split(","):
        sets = data + [f"train.steps={warmup + steps}", f"train.log_every={log_every}", "train.figures_every=0",
                       "train.checkpoint_every=10000000", f'train.device="{args.device}"', 'train.precision="bfloat16"',
                       "train.drop_last=true", f"train.batch_size={BATCH}"]
        experiment = apply_overrides(load_recipe(ROOT / "recipes" / recipe), sets).experiment()
        trainer = prepare_run(experiment, out=tempfile.mkdtemp(prefix="gpu-check-compile-") + "/run", quiet=True)
        marks.clear()
        try:
            if variant != "eager":
                mode = None if variant == "compile" else variant
                trainer.model.encoder.compile(mode=mode)
                trainer.model.decoder.compile(mode=mode)
            t0 = time.perf_counter()
            trainer.fit()
            rate = steps * BATCH / (marks[warmup + steps] - marks[warmup])
            rates[variant] = f"{rate:.0f} img/s (first {warmup} steps, compile included: {marks[warmup] - t0:.1f} s)"
        except Exception as exc:  # noqa: BLE001 - one variant failing (CUDA graphs, say) leaves the others measured
            rates[variant] = f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
        print(json.dumps({"rates": rates, "result": ", ".join(f"{k} {v.split(' (')[0]}" for k, v in rates.items())}),
              flush=True)


def worker_main(args: argparse.Namespace) -> None:
    if args.worker == "compile":
        worker_compile(args)
        return
    if args.worker == "torchrun":
        result = worker_torchrun(args)
    else:
        result = worker_train(args, resume=args.worker == "train_resume")
    print(json.dumps(result), flush=True)
    if not result.get("passed"):
        sys.exit(1)


# --- helpers ----------------------------------------------------------------------------------------------------------


def _weight_difference(a: Path, b: Path) -> dict:
    from latentkit.assembly.checkpoint import load_model

    wa, wb = load_model(a)[0].state_dict(), load_model(b)[0].state_dict()
    if wa.keys() != wb.keys():
        return {"identical": False, "max_abs_difference": float("inf"), "error": "the runs' weights differ in names"}
    worst = max((wa[k].double() - wb[k].double()).abs().max().item() for k in wa)
    return {"identical": all(wa[k].equal(wb[k]) for k in wa), "max_abs_difference": worst}


def _reference_folder(given: str | None) -> Path:
    candidates = [given, os.environ.get("LATENTKIT_REFERENCE"),
                  *(base / "shared" / "reference_models" / "jointvae-original" for base in (ROOT, ROOT.parent))]
    for c in candidates:
        if c and Path(c).is_dir():
            return Path(c)
    raise Skip("no reference fixtures found (pass --reference DIR, the folder holding mnist/, chairs/, celeba/; tried "
               + ", ".join(str(c) for c in candidates if c) + ")")


def make_shim(folder: Path) -> Path:
    """A folder that, first on ``sys.path`` with the checkout, makes latentkit importable with its plugins registered,
    uninstalled: its entry points (a ``latentkit-VERSION.dist-info`` written from pyproject.toml) and
    ``latentkit_plugins`` (a link to plugins/).

    Why: a lent GPU machine has no internet, so ``pip install -e ".[dev]"`` cannot fetch what the image lacks
    (lightgbm, ray, mkdocs; setuptools>=77 for an isolated build), and a check that cannot import latentkit would spend
    the machine's minutes on nothing. Nothing is installed: the folder lives in the scratch folder."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    info = folder / f"latentkit-{project['version']}.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: latentkit\nVersion: {project['version']}\n")
    points = project["entry-points"]["latentkit"]
    (info / "entry_points.txt").write_text("[latentkit]\n" + "".join(f"{k} = {v}\n" for k, v in points.items()))
    link = folder / "latentkit_plugins"
    if not link.exists():
        link.symlink_to(ROOT / "plugins", target_is_directory=True)
    return folder


def ensure_importable(work: Path) -> str:
    """How latentkit is found: ``"installed"``, or through :func:`make_shim` (put on ``sys.path`` and on the workers'
    ``PYTHONPATH``) where it is not installed with its plugins."""
    import importlib.metadata
    import importlib.util

    if importlib.util.find_spec("latentkit_plugins") and importlib.metadata.entry_points(group="latentkit"):
        return "installed"
    shim = make_shim(work / "site")
    paths = [str(shim), str(ROOT)]
    sys.path[:0] = paths
    os.environ["PYTHONPATH"] = os.pathsep.join([*paths, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    importlib.invalidate_caches()
    return f"not installed: run from the checkout with {shim} on the path (make_shim)"


def _python() -> list[str]:
    """This interpreter, with ``-S`` where it runs without site-packages' path hooks (a test of :func:`make_shim`)."""
    return [sys.executable, "-S"] if sys.flags.no_site else [sys.executable]


def _nccl_version() -> str:
    import torch

    try:
        version = torch.cuda.nccl.version()
    except Exception as exc:  # noqa: BLE001 - a build without NCCL: the torchrun check will say more
        return f"unavailable ({type(exc).__name__})"
    return ".".join(map(str, version)) if isinstance(version, tuple) else str(version)


def _rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-12)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _git_commit() -> str:
    proc = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                          check=False)
    return proc.stdout.strip() if proc.returncode == 0 else "unknown"


class _time_limit:
    """SIGALRM after ``seconds`` raises :class:`TimeLimit` in an in-process check (workers have their own limits)."""

    def __init__(self, seconds: float):
        self.seconds = seconds

    def __enter__(self):
        self.active = threading.current_thread() is threading.main_thread()  # signals reach the main thread alone
        if not self.active:
            return self

        def expire(signum, frame):
            raise TimeLimit(f"the check ran past its limit of {self.seconds:.0f} s")

        self.previous = signal.signal(signal.SIGALRM, expire)
        signal.setitimer(signal.ITIMER_REAL, self.seconds + 5)  # subprocess limits fire first
        return self

    def __exit__(self, *exc):
        if not self.active:
            return False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, self.previous)
        return False


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", choices=["cuda", "cpu"], help="default: cuda where PyTorch sees a GPU, else cpu")
    p.add_argument("--out", default=os.environ.get("OUT") or str(ROOT / "runs" / "gpu-check"),
                   help="results folder (default $OUT, else runs/gpu-check)")
    p.add_argument("--work", help="scratch folder for the training runs (default: a new temporary folder)")
    p.add_argument("--skip", default="", help=f"comma-separated checks to leave out, from {[c[0] for c in CHECKS]}")
    p.add_argument("--steps", type=int, default=40, help="steps of the tiny training runs (resumed at half)")
    p.add_argument("--budget", type=float, default=470, help="seconds for all checks together")
    p.add_argument("--reference", help="folder holding the original's mnist/, chairs/, celeba/ fixtures")
    p.add_argument("--throughput-args", default="--quick --repeats 1",
                   help='options for benchmarks/throughput.py, after an equals sign: --throughput-args="--quick"')
    p.add_argument("--worker", choices=["train", "train_resume", "torchrun", "compile"], help=argparse.SUPPRESS)
    p.add_argument("--precision", default="float32", help=argparse.SUPPRESS)
    p.add_argument("--dir", help=argparse.SUPPRESS)
    p.add_argument("--timed-steps", type=int, default=300, help=argparse.SUPPRESS)  # the compile worker's
    p.add_argument("--variants", default="eager,compile,reduce-overhead", help=argparse.SUPPRESS)  # likewise
    args = p.parse_args(argv)
    if args.device is None:
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    return args


def main(argv: list[str] | None = None,
         checks: list[tuple[str, Callable[[Context], dict], float]] | None = None) -> int:
    """Run the checks (``checks``: another list, as tests inject a failing one); 0 when none failed."""
    args = parse_args(argv)
    if args.worker:
        worker_main(args)
        return 0
    ctx = Context(args)
    ctx.install = ensure_importable(ctx.work)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    unknown = skip - {c[0] for c in CHECKS}
    if unknown:
        raise SystemExit(f"unknown checks {sorted(unknown)} in --skip; known: {[c[0] for c in CHECKS]}")
    results = run_checks(ctx, CHECKS if checks is None else checks, skip)
    print(f"[gpu_check] results in {ctx.out}/results.jsonl and {ctx.out}/summary.md", flush=True)
    return int(any(r["status"] == "fail" for r in results))


if __name__ == "__main__":
    sys.exit(main())
