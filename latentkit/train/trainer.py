"""The generic trainer.

It trains any :class:`~latentkit.train.task.TrainingTask` on in-memory uint8 images with Adam, and calls the run-time
hooks (``latentkit_run_start``, ``latentkit_step_end``, ``latentkit_evaluate``, ``latentkit_checkpoint``,
``latentkit_run_end``); logging, progress display, pictures and metrics are plugins implementing them.

Guarantees:

* **Resume is exact**: batches are a pure function of the step, and the weights, optimiser moments and RNG states are
  checkpointed, so N steps + resume to 2N equals 2N uninterrupted steps bit for bit (CPU, same seed).
* **No data loss**: checkpoint folders are written whole and swapped in; SIGINT/SIGTERM finish the current step and
  write a checkpoint; a NaN/Inf loss (or non-finite weights) stops the run before anything bad is written, naming
  the step and the last good checkpoint.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch

from latentkit.core import BatchRows
from latentkit.data.provider import as_float_batch
from latentkit.devices import use_channels_last
from latentkit.errors import ConfigError, LatentkitError
from latentkit.train.config import TrainConfig
from latentkit.train.distributed import Distributed
from latentkit.train.run import Run
from latentkit.train.sampler import EpochSampler
from latentkit.train.state import (
    FINAL,
    list_checkpoints,
    load_training_checkpoint,
    save_training_checkpoint,
    step_folder,
)
from latentkit.train.task import TrainingTask


class NumericalFault(LatentkitError):
    """The loss or the weights stopped being finite."""


class Interrupted(LatentkitError):
    """SIGINT/SIGTERM stopped the run after a checkpoint was written."""

    exit_code = 130  # the shell's convention for a run stopped by a signal


class Trainer:
    """Trains ``task`` on ``run.data`` for ``train.steps`` steps, checkpointing into ``run.directory``."""

    def __init__(
        self,
        task: TrainingTask,
        run: Run,
        train: TrainConfig,
        checkpoint_config: dict,
        hook: Any,
        distributed: Distributed | None = None,
    ):
        self.task = task
        self.dist = distributed
        self.run = run
        self.train = train
        self.checkpoint_config = checkpoint_config
        self.hook = hook
        self.model = task.module
        self.channels_last = use_channels_last(train.memory_format, run.device)
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        # Parameters an objective trains beside the model (FactorVAE's discriminator): their own Adam group.
        self.auxiliary = getattr(task, "auxiliary", None)
        groups: list[dict] = []
        if self.auxiliary is not None:
            self.auxiliary.to(run.device)
            groups.append({"params": list(self.auxiliary.parameters()), **getattr(task, "auxiliary_options", {})})
        self.optimizer = make_adam(list(self.model.parameters()), train.lr, groups)
        self.parts = batch_parts(train.batch_parts, run.device, task) if distributed is None else 1
        self.generator = torch.Generator(device=run.device).manual_seed(train.seed)
        assert run.data is not None
        self.sampler = EpochSampler(len(run.data), train.batch_size, train.seed, train.drop_last)
        self.ddp: torch.nn.Module | None = None
        if distributed is not None:
            self.ddp = self._wrap_distributed(distributed)
        self._stop_signal: int | None = None

    @property
    def is_main(self) -> bool:
        return self.dist is None or self.dist.is_main

    def _wrap_distributed(self, ctx: Distributed) -> torch.nn.Module:
        if not getattr(self.task, "splits", lambda: False)():
            raise ConfigError(
                "distributed training evaluates the objective on the global batch's means, so it needs an objective "
                "that is a latentkit.core.StatisticsObjective (as jointvae); train this one with a single process"
            )
        if self.train.batch_size < ctx.world_size:
            raise ConfigError(
                f"the global batch of {self.train.batch_size} cannot be shared by {ctx.world_size} processes; use a "
                f"batch of at least one image per process"
            )
        last = len(self.run.data) % self.train.batch_size
        if last and not self.train.drop_last and last < ctx.world_size:
            raise ConfigError(
                f"each epoch ends with a batch of {last} images, fewer than the {ctx.world_size} processes; set "
                f"train.drop_last=true or another batch size"
            )
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.run.device.index] if self.run.device.type == "cuda" else None
        return DistributedDataParallel(self.model, device_ids=ids)

    # --- resume ------------------------------------------------------------------------------------------------------
    def resume_from_latest(self) -> int:
        """Load the newest complete checkpoint of the run directory; returns its step (0 when there is none)."""
        found = list_checkpoints(self.run.directory)
        if not found:
            return 0
        step, folder = found[-1]
        load_training_checkpoint(folder, self.model, self.optimizer, self.generator, self.auxiliary)
        match_state_layout(self.optimizer)
        self.run.step = step
        self.run.resumed_from = step
        self.run.last_checkpoint = folder
        return step

    # --- the loop ----------------------------------------------------------------------------------------------------
    def fit(self) -> Run:
        run, train = self.run, self.train
        start = run.step
        if start >= train.steps:
            raise LatentkitError(
                f"the run in {str(run.directory)!r} already completed {start} steps; ask for more with --steps "
                f"(the total, e.g. --steps {2 * start})"
            )
        images = run.data.images  # type: ignore[union-attr]
        sync_each_step = run.device.type == "cpu"
        run.directory.mkdir(parents=True, exist_ok=True)
        self.hook.latentkit_run_start(run=run)
        status = "failed"
        try:
            with self._signals(), self._parallel_parts() as map_fn:
                self.model.train()
                for step in range(start + 1, train.steps + 1):
                    idx = self.sampler.indices(step)
                    rows = self.dist.rows(idx.shape[0]) if self.dist is not None else None
                    if rows is not None:  # this rank's share of the global batch
                        idx = rows.take(idx)
                    idx = idx.to(images.device, non_blocking=True)
                    batch = as_float_batch(images.index_select(0, idx))
                    if self.channels_last and batch.dim() == 4:  # image batches only; signals and vectors as they are
                        batch = batch.contiguous(memory_format=torch.channels_last)
                    self.optimizer.zero_grad(set_to_none=True)
                    scalars = self._training_step(batch, step, rows, map_fn)
                    loss = scalars["loss"]  # under torchrun the global batch's: the same on every rank
                    # On a GPU, reading the loss waits for the step to finish: check at logging steps only (a fault in
                    # between still never reaches a checkpoint, which refuses non-finite weights).
                    if (sync_each_step or step % train.log_every == 0) and not torch.isfinite(loss.detach()).item():
                        raise NumericalFault(self._fault_message(step, f"the loss is {loss.item()}"))
                    self.optimizer.step()
                    run.step = step
                    if step % train.log_every == 0:
                        logged = {k: float(v.detach()) for k, v in scalars.items()}
                        self.hook.latentkit_step_end(run=run, step=step, scalars=logged)
                    if train.eval_every and step % train.eval_every == 0:
                        self._evaluate(step)
                    if step % train.checkpoint_every == 0 or step == train.steps:
                        self.checkpoint(step)
                    stop = self._stop_signal is not None
                    if self.dist is not None:  # every rank stops after the same step
                        stop = self.dist.any(stop, run.device)
                        if stop and self._stop_signal is None:
                            self._stop_signal = signal.SIGTERM
                    if stop:
                        if run.last_checkpoint is None or run.last_checkpoint != step_folder(run.directory, step):
                            self.checkpoint(step)
                        if self.dist is not None:  # no rank leaves while rank 0 still writes
                            self.dist.barrier()
                        status = "interrupted"
                        raise Interrupted(
                            f"stopped by signal {signal.Signals(self._stop_signal).name} after step {step}; "
                            f"checkpoint {run.last_checkpoint}; continue with "
                            f"`latentkit train --resume {run.directory} --steps {train.steps}`"
                        )
                self._evaluate(train.steps)
                if self.is_main:
                    save_training_checkpoint(
                        run.directory / FINAL, self.model, self.optimizer, self.generator,
                        dict(self.checkpoint_config, step=train.steps), self.auxiliary,
                    )
                if self.dist is not None:
                    self.dist.barrier()
                status = "completed"
        finally:
            self.hook.latentkit_run_end(run=run, status=status)
        return run

    def _training_step(self, batch: torch.Tensor, step: int, rows: BatchRows | None, map_fn) -> dict[str, torch.Tensor]:
        """Forward and backward of one batch — in one pass, in parts on threads, or as this rank's share — leaving
        the gradients in the parameters; returns the scalars."""
        try:
            if rows is not None:  # data parallel over processes
                with self._autocast():
                    return self.task.training_step_distributed(
                        self.ddp, batch, step, self.generator, rows, self.dist.all_reduce_sum, self.dist.world_size
                    )
            if map_fn is not None:  # in parts, on several threads
                return self.task.training_step_in_parts(batch, step, self.generator, self.parts, map_fn)
            with self._autocast():
                scalars = self.task.training_step(batch, step, self.generator)
            scalars["loss"].backward()
            return scalars
        except RuntimeError as exc:
            # Non-finite weights make some ops raise (BCE rejects NaN probabilities): report it as what it is.
            bad = self._non_finite_parameters()
            if bad:
                raise NumericalFault(self._fault_message(step, f"parameters {bad[:3]} are no longer finite")) from exc
            raise

    def _non_finite_parameters(self) -> list[str]:
        named = list(self.model.named_parameters())
        if self.auxiliary is not None:
            named += [(f"objective.{n}", p) for n, p in self.auxiliary.named_parameters()]
        return [n for n, p in named if not torch.isfinite(p).all()]

    def _evaluate(self, step: int) -> None:
        self.model.eval()
        try:
            with torch.no_grad():
                self.hook.latentkit_evaluate(run=self.run, step=step)
        finally:
            self.model.train()

    def checkpoint(self, step: int) -> Path:
        """Write the step's checkpoint, unless the weights are no longer finite; prune old ones."""
        bad = self._non_finite_parameters()
        if bad:
            raise NumericalFault(self._fault_message(step, f"parameters {bad[:3]} are no longer finite"))
        folder = step_folder(self.run.directory, step)
        if not self.is_main:  # rank 0 alone writes; every rank reads the same folder on resume
            self.run.last_checkpoint = folder
            return folder
        config = dict(self.checkpoint_config, step=step)
        folder = save_training_checkpoint(
            step_folder(self.run.directory, step), self.model, self.optimizer, self.generator, config, self.auxiliary
        )
        self.run.last_checkpoint = folder
        for _old_step, old in list_checkpoints(self.run.directory)[: -self.train.keep_checkpoints]:
            if old != folder:
                _remove_tree(old)
        self.hook.latentkit_checkpoint(run=self.run, step=step, folder=folder)
        return folder

    def _fault_message(self, step: int, what: str) -> str:
        last = self.run.last_checkpoint
        where = f"the last good checkpoint is {last}" if last else "no checkpoint was written before it"
        return (
            f"numerical fault at step {step}: {what}. The run stopped; {where} (it was not overwritten). Lower the "
            f"learning rate (--set train.lr=...) or check the data, then resume or start again."
        )

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.train.amp and self.run.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    @contextlib.contextmanager
    def _parallel_parts(self):
        """A thread pool's ``map`` for batch parts, with one intra-op thread per part; ``None`` when not splitting."""
        if self.parts <= 1:
            yield None
            return
        threads = torch.get_num_threads()
        torch.set_num_threads(max(1, threads // self.parts))
        pool = ThreadPoolExecutor(self.parts, thread_name_prefix="latentkit-part")
        try:
            yield pool.map
        finally:
            pool.shutdown()
            torch.set_num_threads(threads)

    @contextlib.contextmanager
    def _signals(self):
        """SIGINT/SIGTERM set a flag; the loop finishes its step, checkpoints and stops."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum, _frame):
            if self._stop_signal is not None:  # a second signal: stop at once
                raise KeyboardInterrupt
            self._stop_signal = signum

        previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, h in previous.items():
                signal.signal(s, h)


def batch_parts(setting: int, device: torch.device, task: Any) -> int:
    """Parts a batch is computed in: ``setting`` on the CPU for a task that can split, else 1."""
    can_split = bool(getattr(task, "splits", lambda: False)())
    return setting if device.type == "cpu" and can_split else 1


def make_adam(params: list[torch.nn.Parameter], lr: float, extra_groups: list[dict] | None = None) -> torch.optim.Adam:
    """Adam with the fused kernel (one pass per parameter instead of ~10 elementwise ops) where PyTorch has it for the
    device, else the default implementation. Both compute Adam's update in float32; resume uses the same one.
    ``extra_groups``: further parameter groups with their own options (an objective's discriminator)."""
    groups = [{"params": params}, *(extra_groups or [])]
    try:
        return torch.optim.Adam(groups, lr=lr, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(groups, lr=lr)


def match_state_layout(optimizer: torch.optim.Optimizer) -> None:
    """Give loaded optimiser moments their parameter's memory layout (checkpoints store them contiguous)."""
    for group in optimizer.param_groups:
        for param in group["params"]:
            state = optimizer.state.get(param, {})
            for key, value in state.items():
                if isinstance(value, torch.Tensor) and value.shape == param.shape and value.stride() != param.stride():
                    state[key] = torch.empty_like(param, dtype=value.dtype).copy_(value)


def _remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
