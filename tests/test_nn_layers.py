"""Layers against PyTorch: the same weights copied in (through NumPy), the same input and
upstream gradient; output, input gradient, every parameter gradient and the buffers must agree.
Everything runs in float64, so the tolerance is tight: atol=rtol=1e-9 (float64 round-off
through a few reductions)."""
import math

import numpy as np
import pytest

import ember as em
import ember.nn.functional as F
from ember import nn
from ember.errors import IndexRangeError

torch = pytest.importorskip("torch", reason="PyTorch is the oracle for layer tests (pip install -e '.[oracle]')")
TOL = dict(rtol=1e-9, atol=1e-9)


def copy_weights(em_mod, t_mod):
    em_mod.load_state_dict({k: v.detach().numpy().copy() for k, v in t_mod.state_dict().items()})


def check(em_mod, t_mod, shape, train=True, steps=2, seed=0, make_input=None):
    """Run ``steps`` forward/backward passes through both modules and compare everything."""
    em_mod.double()
    t_mod.double()
    copy_weights(em_mod, t_mod)
    em_mod.train(train)
    t_mod.train(train)
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        x = make_input(rng) if make_input else rng.standard_normal(shape) * 2 + 0.5
        floating = x.dtype.kind == "f"
        ex = em.tensor(x, requires_grad=floating)
        tx = torch.tensor(x, requires_grad=floating)
        eo, to = em_mod(ex), t_mod(tx)
        np.testing.assert_allclose(eo.detach().numpy(), to.detach().numpy(), **TOL)
        g = rng.standard_normal(tuple(to.shape))
        (eo * em.tensor(g)).sum().backward()
        (to * torch.tensor(g)).sum().backward()
        if floating:
            np.testing.assert_allclose(ex.grad.numpy(), tx.grad.numpy(), **TOL)
        tparams = dict(t_mod.named_parameters())
        eparams = dict(em_mod.named_parameters())
        assert eparams.keys() == tparams.keys()
        for k, p in tparams.items():
            assert eparams[k].grad is not None, f"{k}: no gradient"
            np.testing.assert_allclose(eparams[k].grad.numpy(), p.grad.numpy(), **TOL, err_msg=k)
        for k, b in t_mod.state_dict().items():  # running statistics after the step
            np.testing.assert_allclose(em_mod.state_dict()[k].numpy(), b.numpy(), **TOL, err_msg=k)
        em_mod.zero_grad()
        t_mod.zero_grad()


# -- Linear, Flatten, Identity, Embedding -----------------------------------------------------
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(5, 4), (2, 3, 4), (4,)])
@pytest.mark.parametrize("train", [True, False])
def test_linear_matches_torch(bias, shape, train):
    check(nn.Linear(4, 3, bias=bias), torch.nn.Linear(4, 3, bias=bias), shape, train)


def test_linear_repr_and_keys():
    m = nn.Linear(4, 3, bias=False)
    assert repr(m) == "Linear(in_features=4, out_features=3, bias=False)"
    assert list(m.state_dict()) == ["weight"]
    assert m.bias is None


@pytest.mark.parametrize("bad", [(2, 5), ()])
def test_linear_wrong_input_names_layer_and_shapes(bad):
    m = nn.Linear(4, 3)
    with pytest.raises(em.ShapeError, match=r"Linear\(4, 3\).*\(\*, 4\).*got \(" + ("2, 5" if bad else "") + r"\)"):
        m(em.zeros(*bad))


def test_functional_linear_error():
    with pytest.raises(em.ShapeError, match="linear: input of shape"):
        F.linear(em.zeros(2, 5), em.zeros(3, 4))


def test_flatten_unflatten_identity():
    x = em.randn(2, 3, 4, 5)
    assert nn.Flatten()(x).shape == (2, 60)
    assert nn.Flatten(0, 2)(x).shape == (24, 5)
    assert nn.Unflatten(1, (2, 30))(nn.Flatten()(x)).shape == (2, 2, 30)
    assert nn.Identity(54, unused=1)(x) is x
    with pytest.raises(em.ShapeError, match="Unflatten"):
        nn.Unflatten(1, (7, 7))(nn.Flatten()(x))


@pytest.mark.parametrize("padding_idx", [None, 0, 3, -1])
@pytest.mark.parametrize("ids_shape", [(6,), (2, 5)])
def test_embedding_matches_torch(padding_idx, ids_shape):
    check(nn.Embedding(7, 3, padding_idx=padding_idx), torch.nn.Embedding(7, 3, padding_idx=padding_idx),
          None, make_input=lambda rng: rng.integers(0, 7, ids_shape))


def test_embedding_padding_row_zero_and_no_grad():
    m = nn.Embedding(5, 3, padding_idx=2)
    np.testing.assert_array_equal(m.weight.detach().numpy()[2], 0)
    out = m(em.tensor([2, 2, 1]))
    out.sum().backward()
    np.testing.assert_array_equal(m.weight.grad.numpy()[2], 0)
    np.testing.assert_array_equal(m.weight.grad.numpy()[1], 1)
    assert repr(m) == "Embedding(5, 3, padding_idx=2)"


