"""Process-wide settings that make PyTorch on the CPU fast, applied once by the ``latentkit`` command.

**The allocator.** glibc's malloc returns large freed blocks to the kernel (``munmap`` above the mmap threshold, heap
trimming above the trim threshold) and the next step faults the same pages back in: for these small convolutional
networks a quarter of a training step was system time (``../shared/notes/machine.md``). Raising both thresholds keeps
the activation buffers mapped between steps. ``mallopt`` does at run time what the ``MALLOC_MMAP_THRESHOLD_`` /
``MALLOC_TRIM_THRESHOLD_`` environment variables do at start-up, so no re-exec is needed; it must run before the big
allocations, which is why the CLI calls it first. Memory that is kept is reused by the next step, so peak memory does
not grow with the number of steps.

Set ``LATENTKIT_MALLOC=default`` to leave the allocator alone; a user's own ``MALLOC_*`` variables are respected.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

#: glibc mallopt parameters (malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
#: Keep up to 2 GiB of freed memory in the heap instead of trimming it.
TRIM_THRESHOLD = 2**31 - 1
#: glibc's largest allowed mmap threshold on 64-bit (HEAP_MAX_SIZE / 2): blocks below it come from the heap.
MMAP_THRESHOLD = 32 * 2**20

_applied: str | None = None


def tune_allocator() -> str:
    """Raise glibc's trim and mmap thresholds once per process; returns what was done (or why not)."""
    global _applied
    if _applied is not None:
        return _applied
    if os.environ.get("LATENTKIT_MALLOC", "").lower() == "default":
        _applied = "left alone (LATENTKIT_MALLOC=default)"
    elif any(k in os.environ for k in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")):
        _applied = "left alone (MALLOC_* set in the environment)"
    elif not sys.platform.startswith("linux"):
        _applied = f"left alone (not glibc: {sys.platform})"
    else:
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            mallopt = libc.mallopt
        except (OSError, AttributeError):
            _applied = "left alone (no glibc mallopt)"
        else:
            ok = mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1 and mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
            _applied = "tuned (trim and mmap thresholds raised)" if ok else "left alone (mallopt refused)"
    return _applied
