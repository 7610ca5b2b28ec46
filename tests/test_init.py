"""nn.init: sample statistics against the formulas (large tensors, so the tolerances below are
many standard errors wide), bounds, in-place/no-grad behaviour and seeded reproducibility."""
import math

import numpy as np
import pytest

import ember as em
from ember import nn
from ember.nn import init

SHAPE = (300, 200, 3)  # fan_in 600, fan_out 900; 180k samples: std of a sample std ~0.17%
FAN_IN, FAN_OUT = 600, 900


def weight():
    return nn.Parameter(em.empty(*SHAPE))


def stats(t):
    a = t.detach().numpy().astype(np.float64)
    return a.mean(), a.std(), a.min(), a.max()


def test_fans_and_gains():
    assert init._calculate_fan_in_and_fan_out(em.empty(*SHAPE)) == (FAN_IN, FAN_OUT)
    assert init._calculate_fan_in_and_fan_out(em.empty(4, 5)) == (5, 4)
    with pytest.raises(em.ShapeError, match="at least 2 dimensions"):
        init._calculate_fan_in_and_fan_out(em.empty(5))
    assert init.calculate_gain("relu") == math.sqrt(2)
    assert init.calculate_gain("tanh") == 5 / 3
    assert init.calculate_gain("leaky_relu") == math.sqrt(2 / (1 + 0.01 ** 2))
    assert init.calculate_gain("leaky_relu", math.sqrt(5)) == math.sqrt(2 / 6)
    assert init.calculate_gain("conv2d") == init.calculate_gain("sigmoid") == 1
    with pytest.raises(ValueError, match="unsupported nonlinearity"):
        init.calculate_gain("swishy")


def uniform_check(t, bound):
    mean, std, lo, hi = stats(t)
    assert -bound <= lo and hi <= bound
    assert abs(mean) < 0.01 * bound
    assert abs(std - bound / math.sqrt(3)) < 0.01 * bound


def normal_check(t, mean_ref, std_ref):
    mean, std, _, _ = stats(t)
    assert abs(mean - mean_ref) < 0.01 * std_ref
    assert abs(std - std_ref) < 0.01 * std_ref


def test_uniform_normal_constant():
    w = weight()
    init.uniform_(w, -0.5, 1.5)
    mean, std, lo, hi = stats(w)
    assert -0.5 <= lo and hi <= 1.5 and abs(mean - 0.5) < 0.01 and abs(std - 2 / math.sqrt(12)) < 0.01
    normal_check(init.normal_(w, 2.0, 0.3), 2.0, 0.3)
    np.testing.assert_array_equal(init.constant_(w, 0.25).detach().numpy(), 0.25)
    np.testing.assert_array_equal(init.ones_(w).detach().numpy(), 1)
    np.testing.assert_array_equal(init.zeros_(w).detach().numpy(), 0)
    assert w.requires_grad and w.is_leaf and w.grad is None  # in place, not recorded


def test_xavier():
    uniform_check(init.xavier_uniform_(weight(), gain=2.0), 2.0 * math.sqrt(6 / (FAN_IN + FAN_OUT)))
    normal_check(init.xavier_normal_(weight()), 0.0, math.sqrt(2 / (FAN_IN + FAN_OUT)))


@pytest.mark.parametrize("mode,fan", [("fan_in", FAN_IN), ("fan_out", FAN_OUT)])
@pytest.mark.parametrize("a,nonlinearity", [(0, "relu"), (math.sqrt(5), "leaky_relu"), (0, "tanh")])
def test_kaiming(mode, fan, a, nonlinearity):
    gain = init.calculate_gain(nonlinearity, a)
    uniform_check(init.kaiming_uniform_(weight(), a, mode, nonlinearity), gain * math.sqrt(3 / fan))
    normal_check(init.kaiming_normal_(weight(), a, mode, nonlinearity), 0.0, gain / math.sqrt(fan))
    with pytest.raises(ValueError, match="mode"):
        init.kaiming_uniform_(weight(), mode="fan_avg")


@pytest.mark.parametrize("shape", [(6, 4), (4, 6), (3, 2, 2, 2)])
def test_orthogonal(shape):
    w = init.orthogonal_(nn.Parameter(em.empty(*shape)), gain=1.5)
    m = w.detach().numpy().reshape(shape[0], -1).astype(np.float64) / 1.5
    small = m.T @ m if m.shape[0] >= m.shape[1] else m @ m.T
    np.testing.assert_allclose(small, np.eye(small.shape[0]), atol=1e-5)
    with pytest.raises(em.ShapeError):
        init.orthogonal_(em.empty(3))


def test_trunc_normal_bounds():
    w = init.trunc_normal_(weight(), std=1.0, a=-1.0, b=2.0)
    _, _, lo, hi = stats(w)
    assert -1.0 <= lo and hi <= 2.0


@pytest.mark.parametrize("fn", [init.uniform_, init.normal_, init.xavier_uniform_, init.kaiming_normal_,
                                init.orthogonal_, init.trunc_normal_])
def test_reproducible_with_manual_seed(fn):
    em.manual_seed(7)
    a = fn(em.empty(5, 4)).numpy().copy()
    em.manual_seed(7)
    b = fn(em.empty(5, 4)).numpy()
    np.testing.assert_array_equal(a, b)
    c = fn(em.empty(5, 4)).numpy()
    assert not np.array_equal(b, c)


def test_model_creation_reproducible():
    em.manual_seed(0)
    a = nn.Sequential(nn.Linear(4, 5), nn.Embedding(3, 2)).state_dict()
    em.manual_seed(0)
    b = nn.Sequential(nn.Linear(4, 5), nn.Embedding(3, 2)).state_dict()
    for k in a:
        np.testing.assert_array_equal(a[k].numpy(), b[k].numpy())


def test_generator_argument_and_dtype_kept():
    g1, g2 = em.Generator(3), em.Generator(3)
    a = init.normal_(em.empty(4, dtype=em.float64), generator=g1)
    b = init.normal_(em.empty(4, dtype=em.float64), generator=g2)
    assert a.dtype is em.float64
    np.testing.assert_array_equal(a.numpy(), b.numpy())
