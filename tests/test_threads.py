"""ember/compiler/threads.py and malloc.py: loading the native conv kernels makes NumPy's
OpenBLAS threads sleep sooner and glibc keep freed memory; a user's own settings are kept, and
NumPy's products stay right after the restart of OpenBLAS's thread pool. Each case runs in a
fresh process (the settings are process-wide)."""
import os
import subprocess
import sys

import pytest

from ember.ops import native

pytestmark = pytest.mark.skipif(native.module("conv2d") is None, reason="no C compiler: the native kernels are off")

SCRIPT = """
import os, numpy as np, ember as em
from ember.compiler import malloc, threads
a = np.random.default_rng(0).standard_normal((300, 300))
before = a @ a
em.nn.functional.conv2d(em.randn(1, 2, 6, 6), em.randn(3, 2, 3, 3))  # loads the native kernels
print(os.environ.get("OPENBLAS_THREAD_TIMEOUT"), os.environ.get("OMP_WAIT_POLICY"),
      threads._loaded_openblas() is not None, bool(np.array_equal(a @ a, before)), malloc.applied)
"""


def _run(**env):
    e = {k: v for k, v in os.environ.items()
         if k not in ("OPENBLAS_THREAD_TIMEOUT", "OMP_WAIT_POLICY", "GLIBC_TUNABLES") and not k.startswith("MALLOC_")}
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=dict(e, **env), capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


def test_native_kernels_apply_thread_and_malloc_settings():
    timeout, policy, found, same, kept = _run()
    assert (timeout, policy, same) == ("18", "PASSIVE", "True")
    assert kept == "True"  # glibc (this project's platforms) keeps freed memory now
    import numpy as np
    if "openblas" in str(np.__config__.CONFIG.get("Build Dependencies", {}).get("blas", {})).lower():
        assert found == "True"  # NumPy's OpenBLAS was found and restarted


def test_users_settings_are_kept():
    timeout, policy, _, same, kept = _run(OPENBLAS_THREAD_TIMEOUT="25", OMP_WAIT_POLICY="ACTIVE",
                                          MALLOC_ARENA_MAX="2")
    assert (timeout, policy, same, kept) == ("25", "ACTIVE", "True", "False")


@pytest.mark.parametrize("value,sleeps", [("18", True), ("4", True), ("25", False), ("", False), ("x", False)])
def test_openblas_sleeps_reads_the_timeout(monkeypatch, value, sleeps):
    """Whether compiled programs with convolutions may run parallel kernels beside BLAS."""
    from ember.compiler import threads
    monkeypatch.setenv("OPENBLAS_THREAD_TIMEOUT", value)
    assert threads.openblas_sleeps() is sleeps
