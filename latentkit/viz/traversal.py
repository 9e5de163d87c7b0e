"""Latent traversals: sweep one unit (or two) through its traversal values, hold the rest, decode.

Units not being moved are held at their neutral value — each family's :meth:`~latentkit.core.LatentFamily.neutral_value`,
the representative of its prior: 0 for a Gaussian unit (as the original code), category 0 for a categorical one (the
original's choice: its uniform prior has no single most likely category), and for a bounded family a typical value of
its prior inside the support, not an edge of it (0.5 for a relaxed Bernoulli unit, the prior mean for a Beta unit,
where 0 would be an edge of (0, 1)) — or they
are drawn from the prior when asked, or taken from an image's code when one is traversed. Units are addressed as
``<channel>.<index>`` (``cont.3``, ``disc.0``), the names KL is logged under.
"""

from __future__ import annotations

import attrs
import torch
from torch import Tensor

from latentkit.core import JointLatent, JointLatentVAE
from latentkit.errors import ConfigError, LatentkitError


@attrs.frozen
class UnitRef:
    """One latent unit: ``channel`` and ``index`` within it, written ``<channel>.<index>`` (``cont.3``, ``disc.0``) as
    KL is logged; build it from a name with :func:`parse_unit`, which checks it against a latent."""

    channel: str
    index: int

    def __str__(self) -> str:
        return f"{self.channel}.{self.index}"


def parse_unit(latent: JointLatent, name: str | UnitRef) -> UnitRef:
    """``"cont.3"`` → ``UnitRef("cont", 3)``, checked against the latent's channels and unit counts."""
    if isinstance(name, UnitRef):
        ref = name
    else:
        channel, _, index = str(name).rpartition(".")
        if not channel or not index.isdigit():
            raise ConfigError(f"a latent unit is named <channel>.<index>, e.g. 'cont.3' or 'disc.0'; got {name!r}")
        ref = UnitRef(channel, int(index))
    if ref.channel not in latent.names:
        raise ConfigError(f"unit {str(ref)!r}: no channel {ref.channel!r}; channels are {latent.names}")
    count = latent.channels[ref.channel].unit_count
    if not 0 <= ref.index < count:
        raise ConfigError(f"unit {str(ref)!r}: channel {ref.channel!r} has units 0..{count - 1}")
    return ref


def base_latent(latent: JointLatent, n: int = 1, *, prior: bool = False, generator: torch.Generator | None = None) -> Tensor:
    """``(n, sample_size)`` latent vectors to hold the units a traversal does not move at, on the CPU.

    By default every unit is at its family's neutral value (:func:`neutral_latent`), so the figure has no random draw
    and is the same each time; with ``prior`` each row is one draw from the prior (``generator`` seeds it), for a
    look at the units' effect away from the prior's centre."""
    if prior:
        return latent.concat(latent.prior_sample(n, generator))
    return neutral_latent(latent).expand(n, -1).clone()


def neutral_latent(latent: JointLatent) -> Tensor:
    """The ``(1, sample_size)`` latent vector holding every channel at its family's ``neutral_value()``, on the CPU.

    Why the family's value and not 0: for a bounded family 0 is an edge of the support (a relaxed Bernoulli's or a
    Beta's values lie in (0, 1)), so holding a unit there shows the decoder an extreme code; the prior's representative
    is the typical one. For the original JointVAE's channels this is 0 for the Gaussian units and category 0 for the
    categorical ones, so its figures are unchanged. A family whose neutral value has the wrong shape is a
    :class:`~latentkit.errors.LatentkitError` naming the channel."""
    values = {}
    for name, family in latent.items():
        value = family.neutral_value().detach()
        if tuple(value.shape) != (family.sample_size,):
            raise LatentkitError(
                f"channel {name!r}: {type(family).__name__}.neutral_value() gave shape {tuple(value.shape)}, but a "
                f"family's neutral value is one sample, shape ({family.sample_size},) (its sample_size); fix the family"
            )
        values[name] = value.to(device="cpu", dtype=torch.get_default_dtype()).reshape(1, -1)
    return latent.concat(values)


def unit_columns(latent: JointLatent, ref: UnitRef) -> slice:
    """The columns of the decoder's latent vector that hold unit ``ref`` (one for a Gaussian unit, K for a categorical
    variable's one-hot), for code that sets a unit in latent vectors: traversals here, edits in :mod:`latentkit.editing`."""
    channel = latent.sample_slices()[ref.channel]
    unit = latent.channels[ref.channel].unit_slice(ref.index)
    return slice(channel.start + unit.start, channel.start + unit.stop)


