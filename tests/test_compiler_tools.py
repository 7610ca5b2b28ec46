"""User tools of ember.jit: check mode (every compiled node against eager execution), explain,
DOT export, the memory report, and the memory plan's buffer reuse keeping results right.

Tolerances: check mode compares float32 values with rtol 1e-4 / atol 1e-5 (fused C kernels
reorder arithmetic); results here are compared with rtol 1e-5."""
import shutil

import numpy as np
import pytest

import ember as em
from ember.compiler import jit
from ember.compiler.debug import CheckError
from ember.compiler.dot import render, to_dot
from ember.errors import EmberError


def _chain(x):
    return ((x * 1.5 + 0.5).tanh() * x.sigmoid()).sum(dim=-1)


def test_check_mode_passes_on_a_correct_program():
    x = em.randn(64, 32)
    f = jit(_chain, check=True)
    f(x)
    np.testing.assert_allclose(f(x).numpy(), _chain(x).numpy(), rtol=1e-5, atol=1e-6)


def test_check_mode_names_the_first_wrong_node():
    x = em.randn(64, 32)
    f = jit(_chain, check=True)
    f(x)
    fused = [n for n in f.last.graph.nodes if getattr(n.op, "results", None) is not None]
    assert fused, f.explain()
    op = fused[0].op
    good = op.kernel

    def broken(*arrays):  # a miscompiled kernel: every output off by one
        good(*arrays)
        for out in arrays[len(op.inputs):]:
            out += 1
    op.kernel = broken
    with pytest.raises(CheckError, match=r"node \d+ `.*fused\[mul,add,tanh"):
        f(x)


def test_explain_lists_kernels_and_their_ops():
    f = jit(_chain)
    f(em.randn(8, 4))
    text = f.explain()
    assert "C kernel" in text and "fuses" in text and "tanh" in text and "sigmoid" in text
    assert text.splitlines()[-1].endswith("of them fused")


def test_explain_before_compiling_is_a_clear_error():
    with pytest.raises(EmberError, match="call the jitted function once"):
        jit(_chain).explain()


def test_dot_export_has_every_node_and_edge(tmp_path):
    f = jit(lambda x, w: (x @ w).relu().sum())
    f(em.randn(4, 3), em.randn(3, 2))
    src = f.dot(tmp_path / "g.dot")
    assert src.startswith("digraph") and src.rstrip().endswith("}")
    assert "matmul" in src and "->" in src and "out0" in src
    assert (tmp_path / "g.dot").read_text() == src
    before = f.dot(which="before")
    assert before.count("shape=box") >= src.count("shape=box")


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz `dot` is not installed")
def test_dot_renders_with_graphviz(tmp_path):
    f = jit(_chain)
    f(em.randn(4, 4))
    out = f.dot(tmp_path / "g.svg")
    assert "<svg" in (tmp_path / "g.svg").read_text() and out


def test_rendering_without_graphviz_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(EmberError, match="Graphviz"):
        render("digraph g {}", tmp_path / "g.png")
    assert to_dot  # the text export needs nothing


def test_memory_reports_peak_and_reuses_buffers_across_calls():
    def f(x):
        a = (x * 2 + 1).exp()           # a fused temporary...
        return (a @ x.T).sum(), (a * x).sum()

    jf = jit(f)
    xs = [em.randn(256, 256) for _ in range(3)]
    for x in xs:  # the arena is reused: each call still gets its own right answer
        got, want = jf(x), f(x)
        for g, w in zip(got, want):
            np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-4)
    m = jf.memory()
    assert m["peak"] >= 256 * 256 * 4 and m["inputs"] >= 256 * 256 * 4
    assert m["arena"] >= 256 * 256 * 4, jf.explain()


def test_check_mode_accepts_a_whole_training_step():
    em.manual_seed(0)
    model = em.nn.Sequential(em.nn.Linear(6, 16), em.nn.GELU(), em.nn.LayerNorm(16), em.nn.Linear(16, 3))
    opt = em.optim.Adam(model.parameters(), lr=1e-2)
    x, y = em.randn(8, 6), em.tensor(np.arange(8) % 3)

    def step(x, y):
        opt.zero_grad()
        loss = em.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    f = jit(step, check=True)
    losses = [f(x, y).item() for _ in range(4)]
    assert losses[-1] < losses[0]


def test_optimizer_updates_are_written_in_place_and_match_eager():
    def make():
        em.manual_seed(0)
        m = em.nn.Linear(32, 16)
        opt = em.optim.Adam(m.parameters(), lr=1e-2)

        def step(x):
            opt.zero_grad()
            (m(x) ** 2).mean().backward()
            opt.step()
        return m, opt, step

    (me, _, se), (mj, oj, sj) = make(), make()
    f = jit(sj)
    x = em.randn(8, 32)
    for _ in range(4):
        se(x)
        f(x)
    kernels = [n.op for n in f.last.graph.nodes if getattr(n.op, "results", None) is not None]
    assert any(k.alias for k in kernels), f.explain()  # the Adam kernel overwrites p, m, v
    before = mj.weight._data
    f(x)
    se(x)
    assert mj.weight._data is before  # updated where it lives: no new array, no copy back
    for a, b in zip(mj.parameters(), me.parameters()):
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_arguments_sharing_memory_run_eagerly():
    """A program treats its arguments as independent values; the same array passed twice (or
    a view of another argument) to a function that writes into its arguments runs eagerly."""
    def f(a, b):
        with em.no_grad():
            a.mul_(2.0)
        return (b * 1.0).sum()

    jf = jit(f)
    jf(em.ones(4), em.ones(4))
    x = em.ones(4)
    assert jf(x, x).item() == 8.0 and np.array_equal(x.numpy(), 2 * np.ones(4))
    y = em.ones(2, 4)
    assert jf(y[0], y[0].reshape(4)).item() == 8.0
    z = em.ones(4)
    assert jf(z, em.ones(4)).item() == 4.0  # distinct arrays: the compiled program
    g = jit(lambda a, b: (a * b).sum())  # no writes: shared arguments may run compiled
    g(em.ones(3), em.ones(3))
    w = em.full((3,), 2.0)
    assert g(w, w).item() == 12.0 and len(g.variants) == 1
