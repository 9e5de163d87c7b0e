"""What the disentanglement metrics share: the metric protocol, metric options, representation functions, sampling.

**The metric protocol.** A registered metric is a callable ``metric(model, data, batch_size=, device=, **kw) -> dict``
of JSON-serialisable values. Three optional attributes tell ``latentkit evaluate`` what else it takes:

* ``needs_ground_truth`` (default ``False``): the metric is called with ``ground_truth=`` the data set's
  :class:`~latentkit.data.ground_truth.GroundTruthData` (``provider.ground_truth(data_root)``); a data set without one
  is a :class:`~latentkit.errors.ConfigError` naming the metric and the data set;
* ``needs_data`` (default ``True``): when ``False`` the evaluation split is not loaded and ``data=None`` is passed
  (the disentanglement metrics draw their own images from the factor grid);
* ``options`` (default none): a mapping ``{name: default}`` of the settings a user may change
  (``latentkit evaluate --option factorvae.num_train=2000``); the given ones are passed as keyword arguments.

**Representation functions.** Every metric core is written against a *representation* — a callable
``represent(images) -> (codes, is_discrete)`` taking uint8 images ``(N, C, H, W)`` and returning float64 codes
``(N, D)`` and a boolean ``(D,)`` flagging the categorical columns — never against a model, so the sanity checks can
hand it the factors themselves, noise, constants, or permuted, duplicated and rescaled codes.
:class:`ModelRepresentation` builds one from a model: each continuous channel contributes its Gaussian means (one
column per unit), each discrete variable one column holding its argmax category (flagged discrete). A representation
may also have a ``prior_scale`` attribute, ``(D,)``: each column's spread under the prior (the FactorVAE score prunes
relative to it); :class:`ModelRepresentation` has one, a plain function does not (absolute pruning then).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from latentkit.data.ground_truth import GroundTruthData
from latentkit.data.provider import as_float_batch
from latentkit.errors import ConfigError
from latentkit.validation import boolean, check, non_negative_int, positive_int

#: ``represent(uint8 images (N, C, H, W)) -> (float64 codes (N, D), bool is_discrete (D,))``
Representation = Callable[[Tensor], "tuple[np.ndarray, np.ndarray]"]

#: images drawn and encoded per step by the metric cores (a memory bound; the encoder batches within it)
DEFAULT_CHUNK = 4096


# --- options (each checked with latentkit.validation's rules) -------------------------------------------------------
def resolve_options(metric: str, defaults: Mapping[str, Any], given: Mapping[str, Any] | None) -> dict[str, Any]:
    """``defaults`` updated with ``given``; an unknown name is a :class:`ConfigError` listing the known ones."""
    given = dict(given or {})
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        known = ", ".join(sorted(defaults)) or "(none)"
        raise ConfigError(f"metric {metric!r} has no option{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
                          f"its options are: {known}")
    return {**defaults, **given}


# --- spreads of code columns ---------------------------------------------------------------------------------------
def gini_variance(categories: np.ndarray, axis: int = 0) -> np.ndarray:
    """``(N^2 - sum_c count_c^2) / (2 N (N - 1))`` of integer-valued ``categories`` along ``axis`` (N >= 2)."""
    cats = np.moveaxis(np.asarray(categories), axis, -1)
    n = cats.shape[-1]
    if n < 2:
        raise ConfigError(f"the Gini variance needs at least 2 values, got {n}")
    values = np.unique(cats)
    sq = np.zeros(cats.shape[:-1], dtype=np.float64)
    for v in values:  # few categories: one pass each
        count = (cats == v).sum(-1).astype(np.float64)
        sq += count * count
    return (n * n - sq) / (2.0 * n * (n - 1))


def variances(codes: np.ndarray, is_discrete: np.ndarray, axis: int = 0) -> np.ndarray:
    """Per column the variance (ddof=1) along ``axis``, or the Gini variance for discrete columns."""
    out = np.var(codes, axis=axis, ddof=1)
    if is_discrete.any():
        disc = np.flatnonzero(is_discrete)
        out[..., disc] = gini_variance(np.take(codes, disc, axis=-1), axis=axis)
    return out


def spread(codes: np.ndarray, is_discrete: np.ndarray) -> np.ndarray:
    """Per column a standard deviation that heavy tails cannot inflate: the sample std (the square root of the Gini
    variance for a discrete column), or, for a continuous column whose std exceeds 3x its interquartile range over
    1.349 (the IQR of a unit normal; Cauchy-like tails, where the std of draws measures the largest draw), that robust
    value. A Gaussian, Laplace, Beta or Student-t(3) column keeps its std."""
    out = np.sqrt(variances(codes, is_discrete))
    for col in np.flatnonzero(~is_discrete):
        q25, q75 = np.quantile(codes[:, col], [0.25, 0.75])
        robust = (q75 - q25) / 1.349
        if robust > 0 and not out[col] <= 3 * robust:
            out[col] = robust
    return out


def snap(value: float, steps_per_decade: int = 20) -> float:
    """``value`` (> 0) rounded to the nearest ``10 ** (k / steps_per_decade)``: exact at powers of ten."""
    return float(10.0 ** (round(steps_per_decade * math.log10(value)) / steps_per_decade))


# --- representations -------------------------------------------------------------------------------------------------
def check_codes(codes: Any, is_discrete: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The output of a representation function as ``(float64 (n, D), bool (D,))``, checked."""
    if hasattr(codes, "detach"):
        codes = codes.detach().cpu().numpy()
    codes = np.asarray(codes, dtype=np.float64)
    if codes.ndim == 1:
        codes = codes[:, None]
    codes = np.ascontiguousarray(codes)  # one memory layout: reductions then sum in the same order however chunked
    if codes.ndim != 2 or codes.shape[0] != n:
        raise ConfigError(
            f"a representation must give one row of codes per image: expected ({n}, D), got {codes.shape}"
        )
    is_discrete = np.asarray(is_discrete, dtype=bool).reshape(-1)
    if is_discrete.shape != (codes.shape[1],):
        raise ConfigError(
            f"is_discrete must flag each of the {codes.shape[1]} code columns, got shape {is_discrete.shape}"
        )
    if not np.isfinite(codes).all():
        raise ConfigError("the representation produced non-finite codes (NaN or inf); the model is broken or diverged")
    return codes, is_discrete


