"""The native max-pooling kernels (ember/ops/native/pool2d.c) against the NumPy kernels they
replace: the same outputs bit for bit (pooling selects), the same gradients up to the order in
which overlapping windows add (rtol 1e-6 in float32, 1e-12 in float64), over kernel, stride,
padding, dilation and ceil-mode configurations, with ties, NaN, and -inf in the input.
The PyTorch comparisons in tests/test_pooling.py run through the native kernels too."""
import numpy as np
import pytest

import ember as em
from ember.ops import conv as C
from ember.ops import native

pytestmark = pytest.mark.skipif(native.module("pool2d") is None, reason="no C compiler: the native kernels are off")

CONFIGS = [  # kernel, stride, padding, dilation, ceil_mode, input shape
    ((2, 2), (2, 2), (0, 0), (1, 1), False, (2, 3, 8, 6)),  # tiling windows
    ((3, 3), (2, 2), (1, 1), (1, 1), False, (2, 2, 7, 9)),  # overlapping, padded
    ((2, 3), (2, 1), (1, 0), (2, 1), True, (1, 2, 9, 7)),  # dilation, ceil mode
    ((3, 2), (1, 3), (0, 1), (1, 2), True, (3, 1, 5, 11)),
]


def _both(monkeypatch, fn):
    """fn() with the native kernels, then with the NumPy ones."""
    got = fn()
    with monkeypatch.context() as m:
        m.setattr(C, "_native_pool", lambda *a: None)
        want = fn()
    return got, want


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cfg", CONFIGS, ids=[f"p{i}" for i in range(len(CONFIGS))])
def test_forward_and_backward_equal_numpy_kernels(monkeypatch, cfg, dtype):
    kernel, stride, padding, dilation, ceil_mode, shape = cfg
    rng = np.random.default_rng(0)
    x_np = rng.integers(-3, 4, shape).astype(dtype)  # small integers: many ties
    x_np.flat[::7] = np.nan
    x_np.flat[3::11] = -np.inf
    g_np = rng.standard_normal(C._pool_shape(shape, kernel=kernel, stride=stride, padding=padding,
                                             dilation=dilation, ceil_mode=ceil_mode)).astype(dtype)

    def run():
        x = em.from_numpy(x_np.copy()).requires_grad_()
        y = em.nn.functional.max_pool2d(x, kernel, stride, padding, dilation, ceil_mode=ceil_mode)
        y.backward(em.from_numpy(g_np))
        return y.detach().numpy(), x.grad.numpy()
    (y, gx), (want_y, want_gx) = _both(monkeypatch, run)
    np.testing.assert_array_equal(y, want_y)
    tol = 1e-6 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(gx, want_gx, rtol=tol, atol=tol)
    np.testing.assert_array_equal(gx == 0, want_gx == 0)  # the same elements receive gradient


def test_native_kernel_ran(monkeypatch):
    ran = []
    mod = native.module("pool2d")

    class Spy:
        def __getattr__(self, name):
            ran.append(name)
            return getattr(mod, name)
    monkeypatch.setattr(C, "_native_pool", lambda *a: Spy())
    x = em.randn(2, 3, 6, 6).requires_grad_()
    em.nn.functional.max_pool2d(x, 2).sum().backward()
    assert ran == ["max_pool2d", "max_pool2d_backward"]


def test_mismatched_arrays_raise():
    mod = native.module("pool2d")
    x = np.zeros((1, 1, 4, 4), np.float32)
    with pytest.raises(ValueError, match="do not fit the geometry"):
        mod.max_pool2d(x, np.empty((1, 1, 3, 3), np.float32), (1, 4, 4, 2, 2, 2, 2, 2, 2, 0, 0, 1, 1))
    with pytest.raises(ValueError, match="do not fit the geometry"):  # dtypes differ
        mod.max_pool2d(x, np.empty((1, 1, 2, 2), np.float64), (1, 4, 4, 2, 2, 2, 2, 2, 2, 0, 0, 1, 1))
