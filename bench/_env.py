"""Shared benchmark setup: drop the OpenBLAS overrides that halve NumPy's GEMM speed on these
machines (tests and CI keep them), and pin every framework to 2 threads."""
import os
import sys

_OVERRIDES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def clean_env_and_reexec() -> None:
    """Re-run this script without OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE (must run before numpy
    is imported), with 2 threads everywhere."""
    if any(k in os.environ for k in _OVERRIDES):
        env = {k: v for k, v in os.environ.items() if k not in _OVERRIDES}
        print(f"bench: re-running without {', '.join(k for k in _OVERRIDES if k in os.environ)} "
              f"(they slow NumPy's BLAS here)", flush=True)
        os.execve(sys.executable, [sys.executable] + sys.argv, env)
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "2")
    os.environ.setdefault("MKL_NUM_THREADS", "2")
