"""The native (C) stride-1 float32 convolution kernels of ember/ops/native/conv2d.c.

Each kernel (forward, weight gradient, and the input gradient: the forward kernel on the padded
gradient, or the scatter form conv2d_dgrad for convs with little padding) is compared with the NumPy im2col kernels in float64 on the same float32
inputs, over paddings (asymmetric too), dilations, groups, kernel sizes, and shapes whose
rows are shorter or longer than a vector; whole layers are checked against PyTorch in float32.
A spy confirms the native kernel really ran. Tolerance: rtol=atol=1e-4 relative to the output's
scale (float32 sums of up to ~600 terms, in a different order than the reference).

The fallbacks: EMBER_NATIVE=0, no C compiler, and a compiler that fails all give the NumPy
kernels (the last with one warning)."""
import numpy as np
import pytest

import ember as em
from ember.ops import conv as C
from ember.ops import native

from test_conv import CONV1D, CONV2D, CONVT, check_layer

torch = pytest.importorskip("torch", reason="PyTorch is the oracle for the layer tests (pip install -e '.[oracle]')")

pytestmark = pytest.mark.skipif(native.module("conv2d") is None, reason="no C compiler: the native kernels are off")

# (N, C, H, W, O, kh, kw, (top, bottom, left, right), dilation, groups)
GEOMETRIES = [
    (2, 3, 8, 9, 4, 3, 3, (0, 0, 0, 0), (1, 1), 1),
    (3, 4, 10, 8, 6, 2, 3, (0, 0, 0, 0), (2, 1), 2),
    (2, 1, 28, 28, 32, 3, 3, (0, 0, 0, 0), (1, 1), 1),  # LeNet-1: C = 1
    (2, 32, 13, 13, 64, 3, 3, (0, 0, 0, 0), (1, 1), 1),  # LeNet-2
    (1, 6, 5, 5, 9, 5, 5, (2, 2, 2, 2), (1, 1), 3),
    (2, 2, 1, 19, 5, 1, 3, (0, 0, 1, 1), (1, 1), 1),  # a 1-row image (Conv1d)
    (4, 8, 12, 12, 16, 1, 1, (0, 0, 0, 0), (1, 1), 1),  # 1x1
    (2, 4, 9, 9, 4, 7, 7, (3, 3, 3, 3), (1, 1), 4),  # depthwise 7x7
    (2, 3, 6, 7, 5, 4, 4, (1, 2, 2, 1), (2, 1), 1),  # asymmetric padding (even kernel, "same")
    (1, 5, 40, 37, 70, 3, 3, (1, 1, 1, 1), (1, 1), 1),  # rows longer than a vector; O not a multiple of the tile
    (3, 20, 6, 5, 3, 3, 2, (2, 0, 0, 1), (1, 2), 1),  # more channels than outputs
]


def _reference(geometry, rng):
    N, Ci, H, W, O, kh, kw, pads, dil, G = geometry
    x = rng.standard_normal((N, Ci, H, W)).astype(np.float32)
    w = rng.standard_normal((O, Ci // G, kh, kw)).astype(np.float32)
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), pads[:2], pads[2:]))
    y = C._conv2d_kernel(np)(xp, w.astype(np.float64), stride=(1, 1), padding=(0, 0), dilation=dil, groups=G)
    return x, w, xp, y


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=[f"g{i}" for i in range(len(GEOMETRIES))])
def test_forward_and_weight_grad_match_numpy_kernels(geometry):
    N, Ci, H, W, O, kh, kw, pads, dil, G = geometry
    mod = native.module("conv2d")
    rng = np.random.default_rng(0)
    x, w, xp, want = _reference(geometry, rng)
    got = C._native_conv(mod, x, w, None, pads, dil, G)
    scale = np.abs(want).max()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * scale)

    g = rng.standard_normal(want.shape).astype(np.float32)
    want_gw = C._conv2d_weight_grad_kernel(np)(xp, g.astype(np.float64), kernel=(kh, kw), stride=(1, 1),
                                                 padding=(0, 0), dilation=dil, groups=G)
    geo = (N, Ci, H, W, O, kh, kw, *pads, *dil, G)
    got_gw = C._native_run(mod, mod.conv2d_wgrad, x, g, None, np.empty(w.shape, np.float32), geo, C._WGRAD)
    np.testing.assert_allclose(got_gw, want_gw, rtol=1e-4, atol=1e-4 * np.abs(want_gw).max())

    # input gradient in the scatter form: the full transposed conv, cropped to the input
    full = C._conv_transpose2d_kernel(np)(g.astype(np.float64), w.astype(np.float64), stride=(1, 1), padding=(0, 0),
                                          output_padding=(0, 0), dilation=dil, groups=G)
    want_gx = full[:, :, pads[0]:pads[0] + H, pads[2]:pads[2] + W]
    bias = rng.standard_normal(Ci).astype(np.float32)
    got_gx = C._native_run(mod, mod.conv2d_dgrad, g, w, bias, np.empty(x.shape, np.float32), geo, C._DGRAD)
    np.testing.assert_allclose(got_gx, want_gx + bias.reshape(1, -1, 1, 1), rtol=1e-4,
                               atol=1e-4 * np.abs(want_gx).max())


