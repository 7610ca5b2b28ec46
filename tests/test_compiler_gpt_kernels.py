"""The compiler pieces a GPT training step leans on, each against eager execution: exp of a
causal mask's -inf in a fused kernel (vector exp without the scalar fallback), max/min
reductions (vectorized, NaN-propagating), the slice-scatter rewrite (q, k, v gradients become
one cat) and the native embedding backward (row scatter-add). Tolerances: exact where the
kernel does the same float operations in the same order as NumPy, else 1e-6 relative
(float32 fused math)."""
import numpy as np
import pytest

import ember as em
from ember.compiler import pipeline, runtime
from ember.compiler.passes import rewrite, slices
from ember.compiler.passes.dce import dce
from ember.compiler.trace import trace

R = np.random.default_rng(0)


def jit_and_eager(fn, *arrays):
    """(jitted result, eager result) of fn on tensors of ``arrays`` (jit's second call runs
    the compiled program; the first traces)."""
    f = em.jit(fn)
    ts = [em.tensor(a) for a in arrays]
    f(*ts)
    return f(*ts).numpy(), fn(*ts).numpy(), f


def kernels(f) -> str:
    return f.explain()


# -- exp of -inf (masked softmax) --------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_exp_of_far_negative_values_is_zero_like_eager(dtype):
    x = np.array([-np.inf, -1e4, -800.0, -120.0, -90.0, -87.5, -50.0, 0.0, 3.0], dtype)
    x = np.tile(x, 40)  # long enough for full vectors
    got, want, f = jit_and_eager(lambda t: (t * 1.0).exp(), x)
    assert "C kernel" in kernels(f)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-37 if dtype == np.float32 else 1e-300)
    assert np.all(got[x == -np.inf] == 0)


def test_causal_softmax_matches_eager():
    s = R.standard_normal((2, 3, 16, 16)).astype(np.float32)
    mask = np.triu(np.full((16, 16), -np.inf, np.float32), 1)
    got, want, _ = jit_and_eager(lambda t, m: (t + m).softmax(-1), s, mask)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    assert np.all(got[..., mask == -np.inf] == 0)


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # eager's -inf - -inf
def test_softmax_of_a_fully_masked_row_matches_eager():
    s = R.standard_normal((6, 40)).astype(np.float32)
    s[2] = -np.inf
    got, want, _ = jit_and_eager(lambda t: t.softmax(-1) * 1.0, s)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


# -- max / min reductions ----------------------------------------------------------------------

@pytest.mark.parametrize("op", ["max", "min"])
@pytest.mark.parametrize("axis", [-1, (1, 2), None])
def test_fused_max_min_match_eager_with_nans(op, axis):
    x = R.standard_normal((4, 5, 33)).astype(np.float32)
    x[1, 2, 7] = np.nan
    x[3, 0, 32] = np.nan
    x[2, 4, :] = -np.inf

    def fn(t):
        y = t * 2.0 + 1.0
        return getattr(y, op)() if axis is None else getattr(y, "a" + op)(axis)
    got, want, f = jit_and_eager(fn, x)
    assert "C kernel" in kernels(f)
    np.testing.assert_array_equal(got, want)  # max/min are exact; NaN positions must match


def test_row_fused_max_keeps_nan():
    x = R.standard_normal((8, 40)).astype(np.float32)
    x[3, 5] = np.nan
    got, want, _ = jit_and_eager(lambda t: t.softmax(-1) * 3.0, x)
    assert np.isnan(got[3]).all() and np.isnan(want[3]).all()
    np.testing.assert_allclose(np.delete(got, 3, 0), np.delete(want, 3, 0), rtol=1e-6)


# -- slice scatters -> cat ---------------------------------------------------------------------

def _qkv_grad_graph(shape=(2, 5, 12), parts=3):
    def fn(x):
        n = shape[-1] // parts
        pieces = [x[..., i * n:(i + 1) * n] for i in range(parts)]
        return sum((p * (i + 2.0)).sum() for i, p in enumerate(pieces))
    x = em.tensor(R.standard_normal(shape).astype(np.float32), requires_grad=True)

    def step(x):
        y = fn(x)
        return em.grad(y, x)
    return trace(step, [x], {}, [x]).graph


