"""Losses against PyTorch (float64, atol=rtol=1e-10: the same formulas up to round-off): the loss
value and the gradient of every differentiable input, over reductions and options. Also
numerical stability for huge logits and the errors for bad targets."""
import numpy as np
import pytest

import ember as em
import ember.nn.functional as F
from ember import nn
from ember.errors import IndexRangeError

torch = pytest.importorskip("torch", reason="PyTorch is the oracle for loss tests (pip install -e '.[oracle]')")
TF = torch.nn.functional
TOL = dict(rtol=1e-10, atol=1e-10)
REDUCTIONS = ["mean", "sum", "none"]


def compare(em_fn, t_fn, arrays, grad_of=(0,)):
    """Call both with the same arrays (floats in ``grad_of`` require grad); compare value and grads."""
    ets = [em.tensor(a, requires_grad=i in grad_of) for i, a in enumerate(arrays)]
    tts = [torch.tensor(a, requires_grad=i in grad_of) for i, a in enumerate(arrays)]
    eo, to = em_fn(*ets), t_fn(*tts)
    np.testing.assert_allclose(eo.detach().numpy(), to.detach().numpy(), **TOL)
    g = np.random.default_rng(9).standard_normal(tuple(to.shape))
    (eo * em.tensor(g)).sum().backward()
    (to * torch.tensor(g)).sum().backward()
    for i in grad_of:
        np.testing.assert_allclose(ets[i].grad.numpy(), tts[i].grad.numpy(), **TOL, err_msg=f"input {i}")


def logits_targets(shape, seed=0, ignore=None):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape) * 2
    t = rng.integers(0, shape[1] if len(shape) > 1 else shape[0], size=shape[:1] + shape[2:] if len(shape) > 1 else ())
    if ignore is not None and t.ndim:
        t.reshape(-1)[::3] = ignore
    return x, np.asarray(t)


# -- cross-entropy and NLL ------------------------------------------------------------------
CE_SHAPES = [(6, 4), (3, 4, 5), (2, 3, 2, 2), (5,)]
CE_OPTIONS = [dict(), dict(weight=True), dict(ignore_index=1), dict(ignore_index=-100, ignored=True),
              dict(label_smoothing=0.2), dict(label_smoothing=0.1, weight=True, ignore_index=2)]


@pytest.mark.parametrize("shape", CE_SHAPES, ids=str)
@pytest.mark.parametrize("opts", CE_OPTIONS, ids=str)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_indices_matches_torch(shape, opts, reduction):
    opts = dict(opts)
    ignore = opts.pop("ignore_index", -100)
    x, t = logits_targets(shape, ignore=ignore if (opts.pop("ignored", False) or ignore >= 0) else None)
    c = shape[1] if len(shape) > 1 else shape[0]
    w = np.linspace(0.5, 2.0, c) if opts.pop("weight", False) else None
    kw = dict(ignore_index=ignore, reduction=reduction, **opts)
    compare(lambda a, b: F.cross_entropy(a, b, None if w is None else em.tensor(w), **kw),
            lambda a, b: TF.cross_entropy(a, b, None if w is None else torch.tensor(w), **kw), [x, t])


@pytest.mark.parametrize("shape", [(6, 4), (3, 4, 5), (4,)], ids=str)
@pytest.mark.parametrize("opts", [dict(), dict(weight=True), dict(label_smoothing=0.3)], ids=str)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_probabilities_matches_torch(shape, opts, reduction):
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape)
    axis = 1 if len(shape) > 1 else 0
    p = np.exp(x * 2) / np.exp(x * 2).sum(axis, keepdims=True)
    w = np.linspace(0.5, 2.0, shape[axis]) if opts.get("weight") else None
    ls = opts.get("label_smoothing", 0.0)
    compare(lambda a, b: F.cross_entropy(a, b, None if w is None else em.tensor(w), reduction=reduction, label_smoothing=ls),
            lambda a, b: TF.cross_entropy(a, b, None if w is None else torch.tensor(w), reduction=reduction, label_smoothing=ls),
            [rng.standard_normal(shape), p], grad_of=(0, 1))


def test_cross_entropy_module_and_weight_buffer():
    w = em.tensor([1.0, 2.0, 3.0])
    loss = nn.CrossEntropyLoss(weight=w, label_smoothing=0.1, reduction="sum")
    assert list(loss.state_dict()) == ["weight"]
    x, t = logits_targets((5, 3))
    ref = TF.cross_entropy(torch.tensor(x), torch.tensor(t), torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64),
                           label_smoothing=0.1, reduction="sum")
    np.testing.assert_allclose(loss(em.tensor(x), em.tensor(t)).item(), ref.item(), rtol=1e-6)


