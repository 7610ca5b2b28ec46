"""Autograd engine: accumulation, retain_graph, higher order, hooks, grad modes, in-place rules."""
import numpy as np
import pytest

import ember as em
from ember.errors import AutogradError, DeviceError

try:
    import torch
except ImportError:
    torch = None
needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed (pip install -e '.[oracle]')")


def pair(*shape, seed=0):
    a = np.random.default_rng(seed).standard_normal(shape)
    return em.tensor(a, requires_grad=True), (torch.tensor(a, requires_grad=True) if torch else None)


def test_gradients_accumulate_across_backward_calls():
    x = em.tensor([1.0, 2.0], requires_grad=True)
    (x * x).sum().backward()
    (x * 3).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [5.0, 7.0])


def test_second_backward_needs_retain_graph():
    x = em.tensor([1.0, 2.0], requires_grad=True)
    y = (x.exp() * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * (np.exp([1.0, 2.0]) * (1 + np.array([1.0, 2.0]))))
    z = (x * x).sum()
    z.backward()
    with pytest.raises(AutogradError, match="second time.*retain_graph=True"):
        z.backward()


@needs_torch
@pytest.mark.parametrize("fn", ["tanh", "mul", "matmul", "softmax_chain"])
def test_second_order_matches_torch(fn):
    x, tx = pair(3, 4)
    w, tw = pair(4, 3, seed=1)

    def f(x, w, lib):
        if fn == "tanh":
            return x.tanh().sum()
        if fn == "mul":
            return (x * x * w.T).sum()
        if fn == "matmul":
            return ((x @ w) ** 2).sum()
        e = (x @ w).exp()  # a softmax-like chain
        return (e / e.sum(dim=-1, keepdim=True)).log().mul(x[:, :3]).sum()

    (g,) = em.grad(f(x, w, em), [x], create_graph=True)
    (tg,) = torch.autograd.grad(f(tx, tw, torch), [tx], create_graph=True)
    np.testing.assert_allclose(g.detach().numpy(), tg.detach().numpy(), rtol=1e-10)
    gg = em.grad((g * g).sum(), [x, w], allow_unused=True)
    tgg = torch.autograd.grad((tg * tg).sum(), [tx, tw], allow_unused=True)
    for a, b in zip(gg, tgg):
        if b is None:
            assert a is None
        else:
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-9, atol=1e-12)


def test_create_graph_backward_builds_differentiable_grad():
    x = em.tensor([0.3, -1.2], requires_grad=True)
    (x ** 3).sum().backward(create_graph=True)
    gx = x.grad  # 3x^2, itself differentiable
    assert gx.requires_grad
    (h,) = em.grad(gx.sum(), [x])
    np.testing.assert_allclose(h.numpy(), 6 * np.array([0.3, -1.2]))


def test_hooks_on_leaf_and_intermediate():
    x = em.tensor([1.0, 2.0], requires_grad=True)
    seen = []
    y = x * 2
    y.register_hook(lambda g: seen.append(g.numpy().copy()))
    handle = x.register_hook(lambda g: g * 10)
    y.sum().backward()
    np.testing.assert_allclose(seen[0], [1.0, 1.0])
    np.testing.assert_allclose(x.grad.numpy(), [20.0, 20.0])
    handle.remove()
    x.grad = None
    (x * 2).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 2.0])


def test_retain_grad_keeps_intermediate_gradient():
    x = em.tensor([1.0, 2.0], requires_grad=True)
    y = x * 3
    y.retain_grad()
    (y * y).sum().backward()
    np.testing.assert_allclose(y.grad.numpy(), [6.0, 12.0])
    assert (x * 3).grad is None


def test_grad_modes():
    x = em.ones(2, requires_grad=True)
    with em.no_grad():
        assert not (x * 2).requires_grad
        with em.enable_grad():
            assert (x * 2).requires_grad
    assert (x * 2).requires_grad

    @em.no_grad()
    def f(t):
        return t * 2
    assert not f(x).requires_grad
    with em.set_grad_enabled(False):
        assert not em.is_grad_enabled()
    assert em.is_grad_enabled()


def test_detach_and_requires_grad_rules():
    x = em.tensor([1.0, 2.0], requires_grad=True)
    d = (x * 2).detach()
    assert not d.requires_grad and d.is_leaf
    with pytest.raises(AutogradError, match="floating-point"):
        em.tensor([1, 2]).requires_grad_()
    with pytest.raises(AutogradError, match="detach"):
        (x * 2).numpy()


def test_grad_and_value_and_grad():
    x = em.tensor([1.0, -2.0], requires_grad=True)
    y = em.tensor([3.0], requires_grad=True)
    (gx,) = em.grad((x * x).sum(), [x])
    np.testing.assert_allclose(gx.numpy(), [2.0, -4.0])
    assert x.grad is None  # grad() returns, never accumulates
    with pytest.raises(AutogradError, match="allow_unused"):
        em.grad((x * x).sum(), [x, y])
    assert em.grad((x * x).sum(), [x, y], allow_unused=True)[1] is None
    val, g = em.value_and_grad(lambda a, b: (a * b).sum(), argnums=(0, 1))(em.tensor([1.0, 2.0]), em.tensor([3.0, 4.0]))
    assert val.item() == 11.0
    np.testing.assert_allclose(g[0].numpy(), [3.0, 4.0])
    np.testing.assert_allclose(g[1].numpy(), [1.0, 2.0])


