"""Pooling layers against PyTorch: output and input gradient over configurations (float64,
rtol=atol=1e-12: pooling only selects, sums and divides), tie and NaN routing, indices,
double backward, repr, errors."""
import numpy as np
import pytest

import ember as em
import ember.nn.functional as F
from ember.errors import DTypeError, EmberError, ShapeError

torch = pytest.importorskip("torch", reason="PyTorch is the oracle for the layer tests (pip install -e '.[oracle]')")
tnn = torch.nn
TOL = dict(rtol=1e-12, atol=1e-12)


def check(em_layer, t_layer, x_np):
    for train in (True, False):
        em_layer.train(train)
        t_layer.train(train)
        x = em.from_numpy(x_np.copy()).requires_grad_(True)
        tx = torch.from_numpy(x_np.copy()).requires_grad_(True)
        out, tout = em_layer(x), t_layer(tx)
        np.testing.assert_allclose(out.detach().numpy(), tout.detach().numpy(), **TOL)
        g = np.random.default_rng(1).standard_normal(tuple(tout.shape))
        (out * em.from_numpy(g)).sum().backward()
        (tout * torch.from_numpy(g)).sum().backward()
        np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), **TOL)


POOL2D = [  # (layer, args, kwargs, input shape)
    ("MaxPool2d", (2,), {}, (2, 3, 8, 8)),
    ("MaxPool2d", (3,), dict(stride=2, padding=1), (1, 2, 7, 9)),
    ("MaxPool2d", ((2, 3),), dict(stride=(1, 2), dilation=(2, 1)), (2, 2, 7, 8)),
    ("MaxPool2d", (3,), dict(stride=2, ceil_mode=True), (2, 2, 8, 7)),
    ("MaxPool2d", (2,), dict(padding=1, ceil_mode=True), (1, 1, 5, 5)),
    ("AvgPool2d", (2,), {}, (2, 3, 8, 7)),
    ("AvgPool2d", (3,), dict(stride=2, padding=1), (1, 2, 7, 9)),
    ("AvgPool2d", (3,), dict(stride=2, padding=1, count_include_pad=False), (1, 2, 7, 9)),
    ("AvgPool2d", ((3, 2),), dict(stride=2, ceil_mode=True), (2, 2, 8, 7)),
    ("AvgPool2d", (3,), dict(stride=2, padding=1, ceil_mode=True, count_include_pad=False), (1, 1, 6, 6)),
    ("AdaptiveAvgPool2d", (1,), {}, (2, 3, 5, 6)),
    ("AdaptiveAvgPool2d", ((3, 4),), {}, (2, 3, 6, 8)),
    ("AdaptiveAvgPool2d", ((3, 4),), {}, (2, 3, 7, 9)),  # uneven windows: the matmul path
    ("AdaptiveAvgPool2d", ((None, 2),), {}, (1, 2, 5, 5)),
    ("MaxPool1d", (3,), dict(stride=2, padding=1), (2, 3, 11)),
    ("MaxPool1d", (2,), dict(ceil_mode=True), (2, 3, 7)),
    ("AvgPool1d", (3,), dict(stride=2, padding=1, count_include_pad=False), (2, 3, 10)),
    ("AdaptiveAvgPool1d", (4,), {}, (2, 3, 10)),
]


@pytest.mark.parametrize("name,args,kwargs,shape", POOL2D, ids=[f"{c[0]}-{i}" for i, c in enumerate(POOL2D)])
def test_pooling_matches_torch(name, args, kwargs, shape):
    check(getattr(em.nn, name)(*args, **kwargs), getattr(tnn, name)(*args, **kwargs),
          np.random.default_rng(0).standard_normal(shape))


def test_unbatched_input():
    x = np.random.default_rng(0).standard_normal((3, 6, 6))
    np.testing.assert_allclose(em.nn.MaxPool2d(2)(em.from_numpy(x)).numpy(),
                               tnn.MaxPool2d(2)(torch.from_numpy(x)).numpy(), **TOL)


def test_max_pool_ties_route_to_the_first_max_like_torch():
    x_np = np.zeros((1, 1, 4, 4))
    x_np[0, 0, 1, 1] = x_np[0, 0, 1, 2] = 1.0  # a tie inside one overlapping window
    for kw in (dict(kernel_size=2), dict(kernel_size=3, stride=1, padding=1)):
        x = em.from_numpy(x_np.copy()).requires_grad_(True)
        tx = torch.from_numpy(x_np.copy()).requires_grad_(True)
        F.max_pool2d(x, **kw).sum().backward()
        torch.nn.functional.max_pool2d(tx, **kw).sum().backward()
        np.testing.assert_array_equal(x.grad.numpy(), tx.grad.numpy())


