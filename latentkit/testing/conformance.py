"""The conformance suite every latent family must pass.

Why a suite: the core trusts a family for its KL, its capacity bound, its samples and their gradients, and none of
those can be checked by the core at run time. A family that gets one of them subtly wrong still trains — just badly —
so the contract in :class:`latentkit.core.LatentFamily` is checked here, the same way for built-in and third-party
families. ``tests/test_conformance.py`` runs it over every family in the registry; a plugin author runs it on theirs::

    from latentkit.testing import check_family
    check_family(VonMises)                      # raises AssertionError listing every failed check

    # or, in a pytest file, one test per check and example config:
    from latentkit.testing import FamilyConformance

    class TestVonMises(FamilyConformance):
        family_cls = VonMises

Configurations come from ``family_cls.example_configs()`` unless given. Every check uses Hypothesis (derandomised, so
a family passes or fails the same way on every run) to draw encoder features — moderate ones (|x| ≤ 3, float64) for
statistical checks, extreme ones (±1e4, exactly one-hot softmaxes, float32) for finiteness — and the seeds of the
``torch.Generator`` and the :class:`~latentkit.core.SampleNoise` keys passed to the samplers.

The checks (each can fail; ``tests/test_conformance.py`` proves it with a deliberately broken family per check):

``shapes``
    sizes are positive ints; ``params_from_features`` on ``(B, param_size)`` gives a dict of tensors with batch ``B``;
    ``rsample``, ``representative``, ``sample_posterior`` and ``prior_sample`` are ``(B, sample_size)``; ``kl``,
    ``log_posterior`` and ``log_prior`` are ``(B, unit_count)``; the ``unit_slice``\\ s partition the sample's columns;
    ``traversal_values(u, n)`` is ``(m ≥ 1, width of unit_slice(u))`` and finite; a discrete family's ``unit_sizes``
    match its unit slices.
``honours_generator``
    ``rsample`` depends only on the :class:`~latentkit.core.SampleNoise` passed in, ``sample_posterior`` and
    ``prior_sample`` only on the generator passed in (same keys or seed, same draw, whatever the global RNG) —
    training resumes and the Monte-Carlo checks depend on it.
``kl_matches_monte_carlo``
    the analytic KL agrees, per unit and per row, with ``E[log_posterior − log_prior]`` over 20 000 exact
    ``sample_posterior`` draws (the categorical itself, not its relaxation), float64 features:
    ``|analytic − MC| ≤ 5·SE + 0.01`` nats. A correct family fails one comparison with probability ≈ 5.7e-7; with at
    most 12 examples × 3 rows × the family's units (a few hundred to a few thousand comparisons per configuration),
    the false-failure probability is below 1e-3 — and, derandomised, fixed for a given family. See
    :mod:`latentkit.testing.montecarlo` for the derivation of the bound.
``kl_nonnegative_and_bounded``
    ``kl ≥ 0`` exactly and finite, and ``Σ_units kl ≤ capacity_bound()·(1 + 1e-5) + 1e-6`` (float32 rounding of the
    sum), for moderate and extreme features; ``capacity_bound()`` is a non-negative float (``inf`` allowed).
``kl_zero_at_prior``
    the suite's contract is that **encoder features of zeros give the prior** (Gaussian: mean 0, log-variance 0;
    categorical: uniform). There, ``kl ≤ 1e-6`` in float32 and float64, and ``log_posterior`` equals ``log_prior`` on
    prior draws (so the zero-features posterior really *is* the prior, not merely a point where ``kl`` happens to
    return 0).
``finite_for_extreme_features``
    no NaN or Inf in the parameters, ``rsample``, ``representative`` and ``kl`` for extreme float32 features; a discrete
    family's ``categories`` stay in range.
``rsample_gradients``
    when ``has_rsample``: the sample is attached to the graph, and the gradient of a random projection of it reaches
    the features finite, non-zero for every row and every feature column (float64, moderate features).
``representative``
    deterministic (same value twice, whatever the global RNG); for a discrete family it is, per unit, the encoding
    (the ``traversal_values`` row: one-hot for a categorical, 0/1 for a binary unit) of the category ``categories()``
    picks, and that category maximises ``log_posterior`` (i.e. it is the posterior's mode).
``training_density``
    ``log_density`` is the density of ``rsample``'s draws, normalised like ``log_prior_density``.
``row_rule``
    a row's training draw depends only on its parameters and its noise key: rows drawn with
    ``SampleNoise.for_rows(seed, step, rows)`` and the same rows (same global indices) drawn inside another batch —
    other rows, another size, another order — agree to 16 units in the last place (float32 and float64); a
    batch-wide ``torch.randn`` or a rejection loop drawing retries from a shared stream fails.
``prior_sample_matches_prior``
    ``prior_sample`` draws from the prior ``log_prior`` describes, in float32 and float64: the importance identity
    ``E_{z ~ prior_sample}[q(z)/p(z)] = 1`` per unit for posteriors near the prior, and a two-sample comparison with
    ``sample_posterior`` at zero features (when they give the prior) of the fraction of draws below pooled quantiles
    and of the mean ``log_prior``; every bound is 5 of the estimator's own standard errors (plus rounding).

Hypothesis settings never depend on the machine's speed (no deadline, the too-slow health checks off, derandomised,
no example database), and a failed check's report always names the inputs of the failing example (the suite records
them itself, in case Hypothesis's own "Falsifying example" note is missing).

Families with dependencies (``depends_on``, e.g. a mixture prior ``p(z | c)``): their ``kl``, ``log_prior`` and
``prior_sample`` read other channels through a :class:`~latentkit.core.LatentContext`, so they cannot be checked
alone. The suite builds a :class:`~latentkit.core.JointLatent` of the parents and the family and runs every check on
that joint latent: contexts hold the parents' parameters and exact posterior draws, prior samples are ancestral, and
the Monte-Carlo check scores the joint draw against ``p(c) p(z | c)`` (the per-unit target is then
``E_q(c)[KL(q(z) ‖ p(z | c))]``, which is what such a family's ``kl`` must return). Parents come from the ``parents``
argument, or else from an optional classmethod ``family_cls.conformance_parents(config) -> {name: LatentFamily}``;
without either, every check is *skipped* with a message saying so. ``kl_zero_at_prior``, ``training_density`` and
``prior_sample_matches_prior`` are always skipped for dependent families: their prior is not reachable by a choice of
the family's own features, so neither a zero-KL point nor importance weights of useful variance exist (their
``prior_sample`` is still checked for shapes and generator use, and their ``log_prior`` by ``kl_matches_monte_carlo``).
"""

