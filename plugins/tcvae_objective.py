"""β-TCVAE's decomposition of the KL (Chen et al. 2018), as a term added to the JointVAE objective.

The batch-averaged KL of the posterior to the prior splits into three parts (Chen et al., eq. 2)::

    E[log q(z|x) − log p(z)] =  E[log q(z|x) − log q(z)]          index-code mutual information (MI)
                              + E[log q(z) − Σ_u log q(z_u)]        total correlation (TC)
                              + E[Σ_u log q(z_u) − log p(z_u)]      dimension-wise KL

over every unit u of every channel of the joint latent. The aggregate posterior q(z) = 1/N Σ_n q(z|x_n) and its
marginals q(z_u) are estimated on the batch: each sample is evaluated under every posterior of the batch, weighted by
minibatch stratified sampling (``mss``: the sample's own posterior has weight 1/N, the other M−1 share (N−1)/N; exact
when the batch is the whole data set) or minibatch weighted sampling (``mws``: 1/(N·M) each). N is the training set's
size, which the trainer passes in. Because the three estimated terms share the same estimates of q(z) and q(z_u),
they sum exactly to the same estimator's total KL (logged as ``tc/kl``).

Training samples of relaxed families (Gumbel-Softmax, binary Concrete) are evaluated with their relaxed densities
(:meth:`LatentFamily.log_density`), so for a joint latent the decomposed KL is that of the relaxed posterior; the
per-channel capacity terms still use each family's analytic KL.

The loss is the JointVAE objective (reconstruction + Σ_c γ_c·|KL_c − C_c|, any ``jointvae`` option) plus
``tc_weight``·TC, and optionally ``mi_weight``·MI and ``dimkl_weight``·dimension-wise KL: β-TCVAE itself is
``gamma = 0`` for every channel with ``mi_weight = dimkl_weight = 1`` and ``tc_weight = β``. Not a function of batch
means (every sample meets every posterior of the batch), so the batch is never split across threads or processes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import Tensor

from latentkit.core import JointLatent, LatentContext, ModelOutput, Objective, Params
from latentkit.errors import ConfigError
from latentkit.plugins import hookimpl
from latentkit.validation import check, non_negative_float, one_of, positive_int

ESTIMATORS = ("mss", "mws")


def log_importance_weights(batch: int, dataset_size: int, estimator: str, like: Tensor) -> Tensor:
    """``(M, M)`` log weights w[i, j] of posterior j in the estimate of q(z_i); each row sums to 1."""
    n, m = max(int(dataset_size), batch), batch
    if estimator == "mws":
        return like.new_full((m, m), -math.log(n * m))
    if m == 1:
        return like.new_zeros((1, 1))
    weights = like.new_full((m, m), (n - 1) / (n * (m - 1)))
    weights.fill_diagonal_(1.0 / n)
    return weights.log()


def pairwise_log_density(latent: JointLatent, params: Mapping[str, Params], samples: Mapping[str, Tensor]) -> Tensor:
    """``(M, M, U)``: log q(z_i,u | x_j) for sample i, posterior j and unit u (channels in order)."""
    out = []
    for name, family in latent.items():
        sample = samples[name]
        m = sample.shape[0]
        # Row (i, j) holds sample i and posterior j.
        rows = sample.unsqueeze(1).expand(m, m, *sample.shape[1:]).reshape(m * m, *sample.shape[1:])
        pair_params = {
            k: v.unsqueeze(0).expand(m, *v.shape).reshape(m * m, *v.shape[1:]) for k, v in params[name].items()
        }
        out.append(family.log_density(pair_params, rows).reshape(m, m, family.unit_count))
    return torch.cat(out, dim=-1)


def decompose_kl(
    latent: JointLatent,
    params: Mapping[str, Params],
    samples: Mapping[str, Tensor],
    dataset_size: int,
    estimator: str = "mss",
) -> dict[str, Tensor]:
    """Batch estimates of ``mi``, ``tc``, ``dimkl`` and their sum ``kl`` = E[log q(z|x) − log p(z)] (see the module
    docstring). ``samples`` are the training samples drawn from ``params``."""
    check_factorised_prior(latent)
    logq = pairwise_log_density(latent, params, samples)  # (M, M, U)
    m = logq.shape[0]
    log_w = log_importance_weights(m, dataset_size, estimator, logq)
    log_qz_given_x = logq.diagonal(dim1=0, dim2=1).sum(0)  # (M,): log q(z_i | x_i)
    log_qz = torch.logsumexp(logq.sum(-1) + log_w, dim=1)  # (M,)
    log_prod_qzu = torch.logsumexp(logq + log_w.unsqueeze(-1), dim=1).sum(-1)  # (M,)
    context = LatentContext(params=params, samples=samples)
    log_pz = sum(family.log_prior_density(samples[name], context).sum(-1) for name, family in latent.items())
    mi = (log_qz_given_x - log_qz).mean()
    tc = (log_qz - log_prod_qzu).mean()
    dimkl = (log_prod_qzu - log_pz).mean()
    return {"mi": mi, "tc": tc, "dimkl": dimkl, "kl": (log_qz_given_x - log_pz).mean()}


def check_factorised_prior(latent: JointLatent) -> None:
    dependent = [name for name, family in latent.items() if family.depends_on]
    if dependent:
        raise ConfigError(
            f"the total-correlation decomposition needs a factorised prior, but channel(s) {dependent} have a prior "
            f"that depends on other channels (a mixture prior); use the jointvae objective for this latent"
        )


class TCVAEObjective(Objective):
    """JointVAE's per-channel capacity objective plus weighted terms of the KL's decomposition."""

    objective_name = "tcvae"

    def __init__(
        self,
        base: Objective,
        latent: JointLatent,
        dataset_size: int | None = None,
        tc_weight: float = 6.0,
        mi_weight: float = 0.0,
        dimkl_weight: float = 0.0,
        estimator: str = "mss",
    ):
        self.estimator = check("estimator", estimator, one_of(*ESTIMATORS), owner="tcvae")
        if dataset_size is None:
            raise ConfigError(
                "tcvae needs the training set's size, dataset_size: the trainer passes it; when building the objective "
                "yourself, give it (e.g. dataset_size=60000)"
            )
        self.dataset_size = check("dataset_size", dataset_size, positive_int, owner="tcvae", example="60000")
        check_factorised_prior(latent)
        self.base = base
        self.latent = latent
        self.weights = {
            "tc": check("tc_weight", tc_weight, non_negative_float, owner="tcvae"),
            "mi": check("mi_weight", mi_weight, non_negative_float, owner="tcvae"),
            "dimkl": check("dimkl_weight", dimkl_weight, non_negative_float, owner="tcvae"),
        }
        self.divisor = float(getattr(base, "divisor", 1.0))

    def __call__(self, x: Tensor, output: ModelOutput, step: int) -> dict[str, Tensor]:
        logs = self.base(x, output, step)
        terms = decompose_kl(self.latent, output.params, output.samples, self.dataset_size, self.estimator)
        added = sum(self.weights[k] * terms[k] for k in self.weights)
        logs["objective"] = logs["objective"] + added
        logs["loss"] = logs["loss"] + added / self.divisor
        logs.update({f"tc/{k}": v for k, v in terms.items()})
        return logs


def build_tcvae_objective(
    registry, latent: JointLatent, image_shape: tuple[int, ...], dataset_size: int | None = None, **options
) -> TCVAEObjective:
    """Options of :class:`TCVAEObjective`, and ``terms`` and every other option as for ``jointvae``;
    ``dataset_size`` defaults to the training set's size (the trainer passes it)."""
    return registry.extend_objective(
        "jointvae", TCVAEObjective, latent=latent, image_shape=image_shape, dataset_size=dataset_size, **options
    )


@hookimpl
def latentkit_register_objectives(registry):
    registry.add("tcvae", build_tcvae_objective)