def test_cross_entropy_float32_stable_for_huge_logits():
    x = em.tensor([[1e4, 0.0, -1e4], [0.0, 1e4, 1e4]], requires_grad=True)
    loss = F.cross_entropy(x, em.tensor([0, 0]))
    loss.backward()
    assert x.dtype is em.float32
    np.testing.assert_allclose(loss.item(), (0 + 1e4 + np.log(2)) / 2, rtol=1e-6)
    assert np.isfinite(x.grad.numpy()).all()
    np.testing.assert_allclose(x.grad.numpy(), [[0, 0, 0], [-0.5, 0.25, 0.25]], atol=1e-7)
    ls = F.log_softmax(x.detach() * 10, 1)
    assert np.isfinite(ls.numpy()).all()


def test_cross_entropy_double_backward_matches_torch():
    x, t = logits_targets((4, 5))
    ex, tx = em.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    w = np.linspace(1, 2, 5)
    (eg,) = em.grad(F.cross_entropy(ex, em.tensor(t), em.tensor(w)), [ex], create_graph=True)
    (tg,) = torch.autograd.grad(TF.cross_entropy(tx, torch.tensor(t), torch.tensor(w)), [tx], create_graph=True)
    (eg ** 2).sum().backward()
    (tg ** 2).sum().backward()
    np.testing.assert_allclose(ex.grad.numpy(), tx.grad.numpy(), **TOL)


@pytest.mark.filterwarnings("ignore:invalid value")
def test_cross_entropy_all_ignored_is_nan_like_torch():
    x = em.randn(3, 4)
    assert np.isnan(F.cross_entropy(x, em.tensor([-100, -100, -100])).item())


@pytest.mark.parametrize("bad", [4, 7, -1])
def test_cross_entropy_target_out_of_range(bad):
    x = em.randn(3, 4)
    with pytest.raises(IndexRangeError, match=rf"cross_entropy: target {bad} is out of range for 4 classes"):
        F.cross_entropy(x, em.tensor([0, bad, 1]))
    with pytest.raises(IndexRangeError, match=rf"nll_loss: target {bad} is out of range for 4 classes"):
        nn.NLLLoss()(x, em.tensor([0, bad, 1]))


def test_cross_entropy_bad_shapes_and_args():
    x = em.randn(3, 4)
    with pytest.raises(em.ShapeError, match=r"class-index targets of shape \(3,\), got \(4,\)"):
        F.cross_entropy(x, em.tensor([0, 1, 2, 3]))
    with pytest.raises(em.ShapeError, match=r"must have the input's shape \(3, 4\)"):
        F.cross_entropy(x, em.rand(3, 5))
    with pytest.raises(em.ShapeError, match=r"weight must have shape \(4,\)"):
        F.cross_entropy(x, em.tensor([0, 1, 2]), weight=em.ones(3))
    with pytest.raises(ValueError, match="reduction"):
        F.cross_entropy(x, em.tensor([0, 1, 2]), reduction="avg")
    with pytest.raises(ValueError, match="reduction"):
        nn.MSELoss(reduction="batchmean")
    with pytest.raises(em.DTypeError, match="integer"):
        F.nll_loss(x, em.tensor([True, False, True]))


@pytest.mark.parametrize("shape", [(6, 4), (3, 4, 5)], ids=str)
@pytest.mark.parametrize("opts", [dict(), dict(weight=True), dict(ignore_index=2)], ids=str)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_nll_loss_matches_torch(shape, opts, reduction):
    ignore = opts.get("ignore_index", -100)
    x, t = logits_targets(shape, ignore=ignore if ignore >= 0 else None)
    w = np.linspace(0.5, 2.0, shape[1]) if opts.get("weight") else None
    compare(lambda a, b: nn.NLLLoss(None if w is None else em.tensor(w), ignore, reduction)(a, b),
            lambda a, b: torch.nn.NLLLoss(None if w is None else torch.tensor(w), ignore_index=ignore, reduction=reduction)(a, b),
            [x, t])


# -- regression and binary losses -----------------------------------------------------------
PAIR_LOSSES = [
    (lambda r: nn.MSELoss(reduction=r), lambda r: torch.nn.MSELoss(reduction=r)),
    (lambda r: nn.L1Loss(reduction=r), lambda r: torch.nn.L1Loss(reduction=r)),
    (lambda r: nn.SmoothL1Loss(r), lambda r: torch.nn.SmoothL1Loss(reduction=r)),
    (lambda r: nn.SmoothL1Loss(r, beta=0.5), lambda r: torch.nn.SmoothL1Loss(reduction=r, beta=0.5)),
    (lambda r: nn.SmoothL1Loss(r, beta=0.0), lambda r: torch.nn.SmoothL1Loss(reduction=r, beta=0.0)),
    (lambda r: nn.HuberLoss(r), lambda r: torch.nn.HuberLoss(reduction=r)),
    (lambda r: nn.HuberLoss(r, delta=2.5), lambda r: torch.nn.HuberLoss(reduction=r, delta=2.5)),
]


