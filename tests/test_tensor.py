"""Tensor basics: dtype promotion (PyTorch's rules), creation, interop, printing, errors."""
import itertools

import numpy as np
import pytest

import ember as em
from ember.errors import DTypeError, ShapeError

try:
    import torch
except ImportError:
    torch = None
needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed (pip install -e '.[oracle]')")

DTYPES = ["bool", "uint8", "int32", "int64", "float16", "float32", "float64"]


def _pair(dtype, value=1):
    return em.tensor(np.array([value, value]).astype(dtype)), torch.tensor(np.array([value, value]).astype(dtype))


@needs_torch
@pytest.mark.parametrize("da,db", list(itertools.product(DTYPES, DTYPES)))
def test_promotion_of_two_tensors_matches_torch(da, db):
    (a, ta), (b, tb) = _pair(da), _pair(db)
    assert (a * b).dtype.name == str((ta * tb).dtype).replace("torch.", "")


@needs_torch
@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("scalar", [2, 2.5, True])
def test_python_scalars_are_weak_like_torch(dt, scalar):
    a, ta = _pair(dt)
    if dt == "bool" and scalar is True:
        pytest.skip("bool * bool is logical in both; covered by the tensor pair test")
    assert (a * scalar).dtype.name == str((ta * scalar).dtype).replace("torch.", "")
    assert (scalar * a).dtype.name == str((scalar * ta).dtype).replace("torch.", "")


@needs_torch
@pytest.mark.parametrize("dt", ["int32", "int64", "float32"])
def test_zero_dim_tensor_is_weak_like_torch(dt):
    a, ta = _pair(dt)
    z, tz = em.tensor(2.0, dtype=em.float64), torch.tensor(2.0, dtype=torch.float64)
    assert (a + z).dtype.name == str((ta + tz).dtype).replace("torch.", "")


@needs_torch
@pytest.mark.parametrize("op", ["exp", "sqrt", "sigmoid"])
def test_integer_inputs_to_float_ops_give_default_float(op):
    x = em.tensor([1, 2])
    assert getattr(x, op)().dtype is em.float32
    assert (x / x).dtype is em.float32
    assert str(getattr(torch.tensor([1, 2]), op)().dtype) == "torch.float32"


def test_creation_defaults_follow_torch():
    assert em.tensor([1.0, 2.0]).dtype is em.float32
    assert em.tensor([1, 2]).dtype is em.int64
    assert em.tensor([True]).dtype is em.bool
    assert em.tensor(np.zeros(2)).dtype is em.float64  # NumPy data keeps its dtype
    assert em.zeros(2, 3).shape == (2, 3) and em.zeros((2, 3)).dtype is em.float32
    assert em.full((2,), 7).dtype is em.int64 and em.full((2,), 7.0).dtype is em.float32
    assert em.arange(5).dtype is em.int64 and em.arange(0, 1, 0.25).shape == (4,)
    np.testing.assert_allclose(em.linspace(0, 1, 5).numpy(), np.linspace(0, 1, 5))
    np.testing.assert_array_equal(em.eye(3).numpy(), np.eye(3))
    x = em.randn(3, 4, dtype=em.float64)
    assert em.zeros_like(x).dtype is em.float64 and em.ones_like(x).shape == (3, 4)
    r = em.randint(2, 5, (1000,))
    assert r.dtype is em.int64 and r.min().item() == 2 and r.max().item() == 4


def test_manual_seed_makes_random_ops_reproducible():
    em.manual_seed(7)
    a = (em.rand(3), em.randn(2, 2), em.randint(0, 9, (4,)), em.randperm(5))
    em.manual_seed(7)
    b = (em.rand(3), em.randn(2, 2), em.randint(0, 9, (4,)), em.randperm(5))
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.numpy(), y.numpy())
    g = em.Generator(3)
    s = g.get_state()
    first = em.rand(4, generator=g).numpy()
    g.set_state(s)
    np.testing.assert_array_equal(em.rand(4, generator=g).numpy(), first)
    r = em.rand(100_000)
    assert 0 <= r.min().item() and r.max().item() < 1 and abs(r.mean().item() - 0.5) < 0.01


