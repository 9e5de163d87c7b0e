"""An independent Monte-Carlo estimate of a joint latent's KL, and the confidence bound it is checked against.

Why Monte-Carlo: an analytic KL is the one formula in a latent family that no other code path exercises — the loss
uses it, but a KL that is off by a factor, uses the wrong prior, or is combined wrongly across channels still trains
(just badly). The definition ``KL(q‖p) = E_q[log q − log p]`` needs only the family's exact posterior sampler and its
log densities, so averaging ``log_posterior − log_prior`` over many exact posterior draws gives an estimate that shares
no code with ``kl``.

How the draws are made: the joint posterior is the product of the channels' posteriors (the encoder emits independent
parameters per channel), so every channel is drawn with :meth:`~latentkit.core.LatentFamily.sample_posterior` — the
exact distribution (for categoricals the categorical itself, never the Gumbel-Softmax relaxation). The prior is then
evaluated on the *joint* draw: every channel's ``log_prior`` receives a :class:`~latentkit.core.LatentContext` whose
``samples`` are the other channels' draws of the same Monte-Carlo sample, so a channel whose prior depends on another
channel (``p(z | c)``) is scored against ``p(c) p(z | c)`` exactly as the definition requires. For such a channel the
per-unit estimate converges to ``E_{q(c)}[KL(q(z) ‖ p(z | c))]``, which is what its ``kl`` must return, and the
per-row total converges to the full joint KL ``KL(q(z, c) ‖ p(z, c))``.

The bound (used by :func:`assert_kl_agrees`): for every row, channel and unit,

    |analytic − estimate| ≤ Z · SE + ATOL,   Z = 5,   ATOL = 0.01 nats,

where SE is the sample standard deviation of ``log q − log p`` over the ``n`` draws divided by ``√n`` (n = 20 000 by
default). For a correct family the estimate is a mean of ``n`` i.i.d. terms, so by the central limit theorem one
comparison fails with probability ≈ P(|N(0,1)| > 5) = 5.7e-7. The absolute term covers the one regime in which the
sample SE is unreliable: a categorical posterior with a category so rare (probability ``p`` ≈ a few / n) that it is
drawn zero or one times; the estimate then misses ``≈ p·log(1/p)`` nats, which for n = 20 000 exceeds 0.01 only when
``p`` > 1.5e-3, i.e. when at least 29 draws are expected and seeing at most one has probability < 1e-11. Row totals use
the same Z and ``ATOL`` times the number of units summed. Callers state how many comparisons they make; the
conformance suite's per-family budget is a few thousand, i.e. a false failure probability below 1e-3 (and, as it runs
derandomised, a given family either always or never fails).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import attrs
import torch
from torch import Tensor

from latentkit.core import JointLatent, LatentContext, LatentFamily

#: Default number of exact posterior draws per row.
N_DRAWS = 20_000
#: Standard errors allowed between the analytic KL and its Monte-Carlo estimate.
Z_BOUND = 5.0
#: Absolute slack in nats per unit (see the module docstring for why).
ATOL = 0.01


@attrs.frozen
class MonteCarloKL:
    """Analytic KL and its Monte-Carlo estimate, per channel ``(B, unit_count)`` and per row ``(B,)``."""

    analytic: dict[str, Tensor]
    estimate: dict[str, Tensor]
    stderr: dict[str, Tensor]
    total_analytic: Tensor
    total_estimate: Tensor
    total_stderr: Tensor
    unit_total: int
    n_draws: int


def as_latent(family_or_latent: LatentFamily | JointLatent, name: str = "channel") -> JointLatent:
    """A joint latent of one channel for a single independent family; joint latents pass through."""
    if isinstance(family_or_latent, JointLatent):
        return family_or_latent
    return JointLatent({name: family_or_latent})


def _repeat(params: Mapping[str, Tensor], n: int) -> dict[str, Tensor]:
    return {key: value.repeat_interleave(n, dim=0) for key, value in params.items()}


@torch.no_grad()
def joint_kl_monte_carlo(
    latent: JointLatent | LatentFamily,
    features: Tensor,
    n_draws: int = N_DRAWS,
    generator: torch.Generator | None = None,
) -> MonteCarloKL:
    """Estimate ``E_q[log q(z, c) − log p(z, c)]`` for each row of ``features`` from ``n_draws`` exact joint draws.

    ``features`` is ``(B, latent.param_size)``; use float64 so that rounding does not blur the comparison. The
    analytic side is ``latent.kl(params)`` — whatever the latent (or a subclass under test) returns — so a channel it
    drops is reported as missing rather than silently skipped.
    """
    latent = as_latent(latent)
    params = latent.split(features)
    analytic = latent.kl(params)
    batch = features.shape[0]
    repeated = {name: _repeat(p, n_draws) for name, p in params.items()}
    draws = {name: family.sample_posterior(repeated[name], generator) for name, family in latent.items()}
    ctx = LatentContext(params=repeated, samples=draws)
    estimate, stderr, per_draw_total = {}, {}, None
    for name, family in latent.items():
        diff = family.log_posterior(repeated[name], draws[name]) - family.log_prior(draws[name], ctx)
        diff = diff.reshape(batch, n_draws, -1).to(torch.float64)
        estimate[name] = diff.mean(1)
        stderr[name] = diff.std(1) / math.sqrt(n_draws)
        per_draw_total = diff.sum(-1) if per_draw_total is None else per_draw_total + diff.sum(-1)
    assert per_draw_total is not None
    missing = [name for name in latent.names if name not in analytic]
    total_analytic = sum(
        (analytic[name].to(torch.float64).sum(-1) for name in latent.names if name in analytic),
        torch.zeros(batch, dtype=torch.float64),
    )
    if missing:
        total_analytic = total_analytic + float("nan")  # a dropped channel can never agree
    return MonteCarloKL(
        analytic=dict(analytic),
        estimate=estimate,
        stderr=stderr,
        total_analytic=total_analytic,
        total_estimate=per_draw_total.mean(1),
        total_stderr=per_draw_total.std(1) / math.sqrt(n_draws),
        unit_total=sum(f.unit_count for f in latent.channels.values()),
        n_draws=n_draws,
    )


def assert_kl_agrees(
    mc: MonteCarloKL,
    *,
    z: float = Z_BOUND,
    atol: float = ATOL,
    per_unit: bool = True,
    what: str = "latent",
) -> None:
    """Raise ``AssertionError`` unless ``|analytic − estimate| ≤ z·SE + atol`` (per unit, and per row total).

    The message names the worst offender (channel, row, unit), both values, the standard error and the bound, so a
    plugin author sees at once which unit's KL is wrong and by how much.
    """
    problems = []
    for name, estimate in mc.estimate.items():
        if name not in mc.analytic:
            problems.append(f"kl() returned no entry for channel {name!r} (Monte-Carlo KL of it: "
                            f"{estimate.sum(-1).tolist()}); a joint KL must include every channel")
            continue
        analytic = mc.analytic[name].to(torch.float64)
        if analytic.shape != estimate.shape:
            problems.append(f"channel {name!r}: kl() has shape {tuple(analytic.shape)}, expected "
                            f"{tuple(estimate.shape)} (batch, unit_count)")
            continue
        if not per_unit:
            continue
        bound = z * mc.stderr[name] + atol
        err = (analytic - estimate).abs()
        bad = ~(err <= bound)  # NaN counts as a failure
        if bad.any():
            excess = torch.where(bad, (err - bound).nan_to_num(math.inf), torch.full_like(err, -math.inf))
            row, unit = divmod(int(excess.argmax()), err.shape[1])
            problems.append(
                f"channel {name!r} row {row} unit {unit}: analytic KL {analytic[row, unit].item():.6g} but the "
                f"Monte-Carlo estimate E[log_posterior - log_prior] over {mc.n_draws} exact posterior draws is "
                f"{estimate[row, unit].item():.6g} ± {mc.stderr[name][row, unit].item():.3g} (SE); allowed "
                f"|difference| <= {z}*SE + {atol} = {bound[row, unit].item():.4g}, got {err[row, unit].item():.4g} "
                f"({int(bad.sum())} of {bad.numel()} unit comparisons fail)"
            )
    total_bound = z * mc.total_stderr + atol * max(mc.unit_total, 1)
    total_err = (mc.total_analytic - mc.total_estimate).abs()
    bad_rows = ~(total_err <= total_bound)
    if bad_rows.any():
        row = int(torch.where(bad_rows, (total_err - total_bound).nan_to_num(math.inf), -math.inf).argmax())
        problems.append(
            f"row {row}: analytic joint KL (sum over channels and units) {mc.total_analytic[row].item():.6g} but the "
            f"Monte-Carlo estimate E[log q(z, c) - log p(z, c)] is {mc.total_estimate[row].item():.6g} ± "
            f"{mc.total_stderr[row].item():.3g} (SE); allowed |difference| <= {z}*SE + {atol}*{mc.unit_total} units "
            f"= {total_bound[row].item():.4g}"
        )
    if problems:
        raise AssertionError(f"the analytic KL of the {what} disagrees with its Monte-Carlo estimate:\n  - "
                             + "\n  - ".join(problems))
