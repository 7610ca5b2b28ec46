"""ember.nn.utils: clip_grad_norm_ / clip_grad_value_ / parameters_to_vector /
vector_to_parameters against torch.nn.utils (float32, rtol=1e-6, atol=1e-7)."""
import numpy as np
import pytest

import ember as em
from ember.errors import EmberError, ShapeError
from ember.nn.utils import clip_grad_norm_, clip_grad_value_, parameters_to_vector, vector_to_parameters

torch = pytest.importorskip("torch", reason="torch.nn.utils is the oracle for gradient clipping")

SHAPES = [(4, 3), (3,), (2, 1, 5)]


def _params(lib, with_grads=True, scale=1.0):
    rng = np.random.default_rng(0)
    ps = []
    for i, s in enumerate(SHAPES):
        p = lib.tensor(rng.standard_normal(s).astype(np.float32), requires_grad=True)
        g = (rng.standard_normal(s) * scale).astype(np.float32)
        if with_grads and i != 1:  # parameter 1 has no gradient: it is skipped
            p.grad = lib.tensor(g)
        ps.append(p)
    return ps


def _grads(ps):
    return [None if p.grad is None else np.asarray(p.grad) for p in ps]


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, float("inf"), "inf"])
@pytest.mark.parametrize("max_norm", [0.5, 1e3])  # clips / leaves alone
def test_clip_grad_norm_matches_torch(norm_type, max_norm):
    ours, ref = _params(em), _params(torch)
    total = clip_grad_norm_(ours, max_norm, norm_type=norm_type)
    ttotal = torch.nn.utils.clip_grad_norm_(ref, max_norm, norm_type=float(norm_type))
    np.testing.assert_allclose(total.item(), ttotal.item(), rtol=1e-6)
    for a, b in zip(_grads(ours), _grads(ref)):
        assert (a is None) == (b is None)
        if a is not None:
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_clip_grad_norm_single_tensor_and_no_grads():
    p = em.tensor([3.0, 4.0], requires_grad=True)
    assert clip_grad_norm_(p, 1.0).item() == 0.0  # no gradient yet
    p.grad = em.tensor([3.0, 4.0])
    assert clip_grad_norm_(p, 1.0).item() == 5.0
    np.testing.assert_allclose(p.grad.numpy(), [0.6, 0.8], rtol=1e-6)


def test_clip_grad_norm_nonfinite():
    ps = _params(em)
    ps[0].grad = em.tensor(np.full((4, 3), np.nan, np.float32))
    with pytest.raises(EmberError, match="nan.*error_if_nonfinite=False"):
        clip_grad_norm_(ps, 1.0, error_if_nonfinite=True)
    assert np.isnan(clip_grad_norm_(ps, 1.0).item())  # allowed when not asked to raise, as torch


@pytest.mark.parametrize("clip", [0.1, 1.0, 10.0])
def test_clip_grad_value_matches_torch(clip):
    ours, ref = _params(em, scale=2.0), _params(torch, scale=2.0)
    clip_grad_value_(ours, clip)
    torch.nn.utils.clip_grad_value_(ref, clip)
    for a, b in zip(_grads(ours), _grads(ref)):
        if a is not None:
            np.testing.assert_array_equal(a, b)
            assert np.abs(a).max() <= clip


def test_parameters_to_vector_and_back_match_torch():
    ours, ref = _params(em, with_grads=False), _params(torch, with_grads=False)
    vec, tvec = parameters_to_vector(ours), torch.nn.utils.parameters_to_vector(ref)
    np.testing.assert_array_equal(vec.detach().numpy(), tvec.detach().numpy())
    vec.sum().backward()  # differentiable: every parameter gets ones
    assert all(np.all(p.grad.numpy() == 1) for p in ours)
    new = np.arange(vec.shape[0], dtype=np.float32)
    vector_to_parameters(em.tensor(new), ours)
    torch.nn.utils.vector_to_parameters(torch.tensor(new), ref)
    for a, b in zip(ours, ref):
        np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())
        assert a.is_leaf and a.requires_grad


def test_vector_to_parameters_errors():
    ps = _params(em, with_grads=False)
    with pytest.raises(ShapeError, match="the vector has 5 elements but the parameters hold 25"):
        vector_to_parameters(em.zeros(5), ps)
    with pytest.raises(ShapeError, match="expected a 1-D vector"):
        vector_to_parameters(em.zeros(5, 5), ps)
    with pytest.raises(TypeError, match="expected an ember Tensor"):
        vector_to_parameters(np.zeros(25), ps)