def test_leaf_grad_owns_writable_memory():
    x = em.tensor([1.0, 2.0], requires_grad=True)
    y = em.tensor([1.0, 2.0], requires_grad=True)
    (x + y).sum().backward()  # add's vjp hands the same gradient object to both
    assert x.grad is not y.grad
    x.grad.add_(1.0)  # in-place on a grad must work (optimizers do it)
    np.testing.assert_allclose(y.grad.numpy(), [1.0, 1.0])
    z = em.zeros(3, requires_grad=True)
    z.sum().backward()  # sum's vjp is a read-only broadcast view
    z.grad.mul_(2.0)


def test_backward_of_non_scalar_needs_gradient():
    x = em.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(AutogradError, match=r"scalar outputs.*shape \(2,\).*gradient="):
        (x * 2).backward()
    (x * 2).backward(em.tensor([1.0, 0.5]))
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 1.0])


def test_backward_through_integer_tensor_is_refused():
    x = em.tensor([1, 2, 3])
    with pytest.raises(AutogradError, match="int64.*floating-point"):
        (x * 2).sum().backward()


def test_device_mismatch_names_op_and_devices():
    from ember.tensor import _new
    a = em.ones(2)
    fake_gpu = _new(np.ones(2, np.float32), em.device("cuda:0"))  # a tensor claiming to live on a GPU
    with pytest.raises(DeviceError, match=r"add: expected all tensors on one device, got cpu, cuda:0.*\.to\(device\)"):
        a + fake_gpu


def test_cuda_without_cupy_is_a_clear_error():
    with pytest.raises(DeviceError, match="CuPy"):
        em.ones(2).to("cuda")


def test_inplace_on_leaf_requiring_grad_is_refused():
    w = em.ones(2, requires_grad=True)
    with pytest.raises(AutogradError, match="leaf tensor that requires grad.*no_grad"):
        w.add_(1.0)
    with pytest.raises(AutogradError, match="leaf"):
        w[0] = 5.0
    with em.no_grad():
        w.add_(1.0)  # the optimizer's way
    np.testing.assert_allclose(w.numpy(force=True), [2.0, 2.0])


def test_inplace_on_saved_tensor_is_detected_at_backward():
    w = em.tensor([1.0, 2.0], requires_grad=True)
    x = em.tensor([3.0, 4.0], requires_grad=True)
    y = (w * x).sum()
    with em.no_grad():
        x.mul_(2.0)
    with pytest.raises(AutogradError, match=r"mul: .*modified by an in-place operation.*clone"):
        y.backward()


@needs_torch
def test_inplace_on_intermediate_matches_torch():
    x, tx = pair(3)
    for lib, a in ((em, x), (torch, tx)):
        y = a * 2
        y.mul_(a)
        y.add_(1.0)
        y[1] = y[0] * 3
        y.exp().sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-10)


def test_views_share_version_counter():
    base = em.tensor([1.0, 2.0, 3.0], requires_grad=True) * 1
    v = base[1:]
    z = (v * v).sum()
    with em.no_grad():
        base.add_(1.0)  # writes through to v's memory
    with pytest.raises(AutogradError, match="in-place"):
        z.backward()


def test_anomaly_mode_names_the_op():
    x = em.tensor([0.0, 1.0], requires_grad=True)
    with em.detect_anomaly():
        with pytest.raises(AutogradError, match="sqrt"):
            x.sqrt().sum().backward()


def test_inplace_on_op_output_under_no_grad_is_detected():
    x = em.tensor([0.5, 1.0], requires_grad=True)
    y = x.exp()  # exp's gradient reads its output
    with em.no_grad():
        y.add_(1.0)
    with pytest.raises(AutogradError, match="exp: its output.*in-place"):
        y.sum().backward()


@needs_torch
def test_inplace_after_exp_in_grad_mode_keeps_gradient_right():
    x, tx = pair(3)
    ours = x.exp()
    ours.add_(1.0)
    (ours * ours).sum().backward()
    t = tx.exp() + 1.0
    (t * t).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-10)


def test_leaf_gradient_is_final_before_backward_ends():
    """A leaf used early in the forward pass gets its .grad (and post-accumulate hook) as soon
    as its last contribution arrives, before backward reaches the first layers."""
    w1 = em.tensor([[0.5, -1.0]], requires_grad=True)
    w2 = em.tensor([[2.0], [1.0]], requires_grad=True)
    x = em.ones(3, 1)
    events = []
    w2.register_post_accumulate_grad_hook(lambda p: events.append(("w2", p.grad is not None and w1.grad is None)))
    w1.register_post_accumulate_grad_hook(lambda p: events.append(("w1", True)))
    ((x @ w1).tanh() @ w2).sum().backward()
    assert events == [("w2", True), ("w1", True)]


def test_leaf_used_twice_gets_summed_gradient_once():
    x = em.tensor([1.0, 2.0], requires_grad=True)
    calls = []
    x.register_hook(lambda g: calls.append(g.numpy().copy()))
    (x * 2 + x * x).sum().backward()
    assert len(calls) == 1
    np.testing.assert_allclose(x.grad.numpy(), 2 + 2 * np.array([1.0, 2.0]))