@pytest.mark.parametrize("bad", [5, 12, -1])
def test_embedding_index_out_of_range(bad):
    m = nn.Embedding(5, 3)
    with pytest.raises(IndexRangeError, match=rf"embedding: index {bad} is out of range for 5 embeddings"):
        m(em.tensor([0, bad]))
    with pytest.raises(IndexError):  # also a plain IndexError, as PyTorch raises
        m(em.tensor([bad]))


def test_embedding_float_ids_and_bad_padding():
    with pytest.raises(em.DTypeError, match="integers"):
        nn.Embedding(5, 3)(em.tensor([1.0]))
    with pytest.raises(ValueError, match="padding_idx"):
        nn.Embedding(5, 3, padding_idx=5)


def test_embedding_from_pretrained_frozen():
    w = em.randn(4, 2)
    m = nn.Embedding.from_pretrained(w)
    assert not m.weight.requires_grad
    np.testing.assert_array_equal(m(em.tensor([3])).numpy(), w.numpy()[[3]])


# -- Dropout --------------------------------------------------------------------------------
def test_dropout_train_statistics_and_scaling():
    em.manual_seed(0)
    x = em.ones(200, 500)
    y = nn.Dropout(0.3)(x).numpy()
    kept = y != 0
    assert abs(kept.mean() - 0.7) < 0.01  # 100k Bernoulli draws: std 0.0014
    np.testing.assert_allclose(y[kept], 1 / 0.7)


def test_dropout_eval_identity_and_gradient():
    m = nn.Dropout(0.5)
    x = em.randn(10, 10, requires_grad=True)
    m.eval()
    assert m(x) is x
    m.train()
    y = m(x)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), (y.detach().numpy() != 0) * 2.0)


def test_dropout_reproducible_with_manual_seed_and_edges():
    x = em.ones(50)
    em.manual_seed(3)
    a = F.dropout(x, 0.5).numpy()
    em.manual_seed(3)
    b = F.dropout(x, 0.5).numpy()
    np.testing.assert_array_equal(a, b)
    assert F.dropout(x, 0.0) is x
    np.testing.assert_array_equal(F.dropout(x, 1.0).numpy(), 0)
    for p in (-0.1, 1.5):
        with pytest.raises(ValueError, match="must be in"):
            nn.Dropout(p)


# -- activations ----------------------------------------------------------------------------
ACTIVATIONS = [
    (lambda: nn.ReLU(), lambda: torch.nn.ReLU()),
    (lambda: nn.LeakyReLU(), lambda: torch.nn.LeakyReLU()),
    (lambda: nn.LeakyReLU(0.2), lambda: torch.nn.LeakyReLU(0.2)),
    (lambda: nn.ELU(), lambda: torch.nn.ELU()),
    (lambda: nn.ELU(0.5), lambda: torch.nn.ELU(0.5)),
    (lambda: nn.GELU(), lambda: torch.nn.GELU()),
    (lambda: nn.GELU("tanh"), lambda: torch.nn.GELU("tanh")),
    (lambda: nn.SiLU(), lambda: torch.nn.SiLU()),
    (lambda: nn.Tanh(), lambda: torch.nn.Tanh()),
    (lambda: nn.Sigmoid(), lambda: torch.nn.Sigmoid()),
    (lambda: nn.Softmax(dim=1), lambda: torch.nn.Softmax(dim=1)),
    (lambda: nn.Softmax(dim=-1), lambda: torch.nn.Softmax(dim=-1)),
    (lambda: nn.LogSoftmax(dim=1), lambda: torch.nn.LogSoftmax(dim=1)),
    (lambda: nn.LogSoftmax(dim=0), lambda: torch.nn.LogSoftmax(dim=0)),
    (lambda: nn.Softplus(), lambda: torch.nn.Softplus()),
    (lambda: nn.Softplus(2.0, 5.0), lambda: torch.nn.Softplus(2.0, 5.0)),
    (lambda: nn.Hardtanh(-2.0, 1.5), lambda: torch.nn.Hardtanh(-2.0, 1.5)),
    (lambda: nn.ReLU6(), lambda: torch.nn.ReLU6()),
]


@pytest.mark.parametrize("pair", ACTIVATIONS, ids=lambda p: repr(p[0]()))
def test_activation_matches_torch(pair):
    # Values spread wide (up to +-40) so thresholds and saturated tails are exercised; kept off
    # the kinks (exact 0, clamp bounds) where subgradient choices may differ.
    check(pair[0](), pair[1](), (4, 5, 3), steps=1,
          make_input=lambda rng: rng.choice([-1, 1], (4, 5, 3)) * rng.uniform(0.01, 40, (4, 5, 3)))


def test_activations_at_zero_and_extremes_are_finite():
    x = em.tensor([-1e4, -100.0, 0.0, 100.0, 1e4], requires_grad=True)
    for f in (F.elu, F.softplus, F.leaky_relu, lambda t: F.log_softmax(t, 0)):
        y = f(x)
        y.sum().backward()
        assert np.isfinite(y.detach().numpy()).all() and np.isfinite(x.grad.numpy()).all()
        x.grad = None


