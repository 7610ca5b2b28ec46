"""ember/compiler/threads.py and malloc.py: loading the native kernels bounds how long idle
OpenMP threads spin, makes NumPy's OpenBLAS threads sleep sooner and glibc keep freed memory;
ember's products then run on its own threads (gemm.c, bound to NumPy's OpenBLAS); a user's own
settings are kept, and NumPy's products stay right after the restart of OpenBLAS's thread pool.
Each case runs in a fresh process (the settings are process-wide)."""
import os
import subprocess
import sys

import pytest

from ember.ops import native

pytestmark = pytest.mark.skipif(native.module("conv2d") is None, reason="no C compiler: the native kernels are off")

SCRIPT = """
import os, numpy as np, ember as em
from ember.compiler import malloc, threads
from ember.ops import native
a = np.random.default_rng(0).standard_normal((300, 300))
before = a @ a
em.nn.functional.conv2d(em.randn(1, 2, 6, 6), em.randn(3, 2, 3, 3))  # loads the native kernels
x, w = em.randn(64, 300), em.randn(300, 70)
right = bool(np.allclose((x @ w).numpy(), x.numpy() @ w.numpy(), rtol=1e-4, atol=1e-4))
print(os.environ.get("OPENBLAS_THREAD_TIMEOUT"), os.environ.get("OMP_WAIT_POLICY"), os.environ.get("GOMP_SPINCOUNT"),
      threads._loaded_openblas() is not None, bool(np.array_equal(a @ a, before)), malloc.applied,
      native.gemm() is not None, right)
"""


def _run(**env):
    e = {k: v for k, v in os.environ.items()
         if k not in ("OPENBLAS_THREAD_TIMEOUT", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "GLIBC_TUNABLES") and not k.startswith("MALLOC_")}
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=dict(e, **env), capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


def _numpy_has_openblas() -> bool:
    import numpy as np
    return "openblas" in str(np.__config__.CONFIG.get("Build Dependencies", {}).get("blas", {})).lower()


def test_native_kernels_apply_thread_and_malloc_settings():
    timeout, policy, spin, found, same, kept, gemm, right = _run()
    assert (timeout, policy, spin, same, right) == ("18", "None", "10000", "True", "True")
    assert kept == "True"  # glibc (this project's platforms) keeps freed memory now
    if _numpy_has_openblas():
        assert found == "True"  # NumPy's OpenBLAS was found and restarted
        assert gemm == "True"  # and ember's products run on ember's threads through it


def test_users_settings_are_kept():
    timeout, policy, spin, _, same, kept, _, right = _run(OPENBLAS_THREAD_TIMEOUT="25", OMP_WAIT_POLICY="ACTIVE",
                                                          MALLOC_ARENA_MAX="2")
    assert (timeout, policy, spin, same, kept, right) == ("25", "ACTIVE", "None", "True", "False", "True")
    spin = _run(GOMP_SPINCOUNT="123")[2]
    assert spin == "123"


def test_products_use_numpy_when_the_blas_lacks_what_gemm_needs(monkeypatch):
    """No ILP64 cblas or per-thread thread count in the process's BLAS: NumPy's matmul runs."""
    import numpy as np
    import ember as em
    from ember.compiler import threads
    monkeypatch.setattr(threads, "openblas_gemm", lambda: None)
    monkeypatch.setattr(native, "_modules", {k: v for k, v in native._modules.items() if k != "gemm:bound"})
    assert native.gemm() is None
    x, w = em.randn(5, 7), em.randn(7, 3)
    np.testing.assert_allclose((x @ w).numpy(), x.numpy() @ w.numpy(), rtol=1e-6)


@pytest.mark.parametrize("value,sleeps", [("18", True), ("4", True), ("25", False), ("", False), ("x", False)])
def test_openblas_sleeps_reads_the_timeout(monkeypatch, value, sleeps):
    """Whether compiled programs that still call OpenBLAS may run parallel kernels beside it."""
    from ember.compiler import threads
    monkeypatch.setenv("OPENBLAS_THREAD_TIMEOUT", value)
    assert threads.openblas_sleeps() is sleeps
