"""Conv1d / Conv2d / ConvTranspose2d against PyTorch with the same weights copied in: output,
input gradient and every parameter gradient, in train and eval mode; double backward; default
init; repr; errors; a small CNN whose state_dict loads from PyTorch.

Tolerances: float64 runs compare at rtol=1e-10/atol=1e-10 (same maths, different summation
order); float32 runs at rtol=1e-4/atol=1e-4 (a GEMM's rounding over up to ~600 terms)."""
import math

import numpy as np
import pytest

import ember as em
import ember.nn.functional as F
from ember.errors import DTypeError, EmberError, ShapeError

torch = pytest.importorskip("torch", reason="PyTorch is the oracle for the layer tests (pip install -e '.[oracle]')")
tnn = torch.nn
TOL = {"float64": dict(rtol=1e-10, atol=1e-10), "float32": dict(rtol=1e-4, atol=1e-4)}


def copy_weights(em_layer, t_layer):
    em_layer.load_state_dict({k: em.from_numpy(v.detach().numpy().copy()) for k, v in t_layer.state_dict().items()})


def check_layer(em_layer, t_layer, x_np, dtype="float64"):
    """Forward, input grad and parameter grads of both layers, train and eval mode."""
    t_layer = t_layer.to(getattr(torch, dtype))
    em_layer = em_layer.double() if dtype == "float64" else em_layer
    copy_weights(em_layer, t_layer)
    x_np = x_np.astype(dtype)
    for train in (True, False):
        em_layer.train(train)
        t_layer.train(train)
        x = em.from_numpy(x_np.copy()).requires_grad_(True)
        tx = torch.from_numpy(x_np.copy()).requires_grad_(True)
        out, tout = em_layer(x), t_layer(tx)
        np.testing.assert_allclose(out.detach().numpy(), tout.detach().numpy(), **TOL[dtype])
        g = np.random.default_rng(1).standard_normal(tuple(tout.shape)).astype(dtype)
        (out * em.from_numpy(g)).sum().backward()
        (tout * torch.from_numpy(g)).sum().backward()
        np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), **TOL[dtype])
        tparams = dict(t_layer.named_parameters())
        for name, p in em_layer.named_parameters():
            np.testing.assert_allclose(p.grad.numpy(), tparams[name].grad.numpy(), **TOL[dtype], err_msg=name)
            p.grad = None
        t_layer.zero_grad()


CONV2D = [  # (args, kwargs, input shape)
    ((3, 4, 3), {}, (2, 3, 8, 9)),
    ((3, 4, 3), dict(stride=2, padding=1), (2, 3, 9, 7)),
    ((2, 6, (3, 2)), dict(stride=(2, 1), padding=(1, 0), dilation=(1, 2)), (1, 2, 7, 8)),
    ((4, 6, 3), dict(groups=2, padding=1, bias=False), (2, 4, 5, 5)),
    ((4, 4, 3), dict(groups=4, padding=1), (3, 4, 6, 6)),  # depthwise
    ((3, 5, 3), dict(padding="same"), (2, 3, 7, 6)),
    ((3, 5, 4), dict(padding="same", dilation=2), (2, 3, 9, 10)),  # even kernel: extra pad at the end
    ((3, 5, (2, 3)), dict(padding="same"), (1, 3, 5, 5)),
    ((3, 5, 3), dict(padding="valid", stride=3), (2, 3, 11, 10)),
    ((2, 3, 3), dict(padding=2, padding_mode="reflect"), (2, 2, 6, 7)),
    ((2, 3, 3), dict(padding=1, padding_mode="circular"), (2, 2, 5, 6)),
    ((2, 3, 3), dict(padding=1, padding_mode="replicate", stride=2), (2, 2, 5, 6)),
    ((3, 4, 1), {}, (1, 3, 4, 4)),  # 1x1
]


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")  # torch's own notice
@pytest.mark.parametrize("args,kwargs,shape", CONV2D, ids=[f"c{i}" for i in range(len(CONV2D))])
def test_conv2d_matches_torch(args, kwargs, shape):
    check_layer(em.nn.Conv2d(*args, **kwargs), tnn.Conv2d(*args, **kwargs),
                np.random.default_rng(0).standard_normal(shape))


