"""The processes a run trains on: one, or several joined by ``torch.distributed`` (launched by ``torchrun``).

    torchrun --nproc_per_node 2 -m latentkit train recipes/jointvae_mnist.py --out runs/mnist-ddp
    torchrun --nnodes 2 --node_rank 0 --rdzv_backend c10d --rdzv_endpoint HOST:29500 --nproc_per_node 8 \\
        -m latentkit train RECIPE --out /shared/runs/x

A single process is the same code path at world size 1: it holds all of the batch, and every collective below is the
identity. What stays the same at any process count, so that a run means the same thing on 1 or 16 processes:

* the configured batch size is the **global** batch; step ``s`` draws the same global batch (the epoch permutation is a
  function of the seed and the epoch) and rank ``r`` takes its contiguous rows (:meth:`Processes.rows`);
* the step counts **global** steps;
* a row's training noise is keyed by (run seed, step, the row's **global** index in the batch)
  (:class:`~latentkit.core.SampleNoise`), so it does not depend on which process holds the row;
* a loss that is a function of batch means (:meth:`~latentkit.train.task.StepContext.global_mean`) is evaluated on the
  **global** batch's means; each rank back-propagates its rows' share of the gradient, and the parameter gradients are
  then summed across ranks (:meth:`Processes.all_reduce_gradients`) — the gradient of one process on the whole batch.

Rank 0 alone writes the run directory (config, checkpoints, metrics, figures: run-time hooks are called on rank 0
only); every rank reads the same checkpoint on resume. A stop signal on any rank stops all of them after the same
step (the flag is all-reduced every step). A rank that fails makes ``torchrun`` end the others; collectives time out
after ``LATENTKIT_DIST_TIMEOUT`` seconds (default 300) instead of hanging. Backends: NCCL on GPUs, gloo on CPUs.
"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Iterable
from typing import Any

import attrs
import torch
import torch.distributed as dist

from latentkit.devices import resolve_device
from latentkit.errors import ConfigError

DEFAULT_TIMEOUT_S = 300


@attrs.frozen
class Processes:
    """This process's place among the processes of a run (``world_size`` 1: a single process, no process group)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None  #: ``"gloo"`` or ``"nccl"``; ``None`` for a single process

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def rows(self, batch_size: int) -> range:
        """This rank's contiguous rows of a global batch of ``batch_size`` (shares differ by at most one row)."""
        base, extra = divmod(batch_size, self.world_size)
        count = base + (1 if self.rank < extra else 0)
        start = self.rank * base + min(self.rank, extra)
        return range(start, start + count)

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """``tensor`` summed over the processes, in place (the identity for one process)."""
        if self.world_size > 1:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def all_reduce_gradients(self, params: Iterable[torch.nn.Parameter]) -> None:
        """Sum the parameters' gradients over the processes (one collective per dtype and device).

        A parameter without a gradient on every rank keeps none, as in a single process (the optimiser skips it); one
        that has a gradient on some ranks only gets zeros on the others before the sum."""
        if self.world_size == 1:
            return
        params = list(params)
        if not params:
            return
        device = params[0].device
        has = torch.tensor([0.0 if p.grad is None else 1.0 for p in params], device=device)
        has = self.all_reduce_max(has)
        buckets: dict[tuple[torch.dtype, torch.device], list[torch.nn.Parameter]] = {}
        for p, flag in zip(params, has.tolist()):
            if flag > 0:
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
                buckets.setdefault((p.grad.dtype, p.grad.device), []).append(p)
        for bucket in buckets.values():
            flat = self.all_reduce_sum(torch.cat([p.grad.reshape(-1) for p in bucket]))
            offset = 0
            for p in bucket:
                n = p.grad.numel()
                p.grad.copy_(flat[offset : offset + n].view(p.grad.shape))
                offset += n

    def all_reduce_max(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.world_size > 1:
            dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return tensor

    def any(self, flag: bool, device: torch.device) -> bool:
        """True on every rank when ``flag`` is true on any."""
        if self.world_size == 1:
            return flag
        return bool(self.all_reduce_max(torch.tensor([1.0 if flag else 0.0], device=device)).item() > 0)

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank (small picklable values: a run directory's name)."""
        if self.world_size == 1:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        if self.world_size > 1:
            dist.barrier()

    def device(self, setting: str) -> torch.device:
        """The device this process trains on: ``setting`` (``"auto"``, ``"cpu"``, ``"cuda"``), and on GPUs under
        ``torchrun`` the GPU of this process's local rank."""
        device = resolve_device(setting)
        if self.world_size > 1 and device.type == "cuda":
            return torch.device("cuda", self.local_rank)
        return device


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def initialise(device_setting: str) -> Processes:
    """Join the process group ``torchrun`` describes in the environment; a single :class:`Processes` otherwise.

    ``device_setting`` picks the backend (NCCL for CUDA, gloo otherwise). Joining twice is harmless."""
    if not launched_by_torchrun():
        return Processes()
    if not dist.is_available():
        raise ConfigError("this PyTorch build has no torch.distributed; train with a single process")
    device_type = resolve_device(device_setting).type
    backend = "nccl" if device_type == "cuda" else "gloo"
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device_type == "cuda":
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        timeout = _dt.timedelta(seconds=float(os.environ.get("LATENTKIT_DIST_TIMEOUT", DEFAULT_TIMEOUT_S)))
        dist.init_process_group(backend=backend, timeout=timeout)
    return Processes(dist.get_rank(), dist.get_world_size(), local_rank, backend)


def shutdown(processes: Processes) -> None:
    """Leave the process group (nothing for a single process)."""
    if processes.world_size > 1 and dist.is_initialized():
        dist.destroy_process_group()