def test_adjacent_slice_scatters_become_one_cat():
    g = _qkv_grad_graph()
    assert [n.op.name for n in g.nodes].count("index_add") == 3
    g1 = dce(rewrite(g.copy(), slices.RULES))
    names = [n.op.name for n in g1.nodes]
    assert "index_add" not in names and names.count("cat") == 1
    assert len(next(n for n in g1.nodes if n.op.name == "cat").args) == 3
    x = R.standard_normal((2, 5, 12)).astype(np.float32)
    for a, b in zip(runtime.build(g)(x), runtime.build(g1)(x)):
        np.testing.assert_array_equal(a, b)


def test_slice_scatters_of_reshaped_heads_cat_before_merging():
    # attention's layout: q, k, v cut from one projection, split into heads and permuted
    def step(x):
        heads = [x[..., i * 4:(i + 1) * 4].reshape(2, 5, 2, 2).permute(0, 2, 1, 3) for i in range(3)]
        return em.grad(sum(((h * (i + 2.0)) ** 2).sum() for i, h in enumerate(heads)), x)
    x = em.tensor(R.standard_normal((2, 5, 12)).astype(np.float32), requires_grad=True)
    g = trace(step, [x], {}, [x]).graph
    g1 = dce(rewrite(g.copy(), slices.RULES))
    cats = [n for n in g1.nodes if n.op.name == "cat"]
    assert len(cats) == 1 and cats[0].args[0].shape == (2, 5, 2, 2)  # unmerged heads
    a = x.detach().numpy()
    np.testing.assert_array_equal(runtime.build(g)(a)[0], runtime.build(g1)(a)[0])


def test_slice_scatters_with_a_gap_keep_the_zeros():
    def step(x):
        return em.grad((x[:, 0:3] * 2.0).sum() + (x[:, 5:8] * 3.0).sum(), x)
    x = em.tensor(R.standard_normal((4, 8)).astype(np.float32), requires_grad=True)
    g = trace(step, [x], {}, [x]).graph
    g1 = dce(rewrite(g.copy(), slices.RULES))
    a = x.detach().numpy()
    np.testing.assert_array_equal(runtime.build(g)(a)[0], runtime.build(g1)(a)[0])


def test_slice_scatters_partly_covering_stay_a_scatter():
    g = _qkv_grad_graph(shape=(3, 16), parts=4)  # 4 slices of 4: [0:4] [4:8] [8:12] [12:16]
    g1 = dce(rewrite(g.copy(), slices.RULES))
    x = R.standard_normal((3, 16)).astype(np.float32)
    np.testing.assert_array_equal(runtime.build(g)(x)[0], runtime.build(g1)(x)[0])


# -- embedding backward ------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_embedding_backward_native_equals_eager(dtype):
    V, C = 11, 6
    idx = R.integers(0, V, (4, 7))
    idx[0, :3] = 2  # repeated rows accumulate
    idx[1, 0] = -1  # negative indices wrap, as in NumPy
    w = em.tensor(R.standard_normal((V, C)).astype(dtype), requires_grad=True)
    gy = R.standard_normal((4, 7, C)).astype(dtype)

    def step(i, gy):
        w.grad = None
        (w[i] * gy).sum().backward()
        return w.grad

    f = em.jit(step)
    i_t, g_t = em.tensor(idx), em.tensor(gy)
    f(i_t, g_t)
    got = f(i_t, g_t).numpy()
    assert "native.index_add" in "".join(str(n.op.describe()) for n in f.last.graph.nodes if hasattr(n.op, "describe"))
    want = np.zeros((V, C), dtype)
    np.add.at(want, idx, gy)
    np.testing.assert_array_equal(got, want)