class ModelRepresentation:
    """The representation function of a model: images to Gaussian means and argmax categories.

    Columns, in channel order: a continuous channel gives one column per unit (its ``mean`` parameter, or its
    :meth:`~latentkit.core.LatentFamily.representative` for a family without one); a discrete channel
    (``family.is_discrete``) gives one column per variable holding the argmax category
    (:meth:`~latentkit.core.LatentFamily.categories`), flagged in ``is_discrete``. Names follow the KL units
    (``cont.0``, ``disc.0``). Encodes in eval mode under :func:`torch.inference_mode` in nearly equal batches of at most
    ``batch_size`` images; ``images_encoded`` counts every image it has encoded.
    """

    def __init__(self, model: nn.Module, batch_size: int = 1000, device: str | torch.device = "cpu"):
        batch_size = check("batch_size", batch_size, positive_int.such_as("1000"))
        self.model, self.batch_size, self.device = model, batch_size, torch.device(device)
        names: list[str] = []
        flags: list[bool] = []
        self._columns: list[tuple[str, Any, str]] = []  # (channel, family, how)
        unit_names = model.latent.unit_names()
        for name, family in model.latent.items():
            if family.is_discrete:
                how = "categories"
                cols = unit_names[name]
            elif family.sample_size == family.unit_count:
                how = "mean"
                cols = unit_names[name]
            else:  # a continuous family whose representative is wider than its units
                how = "representative"
                cols = [f"{name}[{i}]" for i in range(family.sample_size)]
            self._columns.append((name, family, how))
            names += cols
            flags += [family.is_discrete] * len(cols)
        self.names: tuple[str, ...] = tuple(names)
        self.is_discrete = np.asarray(flags, dtype=bool)
        self.images_encoded = 0
        self._prior_scale: np.ndarray | None = None

    #: prior draws behind :attr:`prior_scale`, and their fixed seed (the yardstick is part of a metric's protocol)
    PRIOR_DRAWS = 50_000
    PRIOR_SEED = 0

    @property
    def prior_scale(self) -> np.ndarray:
        """Each column's spread under the model's prior, ``(D,)``: the yardstick of pruning (FactorVAE score).

        From :attr:`PRIOR_DRAWS` ancestral draws of ``model.latent.prior_sample`` (seed :attr:`PRIOR_SEED`), in the
        columns' own terms: a continuous column's :func:`spread` of the draws (std; a robust value for Cauchy-like
        tails), a discrete column's square root of the Gini variance of the drawn categories (a unit's argmax, or
        ``value > 0.5`` for a one-wide binary unit). Snapped to the nearest twentieth of a decade (``10 ** (k / 20)``,
        steps of 12 %, finer than the threshold means anything), so Monte-Carlo noise (about 0.3 %) cannot move it: a
        unit Gaussian's is exactly 1, Beta(1, 1)'s 0.28 (std 0.289), a relaxed Bernoulli unit's 0.50, a uniform K-way
        categorical's about ``sqrt((1 - 1/K) / 2)`` (0.56 for K = 3), Laplace(0, 1)'s 1.41. Why the prior: a
        posterior mean's spread over the data is at most the prior's when the aggregate posterior matches the prior
        (the law of total variance), so the ratio is the share of its prior's range a column uses, comparable across
        families. A column whose prior spread is 0 or not finite gets 1 (the absolute rule). Computed once, on first
        use.
        """
        if self._prior_scale is None:
            generator = torch.Generator().manual_seed(self.PRIOR_SEED)
            with torch.no_grad():
                draws = self.model.latent.prior_sample(self.PRIOR_DRAWS, generator)
            parts = []
            for name, family, _ in self._columns:
                value = draws[name].detach().cpu().double()
                if family.is_discrete:
                    blocks = [value[:, family.unit_slice(unit)] for unit in range(family.unit_count)]
                    value = torch.stack(
                        [b.argmax(1) if b.shape[1] > 1 else (b[:, 0] > 0.5).long() for b in blocks], dim=1
                    ).double()
                parts.append(value)
            scale = spread(torch.cat(parts, dim=1).numpy(), self.is_discrete)
            self._prior_scale = np.array([snap(s) if np.isfinite(s) and s > 0 else 1.0 for s in scale])
        return self._prior_scale

    def _codes(self, params: Mapping[str, Mapping[str, Tensor]]) -> Tensor:
        parts = []
        for name, family, how in self._columns:
            p = params[name]
            if how == "categories":
                parts.append(family.categories(p).double())
            elif how == "mean" and "mean" in p:
                parts.append(p["mean"].double())
            else:
                parts.append(family.representative(p).double())
        return torch.cat(parts, dim=1)

    def __call__(self, images: Tensor) -> tuple[np.ndarray, np.ndarray]:
        n = images.shape[0]
        if n == 0:
            return np.zeros((0, len(self.names))), self.is_discrete
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode():
                out = []
                for part in torch.tensor_split(images, math.ceil(n / self.batch_size)):
                    x = as_float_batch(part.to(self.device, non_blocking=True))
                    out.append(self._codes(self.model.encode(x)).cpu())
        finally:
            self.model.train(was_training)
        self.images_encoded += n
        return torch.cat(out).numpy(), self.is_discrete


