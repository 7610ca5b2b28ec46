"""Keep freed memory for reuse: glibc's malloc settings for a process that allocates and frees
the same large arrays every step.

By default glibc serves an allocation above a threshold (128 KiB, raised on the fly up to
32 MiB) with a fresh mmap, and returns free memory at the heap's top to the system above
another. Each training step then faults in its large activations page by page again: the
LeNet step (bench W3) under jit took 19.7 ms, and 14.3-15.5 ms with allocations below 64 MiB
served from the heap and up to 256 MiB of free heap kept (PyTorch's documentation recommends
jemalloc or tcmalloc for the same reason). Set once, when the first compiled module loads;
the user's own MALLOC_* or GLIBC_TUNABLES settings win, and other C libraries are left alone.

>>> keep_freed_memory()
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os

MMAP_THRESHOLD = 64 << 20  # allocations below this come from the heap
TRIM_THRESHOLD = 256 << 20  # free memory kept at the heap's top
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters
applied = None  # after the first call: whether the settings were applied


def keep_freed_memory() -> bool:
    """Apply the settings (once); False when they were not applied (not glibc, or the user
    configured malloc through the environment)."""
    global applied
    if applied is None:
        applied = _apply()
    return applied


def _apply() -> bool:
    if any(k.startswith("MALLOC_") for k in os.environ) or "GLIBC_TUNABLES" in os.environ:
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt, _ = libc.mallopt, libc.gnu_get_libc_version  # the second: glibc, not musl
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