def test_module_reprs():
    assert repr(nn.LeakyReLU(0.2)) == "LeakyReLU(negative_slope=0.2)"
    assert repr(nn.GELU("tanh")) == "GELU(approximate='tanh')"
    assert repr(nn.Softmax(1)) == "Softmax(dim=1)"
    with pytest.raises(ValueError, match="approximate"):
        nn.GELU("fast")


# -- normalization --------------------------------------------------------------------------
BN_CONFIGS = [dict(), dict(momentum=None), dict(momentum=0.3, eps=1e-3), dict(affine=False),
              dict(track_running_stats=False)]


@pytest.mark.parametrize("kw", BN_CONFIGS, ids=str)
@pytest.mark.parametrize("shape", [(8, 4), (5, 4, 6)], ids=["2d", "3d"])
@pytest.mark.parametrize("train", [True, False])
def test_batchnorm1d_matches_torch(kw, shape, train):
    em_m, t_m = nn.BatchNorm1d(4, **kw), torch.nn.BatchNorm1d(4, **kw)
    check(em_m, t_m, shape, train=True, steps=3)  # build running statistics
    check(em_m, t_m, shape, train=train, steps=1, seed=1)


@pytest.mark.parametrize("kw", BN_CONFIGS, ids=str)
@pytest.mark.parametrize("train", [True, False])
def test_batchnorm2d_matches_torch(kw, train):
    em_m, t_m = nn.BatchNorm2d(3, **kw), torch.nn.BatchNorm2d(3, **kw)
    check(em_m, t_m, (4, 3, 5, 5), train=True, steps=3)
    check(em_m, t_m, (4, 3, 5, 5), train=train, steps=1, seed=1)


def test_batchnorm_buffers_and_errors():
    m = nn.BatchNorm2d(3)
    assert list(m.state_dict()) == ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    assert m.num_batches_tracked.dtype is em.int64
    with pytest.raises(em.ShapeError, match=r"BatchNorm2d\(3\): expected 3 channels.*\(2, 4, 5, 5\)"):
        m(em.zeros(2, 4, 5, 5))
    with pytest.raises(em.ShapeError, match=r"BatchNorm2d\(3\): expected a 4-D .*got shape \(2, 3\)"):
        m(em.zeros(2, 3))
    with pytest.raises(em.ShapeError, match="more than 1 value per channel"):
        nn.BatchNorm1d(3)(em.zeros(1, 3))
    nn.BatchNorm1d(3).eval()(em.zeros(1, 3))  # fine in eval mode
    assert nn.BatchNorm1d(3, track_running_stats=False).state_dict() .keys() == {"weight", "bias"}


@pytest.mark.parametrize("kw", [dict(), dict(elementwise_affine=False), dict(bias=False), dict(eps=1e-2)], ids=str)
@pytest.mark.parametrize("norm_shape,shape", [(6, (4, 6)), ((3, 6), (2, 3, 6)), (5, (2, 3, 5))])
def test_layernorm_matches_torch(kw, norm_shape, shape):
    check(nn.LayerNorm(norm_shape, **kw), torch.nn.LayerNorm(norm_shape, **kw), shape)


def test_layernorm_wrong_shape():
    with pytest.raises(em.ShapeError, match=r"LayerNorm\(\(6,\)\): expected input of shape \(\*, 6\), got \(4, 5\)"):
        nn.LayerNorm(6)(em.zeros(4, 5))


@pytest.mark.parametrize("groups,channels,shape", [(2, 4, (3, 4, 5)), (1, 6, (2, 6, 3, 3)), (6, 6, (2, 6, 4)),
                                                  (3, 6, (2, 6))])
@pytest.mark.parametrize("affine", [True, False])
def test_groupnorm_matches_torch(groups, channels, shape, affine):
    check(nn.GroupNorm(groups, channels, affine=affine), torch.nn.GroupNorm(groups, channels, affine=affine), shape)


def test_groupnorm_errors():
    with pytest.raises(ValueError, match="divisible"):
        nn.GroupNorm(3, 4)
    with pytest.raises(em.ShapeError, match=r"GroupNorm\(2, 4\)"):
        nn.GroupNorm(2, 4)(em.zeros(2, 3, 5))


def test_layer_default_init_distributions():
    """Linear's init is kaiming_uniform(a=sqrt(5)) -> U(+-1/sqrt(fan_in)), bias the same; Embedding N(0, 1)."""
    em.manual_seed(0)
    lin = nn.Linear(400, 300)
    bound = 1 / math.sqrt(400)
    w = lin.weight.detach().numpy()
    assert w.min() >= -bound and w.max() <= bound
    assert abs(w.std() - bound / math.sqrt(3)) < 0.01 * bound
    b = lin.bias.detach().numpy()
    assert b.min() >= -bound and b.max() <= bound
    e = nn.Embedding(1000, 100).weight.detach().numpy()
    assert abs(e.mean()) < 0.01 and abs(e.std() - 1) < 0.01
    assert lin.weight.dtype is em.float32
