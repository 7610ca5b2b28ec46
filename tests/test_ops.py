"""The registry sweep: every registered op is checked — forward against NumPy, gradient
against float64 central finite differences, forward and gradient against PyTorch — from the
cases in tests/opcases/. A registered op without a case fails here."""
import numpy as np
import pytest

import ember as em
from ember.ops.registry import REGISTRY
from opcases import all_cases

try:
    import torch
except ImportError:
    torch = None

CASES = all_cases()
needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed (pip install -e '.[oracle]')")


def test_every_registered_op_has_a_case():
    covered = {c.op for c in CASES}
    missing = sorted(set(REGISTRY) - covered)
    assert not missing, f"registered ops without a test case in tests/opcases/: {missing}"


def _make_inputs(case, rng, noncontiguous=False):
    arrays = case.inputs(rng)
    if noncontiguous:  # same values, Fortran order: strides differ, data identical
        arrays = tuple(np.asfortranarray(a) if a.ndim >= 2 else a for a in arrays)
    return arrays


def _ember(arrays, grad):
    ts = []
    for a in arrays:
        t = em.from_numpy(a)
        if grad and a.dtype.kind == "f":
            t.requires_grad_(True)
        ts.append(t)
    return ts


def _float_indices(arrays):
    return [i for i, a in enumerate(arrays) if a.dtype.kind == "f"]


def _weighted_sum_grads(case, arrays, weights):
    ts = _ember(arrays, True)
    out = case.ember(*ts)
    loss = (out * em.from_numpy(weights)).sum()
    loss.backward()
    return [ts[i].grad.numpy() if ts[i].grad is not None else np.zeros_like(arrays[i])
            for i in _float_indices(arrays)]


def _fd_grads(case, arrays, weights, eps):
    grads = []
    for i in _float_indices(arrays):
        g = np.zeros_like(arrays[i])
        flat = arrays[i].reshape(-1)
        for j in range(flat.size):
            xs = [a.copy() for a in arrays]
            xp = xs[i].reshape(-1)
            xp[j] = flat[j] + eps
            fp = float((case.ember(*_ember(xs, False)).numpy() * weights).sum())
            xp[j] = flat[j] - eps
            fm = float((case.ember(*_ember(xs, False)).numpy() * weights).sum())
            g.reshape(-1)[j] = (fp - fm) / (2 * eps)
        grads.append(g)
    return grads


@pytest.mark.parametrize("noncontig", [False, True], ids=["contig", "noncontig"])
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_forward_matches_numpy(case, noncontig):
    if case.numpy is None:
        pytest.skip(f"{case.id}: no independent NumPy reference (checked against PyTorch instead)")
    if noncontig and not case.noncontiguous:
        pytest.skip(f"{case.id}: opts out of the non-contiguous variant")
    rng = np.random.default_rng(0)
    arrays = _make_inputs(case, rng, noncontig)
    out = case.ember(*_ember(arrays, False))
    ref = np.asarray(case.numpy(*arrays))
    assert tuple(out.shape) == ref.shape, f"{case.id}: shape {tuple(out.shape)} != {ref.shape}"
    np.testing.assert_allclose(out.numpy(), ref, rtol=case.rtol, atol=case.atol)


@pytest.mark.parametrize("case", [c for c in CASES if c.grad], ids=[c.id for c in CASES if c.grad])
def test_gradient_matches_finite_differences(case):
    rng = np.random.default_rng(1)
    arrays = _make_inputs(case, rng)
    out = case.ember(*_ember(arrays, False))
    weights = rng.standard_normal(tuple(out.shape))
    analytic = _weighted_sum_grads(case, arrays, weights)
    numeric = _fd_grads(case, arrays, weights, case.fd_eps)
    for a, n in zip(analytic, numeric):
        np.testing.assert_allclose(a, n, rtol=1e-4, atol=1e-6)


@needs_torch
@pytest.mark.parametrize("noncontig", [False, True], ids=["contig", "noncontig"])
@pytest.mark.parametrize("case", [c for c in CASES if c.torch], ids=[c.id for c in CASES if c.torch])
def test_matches_torch(case, noncontig):
    rng = np.random.default_rng(2)
    arrays = _make_inputs(case, rng, noncontig)
    out = case.ember(*_ember(arrays, False))
    tins = [torch.from_numpy(a.copy()) for a in arrays]
    if case.grad:
        for i in _float_indices(arrays):
            tins[i].requires_grad_(True)
    tout = case.torch(*tins)
    np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), rtol=case.rtol, atol=case.atol)
    assert out.dtype.name == str(tout.dtype).replace("torch.", ""), f"{case.id}: dtype {out.dtype} vs {tout.dtype}"
    if not case.grad:
        return
    weights = rng.standard_normal(tuple(out.shape))
    analytic = _weighted_sum_grads(case, arrays, weights)
    (tout * torch.from_numpy(weights)).sum().backward()
    for g, i in zip(analytic, _float_indices(arrays)):
        tg = tins[i].grad
        np.testing.assert_allclose(g, np.zeros_like(g) if tg is None else tg.numpy(), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("case", [c for c in CASES if c.numpy], ids=[c.id for c in CASES if c.numpy])
def test_float32_forward_close_to_float64(case):
    """The same op in float32 stays close to the float64 result and keeps float32."""
    rng = np.random.default_rng(3)
    arrays = _make_inputs(case, rng)
    out64 = case.ember(*_ember(arrays, False)).numpy()
    arrays32 = tuple(a.astype(np.float32) if a.dtype == np.float64 else a for a in arrays)
    out32 = case.ember(*_ember(arrays32, False))
    if out64.dtype == np.float64:
        assert out32.dtype is em.float32, f"{case.id}: float32 inputs gave {out32.dtype}"
    np.testing.assert_allclose(out32.numpy().astype(np.float64), out64.astype(np.float64), rtol=2e-4, atol=2e-5)