@pytest.mark.parametrize("pair", PAIR_LOSSES, ids=lambda p: repr(p[0]("sum")))
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_regression_losses_match_torch(pair, reduction):
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((4, 5)) * 2, rng.standard_normal((4, 5))
    compare(pair[0](reduction), pair[1](reduction), [x, y], grad_of=(0, 1))


def test_regression_shape_mismatch_warns():
    with pytest.warns(UserWarning, match=r"target shape \(4, 1\) differs from input shape \(4,\)"):
        F.mse_loss(em.zeros(4), em.zeros(4, 1))


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_bce_matches_torch(weighted, reduction):
    rng = np.random.default_rng(3)
    p = rng.uniform(0.02, 0.98, (4, 3))
    y = rng.uniform(0, 1, (4, 3))
    w = rng.uniform(0.5, 2, (4, 3)) if weighted else None
    compare(lambda a, b: nn.BCELoss(None if w is None else em.tensor(w), reduction)(a, b),
            lambda a, b: torch.nn.BCELoss(None if w is None else torch.tensor(w), reduction=reduction)(a, b),
            [p, y], grad_of=(0, 1))


def test_bce_clamps_log_at_minus_100_and_checks_range():
    p = em.tensor([0.0, 1.0, 0.5], requires_grad=True)
    loss = F.binary_cross_entropy(p, em.tensor([1.0, 0.0, 1.0]), reduction="none")
    np.testing.assert_allclose(loss.detach().numpy(), [100, 100, np.log(2)], rtol=1e-6)
    loss.sum().backward()
    assert np.isfinite(p.grad.numpy()).all()
    with pytest.raises(ValueError, match=r"probabilities in \[0, 1\]"):
        F.binary_cross_entropy(em.tensor([1.5]), em.tensor([1.0]))
    with pytest.raises(em.ShapeError, match="target shape"):
        F.binary_cross_entropy(em.tensor([0.5]), em.tensor([[1.0]]))


@pytest.mark.parametrize("opts", [dict(), dict(weight=True), dict(pos_weight=True), dict(weight=True, pos_weight=True)], ids=str)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_bce_with_logits_matches_torch(opts, reduction):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((4, 3)) * 3
    x[0, 0] = 0.0  # the kink of |x|: the gradient must still be the true one
    y = rng.uniform(0, 1, (4, 3))
    w = rng.uniform(0.5, 2, (3,)) if opts.get("weight") else None
    pw = rng.uniform(0.5, 3, (3,)) if opts.get("pos_weight") else None
    e = lambda a: None if a is None else em.tensor(a)  # noqa: E731
    t = lambda a: None if a is None else torch.tensor(a)  # noqa: E731
    compare(lambda a, b: nn.BCEWithLogitsLoss(e(w), reduction, e(pw))(a, b),
            lambda a, b: torch.nn.BCEWithLogitsLoss(t(w), reduction=reduction, pos_weight=t(pw))(a, b),
            [x, y], grad_of=(0, 1))


def test_bce_with_logits_stable_for_huge_logits():
    x = em.tensor([1e4, -1e4, 50.0, -50.0], requires_grad=True)
    loss = F.binary_cross_entropy_with_logits(x, em.tensor([0.0, 1.0, 1.0, 0.0]), reduction="none")
    np.testing.assert_allclose(loss.detach().numpy(), [1e4, 1e4, 0, 0], atol=1e-6)
    loss.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [1, -1, 0, 0], atol=1e-6)


@pytest.mark.parametrize("zero", [False, True], ids=["", "zero-target"])
@pytest.mark.parametrize("log_target", [False, True])
@pytest.mark.parametrize("reduction", REDUCTIONS + ["batchmean"])
@pytest.mark.filterwarnings("ignore:reduction")  # torch's note on 'mean'
def test_kl_div_matches_torch(log_target, reduction, zero):
    rng = np.random.default_rng(5)
    logq = np.log(rng.dirichlet(np.ones(5), size=4))
    p = rng.dirichlet(np.ones(5), size=4)
    if zero:
        p[0, 0] = 0.0  # 0 * log 0 = 0; torch's target gradient there is nan (ember's is finite)
    target = np.log(p + 1e-3) if log_target else p
    compare(lambda a, b: nn.KLDivLoss(reduction, log_target)(a, b),
            lambda a, b: torch.nn.KLDivLoss(reduction=reduction, log_target=log_target)(a, b),
            [logq, target], grad_of=(0,) if zero and not log_target else (0, 1))
