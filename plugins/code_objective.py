"""Levers on how a discrete code uses its categories, as terms added to the JointVAE objective (``jointvae_code``).

Why: JointVAE's per-sample KL of q(c|x) to a uniform prior puts no pressure on how the *batch* uses the categories —
a code that sends 4s and 9s to one category and splits 1s by slant costs the same as one category per digit — and the
paper recipe's accuracy on MNIST varies from about 0.6 to 0.8 with the seed (docs/results.md). Each term below is one
lever against that, off by default (weight 0), so each can be measured alone and in combination:

* ``marginal_weight``: λ·KL(ᾱ ‖ U), ᾱ the batch mean of q(c|x) — the batch should use every category equally
  (the "marginal entropy" of IMSAT / mutual-information clustering; with the capacity term keeping each q(c|x)
  confident, the two together maximise the mutual information between image and category).
* ``balance_weight``: λ·CE(Q, q(c|x)) with Q the batch's *balanced* assignment — q(c|x) sharpened and rescaled by a
  few Sinkhorn iterations so that every category receives B/K images of the batch (SwAV; a soft form of CascadeVAE's
  batch-balanced assignment). Unlike the marginal term it says *which* images should move to an under-used category:
  those whose second choice it is.
* ``augment_weight``: λ·KL(target ‖ q(c|T(x))), T a random small affine transform (rotation, scale, shift; shear and
  stroke width on request) and the target q(c|x) (or Q when balancing is on), held fixed — the category should not
  change when the digit is moved a little (IMSAT's and IIC's invariance prior; it uses no label, only the assumption
  that such transforms keep the class). Costs a second encoder pass per step.
* ``mutual_information_weight``: −λ·I(c; c′), the mutual information between the category of an image and that of its
  augmented view, from the batch's joint distribution of the pair (IIC, Ji et al. 2019). It holds the marginal term
  (I = H(c) − H(c|c′): the batch should use every category) and the augmentation one (the pair should agree) in one
  quantity with a fixed ceiling, log K, and lets the gradient through both views. Uses ``augment``'s transforms and
  shares its second encoder pass.
* ``reconstruction_assignment_weight``: λ·CE(R, q(c|x)), R the batch's balanced assignment of the categories by how
  well each *reconstructs* the image: every image is decoded once per category (the other channels at their
  representative value, this one one-hot), and R is the Sinkhorn-balanced assignment of the per-image log-likelihoods
  (CascadeVAE's batch-balanced assignment by reconstruction, Jeong & Song 2019). The category is then what the
  decoder can use that the continuous code does not already carry. Costs K decoder passes per step, without gradient.
* ``assignment_weight``: λ·CE(r, q(c|x)) for a latent whose continuous channel has a mixture prior indexed by the
  category (``gaussian_mixture``): r ∝ exp(−KL(q(z|x) ‖ p(z|c))) is the category the continuous code's position implies
  (VaDE's posterior over components); the encoder's own q(c|x) is pulled toward it.

``heads`` (more than 1) adds ``heads − 1`` auxiliary K-way clustering heads on the encoder's last hidden features,
each trained with the same consistency and balance terms, and lets the one whose loss has been lowest teach the code
(IIC's lowest-loss head, without labels). The heads' mean loss is added times ``heads_weight`` (default 1: together
they weigh as much as the code's own terms); with ``detach_heads`` they read the features without shaping them.
``overcluster`` adds a head with that many categories that only shapes the features (:mod:`code_heads`).
``regroup_every`` (with heads) refits the worst head, every so many steps, to the trunk's features over-clustered and
merged along the augmentation graph (:mod:`code_regroup`): a way out when every head shares one split-and-merge optimum.

Every weight is 0 until step ``start`` (default 0), then ramped linearly from 0 over ``warmup`` steps (0: full weight
at once). The added terms are
in the objective's units (nats per image, like γ·|KL − C|), so their weights compare with γ; ``loss`` divides them by
the same per-pixel divisor as the base. ``code/marginal_kl`` and ``code/categories_used`` (categories that hold at least
1% of the batch's arg-max assignments) are always logged, so the paper recipe's category usage can be watched too.

Not a function of batch means (the balanced assignment and the augmented pass need the whole batch), so the batch is
never split across threads or processes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from latentkit.core import JointLatent, ModelOutput, Objective
from latentkit.errors import ConfigError
from latentkit.plugins import hookimpl
from latentkit.validation import Rule, check, non_negative_float, non_negative_int, positive_float, positive_int
from latentkit_plugins.code_heads import CodeHeads, FeatureTap, final_linear
from latentkit_plugins.code_regroup import encode_features, fit_linear, regroup

#: a term's weight: 0 turns the term off
WEIGHT = Rule(non_negative_float.test, "a finite non-negative number (0 turns the term off)", "10.0", float)

#: how far below the batch's best (log-probability / epsilon) a score is floored before exp() in the balanced assignment
SINKHORN_FLOOR = 700.0
#: log(α + EPS): the categorical's probabilities may be exactly 0 in float32
EPS = 1e-12
#: the decoding assignment's floor, in nats below an image's best category (e^-50: negligible, yet not zero)
LIKELIHOOD_FLOOR = 50.0
#: share of a batch's arg-max assignments a category needs to count as used
USED_SHARE = 0.01
#: terms logged under another name than ``code/<term>``, with the sign of the logged value (the terms are losses; the
#: mutual information is logged as itself)
LOGGED_AS = {"marginal": ("code/marginal_kl", 1.0), "mutual_information": ("code/mutual_information", -1.0)}
#: the augmentation's defaults: rotation in degrees, relative scale change, shift as a share of the size, horizontal
#: shear factor (x += shear * y), the probability of thickening or thinning the strokes by one pixel (0: off), whether
#: the shift places the ink's centroid rather than moving the image (1: on), whether the scaling gives the ink another
#: image's area (1: on), and the threshold that makes the moved view binary again (0: off)
DEFAULT_AUGMENT = {"rotate": 10.0, "scale": 0.1, "shift": 0.08, "shear": 0.0, "stroke": 0.0, "recentre": 0.0,
                   "resize": 0.0, "binarise": 0.0}


def balanced_assignment(log_probs: Tensor, iterations: int = 3, epsilon: float = 0.05) -> Tensor:
    """``(B, K)`` soft assignments close to ``softmax(log_probs / epsilon)`` whose columns each sum to B/K.

    Sinkhorn–Knopp on ``exp(log_probs / epsilon)``, alternately scaling categories to an equal share and images to one
    unit of mass (SwAV's equipartition): a few iterations suffice. Computed in float64 and without gradient — it is a
    target, not a prediction.
    """
    with torch.no_grad():
        b, k = log_probs.shape
        scores = log_probs.detach().double() / epsilon
        # floored 700 below the best score, where exp() still gives a positive float64: a category every image gives a
        # log-probability of -1000 would otherwise have no mass at all, and the column scaling would divide 0 by 0
        scores = (scores - scores.max()).clamp_min(-SINKHORN_FLOOR)
        q = torch.exp(scores)
        q = q / q.sum()
        for _ in range(iterations):
            q = q / q.sum(0, keepdim=True) / k  # every category holds 1/K of the mass
            q = q / q.sum(1, keepdim=True) / b  # every image holds 1/B
        return (q * b).to(log_probs.dtype)


def ink_centroid(x: Tensor) -> Tensor:
    """``(B, 2)``: each image's intensity-weighted centre in ``affine_grid``'s coordinates (x right, y down, the image
    spanning −1 to 1); the image centre for a blank image."""
    b, _, h, w = x.shape
    mass = x.float().sum(1)  # (B, H, W)
    total = mass.sum((1, 2)).clamp_min(1e-12)
    xs = (2 * torch.arange(w, device=x.device, dtype=torch.float32) + 1) / w - 1
    ys = (2 * torch.arange(h, device=x.device, dtype=torch.float32) + 1) / h - 1
    return torch.stack([(mass.sum(1) * xs).sum(1) / total, (mass.sum(2) * ys).sum(1) / total], 1)


def random_affine(
    x: Tensor, generator: torch.Generator, rotate: float, scale: float, shift: float, shear: float = 0.0,
    stroke: float = 0.0, recentre: float = 0.0, resize: float = 0.0, binarise: float = 0.0,
) -> Tensor:
    """``x`` (B, C, H, W) under independent random rotations (±``rotate`` degrees), scalings (×1 ± ``scale``), shifts
    (± ``shift`` of the image size) and horizontal shears (±``shear``), bilinear with zero padding; then, with
    probability ``stroke``, strokes one pixel thicker or thinner (a 3x3 grey dilation or erosion, even odds).

    Why shear and stroke: on MNIST a 10-way code left to itself splits digits by slant and by stroke width, the two
    largest nuisances of handwriting; a code asked to survive them has to find something else. Neither is drawn when
    its setting is 0, so the other transforms' noise does not depend on whether they are available.

    ``recentre`` (1: on) makes the shift a *placement*: the ink's centroid goes to the drawn point (± ``shift`` of the
    size about the centre) and the rotation and scaling turn about it, so the view's position no longer depends on the
    image's — for data whose objects can be anywhere (dSprites), where a shift relative to the current position would
    push them out of the frame. ``resize`` (1: on) likewise makes the scaling a choice of size: the ink's area becomes
    that of another image of the batch drawn at random (then × the drawn factor squared), so the view's size is
    distributed as the data's sizes are, whatever the image's own — a factor about 1 could never take the smallest
    dSprites shapes to the largest. ``binarise`` (a threshold, 0: off) makes the view binary again, as the data is,
    so that the blur of resampling is no cue. Only ``resize`` draws noise of its own (the partner images, right after the shifts; nothing when off).
    """
    b = x.shape[0]

    def uniform(half_width: float) -> Tensor:
        u = torch.rand(b, generator=generator, device=generator.device, dtype=torch.float32).to(x.device)
        return (2 * u - 1) * half_width

    angle = uniform(math.radians(rotate))
    factor = 1 + uniform(scale)
    tx, ty = uniform(2 * shift), uniform(2 * shift)  # affine_grid's coordinates span 2 per image side
    if resize:  # the ink's area becomes a random other image's of the batch (then × the drawn factor²)
        partner = torch.randint(b, (b,), generator=generator, device=generator.device).to(x.device)
        mass = x.float().sum(tuple(range(1, x.dim())))
        ratio = torch.sqrt(mass[partner] / mass.clamp_min(1e-12))
        factor = factor * torch.where((mass > 0) & (mass[partner] > 0), ratio, torch.ones_like(ratio))
    cos, sin = torch.cos(angle) / factor, torch.sin(angle) / factor
    rows = [torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)]
    if shear:  # output x reads input x + s·y: the first row of the rotation-scale times [[1, s], [0, 1]]
        s = uniform(shear)
        rows[0] = torch.stack([cos, s * cos - sin, tx], 1)
        rows[1] = torch.stack([sin, s * sin + cos, ty], 1)
    theta = torch.stack(rows, 1)
    if recentre:  # input = A·(output − d) + c: the centroid c appears at the drawn point d = (tx, ty)
        linear, placed = theta[:, :, :2], torch.stack([tx, ty], 1)
        theta = torch.cat([linear, (ink_centroid(x) - (linear @ placed[:, :, None])[:, :, 0])[:, :, None]], 2)
    theta = theta.to(x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    if stroke:
        u = torch.rand(b, generator=generator, device=generator.device, dtype=torch.float32).to(x.device)
        thicker, thinner = u < stroke / 2, (u >= stroke / 2) & (u < stroke)
        dilated = F.max_pool2d(out, 3, stride=1, padding=1)
        eroded = -F.max_pool2d(-out, 3, stride=1, padding=1)
        shape = (b,) + (1,) * (x.dim() - 1)
        out = torch.where(thicker.view(shape), dilated, torch.where(thinner.view(shape), eroded, out))
    if binarise:
        out = (out >= binarise).to(out.dtype)
    return out


def pair_mutual_information(alpha: Tensor, alpha_pair: Tensor) -> Tensor:
    """I(c; c′) in nats of the joint ``P = mean_i alpha[i] ⊗ alpha_pair[i]``, symmetrised (the pair's order carries no
    meaning): between 0 (the views' categories independent) and log K (one-hot, balanced and in agreement)."""
    joint = alpha.float().T @ alpha_pair.float() / alpha.shape[0]
    joint = ((joint + joint.T) / 2).clamp_min(EPS)
    joint = joint / joint.sum()
    rows, cols = joint.sum(1, keepdim=True), joint.sum(0, keepdim=True)
    return (joint * (joint.log() - rows.log() - cols.log())).sum()


def _weight(name: str, value: object) -> float:
    return check(name, value, WEIGHT, owner="jointvae_code")


class DiscreteCodeObjective(Objective):
    """The base objective (``jointvae``) plus weighted terms on one categorical channel's use of its categories."""

    objective_name = "jointvae_code"

    def __init__(
        self,
        base: Objective,
        latent: JointLatent,
        channel: str = "disc",
        marginal_weight: float = 0.0,
        balance_weight: float = 0.0,
        augment_weight: float = 0.0,
        assignment_weight: float = 0.0,
        mutual_information_weight: float = 0.0,
        reconstruction_assignment_weight: float = 0.0,
        warmup: int = 0,
        start: int = 0,
        sinkhorn_iterations: int = 3,
        sinkhorn_epsilon: float = 0.05,
        augment: Mapping | None = None,
        heads: int = 1,
        overcluster: int = 0,
        select_every: int = 1000,
        detach_heads: bool = False,
        heads_weight: float = 1.0,
        regroup_every: int = 0,
        regroup_start: int = 0,
        regroup_clusters: int = 0,
        regroup_bank: int = 8192,
        regroup_views: int = 2,
        image_shape: tuple[int, ...] | None = None,
    ):
        if channel not in latent.names:
            raise ConfigError(f"jointvae_code channel {channel!r} is not a channel of this latent ({latent.names})")
        family = latent.channels[channel]
        sizes = tuple(family.unit_sizes()) if family.is_discrete else ()
        if len(sizes) != 1 or sizes[0] < 2:
            raise ConfigError(
                f"jointvae_code works on one categorical variable; channel {channel!r} is {type(family).__name__} "
                f"with category counts {list(sizes)} — use a gumbel_softmax channel with sizes=[K]"
            )
        self.base, self.latent, self.channel, self.categories = base, latent, channel, sizes[0]
        self.weights = {
            "marginal": _weight("marginal_weight", marginal_weight),
            "balance": _weight("balance_weight", balance_weight),
            "augment": _weight("augment_weight", augment_weight),
            "assignment": _weight("assignment_weight", assignment_weight),
            "mutual_information": _weight("mutual_information_weight", mutual_information_weight),
            "reconstruction_assignment": _weight("reconstruction_assignment_weight", reconstruction_assignment_weight),
        }
        self.warmup = check("warmup", warmup, non_negative_int, owner="jointvae_code", example="1000")
        self.start = check("start", start, non_negative_int, owner="jointvae_code", example="8000")
        self.iterations = check("sinkhorn_iterations", sinkhorn_iterations, positive_int, owner="jointvae_code",
                                example="3")
        # 0.05 sharpens q(c|x) as SwAV does
        self.epsilon = check("sinkhorn_epsilon", sinkhorn_epsilon, positive_float, owner="jointvae_code",
                             example="0.05")
        self.augment = self._augment_options(augment)
        self.mixture = self._mixture_channel() if self.weights["assignment"] else None
        self.extra_heads = check("heads", heads, positive_int, owner="jointvae_code", example="5") - 1
        self.overcluster = check("overcluster", overcluster, non_negative_int, owner="jointvae_code", example="50")
        self.select_every = check("select_every", select_every, positive_int, owner="jointvae_code", example="1000")
        if not isinstance(detach_heads, bool):
            raise ConfigError(f"jointvae_code detach_heads is true or false, got {detach_heads!r}")
        self.detach_heads = detach_heads
        self.heads_weight = _weight("heads_weight", heads_weight)
        if (self.extra_heads or self.overcluster) and not (self.weights["balance"] or self.weights["augment"]):
            raise ConfigError(
                "jointvae_code heads and overcluster train extra heads with the balance and consistency terms; set "
                "balance_weight or augment_weight above 0 (e.g. augment_weight=100, balance_weight=30)"
            )
        if self.overcluster == 1:
            raise ConfigError("jointvae_code overcluster is a number of categories (at least 2), or 0 for none")
        self.regroup_every = check("regroup_every", regroup_every, non_negative_int, owner="jointvae_code",
                                   example="5000")
        self.regroup_start = check("regroup_start", regroup_start, non_negative_int, owner="jointvae_code",
                                   example="5000")
        # 4K clusters: fine enough that a class rarely shares one, coarse enough that each holds ~2% of the bank
        self.regroup_clusters = check("regroup_clusters", regroup_clusters, non_negative_int, owner="jointvae_code",
                                      example="40") or 4 * self.categories
        self.regroup_bank = check("regroup_bank", regroup_bank, positive_int, owner="jointvae_code", example="8192")
        self.regroup_views = check("regroup_views", regroup_views, positive_int, owner="jointvae_code", example="2")
        if self.regroup_every:
            if not self.extra_heads:
                raise ConfigError("jointvae_code regroup_every refits an auxiliary head; set heads to 2 or more "
                                  "(e.g. heads=5)")
            if not self.weights["augment"]:
                raise ConfigError("jointvae_code regroup_every merges clusters along the augmentation graph; set "
                                  "augment_weight above 0 (e.g. augment_weight=100)")
            if self.regroup_clusters <= self.categories:
                raise ConfigError(f"jointvae_code regroup_clusters ({self.regroup_clusters}) must be more than the "
                                  f"code's {self.categories} categories, e.g. {4 * self.categories} (0: 4 per category)")
            if self.regroup_bank < 2 * self.regroup_clusters:
                raise ConfigError(f"jointvae_code regroup_bank ({self.regroup_bank}) holds too few images for "
                                  f"{self.regroup_clusters} clusters; keep at least 50 per cluster, e.g. "
                                  f"{50 * self.regroup_clusters}")
            if image_shape is None:
                raise ConfigError("jointvae_code regroup_every keeps a bank of images and needs the data set's "
                                  "image_shape (the training task passes it)")
        self.image_shape = tuple(image_shape) if image_shape is not None else None
        self.head_state: CodeHeads | None = None
        self.tap: FeatureTap | None = None
        self.divisor = float(getattr(base, "divisor", 1.0))
        self.model: nn.Module | None = None
        self.seed = 0

    @staticmethod
    def _augment_options(augment: Mapping | None) -> dict[str, float]:
        options = dict(DEFAULT_AUGMENT)
        if augment is None:
            return options
        if not isinstance(augment, Mapping) or set(augment) - set(DEFAULT_AUGMENT):
            raise ConfigError(
                f"jointvae_code augment must be a mapping with keys among {sorted(DEFAULT_AUGMENT)} "
                f"(e.g. {DEFAULT_AUGMENT}), got {augment!r}"
            )
        for key, value in augment.items():
            options[key] = _weight(f"augment[{key!r}]", value)
        if options["stroke"] > 1:
            raise ConfigError(f"jointvae_code augment['stroke'] is a probability in [0, 1], got {options['stroke']!r}")
        for switch in ("recentre", "resize"):
            if options[switch] not in (0.0, 1.0):
                raise ConfigError(f"jointvae_code augment[{switch!r}] is 0 (off) or 1 (on), got {options[switch]!r}")
        if options["binarise"] >= 1:
            raise ConfigError(
                f"jointvae_code augment['binarise'] is a threshold in (0, 1) (0 turns it off), got {options['binarise']!r}"
            )
        return options

    def _mixture_channel(self) -> str:
        found = [
            name for name, family in self.latent.items()
            if self.channel in family.depends_on and callable(getattr(family, "responsibilities", None))
        ]
        if not found:
            raise ConfigError(
                f"jointvae_code assignment_weight needs a channel whose prior is a mixture indexed by {self.channel!r} "
                f"(e.g. cont_family='gaussian_mixture'); this latent has none"
            )
        return found[0]

    # --- the objective -----------------------------------------------------------------------------------------------
    def attach(self, model: nn.Module, seed: int) -> None:
        """Keeps the model (the augmented view is encoded with it) and the run's seed (the transforms' noise)."""
        self.model, self.seed = model, int(seed)
        if hasattr(self.base, "attach"):
            self.base.attach(model, seed)
        if self.extra_heads or self.overcluster:
            layer = final_linear(model.encoder, self.latent.param_size)
            if self.tap is not None:
                self.tap.remove()
            self.tap = FeatureTap(layer)
            bank = (self.regroup_bank, *self.image_shape) if self.regroup_every else ()
            self.head_state = CodeHeads(layer.in_features, self.categories, self.extra_heads, self.overcluster,
                                        self.select_every, self.seed, bank_shape=bank)
            self.head_state.to(layer.weight.device)

    def trainable(self) -> nn.Module | None:
        """The base's trainable state, the heads (when asked for), or both (``base`` and ``heads``)."""
        base = self.base.trainable()
        if self.head_state is None:
            return base
        return self.head_state if base is None else nn.ModuleDict({"base": base, "heads": self.head_state})

    def optimizer_options(self) -> dict:
        return self.base.optimizer_options()

    def ramp(self, step: int) -> float:
        """The share of each weight in force at ``step``: 0 before ``start``, then raised over ``warmup`` steps."""
        step = step - self.start
        if step < 0:
            return 0.0
        return 1.0 if self.warmup == 0 else min(1.0, step / self.warmup)

    def __call__(self, x: Tensor, output: ModelOutput, step: int) -> dict[str, Tensor]:
        logs = self.base(x, output, step)
        alpha = output.params[self.channel]["alpha"].float()
        log_alpha = torch.log(alpha + EPS)
        mean = alpha.mean(0)
        terms = {"marginal": (mean * torch.log(mean * self.categories + EPS)).sum()}
        features = self._head_features(x.shape[0]) if self.head_state is not None else None
        if self.regroup_every:  # before the heads are used: a refit after them would change what backward needs
            self._maybe_regroup(step, logs)
        own = balanced_assignment(log_alpha, self.iterations, self.epsilon) if self.weights["balance"] else None
        target, heads = own, None
        if self.head_state is not None:
            heads = self._head_views(features)
            teacher = int(self.head_state.teacher)
            if teacher:  # a head teaches: its target (balanced assignment), its categories renamed to the code's
                target = self.head_state.aligned(teacher - 1, heads["targets"][teacher - 1])
        if target is not None:
            terms["balance"] = -(target * log_alpha).sum(1).mean()
        moved = self._moved_alpha(x, step) if self.weights["augment"] or self.weights["mutual_information"] else None
        if self.weights["augment"]:
            fixed = (alpha if target is None else target).detach()
            terms["augment"] = (fixed * (torch.log(fixed + EPS) - torch.log(moved + EPS))).sum(1).mean()
        if self.weights["mutual_information"]:
            terms["mutual_information"] = -pair_mutual_information(alpha, moved)  # a loss: minus the information
        if self.weights["assignment"]:
            family = self.latent.channels[self.mixture]
            with torch.no_grad():
                resp = family.responsibilities(output.params[self.mixture]).float()
            terms["assignment"] = -(resp * log_alpha).sum(1).mean()
        if self.weights["reconstruction_assignment"]:
            target_by_decoder = self._reconstruction_assignment(x, output)
            terms["reconstruction_assignment"] = -(target_by_decoder * log_alpha).sum(1).mean()
        share = self.ramp(step)
        added = sum(self.weights[name] * share * value for name, value in terms.items() if self.weights[name])
        if heads is not None:
            added = added + share * self.heads_weight * self._train_heads(heads, alpha, log_alpha, own, moved, step, logs)
            if self.regroup_every:
                self.head_state.remember(x)
        if isinstance(added, Tensor):
            logs["objective"] = logs["objective"] + added
            logs["loss"] = logs["loss"] + added / self.divisor
        for name, value in terms.items():
            key, sign = LOGGED_AS.get(name, (f"code/{name}", 1.0))
            logs[key] = sign * value
        with torch.no_grad():
            counts = torch.bincount(alpha.argmax(1), minlength=self.categories).float()
            logs["code/categories_used"] = (counts >= USED_SHARE * alpha.shape[0]).sum().float()
        return logs

    def _require_model(self, why: str) -> None:
        if self.model is None:
            raise ConfigError(
                f"jointvae_code {why}, so it needs the model; the training task attaches it (Objective.attach) — when "
                f"calling the objective yourself, call objective.attach(model, seed) first"
            )

    @torch.no_grad()
    def _reconstruction_assignment(self, x: Tensor, output: ModelOutput) -> Tensor:
        """The balanced assignment of the categories by each image's log-likelihood decoded with each category."""
        self._require_model("reconstruction_assignment_weight decodes every category")
        b, k = x.shape[0], self.categories
        values = {name: family.representative(output.params[name]).detach().float()
                  for name, family in self.latent.items()}
        values[self.channel] = torch.eye(k, device=x.device, dtype=torch.float32).repeat_interleave(b, 0)
        latent = self.latent.concat({name: v if name == self.channel else v.repeat(k, 1) for name, v in values.items()})
        decoded = self.model.decode(latent).float().clamp(1e-6, 1 - 1e-6)
        target = x.float().repeat(k, *([1] * (x.dim() - 1)))
        if getattr(self.base, "likelihood", "bernoulli") == "gaussian":
            nll = (decoded - target).pow(2) / (2 * float(getattr(self.base, "sigma", 0.1)) ** 2)
        else:
            nll = -(target * decoded.log() + (1 - target) * (1 - decoded).log())
        log_likelihood = -nll.flatten(1).sum(1).view(k, b).T  # (B, K), in nats summed over pixels: hundreds apart
        # Relative to each image's best category (Sinkhorn's row scaling makes the shift immaterial) and floored at
        # e^-50, so no image's or category's mass underflows to zero.
        relative = (log_likelihood - log_likelihood.max(1, keepdim=True).values).clamp_min(-LIKELIHOOD_FLOOR)
        return balanced_assignment(relative, self.iterations, 1.0)

    # --- auxiliary heads -----------------------------------------------------------------------------------------------
    def _head_features(self, rows: int) -> Tensor:
        """The features of the latest encoder pass; detached when the heads are probes (``detach_heads``)."""
        features = self.tap.take(rows)
        return features.detach() if self.detach_heads else features

    def _head_views(self, features: Tensor) -> dict[str, list[Tensor]]:
        """Every head's log q(c|x) on the batch and its target (balanced assignment, or its own q(c|x) held fixed)."""
        log_probs = self.head_state.all_log_probs(features)
        targets = [self._target(lp) for lp in log_probs]
        return {"log_probs": log_probs, "targets": targets}

    def _target(self, log_probs: Tensor) -> Tensor:
        if self.weights["balance"]:
            return balanced_assignment(log_probs.float(), self.iterations, self.epsilon)
        return log_probs.float().exp().detach()

    def _candidate_loss(self, target: Tensor, log_probs: Tensor, moved_log_probs: Tensor | None) -> Tensor:
        """A head's balance and consistency terms, weighted: what it is trained on and what chooses the teacher."""
        loss = self.weights["balance"] * -(target * log_probs).sum(1).mean()
        if moved_log_probs is not None and self.weights["augment"]:
            loss = loss + self.weights["augment"] * (target * (torch.log(target + EPS) - moved_log_probs)).sum(1).mean()
        return loss

    def _train_heads(
        self, heads: dict, alpha: Tensor, log_alpha: Tensor, own: Tensor | None, moved: Tensor | None, step: int,
        logs: dict,
    ) -> Tensor:
        """The heads' own loss (added to the objective); records every candidate's loss and picks the next teacher."""
        state = self.head_state
        moved_log_probs: list[Tensor | None] = [None] * len(heads["log_probs"])
        if moved is not None:  # the augmented view's encoder pass has just filled the tap
            moved_log_probs = state.all_log_probs(self._head_features(alpha.shape[0]))
        losses = [self._candidate_loss(t.float(), lp.float(), m if m is None else m.float())
                  for t, lp, m in zip(heads["targets"], heads["log_probs"], moved_log_probs)]
        code_target = own if own is not None else alpha.detach()
        with torch.no_grad():
            code_loss = self._candidate_loss(code_target, log_alpha, None if moved is None else torch.log(moved + EPS))
        candidates = torch.stack([code_loss] + [loss.detach() for loss in losses[: self.extra_heads]])
        state.record(candidates, alpha, heads["targets"][: self.extra_heads])
        logs["code/teacher"] = state.teacher.float().clone()
        for index, value in enumerate(state.loss_ema):
            logs[f"code/candidate_loss.{index}"] = value.clone()
        state.choose(step + 1)  # the teacher for the next step, from the averages up to this one
        # their mean: however many heads there are, they press on the shared features as much as one more code does
        return sum(losses) / len(losses)

    def _maybe_regroup(self, step: int, logs: dict) -> None:
        """At the regrouping steps, refits the worst head to the regrouped bank (the batches before this one)."""
        state = self.head_state
        due = step >= max(self.regroup_start, 1) and (step - self.regroup_start) % self.regroup_every == 0
        if due and int(state.bank_filled) >= 2 * self.regroup_clusters:
            self._regroup(step)
        logs["code/regroup_within"] = state.regroup_within.clone()
        logs["code/regroup_fit"] = state.regroup_fit.clone()

    @torch.no_grad()
    def _regroup(self, step: int) -> None:
        """Over-cluster the bank in the trunk's features, merge the clusters along the augmentation graph into K
        groups (:func:`code_regroup.regroup`), and refit the worst auxiliary head to them."""
        state = self.head_state
        images = state.bank[: int(state.bank_filled)]
        generator = torch.Generator(device="cpu").manual_seed((self.seed * 1_000_003 + step) % (2**63))

        def features_of(chunk: Tensor) -> Tensor:
            self.model.encode(chunk.to(state.bank.device).float())
            return self.tap.take(chunk.shape[0]).detach()

        features = encode_features(features_of, images)
        moved = [encode_features(features_of, random_affine(images.float(), generator, **self.augment))
                 for _ in range(self.regroup_views)]
        groups, within = regroup(features, moved, self.regroup_clusters, self.categories, generator)
        head = state.worst_head()
        accuracy = fit_linear(state.heads[head], features, groups, moved)
        state.restart(head)
        state.regroup_within.fill_(within)
        state.regroup_fit.fill_(accuracy)

    def _moved_alpha(self, x: Tensor, step: int) -> Tensor:
        """q(c | T(x)) for a random transform T of each image (the augmented view), float32."""
        self._require_model("augment_weight and mutual_information_weight encode the augmented view")
        if x.dim() != 4:
            raise ConfigError(
                f"jointvae_code augment_weight and mutual_information_weight transform images (B, C, H, W); this data "
                f"set's samples have shape {tuple(x.shape[1:])} — set both to 0 for non-image data"
            )
        generator = torch.Generator(device="cpu").manual_seed((self.seed * 2_654_435_761 + step) % (2**63))
        moved = random_affine(x.float(), generator, **self.augment).to(x.dtype)
        return self.model.encode(moved)[self.channel]["alpha"].float()


def build_code_objective(registry, latent: JointLatent, image_shape: tuple[int, ...], **options) -> DiscreteCodeObjective:
    """Options of :class:`DiscreteCodeObjective`; ``terms`` and every other option as for ``jointvae``."""
    return registry.extend_objective("jointvae", DiscreteCodeObjective, latent=latent, image_shape=image_shape, **options)


@hookimpl
def latentkit_register_objectives(registry):
    registry.add("jointvae_code", build_code_objective)
