"""Thread settings for running ember's OpenMP kernels beside NumPy's OpenBLAS in one process.

Two thread pools share the cores: libgomp's (our kernels) and OpenBLAS's (NumPy's matrix
products). An idle thread that spins takes the core that the other pool's worker needs, and
that worker's whole parallel region then waits for it:
- libgomp reads OMP_WAIT_POLICY when our first module loads it: ``prepare()`` sets PASSIVE
  (measured: an MLP step 8 ms on one thread, 129 ms on two with spinning OpenMP threads).
- OpenBLAS's threads busy-wait for 2^28 cycles, about 0.1 s, after each product, and read
  OPENBLAS_THREAD_TIMEOUT (log2 cycles, 4..30) only when they start. Next to the multi-threaded
  native conv kernels that spinning costs most: the LeNet training step (bench W3) under jit
  took 27 ms on two threads against 13-14 ms with the timeout at 2^18 cycles (about 80 us, which
  still covers back-to-back products). But where products alternate with single-threaded
  kernels the spinning pays: the GPT step (W4) took 22 ms with the default and 24 ms at 2^18.
  So ``calm_openblas()`` is called when the native conv/pool kernels load, not for every
  compiled module: it sets the variable (unless the user did), makes OpenBLAS read its
  environment again and stops its threads; its next product starts them with the new value.

Both are process-wide and done once; a user's own settings of either variable are kept.

>>> prepare(); calm_openblas()
"""
from __future__ import annotations

import ctypes
import os

BLAS_TIMEOUT = "18"  # log2 of the cycles an idle OpenBLAS thread spins before it sleeps
_calmed = False


def prepare() -> None:
    """Idle OpenMP threads sleep (before libgomp loads; idempotent)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def calm_openblas() -> None:
    """Idle OpenBLAS threads sleep after about 80 us instead of 0.1 s (idempotent)."""
    global _calmed
    if _calmed:
        return
    _calmed = True
    if "OPENBLAS_THREAD_TIMEOUT" not in os.environ:
        os.environ["OPENBLAS_THREAD_TIMEOUT"] = BLAS_TIMEOUT
        _restart_openblas()


def _restart_openblas() -> bool:
    """Make the OpenBLAS loaded in this process re-read its environment and stop its thread
    pool. False (and nothing done) when there is none or it lacks these functions."""
    lib = _loaded_openblas()
    if lib is None:
        return False
    try:
        read_env, shutdown = lib.openblas_read_env, lib.blas_thread_shutdown_
    except AttributeError:
        return False
    read_env()
    shutdown()
    return True


def _loaded_openblas():
    """ctypes handle of the OpenBLAS already mapped into this process (NumPy's), or None."""
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "openblas" in line.lower() and ".so" in line}
    except OSError:
        return None
    for path in sorted(paths):
        try:
            # RTLD_NOLOAD: only a library already loaded; local scope: its symbols stay private
            return ctypes.CDLL(path, mode=getattr(os, "RTLD_NOLOAD", 0) | os.RTLD_LOCAL)
        except OSError:
            continue
    return None


def openblas_sleeps() -> bool:
    """Whether idle OpenBLAS threads sleep within about 80 us (our setting or a user's lower
    one): then our parallel kernels may run between matrix products."""
    try:
        return int(os.environ.get("OPENBLAS_THREAD_TIMEOUT", "")) <= int(BLAS_TIMEOUT)
    except ValueError:
        return False
