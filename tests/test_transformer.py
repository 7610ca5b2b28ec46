"""TransformerEncoderLayer / TransformerEncoder against PyTorch with the state dict copied in by
key name: outputs and the gradients of the input and every parameter, float64 (atol 1e-9).
Eval mode (dropout 0.1 inactive) and train mode with dropout 0, post- and pre-norm."""
import numpy as np
import pytest

import ember as em
from ember.errors import ShapeError

torch = pytest.importorskip("torch", reason="PyTorch is the oracle for the transformer layers")

ATOL = 1e-9
D, HEADS, FF, N, S = 8, 2, 16, 3, 5


def copy_weights(src, dst):
    dst.load_state_dict({k: v.detach().numpy() for k, v in src.state_dict().items()})


def close(e, t, what=""):
    np.testing.assert_allclose(e.detach().numpy(), t.detach().numpy(), atol=ATOL, rtol=0, err_msg=what)


def check(e, t, x, rng, **masks):
    xe, xt = em.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    ekw = {k: em.tensor(v) for k, v in masks.items()}
    tkw = {k: torch.tensor(v) for k, v in masks.items()}
    oe, ot = e(xe, **ekw), t(xt, **tkw)
    close(oe, ot, "output")
    w = rng.standard_normal(tuple(ot.shape))
    (oe * em.tensor(w)).sum().backward()
    (ot * torch.tensor(w)).sum().backward()
    close(xe.grad, xt.grad, "input grad")
    tp = dict(t.named_parameters())
    assert [n for n, _ in e.named_parameters()] == list(tp)
    for name, p in e.named_parameters():
        close(p.grad, tp[name].grad, f"grad of {name}")


@pytest.mark.parametrize("norm_first", [False, True], ids=["post_norm", "pre_norm"])
@pytest.mark.parametrize("mode", ["eval_relu", "train_gelu_batch_first", "eval_masks"])
def test_encoder_layer_matches_torch(norm_first, mode):
    rng = np.random.default_rng(0)
    bf = "batch_first" in mode
    kw = dict(dim_feedforward=FF, activation="gelu" if "gelu" in mode else "relu",
              batch_first=bf, norm_first=norm_first, dropout=0.0 if mode.startswith("train") else 0.1)
    t = torch.nn.TransformerEncoderLayer(D, HEADS, **kw).double()
    e = em.nn.TransformerEncoderLayer(D, HEADS, **kw).double()
    assert list(e.state_dict()) == list(t.state_dict())
    copy_weights(t, e)
    if mode.startswith("eval"):
        e.eval(), t.eval()
    else:
        e.train(), t.train()
    x = rng.standard_normal((N, S, D) if bf else (S, N, D))
    masks = {}
    if mode == "eval_masks":
        kpm = rng.random((N, S)) > 0.6
        kpm[:, 0] = False
        masks = {"src_key_padding_mask": kpm, "src_mask": np.triu(np.ones((S, S), dtype=bool), 1)}
    check(e, t, x, rng, **masks)


def test_encoder_stack_with_final_norm_matches_torch():
    rng = np.random.default_rng(1)
    layer_t = torch.nn.TransformerEncoderLayer(D, HEADS, FF, batch_first=True, norm_first=True)
    t = torch.nn.TransformerEncoder(layer_t, 2, norm=torch.nn.LayerNorm(D), enable_nested_tensor=False).double()
    e = em.nn.TransformerEncoder(em.nn.TransformerEncoderLayer(D, HEADS, FF, batch_first=True, norm_first=True),
                                 2, norm=em.nn.LayerNorm(D)).double()
    assert [(k, tuple(v.shape)) for k, v in e.state_dict().items()] == \
           [(k, tuple(v.shape)) for k, v in t.state_dict().items()]
    copy_weights(t, e)
    e.eval(), t.eval()
    mask = np.triu(np.ones((S, S), dtype=bool), 1)
    check(e, t, rng.standard_normal((N, S, D)), rng, mask=mask)


def test_layers_are_independent_copies_and_unbatched_input():
    enc = em.nn.TransformerEncoder(em.nn.TransformerEncoderLayer(D, HEADS, FF), 2)
    a, b = enc.layers[0].linear1.weight, enc.layers[1].linear1.weight
    assert a is not b and np.array_equal(a.detach().numpy(), b.detach().numpy())
    enc.eval()
    assert tuple(enc(em.randn(S, D)).shape) == (S, D)


def test_bad_input_and_activation():
    layer = em.nn.TransformerEncoderLayer(D, HEADS, FF)
    with pytest.raises(ShapeError, match=r"MultiheadAttention: expected query of shape \(L, N, 8\)"):
        layer(em.randn(S, N, D + 1))
    with pytest.raises(ValueError, match="activation should be 'relu' or 'gelu'"):
        em.nn.TransformerEncoderLayer(D, HEADS, activation="swish")