def test_conv2d_float32_stays_float32():
    rng = np.random.default_rng(0)
    layer = em.nn.Conv2d(16, 32, 3, padding=1)
    assert layer.weight.dtype is em.float32
    check_layer(layer, tnn.Conv2d(16, 32, 3, padding=1), rng.standard_normal((4, 16, 12, 12)), "float32")
    assert layer(em.randn(1, 16, 5, 5)).dtype is em.float32


def test_unbatched_input():
    layer, t = em.nn.Conv2d(2, 3, 3).double(), tnn.Conv2d(2, 3, 3).double()
    copy_weights(layer, t)
    x = np.random.default_rng(0).standard_normal((2, 5, 5))
    np.testing.assert_allclose(layer(em.from_numpy(x)).detach().numpy(), t(torch.from_numpy(x)).detach().numpy(), **TOL["float64"])



KERNEL_PATHS = [  # (conv args, kwargs, input shape, kernel paths the forward+backward must take)
    ((2, 5, 3), dict(padding=1), (3, 2, 9, 8), {"_im2col_batched", "_flat_spread"}),  # K=18 < 64
    ((8, 16, 3), {}, (2, 8, 7, 7), {"_im2col", "_flat_spread"}),  # K=72: one big GEMM; LeNet-2-like
    ((6, 12, 3), dict(dilation=2, groups=3, padding=1), (2, 6, 9, 8), {"_im2col", "_flat_spread"}),
    ((3, 4, 3), dict(stride=2), (2, 3, 9, 9), {"_im2col_batched"}),  # strided: old col2im
]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("args,kwargs,shape,paths", KERNEL_PATHS, ids=[f"k{i}" for i in range(len(KERNEL_PATHS))])
def test_conv2d_kernel_paths_match_torch(monkeypatch, args, kwargs, shape, paths, dtype):
    """Each conv kernel path (per-image batched GEMM, one big GEMM, flat stride-1 col2im) gives
    torch's output and gradients; the spy checks the path was really taken. (float32 convs
    with stride 1 use the native kernels by default: tests/test_conv_native.py.)"""
    from ember.ops import conv as C
    monkeypatch.setattr(C, "_native", lambda *a, **kw: None)
    seen = set()
    for name in ("_im2col_batched", "_im2col", "_flat_spread"):
        fn = getattr(C, name)
        monkeypatch.setattr(C, name, lambda *a, _fn=fn, _name=name: seen.add(_name) or _fn(*a))
    check_layer(em.nn.Conv2d(*args, **kwargs), tnn.Conv2d(*args, **kwargs),
                np.random.default_rng(0).standard_normal(shape), dtype)
    assert paths <= seen, f"expected kernel paths {paths}, ran {seen}"


def test_conv_transpose2d_flat_col2im_matches_torch():
    """The flat stride-1 col2im with dilation, groups, output_padding and padding past the reach."""
    rng = np.random.default_rng(0)
    y, w = rng.standard_normal((2, 6, 5, 4)), rng.standard_normal((6, 2, 3, 2))
    for kw in (dict(dilation=2, groups=3, output_padding=1), dict(padding=(3, 1), groups=2), dict(padding=1)):
        ww = w if kw.get("groups", 1) > 1 else rng.standard_normal((6, 4, 3, 2))
        got = F.conv_transpose2d(em.from_numpy(y), em.from_numpy(ww), **kw).numpy()
        want = torch.nn.functional.conv_transpose2d(torch.from_numpy(y), torch.from_numpy(ww), **kw).numpy()
        np.testing.assert_allclose(got, want, **TOL["float64"], err_msg=str(kw))


