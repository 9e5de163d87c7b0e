"""Device names from the command line to torch devices, with a clear error when CUDA is asked for but absent."""

from __future__ import annotations

import torch

from latentkit.errors import ConfigError


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` is CUDA when PyTorch sees a GPU, else the CPU; ``"cpu"``, ``"cuda"``, ``"cuda:N"`` as given."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ConfigError(f"unknown device {device!r}; use 'auto', 'cpu', 'cuda' or 'cuda:N'") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} was asked for, but PyTorch sees no CUDA GPU here; use --device cpu")
    return dev


def use_channels_last(memory_format: str, device: torch.device) -> bool:
    """Whether convolutions run in channels_last: asked for, or ``"auto"`` on the CPU, where oneDNN's convolutions are
    faster in it (``docs/performance.md``). The trainer and :mod:`latentkit.inference` follow the same rule."""
    return memory_format == "channels_last" or (memory_format == "auto" and device.type == "cpu")
