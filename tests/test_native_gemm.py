"""ember/ops/native/gemm.c: matrix products on ember's threads through NumPy's OpenBLAS.
Checked against float64 NumPy products for every layout it accepts (row-major with a row
stride, transposed, leading dims that collapse into rows), the row and column splits over
threads, empty operands; every layout it declines writes nothing and says so."""
import numpy as np
import pytest

import ember as em
from ember.ops import native

gemm = native.gemm()
pytestmark = pytest.mark.skipif(gemm is None, reason="no C compiler, or NumPy's BLAS is not an OpenBLAS "
                                                     "with ILP64 cblas and per-thread thread counts")
RNG = np.random.default_rng(7)


def _ref(a, b):
    return a.astype(np.float64) @ b.astype(np.float64)


def _check(a, b):
    out = np.full(a.shape[:-1] + b.shape[-1:], np.nan, a.dtype)
    assert gemm.matmul(a, b, out) is True
    tol = 1e-4 if a.dtype == np.float32 else 1e-12
    np.testing.assert_allclose(out, _ref(a, b), rtol=tol, atol=tol * max(1, a.shape[-1]) ** 0.5)


def _mat(r, c, dtype, layout):
    """An (r, c) operand: "c" row-major, "f" transposed view, "rows" row-major inside a wider
    array (a row stride), "cols" a transposed view inside a taller one."""
    if layout == "c":
        return RNG.standard_normal((r, c)).astype(dtype)
    if layout == "f":
        return RNG.standard_normal((c, r)).astype(dtype).T
    if layout == "rows":
        return RNG.standard_normal((r, c + 5)).astype(dtype)[:, 2:2 + c]
    return RNG.standard_normal((c, r + 3)).astype(dtype).T[1:1 + r]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("la", ["c", "f", "rows", "cols"])
@pytest.mark.parametrize("lb", ["c", "f", "rows"])
def test_layouts_match_numpy(dtype, la, lb):
    _check(_mat(37, 29, dtype, la), _mat(29, 41, dtype, lb))


@pytest.mark.parametrize("M,K,N", [(1, 1, 1), (1, 300, 1), (7, 1, 5), (1000 + 3, 64, 96),  # rows split, ragged
                                   (20, 256, 700),  # few rows: the columns are split
                                   (64, 1024, 129), (513, 130, 17),
                                   (7, 20000, 9), (3, 120000, 3)])  # long sums: K split
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sizes_and_thread_splits(M, K, N, dtype):
    _check(_mat(M, K, dtype, "c"), _mat(K, N, dtype, "f"))


def test_leading_dims_collapse_into_rows():
    a = RNG.standard_normal((4, 6, 10)).astype(np.float32)
    b = RNG.standard_normal((10, 3)).astype(np.float32)
    _check(a, b)
    _check(a[:, ::2], b)  # every other row: still one row stride
    _check(a[:, :, 2:8], b[:6])  # a column slice: rows of 6 with a row stride of 10
    _check(a[:1], b)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ta,tb", [(False, False), (False, True), (True, False), (True, True)])
@pytest.mark.parametrize("batch", [(1,), (3,), (16, 4), (64,)])  # fewer than, and more than, the threads
def test_batches_of_products_match_numpy(dtype, ta, tb, batch):
    """a (..., M, K) @ b (..., K, N) with the same batch dims, matrices transposed views or not
    (attention's q @ k.T and p @ v)."""
    M, K, N = 37, 24, 40

    def mat(r, c, t):
        x = RNG.standard_normal(batch + ((c, r) if t else (r, c))).astype(dtype)
        return x.swapaxes(-1, -2) if t else x
    _check(mat(M, K, ta), mat(K, N, tb))


def test_batch_with_strided_batch_dims():
    """Every other matrix of a batch (one batch stride), and a batch of column slices."""
    a = RNG.standard_normal((8, 20, 30)).astype(np.float32)
    b = RNG.standard_normal((8, 30, 50)).astype(np.float32)
    _check(a[::2], b[::2])
    _check(a[:, :, 5:25], b[:, 5:25, :])


@pytest.mark.parametrize("M,K,N", [(0, 3, 4), (3, 4, 0), (4, 0, 5)])
def test_empty_operands(M, K, N):
    a, b = np.ones((M, K), np.float32), np.ones((K, N), np.float32)
    out = np.full((M, N), np.nan, np.float32)
    assert gemm.matmul(a, b, out) is True
    np.testing.assert_array_equal(out, np.zeros((M, N), np.float32))


@pytest.mark.parametrize("case", ["ints", "mixed dtypes", "broadcast row", "doubly strided",
                                  "broadcast batch", "3-D transposed", "leading dims that don't collapse",
                                  "batch dims that don't collapse"])