@pytest.fixture
def spy(monkeypatch):
    """The set of native kernels that ran."""
    ran = set()
    real = C._native_run

    def run(mod, fn, *args):
        ran.add(fn.__name__)
        return real(mod, fn, *args)
    monkeypatch.setattr(C, "_native_run", run)
    return ran


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")  # torch's own notice
@pytest.mark.parametrize("args,kwargs,shape", CONV2D, ids=[f"c{i}" for i in range(len(CONV2D))])
def test_conv2d_layers_match_torch_in_float32(spy, args, kwargs, shape):
    check_layer(em.nn.Conv2d(*args, **kwargs), torch.nn.Conv2d(*args, **kwargs),
                np.random.default_rng(0).standard_normal(shape), "float32")
    if kwargs.get("stride", 1) == 1:
        assert {"conv2d", "conv2d_wgrad"} <= spy


@pytest.mark.parametrize("args,kwargs,shape", CONV1D, ids=[f"c{i}" for i in range(len(CONV1D))])
def test_conv1d_layers_match_torch_in_float32(spy, args, kwargs, shape):
    check_layer(em.nn.Conv1d(*args, **kwargs), torch.nn.Conv1d(*args, **kwargs),
                np.random.default_rng(0).standard_normal(shape), "float32")
    if kwargs.get("stride", 1) == 1:
        assert {"conv2d", "conv2d_wgrad"} <= spy


# stride-1 transposed convs computed in the scatter form (conv2d_dgrad): little padding,
# output_padding (allowed below the dilation), groups, a bias
CONVT_SCATTER = [
    ((3, 4, 3), {}, (2, 3, 5, 4)),
    ((4, 6, 3), dict(dilation=2, output_padding=1, groups=2), (2, 4, 5, 6)),
    ((2, 5, (2, 4)), dict(padding=(0, 1), dilation=(3, 1), output_padding=(2, 0)), (1, 2, 3, 7)),
]


@pytest.mark.parametrize("args,kwargs,shape", CONVT + CONVT_SCATTER,
                         ids=[f"c{i}" for i in range(len(CONVT) + len(CONVT_SCATTER))])
def test_conv_transpose2d_layers_match_torch_in_float32(spy, args, kwargs, shape):
    check_layer(em.nn.ConvTranspose2d(*args, **kwargs), torch.nn.ConvTranspose2d(*args, **kwargs),
                np.random.default_rng(0).standard_normal(shape), "float32")
    if kwargs.get("stride", 1) == 1:
        assert "conv2d_wgrad" in spy
    if (args, kwargs, shape) in CONVT_SCATTER:
        assert "conv2d_dgrad" in spy