def test_max_pool_nan_propagates():
    x_np = np.arange(16.0).reshape(1, 1, 4, 4)
    x_np[0, 0, 0, 1] = np.nan
    out = F.max_pool2d(em.from_numpy(x_np), 2).numpy()
    ref = torch.nn.functional.max_pool2d(torch.from_numpy(x_np), 2).numpy()
    np.testing.assert_array_equal(out, ref)


def test_return_indices_match_torch():
    x_np = np.random.default_rng(0).standard_normal((2, 3, 7, 9))
    out, idx = em.nn.MaxPool2d(3, stride=2, padding=1, return_indices=True)(em.from_numpy(x_np))
    tout, tidx = tnn.MaxPool2d(3, stride=2, padding=1, return_indices=True)(torch.from_numpy(x_np))
    assert idx.dtype is em.int64
    np.testing.assert_array_equal(idx.numpy(), tidx.numpy())
    out1, idx1 = F.max_pool1d(em.from_numpy(x_np[:, :, 0]), 3, 2, 1, return_indices=True)
    tout1, tidx1 = torch.nn.functional.max_pool1d(torch.from_numpy(x_np[:, :, 0]), 3, 2, 1, return_indices=True)
    np.testing.assert_array_equal(idx1.numpy(), tidx1.numpy())


@pytest.mark.parametrize("fn,kw", [("max_pool2d", dict(kernel_size=3, stride=2, padding=1)),
                                   ("avg_pool2d", dict(kernel_size=3, stride=2, padding=1, count_include_pad=False))])
def test_double_backward(fn, kw):
    x_np = np.random.default_rng(0).standard_normal((2, 2, 6, 7))
    res = []
    for lib, f in ((em, getattr(F, fn)), (torch, getattr(torch.nn.functional, fn))):
        x = (em.from_numpy if lib is em else torch.from_numpy)(x_np.copy()).requires_grad_(True)
        out = f(x * x, **kw)  # x*x makes the second derivative non-trivial
        grad = em.grad if lib is em else lambda o, i, **k: torch.autograd.grad(o, i, **k)
        (gx,) = grad((out * out).sum(), [x], create_graph=True)
        (gx * gx).sum().backward()
        res.append(x.grad.numpy())
    np.testing.assert_allclose(res[0], res[1], rtol=1e-10, atol=1e-10)


def test_float32_stays_float32():
    x = em.randn(2, 3, 8, 8)
    for layer in (em.nn.MaxPool2d(2), em.nn.AvgPool2d(2), em.nn.AdaptiveAvgPool2d(3)):
        assert layer(x).dtype is em.float32


@pytest.mark.parametrize("name,args,kwargs", [
    ("MaxPool2d", (2,), {}), ("MaxPool2d", (3, 2, 1), dict(ceil_mode=True)), ("AvgPool2d", (2,), {}),
    ("AvgPool2d", ((3, 2), 1, 1), {}), ("AdaptiveAvgPool2d", ((3, 4),), {}), ("MaxPool1d", (3,), {}),
])
def test_repr_matches_torch(name, args, kwargs):
    assert repr(getattr(em.nn, name)(*args, **kwargs)) == repr(getattr(tnn, name)(*args, **kwargs))


def test_errors():
    with pytest.raises(ShapeError, match=r"max_pool2d: expected a 4-D input .*got shape \(8, 8\)"):
        em.nn.MaxPool2d(2)(em.randn(8, 8))
    with pytest.raises(ShapeError, match=r"avg_pool1d: expected a 3-D input"):
        em.nn.AvgPool1d(2)(em.randn(1, 2, 3, 8))
    with pytest.raises(EmberError, match="at most half the kernel"):
        F.max_pool2d(em.randn(1, 1, 8, 8), 2, padding=2)
    with pytest.raises(ShapeError, match="too small"):
        F.avg_pool2d(em.randn(1, 1, 2, 2), 3)
    with pytest.raises(DTypeError, match="floating-point"):
        F.max_pool2d(em.ones(1, 1, 4, 4, dtype=em.int64), 2)
    with pytest.raises(EmberError, match="output_size"):
        F.adaptive_avg_pool2d(em.randn(1, 1, 4, 4), 0)
    with pytest.raises(EmberError, match="divisor_override"):
        F.avg_pool2d(em.randn(1, 1, 4, 4), 2, divisor_override=3)
