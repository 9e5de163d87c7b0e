"""The generic trainer.

It trains any :class:`~latentkit.train.task.TrainingTask` on samples held in memory (uint8 images, scaled to [0, 1] when
drawn, or float32 samples used as they are) with Adam, and calls the run-time hooks (``latentkit_run_start``,
``latentkit_step_end``, ``latentkit_evaluate``, ``latentkit_checkpoint``, ``latentkit_run_end``); logging, progress
display, pictures and metrics are plugins implementing them.

One step path, at any number of processes: this process's rows of the step's batch → ``task.training_step`` →
``loss.backward()`` → the gradients summed over the processes (nothing to do in a single process) → the optimiser step.

Guarantees:

* **Resume is exact**: batches are a pure function of the step, training noise a pure function of (seed, step, row),
  and the weights, optimiser moments and RNG states are checkpointed, so N steps + resume to 2N equals 2N
  uninterrupted steps bit for bit (CPU, same seed).
* **No data loss**: checkpoint folders are written whole and swapped in; SIGINT/SIGTERM finish the current step and
  write a checkpoint; a NaN/Inf loss (or non-finite weights) stops the run before anything bad is written, naming
  the step and the last good checkpoint.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import signal
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import attrs
import pluggy
import torch
from torch import Tensor, nn

import latentkit
from latentkit.data.provider import ImageData, as_float_batch
from latentkit.devices import use_channels_last
from latentkit.errors import ConfigError, LatentkitError
from latentkit.precision import autocast
from latentkit.train.checkpoints import (
    FINAL,
    FORMAT,
    FORMAT_VERSION,
    RESERVED_NAMES,
    list_checkpoints,
    load_training_checkpoint,
    save_training_checkpoint,
    step_folder,
)
from latentkit.train.config import TrainConfig
from latentkit.train.distributed import Processes, initialise
from latentkit.train.hooks import NoHooks, as_relay
from latentkit.train.run import Run
from latentkit.train.sampler import EpochSampler
from latentkit.train.task import StepContext, TrainingTask


class NumericalFault(LatentkitError):
    """The loss or the weights stopped being finite."""


class Interrupted(LatentkitError):
    """SIGINT/SIGTERM stopped the run after a checkpoint was written."""

    exit_code = 130  # the shell's convention for a run stopped by a signal


class Trainer:
    """Trains ``task`` on ``data`` for ``config.steps`` steps, checkpointing into ``directory``.

    Args:
        task: what to train (:class:`~latentkit.train.task.TrainingTask`; :class:`~latentkit.train.task.BaseTask`
            gives its defaults).
        data: the training samples: an :class:`~latentkit.data.provider.ImageData`, or a tensor ``(N, ...)`` of uint8
            images (divided by 255 when drawn) or float32 samples (used as they are).
        config: the trainer's settings; the trainer applies its ``threads``, ``device`` and ``memory_format`` itself.
        directory: the run directory: checkpoints (``checkpoints/step-N``, ``final``) and whatever the hooks write.
        hooks: run-time hooks: a list of plain objects with methods named after the hooks
            (``latentkit_step_end(run, step, scalars)``, ...), pluggy's relay (``plugin_manager.hook``), or ``None``.
        checkpoint_metadata: JSON-able entries written into every checkpoint's ``config.json`` (the ``latentkit``
            command writes what rebuilds the model).
        run_config: the run's saved configuration, which hooks see as ``run.config``.
        processes: the processes to train on (:func:`~latentkit.train.distributed.initialise`); by default this
            process joins the process group ``torchrun`` describes, else trains alone.
        quiet: hooks should print nothing.

    Call :meth:`resume_from_latest` before :meth:`fit` to continue a run from its newest checkpoint.
    """

    def __init__(
        self,
        task: TrainingTask,
        data: ImageData | Tensor,
        config: TrainConfig,
        directory: str | os.PathLike,
        hooks: pluggy.HookRelay | Iterable[object] | None = None,
        checkpoint_metadata: dict | None = None,
        *,
        run_config: dict | None = None,
        processes: Processes | None = None,
        quiet: bool = False,
    ):
        self.task = _checked_task(task)
        self.config = config
        self.processes = processes if processes is not None else initialise(config.device)
        self.device = self.processes.device(config.device)
        self.channels_last = use_channels_last(config.memory_format, self.device)
        self.model = self._place(task.module)
        self.extra_modules = {name: self._place(module) for name, module in _checked_extras(task).items()}
        self.optimizer = make_adam(list(self.model.parameters()), config.lr, task.extra_parameter_groups())
        _check_groups_are_saved(self.optimizer, self.model, self.extra_modules)
        #: each group's learning rate before any decay (a resumed optimiser's groups hold the decayed ones)
        self._base_lrs = [group["lr"] for group in self.optimizer.param_groups]
        #: every parameter the optimiser updates (its groups are fixed): whose gradients are summed over processes
        self.trained_parameters = [p for group in self.optimizer.param_groups for p in group["params"]]
        self.checkpoint_metadata = dict(checkpoint_metadata or {})
        data = _as_data(data)
        self.sampler = EpochSampler(len(data), config.batch_size, config.seed, config.drop_last)
        self.hooks = as_relay(hooks) if self.processes.is_main else NoHooks()
        self.run = Run(
            directory=Path(directory), config=run_config or {}, total_steps=config.steps, model=self.model,
            device=self.device, data=attrs.evolve(data, images=data.images.to(self.device)), quiet=quiet,
            hooks=self.hooks,
        )
        self._check_processes()
        self._stop_signal: int | None = None

    # --- construction ------------------------------------------------------------------------------------------------
    def _place(self, module: nn.Module) -> nn.Module:
        module.to(self.device)
        if self.channels_last:
            module.to(memory_format=torch.channels_last)
        return module

    def _check_processes(self) -> None:
        """Every process needs at least one row of every batch."""
        world = self.processes.world_size
        if world == 1:
            return
        if self.config.batch_size < world:
            raise ConfigError(
                f"the global batch of {self.config.batch_size} cannot be shared by {world} processes; use a batch of "
                f"at least one sample per process"
            )
        last = len(self.run.data) % self.config.batch_size
        if last and not self.config.drop_last and last < world:
            raise ConfigError(
                f"each epoch ends with a batch of {last} samples, fewer than the {world} processes; set "
                f"train.drop_last=true or another batch size"
            )

    @property
    def is_main(self) -> bool:
        return self.processes.is_main


    # --- resume ------------------------------------------------------------------------------------------------------
    def resume_from_latest(self) -> int:
        """Load the newest complete checkpoint of the run directory; returns its step (0 when there is none)."""
        found = list_checkpoints(self.run.directory)
        if not found:
            return 0
        step, folder = found[-1]
        load_training_checkpoint(folder, self.model, self.optimizer, self.extra_modules)
        self.run.step = step
        self.run.resumed_from = step
        self.run.last_checkpoint = folder
        return step

    # --- the loop ----------------------------------------------------------------------------------------------------
    def fit(self) -> Run:
        """Train from the current step (0, or the one :meth:`resume_from_latest` loaded) to ``config.steps``; the
        last checkpoint is written to ``DIRECTORY/final``. Returns the run."""
        start = self._first_step()
        self.run.directory.mkdir(parents=True, exist_ok=True)
        self.hooks.latentkit_run_start(run=self.run)
        status = "failed"
        try:
            with self._signals(), self._threads():
                self.model.train()
                for step in range(start, self.config.steps + 1):
                    scalars = self._train_step(step)
                    self._after_step(step, scalars)
                self._finish()
            status = "completed"
        except Interrupted:
            status = "interrupted"
            raise
        finally:
            self.hooks.latentkit_run_end(run=self.run, status=status)
        return self.run

    def _first_step(self) -> int:
        """The step to train first; refuses a finished run and a directory holding another run's checkpoints."""
        done = self.run.step
        if done >= self.config.steps:
            raise LatentkitError(
                f"the run in {str(self.run.directory)!r} already completed {done} steps; ask for more with --steps "
                f"(the total, e.g. --steps {2 * done})"
            )
        if done == 0 and list_checkpoints(self.run.directory):
            raise LatentkitError(
                f"{str(self.run.directory)!r} holds checkpoints of an earlier run; continue it (resume_from_latest(), "
                f"or `latentkit train --resume`) or train into another directory"
            )
        return done + 1

    def _train_step(self, step: int) -> dict[str, Tensor]:
        """One optimiser step on step ``step``'s batch; returns the task's scalars."""
        batch, context = self._batch(step)
        self.optimizer.zero_grad(set_to_none=True)
        try:
            with self._autocast():
                scalars = self.task.training_step(batch, step, context)
            loss = scalars["loss"]
            loss.backward()
        except RuntimeError as exc:
            # Non-finite weights make some ops raise (BCE rejects NaN probabilities): report it as what it is.
            bad = self._non_finite_parameters()
            if bad:
                raise NumericalFault(self._fault_message(step, f"parameters {bad[:3]} are no longer finite")) from exc
            raise
        self.processes.all_reduce_gradients(self.trained_parameters)
        self._check_loss(loss, step)
        if self.config.lr_decay_start:
            factor = self.config.learning_rate_factor(step)
            for group, base in zip(self.optimizer.param_groups, self._base_lrs):
                group["lr"] = base * factor
        self.optimizer.step()
        self.run.step = step
        return scalars

    def _batch(self, step: int) -> tuple[Tensor, StepContext]:
        """This process's rows of step ``step``'s batch, as the float batch the task reads, and their context."""
        index = self.sampler.indices(step)
        rows = self.processes.rows(index.shape[0])
        images = self.run.data.images  # type: ignore[union-attr]
        batch = as_float_batch(images.index_select(0, index[rows.start : rows.stop].to(images.device)))
        if self.channels_last and batch.dim() == 4:  # image batches only; signals and vectors as they are
            batch = batch.contiguous(memory_format=torch.channels_last)
        context = StepContext(
            rows=rows,
            batch_size=index.shape[0],
            seed=self.config.seed,
            step=step,
            rank=self.processes.rank,
            world_size=self.processes.world_size,
            device=self.device,
            all_reduce_sum=self.processes.all_reduce_sum,
        )
        return batch, context

    def _check_loss(self, loss: Tensor, step: int) -> None:
        """Stop on a non-finite loss. On a GPU reading it waits for the step, so it is read at logging steps only (a
        fault in between still never reaches a checkpoint, which refuses non-finite weights)."""
        if self.device.type != "cpu" and step % self.config.log_every:
            return
        value = loss.detach().item()
        if not math.isfinite(value):
            raise NumericalFault(self._fault_message(step, f"the loss is {value}"))

    def _after_step(self, step: int, scalars: dict[str, Tensor]) -> None:
        """Log, evaluate, checkpoint and honour a stop signal, as the settings ask at this step."""
        if step % self.config.log_every == 0:
            logged = {k: float(v.detach()) for k, v in scalars.items()}
            self.hooks.latentkit_step_end(run=self.run, step=step, scalars=logged)
        if self.config.eval_every and step % self.config.eval_every == 0:
            self._evaluate(step)
        if step % self.config.checkpoint_every == 0 or step == self.config.steps:
            self.checkpoint(step)
        self._stop_if_signalled(step)

    def _stop_if_signalled(self, step: int) -> None:
        """After a stop signal on any process: checkpoint this step (if not done) and raise :class:`Interrupted`."""
        stop = self.processes.any(self._stop_signal is not None, self.device)  # every rank stops after the same step
        if not stop:
            return
        if self._stop_signal is None:
            self._stop_signal = signal.SIGTERM
        if self.run.last_checkpoint != step_folder(self.run.directory, step):
            self.checkpoint(step)
        self.processes.barrier()  # no rank leaves while rank 0 still writes
        raise Interrupted(
            f"stopped by signal {signal.Signals(self._stop_signal).name} after step {step}; checkpoint "
            f"{self.run.last_checkpoint}; continue with `latentkit train --resume {self.run.directory} --steps "
            f"{self.config.steps}`"
        )

    def _finish(self) -> None:
        """The end of the run: the final evaluation, then the final checkpoint."""
        self._evaluate(self.config.steps)
        self.checkpoint(self.config.steps, final=True)
        self.processes.barrier()

    def _evaluate(self, step: int) -> None:
        self.model.eval()
        try:
            with torch.no_grad():
                self.hooks.latentkit_evaluate(run=self.run, step=step)
        finally:
            self.model.train()

    # --- checkpoints -------------------------------------------------------------------------------------------------
    def checkpoint(self, step: int, final: bool = False) -> Path:
        """Write the step's checkpoint (``final``: the run's ``final`` folder) unless the weights are no longer
        finite; prune old step checkpoints; call the ``latentkit_checkpoint`` hook."""
        bad = self._non_finite_parameters()
        if bad:
            raise NumericalFault(self._fault_message(step, f"parameters {bad[:3]} are no longer finite"))
        folder = self.run.directory / FINAL if final else step_folder(self.run.directory, step)
        if self.is_main:  # rank 0 alone writes; every rank reads the same folder on resume
            save_training_checkpoint(folder, self.model, self.optimizer, self._checkpoint_config(step),
                                     self.extra_modules)
            if not final:
                self._prune(keep=folder)
        self.run.last_checkpoint = folder
        self.hooks.latentkit_checkpoint(run=self.run, step=step, folder=folder)
        return folder

    def _checkpoint_config(self, step: int) -> dict:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "latentkit_version": latentkit.__version__,
            **self.checkpoint_metadata,
            "train": attrs.asdict(self.config),
            "step": step,
        }

    def _prune(self, keep: Path) -> None:
        for _old_step, old in list_checkpoints(self.run.directory)[: -self.config.keep_checkpoints]:
            if old != keep:
                shutil.rmtree(old, ignore_errors=True)

    def _non_finite_parameters(self) -> list[str]:
        named = list(self.model.named_parameters())
        for name, module in self.extra_modules.items():
            named += [(f"{name}.{n}", p) for n, p in module.named_parameters()]
        return [n for n, p in named if not torch.isfinite(p).all()]

    def _fault_message(self, step: int, what: str) -> str:
        last = self.run.last_checkpoint
        where = f"the last good checkpoint is {last}" if last else "no checkpoint was written before it"
        return (
            f"numerical fault at step {step}: {what}. The run stopped; {where} (it was not overwritten). Lower the "
            f"learning rate (--set train.lr=...) or check the data, then resume or start again."
        )

    # --- the environment of the loop ---------------------------------------------------------------------------------
    def _autocast(self) -> contextlib.AbstractContextManager:
        """The task's step under ``config.precision`` (backward runs outside: autograd keeps each op's dtype)."""
        return autocast(self.config.precision, self.device)

    @contextlib.contextmanager
    def _threads(self):
        """``config.threads`` intra-op threads while training (0: leave PyTorch's setting), restored afterwards."""
        before = torch.get_num_threads()
        if self.config.threads:
            torch.set_num_threads(self.config.threads)
        try:
            yield
        finally:
            torch.set_num_threads(before)

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