def test_embedding_backward_out_of_range_index_raises_like_eager():
    w = em.tensor(R.standard_normal((5, 3)).astype(np.float32), requires_grad=True)

    def step(i):
        w.grad = None
        w[i].sum().backward()
        return w.grad
    f = em.jit(step)
    f(em.tensor(np.array([0, 1, 4])))
    with pytest.raises(IndexError):
        f(em.tensor(np.array([0, 1, 5])))


def test_natives_table_lists_the_embedding_kernel():
    from ember.compiler.codegen import scatter
    assert any(gen[0] is scatter.supported for gen in pipeline.NATIVES)


# -- batched small matmul ----------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ta,tb", [(False, False), (False, True), (True, False), (True, True)])
def test_batched_small_matmul_native_matches_eager(dtype, ta, tb):
    # M = 13 (an 8-row tile, a 4-row tile, one row), N = 32, K = 5; operands as transposed views
    a = R.standard_normal((3, 2, 5, 13) if ta else (3, 2, 13, 5)).astype(dtype)
    b = R.standard_normal((3, 2, 32, 5) if tb else (3, 2, 5, 32)).astype(dtype)

    def fn(x, y):
        x = x.transpose(-1, -2) if ta else x
        y = y.transpose(-1, -2) if tb else y
        return x @ y
    got, want, f = jit_and_eager(fn, a, b)
    assert "native.matmul" in kernels(f)
    np.testing.assert_allclose(got, want, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-6)


def test_batched_matmul_spread_over_threads_matches_eager():
    """Attention's sizes (64 products of 64x32 by 32x64): the batch is spread over threads."""
    q, k = (R.standard_normal((16, 4, 64, 32)).astype(np.float32) for _ in range(2))
    got, want, f = jit_and_eager(lambda x, y: x @ y.transpose(-1, -2), q, k)
    assert "native.matmul" in kernels(f)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_batched_matmul_with_unsupported_width_runs_on_the_gemm_kernel():
    """N = 10 is not a multiple of the small kernel's vectors: the batch goes to gemm.c."""
    from ember.compiler.codegen.bmm import BatchedMatmul
    from ember.compiler.codegen.gemm import Gemm
    a, b = R.standard_normal((4, 8, 3)).astype(np.float32), R.standard_normal((4, 3, 10)).astype(np.float32)
    got, want, f = jit_and_eager(lambda x, y: x @ y, a, b)
    ops = [type(n.op) for n in f.last.graph.nodes]
    from ember.ops import native
    if native.gemm() is not None:
        assert Gemm in ops and BatchedMatmul not in ops
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_batched_matmul_gradients_match_eager():
    a = R.standard_normal((2, 3, 8, 4)).astype(np.float32)
    b = R.standard_normal((2, 3, 4, 32)).astype(np.float32)
    x, y = em.tensor(a, requires_grad=True), em.tensor(b, requires_grad=True)

    def step(x, y):
        x.grad = y.grad = None
        ((x @ y) ** 2).sum().backward()
        return x.grad, y.grad
    f = em.jit(step)
    f(x, y)
    gx, gy = (t.numpy() for t in f(x, y))
    ex, ey = (t.numpy() for t in step(x, y))
    np.testing.assert_allclose(gx, ex, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gy, ey, rtol=1e-5, atol=1e-5)


# -- cross-entropy -----------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_native_forward_and_gradient_match_eager(dtype):
    logits = (R.standard_normal((37, 11)) * 5).astype(dtype)
    logits[3] = 1e4  # large logits stay finite (shifted by the row max)
    target = R.integers(0, 11, 37)
    target[5] = -1   # ignored
    x = em.tensor(logits, requires_grad=True)
    F = em.nn.functional

    def step(x, t):
        x.grad = None
        loss = F.cross_entropy(x, t, ignore_index=-1)
        loss.backward()
        return loss, x.grad
    f = em.jit(step)
    t = em.tensor(target)
    f(x, t)
    loss, gx = f(x, t)
    assert kernels(f).count("native.cross_entropy") == 2
    want_loss, want_gx = step(x, t)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(loss.detach().numpy(), want_loss.detach().numpy(), **tol)
    np.testing.assert_allclose(gx.numpy(), want_gx.numpy(), **tol)


