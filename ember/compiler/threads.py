"""Thread settings: one thread pool (libgomp's) runs ember's kernels, matrix products included.

Two pools on the same cores fight: an idle thread that spins takes the core that the other
pool's worker needs, and that worker's whole parallel region then waits for it (measured: the
GPT step 24 ms with serial fused kernels beside OpenBLAS's threads, 36-140 ms with parallel
ones). So ember's matrix products run on libgomp's threads too (ember/ops/native/gemm.c: each
thread calls OpenBLAS for its share, OpenBLAS held to that thread), and:
- ``prepare()`` (before our first module loads libgomp) sets GOMP_SPINCOUNT so that an idle
  OpenMP thread spins about 100 us, then sleeps. Spinning covers the gap between two kernels
  of a step (a sleeping thread takes 50-100 us to wake on this kind of VM: a 1024x128x128
  product took 0.27 ms with OMP_WAIT_POLICY=PASSIVE against 0.14 ms spinning); the bound keeps
  an idle program from holding the cores (libgomp's default spins about 3 ms).
- ``calm_openblas()`` makes OpenBLAS's own threads, still used by NumPy's products outside
  ember, sleep after about 80 us instead of 0.1 s: OpenBLAS reads OPENBLAS_THREAD_TIMEOUT
  (log2 cycles, 4..30) only when its threads start, so it sets the variable, makes OpenBLAS
  read its environment again and stops its threads; its next product starts them anew.
  (Measured before the products moved: the LeNet step under jit 27 ms with the default
  timeout against 13-14 ms at 2^18 cycles.)

Both are process-wide and done once; a user's own settings (OMP_WAIT_POLICY, GOMP_SPINCOUNT,
OPENBLAS_THREAD_TIMEOUT) are kept.

>>> prepare(); calm_openblas()
"""
from __future__ import annotations

import ctypes
import os

BLAS_TIMEOUT = "18"  # log2 of the cycles an idle OpenBLAS thread spins before it sleeps
SPIN_COUNT = "10000"  # libgomp's idle spins (a pause each, ~10 ns here) before a thread sleeps
_calmed = False


def prepare() -> None:
    """Idle OpenMP threads spin ~100 us, then sleep (before libgomp loads); OpenBLAS's threads
    sleep soon too (idempotent)."""
    if "OMP_WAIT_POLICY" not in os.environ:
        os.environ.setdefault("GOMP_SPINCOUNT", SPIN_COUNT)
    calm_openblas()


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


# NumPy's OpenBLAS exports its ILP64 cblas under one of these pairs of names (NumPy >= 2 wheels:
# scipy_openblas64; older ones: openblas64_).
_GEMM_NAMES = [("scipy_cblas_sgemm64_", "scipy_cblas_dgemm64_"), ("cblas_sgemm64_", "cblas_dgemm64_")]
_LOCAL_NAMES = ["openblas_set_num_threads_local", "scipy_openblas_set_num_threads_local64_"]


def openblas_gemm():
    """(sgemm, dgemm, set_num_threads_local) addresses of NumPy's OpenBLAS (ILP64 cblas, and
    the per-thread thread count of OpenBLAS >= 0.3.27), or None when it lacks any of them."""
    lib = _loaded_openblas()
    if lib is None:
        return None

    def addr(name):
        try:
            return ctypes.cast(getattr(lib, name), ctypes.c_void_p).value
        except AttributeError:
            return None
    local = next((a for a in map(addr, _LOCAL_NAMES) if a), None)
    for s, d in _GEMM_NAMES:
        if local and addr(s) and addr(d):
            return addr(s), addr(d), local
    return None


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