def test_nan_and_inf_stay_where_torch_puts_them():
    """Gap columns and padded tiles are computed and dropped: a NaN or inf in the input must
    reach exactly the outputs and gradients it reaches in torch."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 9, 10)).astype(np.float32)
    x[0, 1, 4, 9] = np.nan
    x[1, 2, 0, 0] = np.inf
    w = rng.standard_normal((5, 3, 3, 3)).astype(np.float32)
    ex, ew = em.from_numpy(x).requires_grad_(), em.from_numpy(w).requires_grad_()
    tx, tw = torch.from_numpy(x).requires_grad_(), torch.from_numpy(w).requires_grad_()
    y, ty = em.nn.functional.conv2d(ex, ew), torch.nn.functional.conv2d(tx, tw)
    g = rng.standard_normal(ty.shape).astype(np.float32)
    y.backward(em.from_numpy(g))
    ty.backward(torch.from_numpy(g))
    for got, want in ((y.detach().numpy(), ty.detach().numpy()), (ew.grad.numpy(), tw.grad.numpy()),
                      (ex.grad.numpy(), tx.grad.numpy())):
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        np.testing.assert_array_equal(np.isinf(got), np.isinf(want))


def test_large_batch_spans_several_weight_grad_passes():
    """The weight gradient sums images in passes sized to the cache; many images -> many passes."""
    rng = np.random.default_rng(0)
    geometry = (40, 2, 30, 30, 16, 3, 3, (1, 1, 1, 1), (1, 1), 1)
    x, w, xp, y = _reference(geometry, rng)
    g = rng.standard_normal(y.shape).astype(np.float32)
    want = C._conv2d_weight_grad_kernel(np)(xp, g.astype(np.float64), kernel=(3, 3), stride=(1, 1), padding=(0, 0),
                                           dilation=(1, 1), groups=1)
    mod = native.module("conv2d")
    got = C._native_run(mod, mod.conv2d_wgrad, x, g, None, np.empty(w.shape, np.float32),
                       (40, 2, 30, 30, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1), C._WGRAD)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


def test_bad_geometry_and_small_workspace_raise():
    mod = native.module("conv2d")
    x = np.zeros((1, 2, 4, 4), np.float32)
    w = np.zeros((3, 2, 3, 3), np.float32)
    with pytest.raises(ValueError, match="bad geometry"):
        mod.workspace(False, (1, 2, 4, 4, 3, 9, 9, 0, 0, 0, 0, 1, 1, 1))  # kernel larger than the input
    with pytest.raises(ValueError, match="do not fit the geometry"):  # x is 1x2x4x4, not 1x2x5x5
        mod.conv2d(x, w, None, np.empty((1, 3, 3, 3), np.float32), np.empty(10 ** 4, np.float32),
                   (1, 2, 5, 5, 3, 3, 3, 0, 0, 0, 0, 1, 1, 1))
    with pytest.raises(ValueError, match="bias must be one float32 per output channel"):
        mod.conv2d(x, w, np.zeros(2, np.float32), np.empty((1, 3, 2, 2), np.float32), np.empty(10 ** 4, np.float32),
                   (1, 2, 4, 4, 3, 3, 3, 0, 0, 0, 0, 1, 1, 1))
    with pytest.raises(ValueError, match="workspace"):
        mod.conv2d(x, w, None, np.empty((1, 3, 2, 2), np.float32), np.empty(4, np.float32),
                   (1, 2, 4, 4, 3, 3, 3, 0, 0, 0, 0, 1, 1, 1))


@pytest.mark.parametrize("how", ["env", "no compiler", "compile error"])
def test_fallbacks_use_numpy_kernels(monkeypatch, how):
    from ember.compiler import cache
    monkeypatch.setattr(native, "_modules", {})
    if how == "env":
        monkeypatch.setenv("EMBER_NATIVE", "0")
    elif how == "no compiler":
        monkeypatch.setattr(cache, "compiler", lambda: None)
    else:
        def fail(source):
            raise cache.CompileError("cc: error: simulated")
        monkeypatch.setattr(cache, "load", fail)
    x = em.randn(2, 3, 6, 6)
    w = em.randn(4, 3, 3, 3)
    if how == "compile error":
        with pytest.warns(RuntimeWarning, match="native conv2d kernels did not compile"):
            y = em.nn.functional.conv2d(x, w)
    else:
        y = em.nn.functional.conv2d(x, w)
    assert native._modules == {"conv2d": None}
    want = torch.nn.functional.conv2d(torch.from_numpy(x.numpy()), torch.from_numpy(w.numpy())).numpy()
    np.testing.assert_allclose(y.numpy(), want, rtol=1e-4, atol=1e-4)


def test_kernels_past_the_native_limit_use_numpy(spy):
    """More than 1024 kernel offsets (33x33) is past the native kernels' offset table: NumPy runs."""
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((1, 2, 36, 35)).astype(np.float32), rng.standard_normal((3, 2, 33, 33)).astype(np.float32)
    ex, ew = em.from_numpy(x).requires_grad_(), em.from_numpy(w).requires_grad_()
    tx, tw = torch.from_numpy(x).requires_grad_(), torch.from_numpy(w).requires_grad_()
    y, ty = em.nn.functional.conv2d(ex, ew, padding=16), torch.nn.functional.conv2d(tx, tw, padding=16)
    y.sum().backward()
    ty.sum().backward()
    scale = np.abs(ty.detach().numpy()).max()
    np.testing.assert_allclose(y.detach().numpy(), ty.detach().numpy(), rtol=1e-4, atol=1e-4 * scale)
    np.testing.assert_allclose(ew.grad.numpy(), tw.grad.numpy(), rtol=1e-4, atol=1e-4 * np.abs(tw.grad.numpy()).max())
    np.testing.assert_allclose(ex.grad.numpy(), tx.grad.numpy(), rtol=1e-4, atol=1e-4 * np.abs(tx.grad.numpy()).max())
    assert spy == set()