CONV1D = [
    ((3, 4, 3), {}, (2, 3, 10)),
    ((4, 6, 5), dict(stride=2, padding=2, dilation=1, groups=2), (1, 4, 13)),
    ((3, 3, 4), dict(padding="same", dilation=2), (2, 3, 9)),
    ((3, 3, 3), dict(padding=1, padding_mode="circular"), (2, 3, 8)),
]


@pytest.mark.parametrize("args,kwargs,shape", CONV1D, ids=[f"c{i}" for i in range(len(CONV1D))])
def test_conv1d_matches_torch(args, kwargs, shape):
    check_layer(em.nn.Conv1d(*args, **kwargs), tnn.Conv1d(*args, **kwargs),
                np.random.default_rng(0).standard_normal(shape))


CONVT = [
    ((3, 4, 3), {}, (2, 3, 5, 4)),
    ((3, 4, 3), dict(stride=2, padding=1, output_padding=1), (2, 3, 4, 5)),
    ((4, 6, (2, 3)), dict(stride=(2, 3), groups=2, bias=False), (1, 4, 3, 3)),
    ((2, 3, 3), dict(dilation=2, padding=(2, 1)), (2, 2, 4, 4)),
    ((2, 2, 3), dict(stride=1, padding=3, dilation=1), (1, 2, 7, 7)),  # padding past the kernel reach
    ((4, 4, 3), dict(groups=4, stride=2), (2, 4, 3, 3)),
]


@pytest.mark.parametrize("args,kwargs,shape", CONVT, ids=[f"c{i}" for i in range(len(CONVT))])
def test_conv_transpose2d_matches_torch(args, kwargs, shape):
    check_layer(em.nn.ConvTranspose2d(*args, **kwargs), tnn.ConvTranspose2d(*args, **kwargs),
                np.random.default_rng(0).standard_normal(shape))


def test_conv_transpose2d_output_size():
    layer = em.nn.ConvTranspose2d(2, 3, 3, stride=2, padding=1).double()
    t = tnn.ConvTranspose2d(2, 3, 3, stride=2, padding=1).double()
    copy_weights(layer, t)
    x = np.random.default_rng(0).standard_normal((1, 2, 4, 4))
    out = layer(em.from_numpy(x), output_size=(8, 8))
    assert tuple(out.shape) == (1, 3, 8, 8)
    np.testing.assert_allclose(out.detach().numpy(), t(torch.from_numpy(x), output_size=[8, 8]).detach().numpy(), **TOL["float64"])
    with pytest.raises(ShapeError, match="not reachable"):
        layer(em.from_numpy(x), output_size=(12, 12))