# --- sampling from the factor grid -----------------------------------------------------------------------------------
def represent_images(represent: Representation, images: Tensor) -> tuple[np.ndarray, np.ndarray]:
    codes, is_discrete = represent(images)
    return check_codes(codes, is_discrete, images.shape[0])


def images_ahead(
    ground_truth: GroundTruthData, chunks: Iterable[tuple[Tensor, Any]], prefetch: bool = True
) -> Iterator[tuple[Tensor, Any, Tensor]]:
    """``(factors, extra, images)`` for each ``(factors, extra)`` of ``chunks``.

    With ``prefetch`` the next chunk's images are generated in a worker thread while the caller encodes the current
    one (generation then hides behind encoding instead of adding to it). ``chunks`` is always advanced from the calling
    thread, so random draws happen in the same order either way and the results do not depend on ``prefetch``.
    """
    chunks = iter(chunks)
    if not prefetch:
        for factors, extra in chunks:
            yield factors, extra, ground_truth.images(factors)
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="latentkit-images") as pool:
        current = next(chunks, None)
        pending = pool.submit(ground_truth.images, current[0]) if current is not None else None
        while current is not None:
            following = next(chunks, None)
            images = pending.result()
            pending = pool.submit(ground_truth.images, following[0]) if following is not None else None
            yield current[0], current[1], images
            current = following