def make_adam(params: list[nn.Parameter], lr: float, extra_groups: list[dict] | None = None) -> torch.optim.Adam:
    """Adam with the fused kernel (one pass per parameter instead of ~10 elementwise ops) where PyTorch has it for the
    device, else the default implementation. Both compute Adam's update in float32; resume uses the same one.
    ``extra_groups``: further parameter groups with their own options (an objective's discriminator)."""
    groups = [{"params": params}, *(extra_groups or [])]
    try:
        return torch.optim.Adam(groups, lr=lr, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(groups, lr=lr)


def _checked_task(task: Any) -> TrainingTask:
    if not isinstance(task, TrainingTask):
        raise ConfigError(
            f"{type(task).__name__} is not a TrainingTask (module, training_step, extra_parameter_groups, "
            f"extra_modules); subclass latentkit.train.BaseTask for the defaults (no extra parameters) and set module "
            f"and training_step"
        )
    if not isinstance(task.module, nn.Module):
        raise ConfigError(f"{type(task).__name__}.module must be a torch.nn.Module, got {type(task.module).__name__}")
    return task


def _checked_extras(task: TrainingTask) -> dict[str, nn.Module]:
    extras = dict(task.extra_modules())
    for name, module in extras.items():
        if not name.isidentifier() or name in RESERVED_NAMES or not isinstance(module, nn.Module):
            raise ConfigError(
                f"{type(task).__name__}.extra_modules() must map names (identifiers other than "
                f"{sorted(RESERVED_NAMES)}) to torch.nn.Module objects; got {name!r}: {type(module).__name__}"
            )
    return extras


def _check_groups_are_saved(optimizer: torch.optim.Optimizer, model: nn.Module, extras: dict[str, nn.Module]) -> None:
    """Every parameter the optimiser trains must be in a checkpoint, or resume would not be exact."""
    saved = {id(p) for p in model.parameters()}
    for module in extras.values():
        saved |= {id(p) for p in module.parameters()}
    stray = sum(1 for group in optimizer.param_groups[1:] for p in group["params"] if id(p) not in saved)
    if stray:
        raise ConfigError(
            f"{stray} parameter(s) of extra_parameter_groups() belong to neither the task's module nor its "
            f"extra_modules(), so checkpoints would not save them; return their module from extra_modules()"
        )


def _as_data(data: ImageData | Tensor) -> ImageData:
    if isinstance(data, ImageData):
        return data
    if isinstance(data, Tensor):
        return ImageData(images=data)
    raise ConfigError(f"data must be a latentkit ImageData or a tensor of samples (N, ...), got {type(data).__name__}")
