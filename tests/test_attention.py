"""scaled_dot_product_attention and MultiheadAttention against PyTorch (weights copied in by
state_dict key through NumPy): outputs, attention weights and the gradients of every input and
parameter, in float64 (atol 1e-9)."""
import numpy as np
import pytest

import ember as em
import ember.nn.functional as F
from ember.errors import ShapeError

torch = pytest.importorskip("torch", reason="PyTorch is the oracle for attention")
TF = torch.nn.functional

ATOL = 1e-9


def pair(a: np.ndarray):
    return em.tensor(a, requires_grad=a.dtype.kind == "f"), torch.tensor(a, requires_grad=a.dtype.kind == "f")


def close(e, t, atol=ATOL, what=""):
    np.testing.assert_allclose(e.detach().numpy(), t.detach().numpy(), atol=atol, rtol=0, err_msg=what)


def backward_both(oe, ot, rng):
    w = rng.standard_normal(tuple(ot.shape))
    (oe * em.tensor(w)).sum().backward()
    (ot * torch.tensor(w)).sum().backward()


# -- scaled_dot_product_attention ---------------------------------------------------------------
def _sdpa_mask(kind, rng, L, S):
    if kind == "bool":
        m = rng.random((L, S)) > 0.3
        m[:, 0] = True  # every row keeps one key
        return m
    if kind == "bool_fully_masked_row":
        m = rng.random((L, S)) > 0.3
        m[1] = False
        return m
    if kind == "float":
        return rng.standard_normal((2, 1, L, S))
    return None


@pytest.mark.parametrize("mask", [None, "bool", "bool_fully_masked_row", "float", "causal", "scale"])
def test_sdpa_matches_torch(mask):
    rng = np.random.default_rng(0)
    L, S, E = 4, 6, 8
    (qe, qt), (ke, kt), (ve, vt) = (pair(rng.standard_normal(s)) for s in
                                    ((2, 3, L, E), (2, 3, S, E), (2, 3, S, 5)))
    kw = {}
    if mask == "causal":
        kw["is_causal"] = True
    elif mask == "scale":
        kw["scale"] = 0.3
    elif mask is not None:
        m = _sdpa_mask(mask, rng, L, S)
        kw["attn_mask"] = (em.tensor(m), torch.tensor(m))
    ekw = {k: (v[0] if isinstance(v, tuple) else v) for k, v in kw.items()}
    tkw = {k: (v[1] if isinstance(v, tuple) else v) for k, v in kw.items()}
    oe = F.scaled_dot_product_attention(qe, ke, ve, **ekw)
    ot = TF.scaled_dot_product_attention(qt, kt, vt, **tkw)
    close(oe, ot, what="output")
    backward_both(oe, ot, rng)
    for a, b, n in ((qe, qt, "q"), (ke, kt, "k"), (ve, vt, "v")):
        assert np.isfinite(a.grad.numpy()).all()
        close(a.grad, b.grad, what=f"grad {n}")


def test_sdpa_dropout_zeroes_some_weights_and_bad_shapes():
    q = em.ones(1, 4, 8)
    v = em.randn(1, 4, 8)
    em.manual_seed(0)
    out = F.scaled_dot_product_attention(q, q, v, dropout_p=0.5)
    assert not np.allclose(out.numpy(), F.scaled_dot_product_attention(q, q, v).numpy())
    with pytest.raises(ShapeError, match="scaled_dot_product_attention"):
        F.scaled_dot_product_attention(em.randn(2, 4, 8), em.randn(2, 4, 7), em.randn(2, 4, 7))


# -- MultiheadAttention -------------------------------------------------------------------------
E, HEADS, N, L, S = 8, 2, 3, 4, 5


def make_mha(dtype=torch.float64, **kw):
    t = torch.nn.MultiheadAttention(E, HEADS, **kw).to(dtype)
    e = em.nn.MultiheadAttention(E, HEADS, **kw).to(em.float64 if dtype == torch.float64 else em.float32)
    e.load_state_dict({k: v.detach().numpy() for k, v in t.state_dict().items()})
    return e, t


CASES = {
    "self": dict(),
    "self_batch_first": dict(batch_first=True),
    "cross": dict(cross=True),
    "key_padding": dict(kpm=True, batch_first=True),
    "causal_bool": dict(causal=True),
    "causal_flag": dict(is_causal=True, batch_first=True),
    "float_mask_3d_and_padding": dict(float_mask=True, kpm=True),
    "per_head_weights": dict(average=False, cross=True, kpm=True),
    "no_weights": dict(need_weights=False, kpm=True),
    "no_bias": dict(bias=False),
    "kdim_vdim": dict(kdim=6, vdim=7, cross=True),
    "unbatched": dict(unbatched=True, kpm=True, causal=True),
    "unbatched_batch_first": dict(unbatched=True, batch_first=True),
}