def sample_codes(
    ground_truth: GroundTruthData,
    represent: Representation,
    n: int,
    generator: torch.Generator,
    chunk_size: int = DEFAULT_CHUNK,
    prefetch: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(codes (n, D), is_discrete (D,), factors (n, F) int64)`` of ``n`` images drawn uniformly from the grid
    (disentanglement_lib's ``generate_batch_factor_code``)."""
    factors = ground_truth.sample_factors(n, generator)
    codes, flags = [], None
    chunks = ((factors[start : start + chunk_size], None) for start in range(0, n, chunk_size))
    for _, _, images in images_ahead(ground_truth, chunks, prefetch):
        c, flags = represent_images(represent, images)
        codes.append(c)
    if flags is None:
        raise ConfigError("no points to evaluate: the number of points must be positive")
    return np.concatenate(codes), flags, factors.numpy().astype(np.int64)


class CodeSampler:
    """What every ground-truth metric draws with: its data, its representation, the validated sampling options
    (``seed``, ``chunk_size``, ``prefetch``) and one generator seeded from ``seed``, shared by all its draws."""

    def __init__(self, metric: str, ground_truth: Any, represent: Representation, seed: Any, chunk_size: Any,
                 prefetch: Any):
        self.ground_truth = check_ground_truth(metric, ground_truth)
        self.represent = represent
        self.seed = check("seed", seed, non_negative_int, metric)
        self.chunk_size = check("chunk_size", chunk_size, positive_int.such_as(str(DEFAULT_CHUNK)), metric)
        self.prefetch = check("prefetch", prefetch, boolean, metric)
        self.generator = torch.Generator().manual_seed(self.seed)

    def codes(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:func:`sample_codes` of ``n`` points, continuing this sampler's random stream."""
        return sample_codes(self.ground_truth, self.represent, n, self.generator, self.chunk_size, self.prefetch)


def axis_names(names: Any, count: int, prefix: str) -> tuple[str, ...]:
    """The given names of ``count`` code dimensions or factors, else ``prefix0, prefix1, ...``."""
    return tuple(names) if names else tuple(f"{prefix}{i}" for i in range(count))


def check_ground_truth(metric: str, ground_truth: Any) -> GroundTruthData:
    if not isinstance(ground_truth, GroundTruthData):
        raise ConfigError(
            f"metric {metric!r} needs a data set with ground-truth factors (a GroundTruthData), got "
            f"{type(ground_truth).__name__}"
        )
    if ground_truth.num_factors < 1:
        raise ConfigError(f"metric {metric!r} needs at least one ground-truth factor; the data set declares none")
    return ground_truth


def discrete_codes(codes: np.ndarray, is_discrete: np.ndarray) -> np.ndarray:
    """The discrete columns as int64 category labels (whatever numbers the representation used)."""
    out = np.zeros((codes.shape[0], int(is_discrete.sum())), dtype=np.int64)
    for j, col in enumerate(np.flatnonzero(is_discrete)):
        out[:, j] = np.unique(codes[:, col], return_inverse=True)[1].reshape(-1)
    return out


# --- the registered form -------------------------------------------------------------------------------------------
class GroundTruthMetric:
    """A disentanglement metric as a registered plugin: ``(model, data, batch_size, device, ground_truth, **options)``.

    Builds the model's :class:`ModelRepresentation` (encoding batches of ``batch_size`` on ``device``) and runs ``core``
    (``core(ground_truth, represent, names=..., **options)``) with the resolved options; ``data`` is not used.
    """

    needs_ground_truth = True
    needs_data = False

    def __init__(self, name: str, core: Callable[..., dict], defaults: Mapping[str, Any], doc: str | None = None):
        self.name, self.core, self.options = name, core, dict(defaults)
        self.__doc__ = doc or core.__doc__

    def __repr__(self) -> str:
        return f"GroundTruthMetric({self.name!r})"

    def __call__(
        self,
        model: nn.Module,
        data: Any = None,
        batch_size: int = 1000,
        device: str | torch.device = "cpu",
        ground_truth: GroundTruthData | None = None,
        **options: Any,
    ) -> dict:
        opts = resolve_options(self.name, self.options, options)
        if ground_truth is None:
            raise ConfigError(f"metric {self.name!r} needs a data set with ground-truth factors; none was given")
        check_ground_truth(self.name, ground_truth)
        if tuple(ground_truth.image_shape) != tuple(model.image_shape):
            raise ConfigError(
                f"metric {self.name!r}: the model reads images of shape {tuple(model.image_shape)}, but the "
                f"ground-truth data yields {tuple(ground_truth.image_shape)}"
            )
        represent = ModelRepresentation(model, batch_size, device)
        return self.core(ground_truth, represent, names=represent.names, **opts)
