"""FactorVAE's discriminator-based total-correlation penalty (Kim & Mnih 2018), added to the JointVAE objective.

A discriminator D learns to tell samples of the joint latent z ~ q(z) from samples of the product of its marginals
Π_u q(z_u) — the batch's samples with every unit's values shuffled independently across the batch. Its logit
approximates log q(z) − log Π_u q(z_u), so the batch mean of D's logit on z estimates the total correlation, and the
model minimises ``tc_weight`` times it on top of the JointVAE objective (reconstruction + Σ_c γ_c·|KL_c − C_c|, any
``jointvae`` option).

Joint latents: a unit is whatever columns its family gives it (a categorical variable's K relaxed one-hot columns move
together), so shuffled samples stay valid samples of each family.

Training: D is a trainable part of the objective (:meth:`Objective.trainable`), optimised by the trainer in its own Adam
group (the paper's lr 1e-4, betas (0.5, 0.9)) and checkpointed with the run. One backward pass trains both: the
model's term evaluates D with detached parameters (no gradient reaches D), D's cross-entropy sees detached samples (no
gradient reaches the model). Unlike the paper, which shuffles the codes of a second batch, the shuffled samples come
from the same batch (as pythae does), so a step costs one encoder pass; the permutation is a pure function of the
objective's ``seed`` and the step, so a resumed run draws the same one.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from latentkit.core import JointLatent, ModelOutput, Objective
from latentkit.plugins import hookimpl
from latentkit.validation import Rule, check, non_negative_float, non_negative_int, positive_int

#: Adam's betas for the discriminator: two numbers in [0, 1)
BETAS = Rule(
    lambda v: isinstance(v, Sequence) and not isinstance(v, str) and len(v) == 2
    and all(non_negative_float.test(b) and b < 1 for b in v),
    "two numbers in [0, 1)", "[0.5, 0.9]",
)


class Discriminator(nn.Module):
    """An MLP from the latent vector to one logit ("drawn from q(z)" against "from the product of marginals"); the
    paper's is 6 layers of 1000 units with leaky ReLUs."""

    def __init__(self, in_features: int, hidden: int = 1000, layers: int = 6):
        super().__init__()
        blocks: list[nn.Module] = []
        width = in_features
        for _ in range(layers):
            blocks += [nn.Linear(width, hidden), nn.LeakyReLU(0.2)]
            width = hidden
        blocks.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*blocks)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z).squeeze(-1)


def unit_columns(latent: JointLatent) -> list[slice]:
    """The columns of every unit of the joint latent vector, channels in order."""
    out = []
    for name, family in latent.items():
        start = latent.sample_slices()[name].start
        for unit in range(family.unit_count):
            sl = family.unit_slice(unit)
            out.append(slice(start + sl.start, start + sl.stop))
    return out


def permute_units(z: Tensor, columns: Sequence[slice], generator: torch.Generator) -> Tensor:
    """Shuffle each unit's values independently across the batch: samples of Π_u q(z_u)."""
    m = z.shape[0]
    parts = []
    for cols in columns:
        order = torch.randperm(m, generator=generator).to(z.device)
        parts.append(z[:, cols].index_select(0, order))
    return torch.cat(parts, dim=1)


class FactorVAEObjective(Objective):
    objective_name = "factorvae"

    def __init__(
        self,
        base: Objective,
        latent: JointLatent,
        tc_weight: float = 10.0,
        discriminator_hidden: int = 1000,
        discriminator_layers: int = 6,
        discriminator_lr: float = 1e-4,
        discriminator_betas: Sequence[float] = (0.5, 0.9),
        seed: int = 0,
    ):
        self.base = base
        self.latent = latent
        self.tc_weight = check("tc_weight", tc_weight, non_negative_float, owner="factorvae", example="10.0")
        hidden = check("discriminator_hidden", discriminator_hidden, positive_int, owner="factorvae", example="1000")
        layers = check("discriminator_layers", discriminator_layers, positive_int, owner="factorvae", example="6")
        lr = check("discriminator_lr", discriminator_lr, non_negative_float, owner="factorvae", example="1e-4")
        check("discriminator_betas", discriminator_betas, BETAS, owner="factorvae", example="[0.5, 0.9]")
        betas = tuple(float(b) for b in discriminator_betas)
        self.seed = check("seed", seed, non_negative_int, owner="factorvae")
        self.discriminator = Discriminator(latent.sample_size, hidden, layers)
        self.options = {"lr": lr, "betas": betas}
        self.columns = unit_columns(latent)
        self.divisor = float(getattr(base, "divisor", 1.0))

    def trainable(self) -> nn.Module:
        return self.discriminator

    def optimizer_options(self) -> dict:
        return dict(self.options)

    def _permutation_generator(self, step: int) -> torch.Generator:
        return torch.Generator().manual_seed((self.seed * 1_000_003 + step) % (2**63))

    def __call__(self, x: Tensor, output: ModelOutput, step: int) -> dict[str, Tensor]:
        logs = self.base(x, output, step)
        z = output.latent
        frozen = {name: p.detach() for name, p in self.discriminator.named_parameters()}
        tc = functional_call(self.discriminator, frozen, (z,)).mean()  # the model's term: no gradient into D
        real = z.detach()
        shuffled = permute_units(real, self.columns, self._permutation_generator(step))
        logits_real, logits_shuffled = self.discriminator(torch.cat([real, shuffled])).chunk(2)  # one pass for both
        d_loss = 0.5 * (
            F.binary_cross_entropy_with_logits(logits_real, torch.ones_like(logits_real))
            + F.binary_cross_entropy_with_logits(logits_shuffled, torch.zeros_like(logits_shuffled))
        )
        with torch.no_grad():
            accuracy = 0.5 * ((logits_real > 0).float().mean() + (logits_shuffled <= 0).float().mean())
        logs["objective"] = logs["objective"] + self.tc_weight * tc
        logs["loss"] = logs["loss"] + self.tc_weight * tc / self.divisor + d_loss
        logs["tc/estimate"] = tc
        logs["discriminator/loss"] = d_loss
        logs["discriminator/accuracy"] = accuracy
        return logs


def build_factorvae_objective(registry, latent: JointLatent, image_shape: tuple[int, ...], **options) -> FactorVAEObjective:
    """Options of :class:`FactorVAEObjective`, and ``terms`` and every other option as for ``jointvae``."""
    return registry.extend_objective("jointvae", FactorVAEObjective, latent=latent, image_shape=image_shape, **options)


@hookimpl
def latentkit_register_objectives(registry):
    registry.add("factorvae", build_factorvae_objective)
