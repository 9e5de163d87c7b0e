"""Data-parallel training over processes and nodes with ``torch.distributed``, launched by ``torchrun``.

    torchrun --nproc_per_node 2 -m latentkit train recipes/jointvae_mnist.py --out runs/mnist-ddp
    torchrun --nnodes 2 --node_rank 0 --rdzv_backend c10d --rdzv_endpoint HOST:29500 --nproc_per_node 8 \\
        -m latentkit train RECIPE --out /shared/runs/x

What stays the same at any process count, so that a run means the same thing on 1 or 16 processes:

* the recipe's batch size is the **global** batch; step ``s`` draws the same global batch (the epoch permutation is a
  function of the seed and the epoch) and rank ``r`` takes its contiguous share (:meth:`Distributed.rows`);
* the capacity schedule counts **global** steps;
* the sampling noise of an image is its row of the whole batch's draw (every rank holds the same generator and keeps
  its rows: :class:`~latentkit.core.BatchRows`), keyed to its place in the global batch, not to the rank;
* the objective is evaluated once on the **global** batch means: each rank's statistics (its batch means, weighted by
  its share) are all-reduced before ``|KL − C|`` is applied, and each rank back-propagates its share of the gradient;
  :class:`~torch.nn.parallel.DistributedDataParallel` then sums the parameter gradients across ranks. Logged KLs and
  capacities are therefore the global ones.

Rank 0 alone writes the run directory (config, checkpoints, metrics, figures: run-time hooks are called on rank 0
only); every rank reads the same checkpoint on ``--resume``. A stop signal on any rank stops all of them after the same
step (the flag is all-reduced every step). A rank that fails makes ``torchrun`` end the others; collectives time out
after ``LATENTKIT_DIST_TIMEOUT`` seconds (default 300) instead of hanging. Backends: NCCL on GPUs, gloo on CPUs.
"""

from __future__ import annotations

import datetime as _dt
import os
from typing import Any

import attrs
import torch
import torch.distributed as dist

from latentkit.core import BatchRows
from latentkit.errors import ConfigError

DEFAULT_TIMEOUT_S = 300


@attrs.frozen
class Distributed:
    """This process's place in a process group that ``torch.distributed`` has initialised."""

    rank: int
    world_size: int
    local_rank: int
    backend: str

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def rows(self, batch_size: int) -> BatchRows | None:
        """This rank's share of a global batch of ``batch_size`` (sizes differ by at most one), ``None`` if empty."""
        base, extra = divmod(batch_size, self.world_size)
        count = base + (1 if self.rank < extra else 0)
        start = self.rank * base + min(self.rank, extra)
        return BatchRows(start, count, batch_size) if count else None

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def any(self, flag: bool, device: torch.device) -> bool:
        """True on every rank when ``flag`` is true on any."""
        t = torch.tensor([1.0 if flag else 0.0], device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item() > 0)

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank (small picklable values: a run directory's name)."""
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        dist.barrier()


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def initialise(device_type: str) -> Distributed | None:
    """Join the process group ``torchrun`` describes in the environment; ``None`` for a single process."""
    if not launched_by_torchrun():
        return None
    if not dist.is_available():
        raise ConfigError("this PyTorch build has no torch.distributed; train with a single process")
    backend = "nccl" if device_type == "cuda" else "gloo"
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device_type == "cuda":
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        timeout = _dt.timedelta(seconds=float(os.environ.get("LATENTKIT_DIST_TIMEOUT", DEFAULT_TIMEOUT_S)))
        dist.init_process_group(backend=backend, timeout=timeout)
    return Distributed(dist.get_rank(), dist.get_world_size(), local_rank, backend)


def shutdown(ctx: Distributed | None) -> None:
    if ctx is not None and dist.is_initialized():
        dist.destroy_process_group()


class NoHooks:
    """The run-time hook relay of a rank other than 0: every hook call does nothing."""

    def __getattr__(self, name: str):
        return lambda **_kwargs: []