@pytest.mark.parametrize("case", list(CASES))
def test_mha_matches_torch(case):
    c = CASES[case]
    rng = np.random.default_rng(1)
    bf = c.get("batch_first", False)
    mod_kw = {"batch_first": bf}
    for k in ("bias", "kdim", "vdim"):
        if k in c:
            mod_kw[k] = c[k]
    e, t = make_mha(**mod_kw)
    src = S if c.get("cross") else L
    kdim, vdim = c.get("kdim", E), c.get("vdim", E)

    def shape(n, d):
        if c.get("unbatched"):
            return (n, d)
        return (N, n, d) if bf else (n, N, d)

    qe, qt = pair(rng.standard_normal(shape(L, E)))
    if c.get("cross"):
        (ke, kt), (ve, vt) = pair(rng.standard_normal(shape(src, kdim))), pair(rng.standard_normal(shape(src, vdim)))
    else:
        ke, kt, ve, vt = qe, qt, qe, qt
    ekw, tkw = {}, {}
    if c.get("kpm"):
        m = rng.random((N, src)) > 0.7
        m[:, 0] = False  # keep every query row attending to something (torch gives NaN otherwise)
        if c.get("unbatched"):
            m = m[0]
        ekw["key_padding_mask"], tkw["key_padding_mask"] = em.tensor(m), torch.tensor(m)
    if c.get("causal") or c.get("is_causal"):
        m = np.triu(np.ones((L, src), dtype=bool), 1)  # True = not allowed
        ekw["attn_mask"], tkw["attn_mask"] = em.tensor(m), torch.tensor(m)
        if c.get("is_causal"):
            ekw["is_causal"] = tkw["is_causal"] = True
    if c.get("float_mask"):
        m = rng.standard_normal((N * HEADS, L, src))
        ekw["attn_mask"], tkw["attn_mask"] = em.tensor(m), torch.tensor(m)
    for k, name in (("need_weights", "need_weights"), ("average", "average_attn_weights")):
        if k in c:
            ekw[name] = tkw[name] = c[k]

    oe, we = e(qe, ke, ve, **ekw)
    ot, wt = t(qt, kt, vt, **tkw)
    assert tuple(oe.shape) == tuple(ot.shape)
    close(oe, ot, what="output")
    if wt is None:
        assert we is None
    else:
        assert tuple(we.shape) == tuple(wt.shape)
        close(we, wt, what="weights")
    backward_both(oe, ot, rng)
    inputs = [(qe, qt)] + ([(ke, kt), (ve, vt)] if c.get("cross") else [])
    for a, b in inputs:
        close(a.grad, b.grad, what="input grad")
    tp = dict(t.named_parameters())
    assert [n for n, _ in e.named_parameters()] == list(tp)
    for name, p in e.named_parameters():
        close(p.grad, tp[name].grad, what=f"grad of {name}")


def test_mha_fully_masked_row_gives_zeros_not_nan():
    """PyTorch gives zeros with need_weights=False and NaN with need_weights=True; ember gives
    the zeros (and zero weights, finite gradients) in both."""
    rng = np.random.default_rng(2)
    e, t = make_mha(batch_first=True)
    x = rng.standard_normal((N, L, E))
    m = np.zeros((N, L), dtype=bool)
    m[1] = True  # sample 1: every key padded
    (xe, xt) = pair(x)
    oe, we = e(xe, xe, xe, key_padding_mask=em.tensor(m))
    ot, _ = t(xt, xt, xt, key_padding_mask=torch.tensor(m), need_weights=False)
    close(oe, ot)
    assert (we.detach().numpy()[1] == 0).all()
    backward_both(oe, ot, rng)
    assert np.isfinite(xe.grad.numpy()).all()
    close(xe.grad, xt.grad)


def test_mha_dropout_train_vs_eval_and_float32():
    rng = np.random.default_rng(3)
    e, t = make_mha(dtype=torch.float32, dropout=0.5)
    x = rng.standard_normal((L, N, E)).astype(np.float32)
    e.eval(), t.eval()
    close(e(em.tensor(x), em.tensor(x), em.tensor(x))[0], t(*(torch.tensor(x),) * 3)[0], atol=1e-5)
    e.train()
    em.manual_seed(0)
    a = e(em.tensor(x), em.tensor(x), em.tensor(x))[0].detach().numpy()
    b = e(em.tensor(x), em.tensor(x), em.tensor(x))[0].detach().numpy()
    assert not np.allclose(a, b)


def test_mha_state_dict_and_init():
    e, t = make_mha()
    assert [(k, tuple(v.shape)) for k, v in e.state_dict().items()] == \
           [(k, tuple(v.shape)) for k, v in t.state_dict().items()]
    em.manual_seed(0)
    m = em.nn.MultiheadAttention(64, 4)
    bound = np.sqrt(6 / (64 + 3 * 64))  # xavier_uniform over the (3E, E) in_proj_weight
    w = m.in_proj_weight.detach().numpy()
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound
    assert (m.in_proj_bias.detach().numpy() == 0).all() and (m.out_proj.bias.detach().numpy() == 0).all()


def test_mha_bad_shapes_name_the_layer():
    m = em.nn.MultiheadAttention(8, 2)
    with pytest.raises(ShapeError, match=r"MultiheadAttention: expected query of shape \(L, N, 8\).*\(4, 3, 6\)"):
        m(em.randn(4, 3, 6), em.randn(4, 3, 6), em.randn(4, 3, 6))
    x = em.randn(4, 3, 8)
    with pytest.raises(ShapeError, match=r"key_padding_mask of shape \(3, 4\).*got \(4, 3\)"):
        m(x, x, x, key_padding_mask=em.zeros(4, 3, dtype=em.bool))
    with pytest.raises(ShapeError, match=r"attn_mask of shape \(4, 4\)"):
        m(x, x, x, attn_mask=em.zeros(3, 4, dtype=em.bool))
    with pytest.raises(ValueError, match="multiple of num_heads"):
        em.nn.MultiheadAttention(10, 3)