def traversal_latents(latent: JointLatent, unit: str | UnitRef, n: int = 8, base: Tensor | None = None) -> Tensor:
    """Latent vectors sweeping ``unit`` through its family's traversal values, ``(m, sample_size)``.

    ``base`` is one latent vector ``(sample_size,)`` or ``(1, sample_size)`` to hold the other units at (default: the
    neutral value). ``m`` is ``n`` for a continuous unit and K for a categorical one.
    """
    ref = parse_unit(latent, unit)
    values = latent.channels[ref.channel].traversal_values(ref.index, n)
    if base is None:
        base = base_latent(latent)
    z = base.reshape(1, -1).expand(values.shape[0], -1).clone()
    z[:, unit_columns(latent, ref)] = values.to(z.dtype)
    return z


def decode_latents(model: JointLatentVAE, z: Tensor) -> Tensor:
    """Decoded images of latent vectors ``z`` (eval mode, no gradients; the model's mode is restored), on the CPU."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            images = model.decode(z.to(next(model.parameters()).device))
    finally:
        model.train(was_training)
    return images.float().cpu()


def traversal_rows(
    model: JointLatentVAE, units: list[str | UnitRef], n: int = 8, *, base: Tensor | None = None
) -> list[Tensor]:
    """Decoded traversals, one ``(m_i, C, H, W)`` tensor per unit (``m_i`` = ``n``, or K for a categorical unit)."""
    rows = [traversal_latents(model.latent, unit, n, base) for unit in units]
    if not rows:
        raise ConfigError("name at least one unit to traverse")
    images = decode_latents(model, torch.cat(rows))
    return list(torch.split(images, [row.shape[0] for row in rows]))


def traverse(
    model: JointLatentVAE, units: list[str | UnitRef], n: int = 8, *, base: Tensor | None = None
) -> Tensor:
    """Decoded traversals, one row per unit: ``(len(units), m, C, H, W)`` (rows of a categorical unit hold K images;
    all rows must have the same length, so mix continuous and categorical units only with ``n`` = K, or use
    :func:`traversal_rows`)."""
    rows = traversal_rows(model, units, n, base=base)
    lengths = {row.shape[0] for row in rows}
    if len(lengths) > 1:
        raise ConfigError(f"traversal rows differ in length {sorted(lengths)}; pass n equal to the categories' K")
    return torch.stack(rows)


def traverse_pair(
    model: JointLatentVAE, row_unit: str | UnitRef, col_unit: str | UnitRef, n: int = 8, *, base: Tensor | None = None
) -> Tensor:
    """Two units against each other, ``(m_row, m_col, C, H, W)``: row ``i`` holds ``row_unit`` at its ``i``-th
    traversal value while ``col_unit`` sweeps along the columns (the paper's MNIST figure: a row per digit category,
    a continuous unit along the row)."""
    row_ref, col_ref = parse_unit(model.latent, row_unit), parse_unit(model.latent, col_unit)
    if row_ref == col_ref:
        raise ConfigError(f"a pair traversal needs two different units, got {row_ref} twice")
    row_z = traversal_latents(model.latent, row_ref, n, base)
    z = torch.cat([traversal_latents(model.latent, col_ref, n, base=row) for row in row_z])
    images = decode_latents(model, z)
    return images.reshape(row_z.shape[0], -1, *images.shape[1:])


def traversal_frames(
    model: JointLatentVAE, units: list[str | UnitRef], n: int = 8, *, base: Tensor | None = None
) -> Tensor:
    """Frames of an animated traversal, ``(n, len(units), C, H, W)``: in frame ``t`` every unit is at its ``t``-th
    value (a categorical unit with K values shows category ``t * K // n``), each unit moving on its own."""
    latents = []
    for unit in units:
        z = traversal_latents(model.latent, unit, n, base)
        latents.append(z[torch.arange(n) * z.shape[0] // n])
    if not latents:
        raise ConfigError("name at least one unit to traverse")
    images = decode_latents(model, torch.stack(latents, dim=1).reshape(n * len(units), -1))
    return images.reshape(n, len(units), *images.shape[1:])
