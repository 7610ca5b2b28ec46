"""Native C kernels the compiler substitutes for multi-pass NumPy kernels (max-pooling's
backward) give the eager results: the same winner per window on ties (first max), NaN, -inf,
padding, ceil_mode and dilation; where windows overlap, the sums (which cancel) agree to rtol 1e-6
and atol 1e-6 (float32) / 1e-14 (float64), as they add in another order."""
import numpy as np
import pytest

import ember as em
from ember.compiler import jit

F = em.nn.functional

CONFIGS = [dict(kernel_size=2), dict(kernel_size=2, size=8), dict(kernel_size=(2, 4), size=8), dict(kernel_size=3, stride=2, padding=1),
           dict(kernel_size=3, stride=1), dict(kernel_size=2, stride=2, ceil_mode=True),
           dict(kernel_size=2, dilation=2, padding=1)]


def _data(dtype, size):
    rng = np.random.default_rng(0)
    x = rng.integers(-2, 3, (2, 3, size, size)).astype(dtype)  # many ties
    x[0, 0, 1, 1] = np.nan
    x[0, 1, :3, :3] = -np.inf
    x[1, 2, 2, :] = np.nan
    x[1, 1, 4:6, 4] = [np.nan, 5]
    return x


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cfg", CONFIGS)
def test_max_pool2d_backward_native_equals_eager(cfg, dtype):
    cfg = dict(cfg)
    x_np = _data(dtype, cfg.pop("size", 7))  # 8: windows tile the input (the one-write path)

    def f(x, g):
        y = F.max_pool2d(x, **cfg)
        y.backward(g)
        return y

    x = em.tensor(x_np, requires_grad=True)
    g = em.tensor(np.random.default_rng(1).standard_normal(F.max_pool2d(em.tensor(x_np), **cfg).shape).astype(dtype))
    jf = jit(f)
    jf(x, g)
    x.grad = None
    jf(x, g)
    assert "native.max_pool2d_backward" in jf.explain()
    got = x.grad.numpy()
    xr = em.tensor(x_np, requires_grad=True)
    f(xr, g)
    want = xr.grad.numpy()
    np.testing.assert_array_equal(got != 0, want != 0)  # the same element of each window wins
    # overlapping windows add in another order: last-bit differences
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6 if dtype == np.float32 else 1e-14)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cfg", CONFIGS)
def test_max_pool2d_forward_equals_eager_bit_for_bit(cfg, dtype):
    cfg = dict(cfg)
    x = em.tensor(_data(dtype, cfg.pop("size", 7)))
    f = jit(lambda x: F.max_pool2d(x, **cfg))
    f(x)
    np.testing.assert_array_equal(f(x).numpy(), F.max_pool2d(x, **cfg).numpy())
    # windows that tile the input; in floor mode an odd size leaves its last row/column out
    tiles = "stride" not in cfg and "padding" not in cfg and "dilation" not in cfg and not cfg.get("ceil_mode")
    assert ("native.max_pool2d" in f.explain()) == tiles, f.explain()