def test_from_numpy_and_numpy_share_memory():
    a = np.zeros(3, np.float32)
    t = em.from_numpy(a)
    a[0] = 5
    assert t[0].item() == 5
    t.numpy()[1] = 7
    assert a[1] == 7
    assert np.asarray(t) is a or np.shares_memory(np.asarray(t), a)


@needs_torch
def test_dlpack_is_zero_copy_both_ways():
    t = torch.arange(4, dtype=torch.float32)
    e = em.from_dlpack(t)
    t[0] = 42
    assert e[0].item() == 42
    back = torch.from_dlpack(e)
    e.numpy()[1] = -1
    assert back[1].item() == -1
    assert e.__dlpack_device__()[0] == 1  # kDLCPU


def test_item_tolist_and_conversions():
    t = em.tensor([[1.5, 2.0]])
    assert t.tolist() == [[1.5, 2.0]]
    assert em.tensor(3).item() == 3 and isinstance(em.tensor(3).item(), int)
    assert float(em.tensor([2.5])) == 2.5
    with pytest.raises(ValueError, match="one-element"):
        t.item()
    with pytest.raises(ValueError, match="ambiguous"):
        bool(t)


@needs_torch
@pytest.mark.parametrize("data", [[1.0, 2.0], [[1.0, 2.5], [3.0, 4.0]], [1, 2, 3], [True, False], 3.5, [0.001, 10.0]])
def test_repr_matches_torch(data):
    assert repr(em.tensor(data)) == repr(torch.tensor(data))


def test_repr_shows_dtype_and_grad():
    assert repr(em.tensor([1.0], dtype=em.float64)) == "tensor([1.], dtype=ember.float64)"
    assert repr(em.tensor([1.0], requires_grad=True)) == "tensor([1.], requires_grad=True)"
    assert "grad_fn=<mulBackward>" in repr(em.tensor([1.0], requires_grad=True) * 2)


def test_to_changes_dtype_and_keeps_device():
    x = em.tensor([1.7, -2.2])
    assert x.to(em.int64).tolist() == [1, -2]
    assert x.double().dtype is em.float64 and x.to("float16").dtype is em.float16
    assert x.to("cpu") is x and x.device == em.device("cpu") and str(x.device) == "cpu"


def test_broadcast_error_names_op_and_shapes():
    with pytest.raises(ShapeError, match=r"add: shapes \(2, 3\) and \(4,\) cannot be broadcast.*unsqueeze"):
        em.ones(2, 3) + em.ones(4)


def test_matmul_error_names_shapes_and_fix():
    with pytest.raises(ShapeError, match=r"matmul: shapes \(2, 3\) and \(4, 5\).*\(3\).*\(4\)"):
        em.ones(2, 3) @ em.ones(4, 5)


def test_reshape_and_dim_errors():
    with pytest.raises(ShapeError, match=r"reshape: shape \[4, 4\] is invalid for a tensor of 6 elements"):
        em.ones(2, 3).reshape(4, 4)
    with pytest.raises(ShapeError, match=r"sum: dim 5 is out of range.*2 dimension"):
        em.ones(2, 3).sum(dim=5)
    with pytest.raises(ShapeError, match="cat: shapes"):
        em.cat([em.ones(2, 3), em.ones(3, 3)], dim=1)
    with pytest.raises(ShapeError, match="getitem"):
        em.ones(2, 3)[5]


def test_unsupported_operands_are_clear():
    with pytest.raises(DTypeError, match="mul: unsupported operand type str"):
        em.ones(2) * "a"
    with pytest.raises(DTypeError, match="no ember equivalent"):
        em.from_numpy(np.zeros(2, np.complex64))


def test_integer_inplace_with_float_result_is_refused():
    x = em.tensor([1, 2])
    with pytest.raises(DTypeError, match="int64"):
        x.add_(0.5)


def test_deepcopy_keeps_devices_interned():
    import copy
    x = em.ones(2)
    y = copy.deepcopy(x)
    assert y.device is x.device
    (x + y).sum()  # the eager path compares devices by identity


def test_explicit_float64_keeps_python_float_precision():
    assert em.tensor(0.2, dtype=em.float64).item() == 0.2
    assert em.tensor([0.1, 0.2], dtype=em.float64).tolist() == [0.1, 0.2]
    assert em.as_tensor([0.1], dtype=em.float64).tolist() == [0.1]
    assert em.tensor(0.2).dtype is em.float32