@pytest.mark.parametrize("kwargs", [dict(), dict(stride=2, padding=1, groups=2), dict(dilation=2, padding=2)])
def test_conv2d_double_backward(kwargs):
    """Gradient of a function of the first gradients (create_graph=True) matches torch."""
    rng = np.random.default_rng(0)
    x_np, w_np, v_np = rng.standard_normal((2, 4, 6, 6)), rng.standard_normal((4, 4 // kwargs.get("groups", 1), 3, 3)), None

    def run(lib, conv, x_np, w_np):
        x = lib_tensor(lib, x_np)
        w = lib_tensor(lib, w_np)
        out = conv(x, w, **kwargs)
        nonlocal v_np
        v_np = rng.standard_normal(tuple(out.shape)) if v_np is None else v_np
        loss = (out * lib_tensor(lib, v_np, False)).sum()
        grad = em.grad if lib is em else lambda o, i, **k: torch.autograd.grad(o, i, **k)
        gx, gw = grad(loss, [x, w], create_graph=True)
        ((gx * gx).sum() + (gw * gw * gw).sum() + (gx.sum() * gw.sum())).backward()
        return x.grad, w.grad

    ex, ew = run(em, F.conv2d, x_np, w_np)
    tx, tw = run(torch, torch.nn.functional.conv2d, x_np, w_np)
    np.testing.assert_allclose(ex.numpy(), tx.numpy(), **TOL["float64"])
    np.testing.assert_allclose(ew.numpy(), tw.numpy(), **TOL["float64"])


def test_conv_transpose2d_double_backward():
    rng = np.random.default_rng(0)
    y_np, w_np = rng.standard_normal((2, 4, 3, 3)), rng.standard_normal((4, 3, 3, 3))
    res = []
    for lib, fn in ((em, F.conv_transpose2d), (torch, torch.nn.functional.conv_transpose2d)):
        y, w = lib_tensor(lib, y_np), lib_tensor(lib, w_np)
        out = fn(y, w, stride=2, padding=1, output_padding=1)
        grad = em.grad if lib is em else lambda o, i, **k: torch.autograd.grad(o, i, **k)
        gy, gw = grad((out * out).sum(), [y, w], create_graph=True)
        ((gy * gy).sum() + (gw * gw).sum()).backward()
        res.append((y.grad.numpy(), w.grad.numpy()))
    for a, b in zip(*res):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9)


def lib_tensor(lib, a, grad=True):
    t = em.from_numpy(a.copy()) if lib is em else torch.from_numpy(a.copy())
    return t.requires_grad_(True) if grad else t


def test_input_needing_no_grad_skips_its_gradient():
    layer = em.nn.Conv2d(2, 3, 3)
    x = em.randn(1, 2, 5, 5)
    layer(x).sum().backward()
    assert x.grad is None and layer.weight.grad is not None


@pytest.mark.parametrize("cls,args", [(em.nn.Conv2d, (16, 32, 3)), (em.nn.Conv1d, (8, 4, 5)),
                                      (em.nn.ConvTranspose2d, (16, 8, 3)), (em.nn.Conv2d, (8, 8, 3, 1, 0, 1, 4))])
def test_default_init_matches_torch_distribution(cls, args):
    em.manual_seed(0)
    layer = cls(*args)
    tlayer = getattr(tnn, cls.__name__)(*args)
    assert {k: tuple(v.shape) for k, v in layer.state_dict().items()} == \
        {k: tuple(v.shape) for k, v in tlayer.state_dict().items()}
    w = layer.weight.detach().numpy()
    fan_in = w.shape[1] * math.prod(w.shape[2:])
    bound = 1 / math.sqrt(fan_in)
    for p in (w, layer.bias.detach().numpy()):
        assert np.abs(p).max() <= bound
    # U(-b, b) has std b/sqrt(3); 1000+ samples put the estimate within 10%
    assert abs(w.std() / (bound / math.sqrt(3)) - 1) < 0.1


@pytest.mark.parametrize("cls,args,kwargs", [
    ("Conv2d", (1, 32, 3), {}),
    ("Conv2d", (4, 8, (3, 5)), dict(stride=2, padding=(1, 2), dilation=2, groups=2, bias=False)),
    ("Conv2d", (4, 8, 3), dict(padding="same", padding_mode="reflect")),
    ("Conv1d", (4, 8, 3), dict(stride=2)),
    ("ConvTranspose2d", (4, 8, 3), dict(stride=2, output_padding=1)),
])
def test_repr_matches_torch(cls, args, kwargs):
    assert repr(getattr(em.nn, cls)(*args, **kwargs)) == repr(getattr(tnn, cls)(*args, **kwargs))


def test_wrong_rank_or_channels_names_layer_and_shapes():
    layer = em.nn.Conv2d(3, 8, 3)
    with pytest.raises(ShapeError, match=r"Conv2d\(3, 8.*expected input of shape \(N, 3, H, W\).*got \(2, 5, 8, 8\)"):
        layer(em.randn(2, 5, 8, 8))
    with pytest.raises(ShapeError, match=r"Conv2d.*got \(8, 8\)"):
        layer(em.randn(8, 8))
    with pytest.raises(ShapeError, match=r"Conv1d\(3, 8.*\(N, 3, L\).*got \(2, 4, 8\)"):
        em.nn.Conv1d(3, 8, 3)(em.randn(2, 4, 8))
    with pytest.raises(ShapeError, match=r"ConvTranspose2d.*\(N, 3, H, W\).*got \(1, 2, 4, 4\)"):
        em.nn.ConvTranspose2d(3, 8, 3)(em.randn(1, 2, 4, 4))


def test_functional_errors():
    x, w = em.randn(1, 4, 6, 6), em.randn(8, 2, 3, 3)
    with pytest.raises(ShapeError, match=r"conv2d: input has 4 channels .* expects 2"):
        F.conv2d(x, w)
    with pytest.raises(DTypeError, match="same floating dtype"):
        F.conv2d(x, w.double(), groups=2)
    with pytest.raises(EmberError, match="same.*stride 1"):
        F.conv2d(x, w, stride=2, padding="same", groups=2)
    with pytest.raises(ShapeError, match="smaller than the"):
        F.conv2d(em.randn(1, 4, 2, 2), w, groups=2)
    with pytest.raises(ShapeError, match="groups"):
        F.conv2d(x, em.randn(7, 2, 3, 3), groups=2)
    with pytest.raises(ShapeError, match="bias must have shape"):
        F.conv2d(x, w, em.randn(3), groups=2)
    with pytest.raises(EmberError, match="output_padding"):
        F.conv_transpose2d(x, em.randn(4, 2, 3, 3), stride=2, output_padding=2)
    with pytest.raises(EmberError, match="divisible by groups"):
        em.nn.Conv2d(4, 6, 3, groups=4)
    with pytest.raises(EmberError, match="padding_mode"):
        em.nn.Conv2d(4, 6, 3, padding_mode="mirror")


class EmberCNN(em.nn.Module):
    def __init__(self, linear: bool):
        super().__init__()
        self.conv1 = em.nn.Conv2d(1, 4, 3, padding=1)
        self.pool = em.nn.MaxPool2d(2)
        self.conv2 = em.nn.Conv2d(4, 8, 3)
        self.fc = em.nn.Linear(8 * 2 * 2, 5) if linear else None

    def forward(self, x):
        x = self.pool(self.conv1(x).relu())
        x = self.pool(self.conv2(x).relu())
        x = x.reshape(x.shape[0], -1)
        return self.fc(x) if self.fc is not None else x


class TorchCNN(tnn.Module):
    def __init__(self, linear: bool):
        super().__init__()
        self.conv1 = tnn.Conv2d(1, 4, 3, padding=1)
        self.pool = tnn.MaxPool2d(2)
        self.conv2 = tnn.Conv2d(4, 8, 3)
        self.fc = tnn.Linear(8 * 2 * 2, 5) if linear else None

    def forward(self, x):
        x = self.pool(self.conv1(x).relu())
        x = self.pool(self.conv2(x).relu())
        x = x.reshape(x.shape[0], -1)
        return self.fc(x) if self.fc is not None else x


def test_small_cnn_state_dict_and_outputs_match_torch():
    """Same architecture in both: equal state_dict keys and shapes; torch's weights load by key
    name through NumPy and give the same outputs and gradients."""
    linear = hasattr(em.nn, "Linear")  # Linear is another engineer's layer; without it, conv part only
    model, tmodel = EmberCNN(linear), TorchCNN(linear).double()
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == \
        {k: tuple(v.shape) for k, v in tmodel.state_dict().items()}
    check_layer(model, tmodel, np.random.default_rng(0).standard_normal((3, 1, 12, 12)))
    if not linear:
        pytest.skip("ember.nn.Linear not available yet: the conv/pool part was checked, the classifier head was not")


def test_bias_dtype_must_match_input():
    x, w = em.randn(1, 2, 5, 5), em.randn(3, 2, 3, 3)
    with pytest.raises(DTypeError, match="conv2d: bias has dtype float64 but the input float32"):
        F.conv2d(x, w, em.zeros(3, dtype=em.float64))
    with pytest.raises(DTypeError, match="conv_transpose2d: bias has dtype float64"):
        F.conv_transpose2d(em.randn(1, 3, 4, 4), w, em.zeros(2, dtype=em.float64))
