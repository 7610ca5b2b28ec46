"""The on-disk compile cache: a second process compiles nothing, two processes compiling the
same kernel at once both succeed, a corrupt entry is detected and rebuilt; and the fallback
without a C compiler (one warning, same results)."""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import ember as em
from ember.compiler import cache, jit, pipeline

pytestmark = pytest.mark.skipif(cache.compiler() is None, reason="no C compiler / Python headers")

SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import ember as em
    from ember.compiler import cache, jit
    scale = float(sys.argv[1])
    f = jit(lambda x: ((x * scale).tanh() + 1).sum(dim=1))
    x = em.tensor(np.arange(12, dtype=np.float32).reshape(3, 4))
    f(x)
    out = f(x)
    print(json.dumps({"stats": cache.stats, "out": out.numpy().tolist()}))
""")


def run_child(tmp_path, scale=0.5, wait=True):
    env = dict(os.environ, EMBER_CACHE_DIR=str(tmp_path))
    p = subprocess.Popen([sys.executable, "-c", SCRIPT, str(scale)], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    return p if not wait else finish(p)


def finish(p):
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def test_second_process_compiles_nothing(tmp_path):
    first = run_child(tmp_path)
    assert first["stats"]["compiles"] == 1
    second = run_child(tmp_path)
    assert second["stats"] == {"hits": 1, "compiles": 0, "rebuilds": 0}
    assert second["out"] == first["out"]


def test_two_processes_compiling_at_once_both_succeed(tmp_path):
    procs = [run_child(tmp_path, scale=0.25, wait=False) for _ in range(2)]
    results = [finish(p) for p in procs]
    assert sorted(r["stats"]["compiles"] for r in results) == [0, 1]  # the lock: one builds
    assert results[0]["out"] == results[1]["out"]
    assert len(list(tmp_path.glob("*.so"))) == 1


def test_corrupt_entry_is_rebuilt(tmp_path):
    run_child(tmp_path, scale=2.0)
    (so,) = tmp_path.glob("*.so")
    so.write_bytes(so.read_bytes()[: so.stat().st_size // 2])  # a truncated library
    again = run_child(tmp_path, scale=2.0)
    assert again["stats"]["rebuilds"] == 1 and again["stats"]["compiles"] == 1
    third = run_child(tmp_path, scale=2.0)
    assert third["stats"] == {"hits": 1, "compiles": 0, "rebuilds": 0}


def test_cache_info_reports_location_and_size(tmp_path, monkeypatch):
    monkeypatch.setenv("EMBER_CACHE_DIR", str(tmp_path))
    run_child(tmp_path)
    info = cache.cache_info()
    assert info["location"] == str(tmp_path) and info["entries"] == 1 and info["bytes"] > 0


def test_without_a_compiler_numpy_runs_the_graph_after_one_warning(monkeypatch):
    monkeypatch.setattr(cache, "_cc_info", False)
    monkeypatch.setattr(pipeline, "_warned", [])
    f = lambda x: (x.exp() * 2).sum(dim=0)
    x = em.randn(3, 4)
    with pytest.warns(RuntimeWarning, match="no C compiler"):
        jf = jit(f)
        jf(x)
    jf2 = jit(lambda x: x * 3)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        jf2(x)
        np.testing.assert_allclose(jf(x).numpy(), f(x).numpy(), rtol=1e-6)
    assert "fused" not in jf.ir("after")
