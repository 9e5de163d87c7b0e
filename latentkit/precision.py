"""Compute precision: float32 everywhere, or the networks' matrix products in bfloat16 where the hardware has it.

``"bfloat16"`` runs the encoder's and decoder's convolutions and linear layers under :func:`torch.autocast` (CPU or
CUDA): their inputs and weights are cast to bfloat16 and their products accumulate in float32 inside oneDNN / cuBLAS.
What decides the training signal stays float32: :class:`~latentkit.core.JointLatentVAE` hands the latent families
float32 features and returns float32 reconstructions (the networks' last sigmoid runs in float32), so the
reconstruction loss, the KL terms, the capacity targets and the objective are float32; the weights, their gradients and
Adam's state are float32 too (autocast casts a copy per step). ``"float32"`` is exactly the computation without this
module, the one that reproduces the original code's fixtures.

Why bfloat16 and not float16: the same exponent range as float32, so no loss scaling, and it is what CPUs compute
natively (``avx512_bf16``: Intel since Cooper Lake, AMD since Zen 4; ``amx_bf16``: Intel Xeon since Sapphire Rapids,
far faster) and GPUs since Ampere. Elsewhere PyTorch emulates it, usually slower than float32:
:func:`bfloat16_support` says which case a machine is.
"""

from __future__ import annotations

import contextlib
import platform
from pathlib import Path

import torch

from latentkit.errors import ConfigError

#: the precisions a run, an evaluation or a figure can compute in
PRECISIONS = ("float32", "bfloat16")
#: what each precision is called by torch
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def check_precision(precision: str) -> str:
    """``precision`` if it is one of :data:`PRECISIONS`, else a :class:`ConfigError` naming them."""
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}; use one of {list(PRECISIONS)} (float32 is exact)")
    return precision


def autocast(precision: str, device: torch.device | str) -> contextlib.AbstractContextManager:
    """The context the networks run in: nothing for ``"float32"``, bfloat16 autocast on ``device``'s type else.

    Autocast is thread-local: enter it in the thread that calls the model."""
    device_type = torch.device(device).type
    if check_precision(precision) == "float32":
        return contextlib.nullcontext()
    return torch.autocast(device_type, dtype=torch.bfloat16)


def cpu_flags() -> set[str]:
    """The CPU's feature flags (``/proc/cpuinfo``; empty where that file is absent, as on macOS)."""
    info = Path("/proc/cpuinfo")
    if not info.is_file():
        return set()
    for line in info.read_text().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what :mod:`platform` knows."""
    info = Path("/proc/cpuinfo")
    if info.is_file():
        for line in info.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def bfloat16_support(device: torch.device | str = "cpu") -> dict:
    """Whether ``device`` computes bfloat16 natively: ``{"device", "native", "how"}``.

    On the CPU ``how`` is ``"amx_bf16"`` (matrix tiles), ``"avx512_bf16"`` (vector dot products) or ``"emulated"``
    (bfloat16 is converted to float32 in software: correct, usually slower than float32, and no benchmark result); on
    CUDA it is the card's name and ``native`` is true from compute capability 8.0 (Ampere) on."""
    device = torch.device(device)
    if device.type == "cuda":
        major, _minor = torch.cuda.get_device_capability(device)
        return {"device": torch.cuda.get_device_name(device), "native": major >= 8, "how": f"sm_{major}x"}
    flags = cpu_flags()
    how = next((f for f in ("amx_bf16", "avx512_bf16") if f in flags), "emulated")
    return {"device": cpu_model(), "native": how != "emulated", "how": how}