from __future__ import annotations

import contextlib
import functools
import math
import numbers
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import attrs
import hypothesis
import torch
from hypothesis import HealthCheck, given
from hypothesis import strategies as st
from torch import Tensor

from latentkit.core import JointLatent, LatentContext, LatentFamily, SampleNoise
from latentkit.testing.montecarlo import N_DRAWS, assert_kl_agrees, joint_kl_monte_carlo
from latentkit.testing.strategies import extreme_features, generator, moderate_features, seeds
from latentkit.testing.strategies import features as feature_strategy

#: Channel name of the family under test inside the joint latent the checks run on.
SUBJECT = "subject"


# --- results -------------------------------------------------------------------------------------------------------
@attrs.frozen
class CheckResult:
    """The outcome of one check on one configuration."""

    check: str
    family: str  #: e.g. ``"Gaussian(units=3)"``
    status: str  #: ``"passed"``, ``"failed"`` or ``"skipped"``
    message: str = ""

    def describe(self) -> str:
        head = f"[{self.status}] {self.check} on {self.family}"
        return f"{head}:\n{self.message}" if self.message else head


@attrs.frozen
class ConformanceReport:
    """Every :class:`CheckResult` of a :func:`check_family` run that raised nothing."""

    results: tuple[CheckResult, ...]

    @property
    def passed(self) -> list[CheckResult]:
        return [r for r in self.results if r.status == "passed"]

    @property
    def skipped(self) -> list[CheckResult]:
        return [r for r in self.results if r.status == "skipped"]

    @property
    def failed(self) -> list[CheckResult]:
        return [r for r in self.results if r.status == "failed"]


class _Skip(Exception):
    """A check does not apply to this family (reason in the message)."""


# --- the subject: the family inside a joint latent -----------------------------------------------------------------
@attrs.frozen
class _Subject:
    family: LatentFamily
    latent: JointLatent
    label: str
    offset: int  #: where the family's features start in the latent's features

    @property
    def dependent(self) -> bool:
        return bool(tuple(self.family.depends_on))

    @property
    def own(self) -> slice:
        return slice(self.offset, self.offset + self.family.param_size)

    def params_and_context(self, features: Tensor, gen: torch.Generator) -> tuple[dict, LatentContext]:
        """Every channel's parameters, and a context holding them plus one exact posterior draw per channel."""
        params = self.latent.split(features)
        samples = {name: fam.sample_posterior(params[name], gen) for name, fam in self.latent.items()}
        return params, LatentContext(params=params, samples=samples)


def family_label(family_cls: type, config: Mapping[str, Any]) -> str:
    """How reports name a family built with ``config``, e.g. ``Beta(units=3)``."""
    return f"{family_cls.__name__}({', '.join(f'{k}={v!r}' for k, v in config.items())})"


def config_id(config: Mapping[str, Any]) -> str:
    """A short pytest id for a configuration, e.g. ``sizes=3,5-temperature=1.0``."""
    if not config:
        return "default"
    parts = []
    for key, value in config.items():
        if isinstance(value, (list, tuple)):
            value = ",".join(str(v) for v in value)
        parts.append(f"{key}={value}")
    return "-".join(parts)


def _resolve_parents(family_cls: type, config: Mapping[str, Any], parents: Any) -> Mapping[str, LatentFamily] | None:
    if parents is None and callable(getattr(family_cls, "conformance_parents", None)):
        parents = family_cls.conformance_parents(dict(config))
    if parents is None:
        return None
    if callable(parents) and not isinstance(parents, Mapping):
        parents = parents()
    return {name: (p() if not isinstance(p, LatentFamily) and callable(p) else p) for name, p in parents.items()}


def _make_subject(family_cls: type, config: Mapping[str, Any], parents: Any) -> _Subject:
    label = family_label(family_cls, config)
    family = family_cls(**config)
    assert isinstance(family, LatentFamily), f"{label} is a {type(family).__name__}, not a latentkit LatentFamily"
    deps = tuple(family.depends_on)
    if not deps:
        return _Subject(family, JointLatent({SUBJECT: family}), label, 0)
    resolved = _resolve_parents(family_cls, config, parents)
    if resolved is None:
        raise _Skip(
            f"{label} depends on channels {list(deps)}, so its prior cannot be checked alone; pass "
            f"parents={{name: family}} to the suite (or define classmethod conformance_parents(config)) to check it "
            f"inside a joint latent"
        )
    missing = [d for d in deps if d not in resolved]
    assert not missing, f"{label} depends on {missing}, but the parents given are {list(resolved)}"
    channels = {**resolved, SUBJECT: family}
    offset = sum(p.param_size for p in resolved.values())
    return _Subject(family, JointLatent(channels), f"{label} with parents {list(resolved)}", offset)


# --- helpers -------------------------------------------------------------------------------------------------------
def _expect_tensor(value: Any, shape: tuple[int, ...], what: str) -> Tensor:
    assert isinstance(value, Tensor), f"{what} must return a torch.Tensor, got {type(value).__name__}"
    assert tuple(value.shape) == shape, f"{what} has shape {tuple(value.shape)}, expected {shape}"
    return value