def test_cross_entropy_native_target_out_of_range_raises():
    x = em.tensor(R.standard_normal((4, 5)).astype(np.float32))
    f = em.jit(lambda x, t: em.nn.functional.cross_entropy(x, t))
    f(x, em.tensor(np.array([0, 1, 2, 4])))
    with pytest.raises(IndexError):
        f(x, em.tensor(np.array([0, 1, 2, 5])))


# -- layouts of NumPy results read by fused kernels --------------------------------------------

def test_numpy_reduction_of_a_permuted_view_feeds_a_fused_kernel():
    # NumPy lays out sum(permuted) like its input (not C order): the kernel must not assume it
    x = np.arange(8 * 4 * 6).reshape(8, 4, 6)
    got, want, _ = jit_and_eager(lambda t: t.permute(1, 0, 2).sum(2) * 2 + 1, x)
    np.testing.assert_array_equal(got, want)


def test_cat_of_permuted_views_is_c_contiguous_under_jit():
    a = R.standard_normal((3, 4, 5)).astype(np.float32)
    b = R.standard_normal((3, 4, 5)).astype(np.float32)
    fn = lambda x, y: em.cat([x.permute(1, 0, 2), y.permute(1, 0, 2)], 2).reshape(4, 30) * 2.0  # noqa: E731
    got, want, _ = jit_and_eager(fn, a, b)
    np.testing.assert_array_equal(got, want)


# -- native cat (parts read with their strides, rows spread over threads) ------------------------

def _parts(shapes, dtype):
    return [(R.standard_normal(s) * 10).astype(dtype) for s in shapes]


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_native_cat_matches_numpy_on_every_axis(dtype, axis):
    base = [48, 40, 48]  # results above the native kernel's minimum size
    shapes = []
    for k in (5, 7, 11):
        s = list(base)
        s[axis] = k
        shapes.append(tuple(s))
    arrays = _parts(shapes, dtype)
    got, want, f = jit_and_eager(lambda *ts: em.cat([t * 1 for t in ts], dim=axis), *arrays)
    assert "native.cat" in kernels(f)
    np.testing.assert_array_equal(got, np.concatenate(arrays, axis=axis))


def test_native_cat_reads_strided_parts():
    """Transposed parts (attention's q, k, v gradients), one with a non-unit last stride."""
    a, b, c = (R.standard_normal((16, 4, 64, 32)).astype(np.float32) for _ in range(3))
    d = R.standard_normal((16, 32, 4, 64)).astype(np.float32)

    def fn(a, b, c, d):
        return em.cat([a.transpose(1, 2), b.transpose(1, 2), c.transpose(1, 2), d.transpose(1, 3)], dim=2)
    got, want, f = jit_and_eager(fn, a, b, c, d)
    assert "native.cat" in kernels(f)
    ref = np.concatenate([x.transpose(0, 2, 1, 3) for x in (a, b, c)] + [d.transpose(0, 3, 2, 1)], axis=2)
    np.testing.assert_array_equal(got, ref)
    np.testing.assert_array_equal(want, ref)


def test_small_cats_stay_with_numpy_and_gradients_match():
    a, b = R.standard_normal((3, 4)), R.standard_normal((3, 5))
    got, want, f = jit_and_eager(lambda x, y: em.cat([x, y], dim=1) * 2, a, b)
    assert "native.cat" not in kernels(f)
    np.testing.assert_array_equal(got, want)
    big = [R.standard_normal((64, 300)), R.standard_normal((64, 212))]
    x, y = (em.tensor(v, requires_grad=True) for v in big)

    def loss(x, y):
        out = (em.cat([x, y], dim=1) ** 2).sum()
        out.backward()
        return out
    f = em.jit(loss)
    f(x, y)
    x.grad = y.grad = None
    f(x, y)
    assert "native.cat" in kernels(f)
    np.testing.assert_allclose(x.grad.numpy(), 2 * big[0], rtol=1e-12)
    np.testing.assert_allclose(y.grad.numpy(), 2 * big[1], rtol=1e-12)
