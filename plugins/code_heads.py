"""Auxiliary clustering heads beside a discrete code, and an unsupervised rule that lets the best one teach it.

Why: a discrete code trained for invariance (``jointvae_code``'s consistency and balance terms) can settle in a
split-and-merge local optimum — one digit over two categories by handwriting, two digits sharing one — and stay
there for tens of thousands of steps. IIC (Ji et al. 2019) meets the same failure with several clustering heads on one
trunk and keeps the head whose loss is lowest: no labels, only the objective itself. Here the heads are linear maps of
the encoder's last hidden features (the input of its final linear layer, where the code's own logits come from), each
trained with the same consistency and balance terms as the code. Every ``select_every`` steps the head whose loss has
been lowest (an exponential moving average, half-life ``select_every / 2`` steps) becomes the *teacher*: the code's
balanced-assignment target is then the teacher's, its categories permuted to match the code's own as closely as they
can (Hungarian matching of the two heads' co-assignments), so the decoder keeps its categories wherever the two
agree. While the code itself is the best, nothing changes: the code is its own teacher, as without heads.

An optional over-clustering head (more categories than the code, IIC's auxiliary over-clustering) shapes the trunk
with finer clusters; it never teaches.

When every head has settled in the same split-and-merge optimum, no choice among them helps. ``regroup`` then gives
one head a new start: the images of the last few hundred batches (a bank kept here) are over-clustered in the trunk's
features and the clusters merged along the augmentation graph (:mod:`code_regroup`); the worst head is refitted to
that partition, its loss average started afresh, and the lowest-loss rule decides, as for any head, whether it teaches.

The heads and the moving averages are trainable state of the objective (``objective.safetensors`` in checkpoints), so
a resumed run chooses what an uninterrupted one would.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor, nn

from latentkit.errors import ConfigError

#: the EMA's half-life as a share of ``select_every``
HALF_LIFE_SHARE = 0.5


def final_linear(encoder: nn.Module, out_features: int) -> nn.Linear:
    """The encoder's last ``nn.Linear`` with ``out_features`` outputs: the layer the latent's parameters come from."""
    found = [m for m in encoder.modules() if isinstance(m, nn.Linear) and m.out_features == out_features]
    if not found:
        raise ConfigError(
            f"jointvae_code heads read the encoder's last hidden features, the input of a final nn.Linear with "
            f"{out_features} outputs (the latent's parameters); this encoder ({type(encoder).__name__}) has none — "
            f"use a network whose encoder ends in a linear layer (jointvae_conv, mlp) or set heads=1, overcluster=0"
        )
    return found[-1]


class FeatureTap:
    """Keeps the input of a linear layer from its latest call (a forward pre-hook): the features the heads read."""

    def __init__(self, layer: nn.Linear):
        self.features: Tensor | None = None
        self.handle = layer.register_forward_pre_hook(self._keep)

    def _keep(self, module: nn.Module, inputs: tuple[Tensor, ...]) -> None:
        self.features = inputs[0]

    def take(self, rows: int) -> Tensor:
        """The features of the latest call, which must have had ``rows`` rows (the batch the objective was given)."""
        features, self.features = self.features, None
        if features is None or features.shape[0] != rows:
            raise ConfigError(
                "jointvae_code heads read the features of the encoder pass that produced the output they are given; "
                "call the objective right after the model's forward pass on the same batch"
            )
        return features.float()

    def remove(self) -> None:
        self.handle.remove()


class CodeHeads(nn.Module):
    """``extra`` K-way heads (possible teachers), an optional over-clustering head, and their loss averages.

    Buffers: ``loss_ema`` (one per teaching candidate: index 0 is the code itself, 1.. the heads), ``agreement`` (per
    head, the moving average of its co-assignment with the code, K x K), ``teacher`` (the candidate teaching now).
    """

    def __init__(self, hidden: int, categories: int, extra: int, overcluster: int, select_every: int, seed: int,
                 bank_shape: tuple[int, ...] = ()):
        super().__init__()
        generator = torch.Generator().manual_seed(int(seed) * 7919 + 17)
        self.heads = nn.ModuleList(_linear(hidden, categories, generator) for _ in range(extra))
        self.overcluster = _linear(hidden, overcluster, generator) if overcluster else None
        self.select_every = int(select_every)
        self.decay = 0.5 ** (1.0 / max(1.0, HALF_LIFE_SHARE * self.select_every))
        self.register_buffer("loss_ema", torch.zeros(extra + 1))
        self.register_buffer("agreement", torch.full((extra, categories, categories), 1.0 / categories**2))
        self.register_buffer("teacher", torch.zeros((), dtype=torch.long))
        self.register_buffer("seen", torch.zeros((), dtype=torch.long))
        # candidates whose averages start afresh at the next record (a head refitted in this step; never saved, as a
        # checkpoint falls between steps)
        self.fresh: set[int] = set()
        if bank_shape:  # only then, so checkpoints of runs without regrouping load as before
            # the bank of recent training images (float16, a ring), saved with the heads so a resumed run regroups
            # the images an uninterrupted one would
            self.register_buffer("bank", torch.zeros(bank_shape, dtype=torch.float16))
            self.register_buffer("bank_filled", torch.zeros((), dtype=torch.long))
            self.register_buffer("bank_next", torch.zeros((), dtype=torch.long))
            self.register_buffer("regroup_within", torch.full((), float("nan")))
            self.register_buffer("regroup_fit", torch.full((), float("nan")))

    def head_log_probs(self, features: Tensor) -> list[Tensor]:
        """Each teaching head's log q(c|x), float32."""
        return [torch.log_softmax(head(features), dim=1) for head in self.heads]

    def all_log_probs(self, features: Tensor) -> list[Tensor]:
        """The teaching heads' log q(c|x), then the over-clustering head's when there is one."""
        extra = [] if self.overcluster is None else [torch.log_softmax(self.overcluster(features), dim=1)]
        return self.head_log_probs(features) + extra

    @torch.no_grad()
    def record(self, losses: Tensor, code_alpha: Tensor, head_targets: list[Tensor]) -> None:
        """Adds one step's losses (code first) and co-assignments to the moving averages."""
        first = bool(self.seen == 0)
        decay = torch.full_like(self.loss_ema, 0.0 if first else self.decay)
        for candidate in self.fresh:
            decay[candidate] = 0.0
        self.loss_ema.mul_(decay).add_((1 - decay) * losses.detach().to(self.loss_ema))
        for j, target in enumerate(head_targets):
            joint = code_alpha.detach().float().T @ target.detach().float() / code_alpha.shape[0]
            self.agreement[j].mul_(decay[j + 1]).add_((1 - decay[j + 1]) * joint.to(self.agreement))
        self.fresh.clear()
        self.seen.add_(1)

    @torch.no_grad()
    def choose(self, step: int) -> None:
        """At every ``select_every``-th step, the candidate with the lowest average loss becomes the teacher."""
        if self.select_every and step > 0 and step % self.select_every == 0 and int(self.seen) > 0:
            self.teacher.fill_(int(torch.argmin(self.loss_ema)))

    @torch.no_grad()
    def remember(self, x: Tensor) -> None:
        """Adds a batch of training images to the bank (the oldest go first once it is full); only with a bank."""
        size = self.bank.shape[0]
        rows = x.detach().to(self.bank.device, torch.float16)[:size]
        start = int(self.bank_next)
        index = (torch.arange(rows.shape[0], device=self.bank.device) + start) % size
        self.bank[index] = rows
        self.bank_next.fill_((start + rows.shape[0]) % size)
        self.bank_filled.fill_(min(size, int(self.bank_filled) + rows.shape[0]))

    def worst_head(self) -> int:
        """The auxiliary head (0-based) with the highest loss average; never the one teaching now, unless it is the
        only head."""
        losses = self.loss_ema[1:].clone()
        teacher = int(self.teacher)
        if teacher and losses.numel() > 1:
            losses[teacher - 1] = -float("inf")
        return int(torch.argmax(losses))

    @torch.no_grad()
    def restart(self, head: int) -> None:
        """Head ``head`` was refitted: its loss average and its agreement with the code start again at the next step."""
        self.fresh.add(head + 1)

    @torch.no_grad()
    def aligned(self, head: int, target: Tensor) -> Tensor:
        """Head ``head``'s target with its categories renamed to the code's best-matching ones (columns permuted)."""
        agreement = self.agreement[head].double().cpu().numpy()
        code_rows, head_cols = linear_sum_assignment(agreement, maximize=True)
        order = np.empty_like(head_cols)
        order[code_rows] = head_cols  # code category i takes head category order[i]
        return target[:, torch.as_tensor(order, device=target.device)]


def _linear(hidden: int, out: int, generator: torch.Generator) -> nn.Linear:
    """``nn.Linear``'s default initialisation, drawn from ``generator`` so the heads depend on the run's seed only and
    the global RNG (data order, the model's noise) is left as it would be without heads."""
    layer = nn.utils.skip_init(nn.Linear, hidden, out)
    bound = 1.0 / hidden**0.5
    with torch.no_grad():
        layer.weight.uniform_(-bound, bound, generator=generator)
        layer.bias.uniform_(-bound, bound, generator=generator)
    return layer