def _expect_finite(value: Tensor, what: str, features: Tensor | None = None) -> None:
    bad = ~torch.isfinite(value)
    if bad.any():
        idx = tuple(int(i) for i in bad.nonzero()[0])
        extra = ""
        if features is not None and len(idx) >= 1:
            extra = f" for features row {features[idx[0]].tolist()}"
        raise AssertionError(
            f"{what} is not finite: {int(bad.sum())} NaN/Inf entries, first at {idx} = {value[idx].item()}{extra}"
        )


def _width(sample_size: int, sl: slice) -> int:
    return len(range(sample_size)[sl])


@contextlib.contextmanager
def single_threaded() -> Iterator[None]:
    """Run torch on one intra-op thread, then restore the previous count.

    The checks work on small tensors, where thread start-up and synchronisation dominate; on a loaded CI machine with
    two cores, two threads made the Monte-Carlo check about six times slower than one.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _default_settings(max_examples: int) -> hypothesis.settings:
    return hypothesis.settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        database=None,
        print_blob=False,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )


#: The inputs of the last failing call of a check's property, reported whatever Hypothesis's own report holds.
_last_failure: list[str] = []
_FALSIFYING = "Falsifying example"


def _recorded(test: Callable[..., None]) -> Callable[..., None]:
    """Remember the inputs of a failing call (Hypothesis replays the minimal failing example last).

    Why: the report must name the example that fails whatever the timing; Hypothesis's own "Falsifying example" note
    is attached only on its final replay, so the suite keeps its own copy and adds it when that note is missing."""

    @functools.wraps(test)
    def wrapper(**kwargs: Any) -> None:
        try:
            test(**kwargs)
        except BaseException:
            shown = ", ".join(f"{k}={_show(v)}" for k, v in kwargs.items())
            _last_failure[:] = [f"{_FALSIFYING}: {test.__name__}({shown})"]
            raise

    return wrapper


def _show(value: Any) -> str:
    if isinstance(value, Tensor):
        return f"torch.tensor({value.tolist()!r}, dtype={value.dtype})"
    return repr(value)


def _noise(seed: int, rows: int | Tensor, step: int = 0) -> SampleNoise:
    """Training noise keyed as the trainer keys it, for the rows ``range(rows)`` (or the given global indices)."""
    return SampleNoise.for_rows(seed, step, range(rows) if isinstance(rows, int) else rows)


def _any_features(width: int, **kwargs) -> st.SearchStrategy[Tensor]:
    return st.one_of(moderate_features(width, **kwargs), extreme_features(width, **kwargs))


# --- the checks ----------------------------------------------------------------------------------------------------
def _check_shapes(subject: _Subject, s: hypothesis.settings) -> None:
    """Sizes, parameter and sample shapes, unit slices and traversal widths agree (the core slices by them)."""
    fam, latent = subject.family, subject.latent
    for attr in ("param_size", "sample_size", "unit_count"):
        value = getattr(fam, attr)
        assert isinstance(value, int) and not isinstance(value, bool) and value >= 1, (
            f"{attr} must be a positive int, got {value!r}"
        )
    size, units = fam.sample_size, fam.unit_count
    covered: list[int] = []
    for u in range(units):
        sl = fam.unit_slice(u)
        assert isinstance(sl, slice) and sl.step in (None, 1), f"unit_slice({u}) must be a contiguous slice, got {sl!r}"
        cols = list(range(size)[sl])
        assert cols, f"unit_slice({u}) = {sl} selects no column of a sample of width {size}"
        covered.extend(cols)
    assert sorted(covered) == list(range(size)), (
        f"the unit slices must partition the sample's {size} columns (each column in exactly one unit); "
        f"they cover {sorted(covered)}"
    )
    for u in range(units):
        width = _width(size, fam.unit_slice(u))
        values = fam.traversal_values(u, 7)
        assert isinstance(values, Tensor) and values.dim() == 2, (
            f"traversal_values({u}, 7) must be a 2-d tensor (m, {width}), got "
            f"{tuple(values.shape) if isinstance(values, Tensor) else type(values).__name__}"
        )
        assert values.shape[0] >= 1 and values.shape[1] == width, (
            f"traversal_values({u}, 7) has shape {tuple(values.shape)}; expected (m >= 1, {width}) — the width of "
            f"unit_slice({u})"
        )
        _expect_finite(values, f"traversal_values({u}, 7)")
    if fam.is_discrete:
        sizes = tuple(fam.unit_sizes())
        rows = tuple(fam.traversal_values(u, 7).shape[0] for u in range(units))
        assert sizes == rows, (
            f"unit_sizes() is {sizes} but traversal_values gives {rows} values per unit: a discrete family's "
            f"traversal_values(u, n) are the encodings of unit u's categories, one row per category"
        )

    @s
    @given(features=moderate_features(latent.param_size), seed=seeds())
    @_recorded
    def run(features: Tensor, seed: int) -> None:
        gen, batch = generator(seed), features.shape[0]
        own = fam.params_from_features(features[:, subject.own])
        assert isinstance(own, Mapping) and own, f"params_from_features must return a non-empty dict, got {own!r}"
        for key, value in own.items():
            assert isinstance(value, Tensor) and value.dim() >= 1 and value.shape[0] == batch, (
                f"params_from_features: parameter {key!r} must be a tensor whose first dimension is the batch "
                f"({batch}), got {tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__}"
            )
        params, ctx = subject.params_and_context(features, gen)
        p = params[SUBJECT]
        _expect_tensor(fam.rsample(p, _noise(seed, batch)), (batch, size), "rsample")
        _expect_tensor(fam.representative(p), (batch, size), "representative")
        value = _expect_tensor(fam.sample_posterior(p, gen), (batch, size), "sample_posterior")
        _expect_tensor(fam.kl(p, ctx), (batch, units), "kl")
        _expect_tensor(fam.log_posterior(p, value), (batch, units), "log_posterior")
        _expect_tensor(fam.log_prior(ctx.samples[SUBJECT], ctx), (batch, units), "log_prior")
        prior = latent.prior_sample(batch, gen)
        _expect_tensor(prior[SUBJECT], (batch, size), f"prior_sample({batch}, ...)")
        if fam.is_discrete:
            cats = _expect_tensor(fam.categories(p), (batch, units), "categories")
            assert not cats.is_floating_point(), f"categories must be integer indices, got {cats.dtype}"

    run()


def _check_generator(subject: _Subject, s: hypothesis.settings) -> None:
    """Samplers draw only from what they are given: ``rsample`` from its :class:`SampleNoise`, ``sample_posterior``
    and ``prior_sample`` from their generator (exact resume and reproducible checks need it)."""
    fam, latent = subject.family, subject.latent

    @s
    @given(features=moderate_features(latent.param_size), seed=seeds())
    @_recorded
    def run(features: Tensor, seed: int) -> None:
        params, _ = subject.params_and_context(features, generator(seed))
        p, batch = params[SUBJECT], features.shape[0]
        draws = []
        for global_seed in (0, 1):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(global_seed)
                draws.append((
                    fam.rsample(p, _noise(seed, batch)),
                    fam.sample_posterior(p, generator(seed)),
                    latent.prior_sample(batch, generator(seed))[SUBJECT],
                ))
        for what, a, b in zip(("rsample", "sample_posterior", "prior_sample"), *draws):
            assert torch.equal(a, b), (
                f"{what} gave different values for the same generator seed (rsample: the same SampleNoise) under "
                f"different global RNG states: it must draw all its randomness from the generator (rsample: the "
                f"noise) it is given (resumed runs and Monte-Carlo checks depend on it)"
            )

    run()


def _check_monte_carlo(subject: _Subject, s: hypothesis.settings, n_draws: int = N_DRAWS) -> None:
    """The analytic KL equals E[log q − log p] over exact posterior draws (no other code path checks the formula)."""
    latent = subject.latent

    @s
    @given(features=moderate_features(latent.param_size, max_batch=3), seed=seeds())
    @_recorded
    def run(features: Tensor, seed: int) -> None:
        mc = joint_kl_monte_carlo(latent, features, n_draws, generator(seed))
        assert_kl_agrees(mc, what=subject.label)

    run()


def _check_kl_bounds(subject: _Subject, s: hypothesis.settings) -> None:
    """KL ≥ 0 and Σ units KL ≤ capacity_bound() (the objective clips capacities at that bound), any features."""
    fam = subject.family
    bound = fam.capacity_bound()
    assert isinstance(bound, numbers.Real) and not math.isnan(bound) and bound >= 0, (
        f"capacity_bound() must be a non-negative number of nats (math.inf when unbounded), got {bound!r}"
    )
    bound = float(bound)

    @s
    @given(features=_any_features(subject.latent.param_size), seed=seeds())
    @_recorded
    def run(features: Tensor, seed: int) -> None:
        params, ctx = subject.params_and_context(features, generator(seed))
        kl = fam.kl(params[SUBJECT], ctx)
        _expect_finite(kl, "kl", features)
        if (kl < 0).any():
            row, unit = divmod(int(kl.argmin()), kl.shape[1])
            raise AssertionError(
                f"kl is negative: {kl[row, unit].item():.6g} at row {row} unit {unit} (features row "
                f"{features[row].tolist()}); a KL divergence is >= 0 — clamp rounding errors"
            )
        total = kl.sum(1).to(torch.float64)
        if math.isfinite(bound) and (total > bound * (1 + 1e-5) + 1e-6).any():
            row = int(total.argmax())
            raise AssertionError(
                f"the KL summed over units is {total[row].item():.6g} at row {row}, above capacity_bound() = "
                f"{bound:.6g}; the objective clips capacities at this bound, so it must be the largest KL possible"
            )

    run()


def _check_zero_at_prior(subject: _Subject, s: hypothesis.settings) -> None:
    """Features of zeros give the prior, where KL = 0 and log q = log p (a KL with an offset fails here)."""
    fam, latent = subject.family, subject.latent
    if subject.dependent:
        raise _Skip("kl_zero_at_prior does not apply to a family whose prior depends on other channels")

    @s
    @given(dtype=st.sampled_from([torch.float32, torch.float64]), seed=seeds())
    @_recorded
    def run(dtype: torch.dtype, seed: int) -> None:
        n, gen = 64, generator(seed)
        features = torch.zeros(n, latent.param_size, dtype=dtype)
        params, ctx = subject.params_and_context(features, gen)
        kl = fam.kl(params[SUBJECT], ctx)
        assert torch.isfinite(kl).all() and kl.abs().max().item() <= 1e-6, (
            f"the suite's contract is that features of zeros give the prior, where the KL is 0; with zero {dtype} "
            f"features kl is {kl[0].tolist()} (allowed |kl| <= 1e-6)"
        )
        values = latent.prior_sample(n, gen)
        value = values[SUBJECT].to(dtype)
        prior_ctx = LatentContext(params=params, samples=values)
        log_q = fam.log_posterior(params[SUBJECT], value)
        log_p = fam.log_prior(value, prior_ctx)
        err = (log_q.double() - log_p.double()).abs()
        tol = 1e-5 * (1 + log_p.double().abs())
        assert (err <= tol).all(), (
            f"features of zeros must give the prior (the suite's contract), but log_posterior and log_prior differ "
            f"on prior draws by up to {err.max().item():.3g} (e.g. {log_q.flatten()[int(err.argmax())].item():.6g} vs "
            f"{log_p.flatten()[int(err.argmax())].item():.6g})"
        )

    run()


def _check_finite(subject: _Subject, s: hypothesis.settings) -> None:
    """No NaN/Inf for extreme float32 features: one NaN in the KL poisons a whole training run."""
    fam = subject.family

    @s
    @given(features=extreme_features(subject.latent.param_size), seed=seeds())
    @_recorded
    def run(features: Tensor, seed: int) -> None:
        gen = generator(seed)
        own = fam.params_from_features(features[:, subject.own])
        for key, value in own.items():
            _expect_finite(value, f"parameter {key!r}", features)
        params, ctx = subject.params_and_context(features, gen)
        p = params[SUBJECT]
        _expect_finite(fam.rsample(p, _noise(seed, features.shape[0])), "rsample", features)
        _expect_finite(fam.representative(p), "representative", features)
        _expect_finite(fam.kl(p, ctx), "kl", features)
        if fam.is_discrete:
            cats = fam.categories(p)
            sizes = torch.tensor(fam.unit_sizes())
            assert ((cats >= 0) & (cats < sizes)).all(), f"categories out of range: {cats.tolist()} for sizes {sizes}"

    run()


def _check_gradients(subject: _Subject, s: hypothesis.settings) -> None:
    """Gradients reach every feature through rsample (otherwise the encoder cannot learn those parameters)."""
    fam = subject.family
    if not fam.has_rsample:
        raise _Skip(f"{type(fam).__name__}.has_rsample is False: no reparametrised sample to differentiate")

    @s
    @given(features=moderate_features(fam.param_size), seed=seeds())
    @_recorded
    def run(features: Tensor, seed: int) -> None:
        gen = generator(seed)
        leaf = features.clone().requires_grad_(True)
        sample = fam.rsample(fam.params_from_features(leaf), _noise(seed, features.shape[0]))
        assert isinstance(sample, Tensor) and sample.requires_grad, (
            "rsample's output is detached from the parameters although has_rsample is True"
        )
        weights = torch.randn(sample.shape, generator=gen, dtype=sample.dtype)
        (sample * weights).sum().backward()
        grad = leaf.grad
        assert grad is not None, "no gradient reached the features through rsample"
        _expect_finite(grad, "the gradient of rsample with respect to the features", features)
        dead_rows = (grad.abs().sum(1) == 0).nonzero().flatten().tolist()
        assert not dead_rows, (
            f"the gradient through rsample is zero for rows {dead_rows} (features {features.tolist()})"
        )
        dead_cols = (grad.abs().sum(0) == 0).nonzero().flatten().tolist()
        assert not dead_cols, (
            f"no gradient reaches feature columns {dead_cols} through rsample: those parameters never influence a "
            f"training sample"
        )

    run()


def _check_representative(subject: _Subject, s: hypothesis.settings) -> None:
    """The evaluation value is deterministic; a discrete one is the one-hot posterior mode, as categories() says."""
    fam = subject.family
    size, units = fam.sample_size, fam.unit_count

    @s
    @given(features=_any_features(subject.latent.param_size), seed=seeds())
    @_recorded
    def run(features: Tensor, seed: int) -> None:
        params, _ = subject.params_and_context(features, generator(seed))
        p, batch = params[SUBJECT], features.shape[0]
        reps = []
        for global_seed in (seed % 2**32, seed % 2**32 + 1):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(global_seed)
                reps.append(fam.representative(p))
        rep = _expect_tensor(reps[0], (batch, size), "representative")
        assert torch.equal(reps[0], reps[1]), "representative must be deterministic (it is what evaluation decodes)"
        if not fam.is_discrete:
            return
        cats = fam.categories(p)
        sizes = fam.unit_sizes()
        codes = [fam.traversal_values(u, sizes[u]).to(rep.dtype) for u in range(units)]  # category k -> its encoding
        for u in range(units):
            block = rep[:, fam.unit_slice(u)]
            expected = codes[u][cats[:, u].to(torch.int64)]
            same = (block == expected).all(1)
            assert same.all(), (
                f"representative of unit {u} is {block[~same][0].tolist()}, not the encoding "
                f"{expected[~same][0].tolist()} of the category categories() picks (traversal_values' row)"
            )
        # The chosen category must be a mode of the posterior: score every category with log_posterior.
        scores = torch.full((batch, max(sizes), units), -math.inf, dtype=torch.float64)
        for k in range(max(sizes)):
            value = torch.zeros(batch, size, dtype=rep.dtype)
            for u in range(units):
                value[:, fam.unit_slice(u)] = codes[u][min(k, sizes[u] - 1)]
            log_q = fam.log_posterior(p, value).to(torch.float64)
            for u in range(units):
                if k < sizes[u]:
                    scores[:, k, u] = log_q[:, u]
        best = scores.max(1).values
        chosen = scores.gather(1, cats.to(torch.int64).unsqueeze(1)).squeeze(1)
        ok = chosen >= best - 1e-9 * (1 + best.abs())
        assert ok.all(), (
            f"categories() does not pick the most probable category: log q of the chosen category "
            f"{chosen[~ok][0].item():.6g} < the best {best[~ok][0].item():.6g}"
        )

    run()


def _check_training_density(subject: _Subject, s: hypothesis.settings, n_draws: int = 20_000) -> None:
    """``log_density`` is the density of ``rsample``'s draws, normalised like ``log_prior_density``: over training
    samples, E[p(z) / q(z)] = 1 for every unit (importance sampling; features near the prior keep its variance finite).
    Estimators of the aggregate posterior (the tcvae objective) rely on both densities."""
    fam, latent = subject.family, subject.latent
    if subject.dependent:
        raise _Skip(
            "training_density does not apply to a family whose prior depends on other channels (its prior can sit far "
            "from any posterior, so the importance weights have no useful variance; the tcvae objective refuses such "
            "priors)"
        )

    @s
    @given(features=feature_strategy(latent.param_size, max_batch=2, elements=st.floats(-0.3, 0.3)), seed=seeds())
    @_recorded
    def run(features: Tensor, seed: int) -> None:
        gen = generator(seed)
        batch = features.shape[0]
        repeated = features.repeat_interleave(n_draws, dim=0)
        params, context = subject.params_and_context(repeated, gen)
        own = params[SUBJECT]
        z = fam.rsample(own, _noise(seed, batch * n_draws))
        log_q = _expect_tensor(fam.log_density(own, z), (batch * n_draws, fam.unit_count), "log_density")
        log_p = _expect_tensor(fam.log_prior_density(z, context), (batch * n_draws, fam.unit_count), "log_prior_density")
        _expect_finite(log_q, "log_density of rsample draws", features)
        ratio = (log_p - log_q).to(torch.float64).exp().reshape(batch, n_draws, -1)
        mean, stderr = ratio.mean(1), ratio.std(1) / math.sqrt(n_draws)
        bad = (mean - 1).abs() > 6 * stderr + 0.03
        assert not bad.any(), (
            f"E over rsample draws of p(z)/q(z) is {mean[bad][0].item():.4f} (± {stderr[bad][0].item():.4f}) for a unit, "
            f"not 1: log_density is not the density of rsample's draws, or it and log_prior_density are normalised "
            f"differently (a relaxed family must give its relaxed distribution's density in both)"
        )

    run()

def _row_tolerance(value: Tensor) -> Tensor:
    """A few units in the last place of ``value``: the same row computed inside another batch may take another
    vectorised code path (SIMD body or scalar tail), which can differ by an ulp; a batch-coupled draw moves by far
    more."""
    return 16 * torch.finfo(value.dtype).eps * value.abs().clamp_min(1.0)


def _check_row_rule(subject: _Subject, s: hypothesis.settings) -> None:
    """A row's training draw depends only on its parameters and its noise key, never on the other rows: the same rows
    (same global indices) drawn inside another batch — other rows, another size, another order — are equal.

    Why: the trainer keys each row's noise by (run seed, step, global sample index) and may compute a batch in parts
    on several processes; a sampler whose rows share a stream (``torch.randn`` over the batch, a rejection loop drawing
    the pending rows' attempts from one sequence) would give results that change with the split."""
    fam, latent = subject.family, subject.latent

    @s
    @given(
        features=moderate_features(latent.param_size, max_batch=5),
        others=moderate_features(latent.param_size, min_batch=0, max_batch=5),
        keep=st.lists(st.booleans(), min_size=5, max_size=5).filter(any),
        dtype=st.sampled_from([torch.float32, torch.float64]),
        start=st.integers(0, 2**20),
        step=st.integers(0, 10**6),
        seed=seeds(),
    )
    @_recorded
    def run(
        features: Tensor, others: Tensor, keep: list[bool], dtype: torch.dtype, start: int, step: int, seed: int
    ) -> None:
        batch = features.shape[0]
        mask = torch.tensor(keep[:batch])
        if not mask.any():
            mask[0] = True
        rows = start + torch.arange(batch)
        first = fam.rsample(latent.split(features.to(dtype))[SUBJECT], _noise(seed, rows, step))
        # Another batch: the kept rows beside other rows (other indices, other parameters), shuffled.
        other_rows = start + batch + torch.arange(others.shape[0])
        mixed = torch.cat([features[mask], others]).to(dtype)
        mixed_rows = torch.cat([rows[mask], other_rows])
        order = torch.randperm(mixed.shape[0], generator=generator(seed))
        second = fam.rsample(latent.split(mixed[order])[SUBJECT], _noise(seed, mixed_rows[order], step))
        where = torch.argsort(order)[: int(mask.sum())]  # positions of the kept rows in the shuffled batch
        a, b = first[mask].detach(), second[where].detach()
        err = (a.to(torch.float64) - b.to(torch.float64)).abs()
        bad = ~(err <= _row_tolerance(a).to(torch.float64))
        assert not bad.any(), (
            f"row rule broken: the same rows (same parameters, same noise keys) drawn inside another batch moved by up "
            f"to {err.max().item():.3g} ({int(bad.any(1).sum())} of {a.shape[0]} rows, {dtype}); rsample must draw "
            f"each row from that row's key only — noise.normal/uniform/gumbel(..., draw=attempt) on noise.select(rows "
            f"still pending) for a rejection sampler — never from a stream shared by the batch"
        )

    run()


def _two_sample_bound(a: Tensor, b: Tensor, z: float) -> tuple[Tensor, Tensor]:
    """``|mean(a) − mean(b)|`` over dim 0 and ``z`` standard errors of that difference (independent samples)."""
    n_a, n_b = a.shape[0], b.shape[0]
    diff = (a.mean(0) - b.mean(0)).abs()
    stderr = torch.sqrt(a.var(0) / n_a + b.var(0) / n_b)
    return diff, z * stderr + 64 * torch.finfo(a.dtype).eps * (1 + a.mean(0).abs())


def _check_prior_sample(subject: _Subject, s: hypothesis.settings, n_draws: int = N_DRAWS) -> None:
    """``prior_sample`` draws from the family's own prior, in float32 and float64, by Monte Carlo: the importance
    identity E_{z ~ prior_sample}[q(z) / p(z)] = 1 per unit for posteriors q near the prior (``log_posterior −
    log_prior``), and a two-sample comparison with ``sample_posterior`` at the prior's parameters (zero features) of
    the fraction of draws below pooled quantiles per column and of the mean ``log_prior``; every bound is Z = 5 of the
    estimator's own standard errors (plus rounding)."""
    fam, latent = subject.family, subject.latent
    if subject.dependent:
        raise _Skip(
            "prior_sample_matches_prior does not apply to a family whose prior depends on other channels (no posterior "
            "of its own reaches that prior, so the importance weights have no useful variance); its kl_matches_monte_"
            "carlo check scores its posterior draws against its log_prior"
        )
    z_bound = 5.0

    @s
    @given(
        features=feature_strategy(latent.param_size, max_batch=2, elements=st.floats(-0.5, 0.5)),
        dtype=st.sampled_from([torch.float32, torch.float64]),
        seed=seeds(),
    )
    @_recorded
    def run(features: Tensor, dtype: torch.dtype, seed: int) -> None:
        gen = generator(seed)
        draws = _expect_tensor(latent.prior_sample(n_draws, gen)[SUBJECT], (n_draws, fam.sample_size), "prior_sample")
        draws = draws.to(dtype)
        prior_ctx = LatentContext(params={}, samples={SUBJECT: draws})
        log_p = fam.log_prior(draws, prior_ctx).to(torch.float64)
        _expect_finite(log_p, "log_prior of prior_sample draws")
        # 1. importance identity, per posterior row and unit
        for row in range(features.shape[0]):
            own = latent.split(features[row : row + 1].to(dtype).expand(n_draws, -1))[SUBJECT]
            ratio = (fam.log_posterior(own, draws).to(torch.float64) - log_p).exp()
            mean, stderr = ratio.mean(0), ratio.std(0) / math.sqrt(n_draws)
            bad = ~((mean - 1).abs() <= z_bound * stderr + 64 * torch.finfo(dtype).eps)
            assert not bad.any(), (
                f"prior_sample does not draw from the prior: over {n_draws} prior_sample draws E[q(z)/p(z)] "
                f"(exp(log_posterior - log_prior)) is {mean[bad][0].item():.5f} ± {stderr[bad][0].item():.2g} (SE) for "
                f"unit {int(bad.nonzero()[0])} of posterior row {row} ({dtype}), not 1 (allowed {z_bound}*SE)"
            )
        # 2. two samples: prior_sample against sample_posterior at the prior's parameters — zero features, when they
        # give the prior (kl 0 there; otherwise kl_zero_at_prior reports the family, and the prior's parameters are
        # unknown here)
        zero = latent.split(torch.zeros(n_draws, latent.param_size, dtype=dtype))[SUBJECT]
        if fam.kl(zero, LatentContext(params={SUBJECT: zero})).abs().max().item() > 1e-6:
            return
        reference = fam.sample_posterior(zero, gen).to(dtype)
        ref_log_p = fam.log_prior(reference, prior_ctx).to(torch.float64)
        pooled = torch.cat([draws, reference]).to(torch.float64)
        levels = torch.tensor([0.1, 0.25, 0.5, 0.75, 0.9], dtype=torch.float64)
        thresholds = torch.quantile(pooled, levels, dim=0)  # (levels, columns)
        below_a = (draws.to(torch.float64).unsqueeze(1) <= thresholds).to(torch.float64).flatten(1)
        below_b = (reference.to(torch.float64).unsqueeze(1) <= thresholds).to(torch.float64).flatten(1)
        for what, a, b in (("the fraction of draws below pooled quantiles", below_a, below_b),
                           ("the mean log_prior", log_p, ref_log_p)):
            diff, bound = _two_sample_bound(a, b, z_bound)
            bad = ~(diff <= bound)
            assert not bad.any(), (
                f"prior_sample does not draw from the prior: {what} differs between {n_draws} prior_sample draws and "
                f"{n_draws} sample_posterior draws at the prior's parameters (zero features) by "
                f"{diff[bad][0].item():.4g} > {z_bound}*SE = {bound[bad][0].item():.3g} ({dtype}): "
                f"{a.mean(0)[bad][0].item():.4g} vs {b.mean(0)[bad][0].item():.4g}"
            )

    run()


@attrs.frozen
class Check:
    name: str
    func: Callable[[_Subject, hypothesis.settings], None]
    max_examples: int

    @property
    def doc(self) -> str:
        return (self.func.__doc__ or "").strip()


#: Every check, in the order they run.
CHECKS: dict[str, Check] = {
    c.name: c
    for c in (
        Check("shapes", _check_shapes, 10),
        Check("honours_generator", _check_generator, 8),
        Check("kl_matches_monte_carlo", _check_monte_carlo, 12),
        Check("kl_nonnegative_and_bounded", _check_kl_bounds, 40),
        Check("kl_zero_at_prior", _check_zero_at_prior, 6),
        Check("finite_for_extreme_features", _check_finite, 40),
        Check("rsample_gradients", _check_gradients, 15),
        Check("representative", _check_representative, 25),
        Check("training_density", _check_training_density, 6),
        Check("row_rule", _check_row_rule, 10),
        Check("prior_sample_matches_prior", _check_prior_sample, 4),
    )
}


def _select(checks: Iterable[str] | None) -> list[Check]:
    if checks is None:
        return list(CHECKS.values())
    names = list(checks)
    unknown = [n for n in names if n not in CHECKS]
    if unknown:
        raise ValueError(f"unknown conformance checks {unknown}; known: {list(CHECKS)}")
    return [CHECKS[n] for n in names]


def _configs(family_cls: type, configs: Sequence[Mapping[str, Any]] | None) -> list[dict]:
    if configs is None:
        configs = family_cls.example_configs()
    configs = list(configs)
    assert configs, f"{family_cls.__name__}.example_configs() returned no configuration to check"
    for config in configs:
        assert isinstance(config, Mapping), f"{family_cls.__name__}: a configuration must be a dict, got {config!r}"
    return [dict(c) for c in configs]


def _format(exc: BaseException) -> str:
    if isinstance(exc, AssertionError):
        lines = [str(exc) or "AssertionError"]
    else:
        tb = "".join(traceback.format_exception(exc)).rstrip().splitlines()
        lines = ["\n".join(tb[-12:])]
    for sub in getattr(exc, "exceptions", ()):  # Hypothesis reports distinct failures as an ExceptionGroup
        lines.append(_format(sub))
    lines.extend(str(n) for n in getattr(exc, "__notes__", ()))
    return "\n".join(lines)


def run_check(
    family_cls: type,
    config: Mapping[str, Any],
    check: str | Check,
    *,
    parents: Any = None,
    settings: hypothesis.settings | None = None,
    max_examples: int | None = None,
) -> CheckResult:
    """Run one check on ``family_cls(**config)``; never raises for a failing family (see :func:`check_family`)."""
    check = CHECKS[check] if isinstance(check, str) else check
    label = family_label(family_cls, config)
    _last_failure.clear()
    try:
        subject = _make_subject(family_cls, config, parents)
        s = settings if settings is not None else _default_settings(max_examples or check.max_examples)
        with single_threaded():
            check.func(subject, s)
    except _Skip as skip:
        return CheckResult(check.name, label, "skipped", str(skip))
    except Exception as exc:  # a crash is a failure of the family too; AssertionError carries the explanation
        message = _format(exc)
        if _FALSIFYING not in message and _last_failure:
            message = "\n".join([message, *_last_failure])
        return CheckResult(check.name, label, "failed", message)
    return CheckResult(check.name, label, "passed")


def check_family(
    family_cls: type,
    configs: Sequence[Mapping[str, Any]] | None = None,
    *,
    parents: Any = None,
    checks: Iterable[str] | None = None,
    settings: hypothesis.settings | None = None,
    max_examples: int | None = None,
) -> ConformanceReport:
    """Run the conformance checks on ``family_cls`` for every configuration; raise ``AssertionError`` on any failure.

    ``configs`` defaults to ``family_cls.example_configs()``; ``checks`` selects checks by name (all by default, see
    :data:`CHECKS`); ``parents`` supplies the channels a dependent family reads (``{name: LatentFamily}``);
    ``settings`` replaces the suite's Hypothesis settings, ``max_examples`` only the number of examples per check.
    The error message lists every failed check with its configuration, the reason, and Hypothesis's falsifying
    example. Returns a :class:`ConformanceReport` (with the skipped checks and why) when nothing failed.
    """
    selected = _select(checks)
    results = tuple(
        run_check(family_cls, config, check, parents=parents, settings=settings, max_examples=max_examples)
        for config in _configs(family_cls, configs)
        for check in selected
    )
    report = ConformanceReport(results)
    if report.failed:
        raise AssertionError(
            f"{family_cls.__name__} fails {len(report.failed)} of {len(results)} latent-family conformance checks:\n\n"
            + "\n\n".join(r.describe() for r in report.failed)
        )
    return report


# --- pytest-friendly pieces ----------------------------------------------------------------------------------------
def _pytest_outcome(result: CheckResult) -> CheckResult:
    if result.status == "failed":
        raise AssertionError(result.describe())
    if result.status == "skipped":
        try:
            import pytest
        except ImportError:  # pragma: no cover - only without pytest
            return result
        pytest.skip(result.message)
    return result


@attrs.frozen
class ConformanceCase:
    """One check on one configuration: call it in a test; it fails with the check's message or skips."""

    id: str
    family_cls: type
    config: dict
    check: str
    parents: Any = None
    settings: hypothesis.settings | None = None

    def __call__(self) -> CheckResult:
        return _pytest_outcome(
            run_check(self.family_cls, self.config, self.check, parents=self.parents, settings=self.settings)
        )


def family_conformance_tests(
    family_cls: type,
    configs: Sequence[Mapping[str, Any]] | None = None,
    *,
    label: str | None = None,
    parents: Any = None,
    checks: Iterable[str] | None = None,
    settings: hypothesis.settings | None = None,
) -> list[ConformanceCase]:
    """One :class:`ConformanceCase` per (configuration, check), for ``pytest.mark.parametrize``::

        @pytest.mark.parametrize("case", family_conformance_tests(VonMises), ids=lambda c: c.id)
        def test_vonmises(case):
            case()
    """
    label = label or getattr(family_cls, "family_name", "") or family_cls.__name__
    return [
        ConformanceCase(f"{label}-{config_id(config)}-{check.name}", family_cls, config, check.name, parents, settings)
        for config in _configs(family_cls, configs)
        for check in _select(checks)
    ]


class FamilyConformance:
    """Subclass in a test file, set ``family_cls``, and pytest runs every check on every example configuration.

    ::

        class TestVonMises(FamilyConformance):
            family_cls = VonMises
            configs = None        # default: VonMises.example_configs()
            parents = None        # {name: LatentFamily} for a family with depends_on
            settings = None       # a hypothesis.settings to replace the suite's

    The class's name does not start with ``Test``, so pytest collects only your subclass.
    """

    family_cls: type | None = None
    configs: Sequence[Mapping[str, Any]] | None = None
    parents: Any = None
    settings: hypothesis.settings | None = None

    def pytest_generate_tests(self, metafunc: Any) -> None:
        if "family_config" in metafunc.fixturenames:
            cls = metafunc.cls
            if cls.family_cls is None:
                raise TypeError(f"{cls.__name__} must set family_cls to the LatentFamily subclass under test")
            configs = _configs(cls.family_cls, cls.configs)
            metafunc.parametrize("family_config", configs, ids=[config_id(c) for c in configs])

    def run_conformance_check(self, name: str, config: Mapping[str, Any]) -> CheckResult:
        parents = type(self).parents
        return _pytest_outcome(run_check(self.family_cls, config, name, parents=parents, settings=self.settings))


def _make_test(name: str) -> Callable[[FamilyConformance, dict], None]:
    def test(self: FamilyConformance, family_config: dict) -> None:
        self.run_conformance_check(name, family_config)

    test.__name__ = f"test_{name}"
    test.__qualname__ = f"FamilyConformance.test_{name}"
    test.__doc__ = f"{CHECKS[name].doc} (conformance check {name!r}, see latentkit.testing.conformance)"
    return test


for _name in CHECKS:
    setattr(FamilyConformance, f"test_{_name}", _make_test(_name))
del _name