def test_declined_layouts_write_nothing(case):
    f = np.float32
    a, b = np.ones((4, 3), f), np.ones((3, 2), f)
    if case == "ints":
        a, b = a.astype(np.int64), b.astype(np.int64)
    elif case == "mixed dtypes":
        b = b.astype(np.float64)
    elif case == "broadcast row":
        a = np.broadcast_to(np.ones(3, f), (4, 3))
    elif case == "doubly strided":
        a = np.ones((4, 6), f)[:, ::2]
    elif case == "broadcast batch":
        a, b = np.ones((2, 4, 3), f), np.ones((1, 3, 2), f)
    elif case == "batch dims that don't collapse":
        a, b = np.ones((3, 2, 4, 3), f).transpose(1, 0, 2, 3), np.ones((2, 3, 3, 2), f)
    elif case == "3-D transposed":
        a = np.ones((2, 3, 4), f).transpose(0, 2, 1)
    else:
        a = np.ones((4, 2, 3), f).transpose(1, 0, 2)  # (2, 4, 3): rows of batch 1 come before batch 0's end
    out = np.full(a.shape[:-1] + b.shape[-1:], 7, np.float32 if case != "ints" else np.int64)
    assert gemm.matmul(a, b, out) is False
    assert (out == 7).all()


def test_wrong_out_shape_is_declined():
    a, b = np.ones((4, 3), np.float32), np.ones((3, 2), np.float32)
    assert gemm.matmul(a, b, np.empty((4, 3), np.float32)) is False
    with pytest.raises(TypeError, match="3 arrays"):
        gemm.matmul(a, b)


def test_tensor_products_use_it_and_match_numpy(monkeypatch):
    """Eager matmul of (..., M, K) by (K, N) float tensors, transposed views and gradients included."""
    calls = []

    class Counting:
        def matmul(self, a, b, out):
            calls.append(a.shape)
            return gemm.matmul(a, b, out)
    monkeypatch.setattr(native, "gemm", Counting)
    x = em.randn(3, 50, 40)
    w = em.randn(60, 40)
    np.testing.assert_allclose((x @ w.T).numpy(), _ref(x.numpy(), w.numpy().T), rtol=1e-4, atol=1e-4)
    assert calls == [(3, 50, 40)]
    y = em.randn(40, 70, dtype=em.float64, requires_grad=True)
    z = em.randn(50, 40, dtype=em.float64, requires_grad=True)
    (z @ y).sum().backward()
    np.testing.assert_allclose(z.grad.numpy(), np.ones((50, 70)) @ y.detach().numpy().T, rtol=1e-12)
    np.testing.assert_allclose(y.grad.numpy(), z.detach().numpy().T @ np.ones((50, 70)), rtol=1e-12)
    assert len(calls) == 4  # the product and both gradients
    q, k = em.randn(2, 3, 4), em.randn(2, 5, 4)
    np.testing.assert_allclose((q @ k.transpose(1, 2)).numpy(), q.numpy() @ k.numpy().transpose(0, 2, 1),
                               rtol=1e-5, atol=1e-6)  # a batch of products
    assert len(calls) == 5
    (em.randn(2, 3, 4) @ em.randn(1, 4, 5)).numpy()  # broadcast batch dims: NumPy's matmul
    assert len(calls) == 5


def test_compiled_products_run_on_it():
    lin = em.nn.Linear(64, 32)
    f = em.jit(lambda x: lin(x).relu().sum())
    x = em.randn(128, 64)
    np.testing.assert_allclose(f(x).item(), lin(x).relu().sum().item(), rtol=1e-5)
    assert "native.matmul" in f.explain()


def _openblas_threads():
    from ember.compiler import threads
    lib = threads._loaded_openblas()
    for name in ("scipy_openblas_get_num_threads64_", "openblas_get_num_threads64_", "openblas_get_num_threads"):
        if lib is not None and hasattr(lib, name):
            return getattr(lib, name)()
    pytest.skip("no OpenBLAS thread count to read")


def test_numpys_thread_count_is_restored_after_concurrent_products():
    """OpenBLAS's thread count is process-wide: held at 1 while any product runs here (from
    any Python thread), put back when the last one ends."""
    import threading
    before = _openblas_threads()
    a = RNG.standard_normal((256, 300)).astype(np.float32)
    b = RNG.standard_normal((300, 200)).astype(np.float32)
    ref = a @ b
    bad = []

    def work():
        out = np.empty((256, 200), np.float32)
        for _ in range(200):
            gemm.matmul(a, b, out)
            if not np.allclose(out, ref, rtol=1e-4, atol=1e-3):
                bad.append(1)
    ts = [threading.Thread(target=work) for _ in range(3)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not bad
    assert _openblas_threads() == before


@pytest.mark.parametrize("sa,sb", [((2, 3, 0), (2, 0, 4)), ((0, 3, 4), (0, 4, 5)), ((2, 0, 3), (2, 3, 4))])
def test_empty_batches(sa, sb):
    a, b = np.ones(sa, np.float64), np.ones(sb, np.float64)
    out = np.full(sa[:-1] + sb[-1:], np.nan)
    assert gemm.matmul(a, b, out) is True
    np.testing.assert_array_equal(out, a @ b)
