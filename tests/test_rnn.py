"""RNN, LSTM and GRU against PyTorch with the same weights copied in (through NumPy, by
state_dict key): outputs, final states, and gradients of the input, the initial states and every
parameter. Float64 throughout, so the tolerance is tight (atol 1e-9); one float32 run uses 1e-5."""
import numpy as np
import pytest

import ember as em
from ember.errors import ShapeError

torch = pytest.importorskip("torch", reason="PyTorch is the oracle for the recurrent layers")

ATOL = 1e-9

KINDS = {
    "rnn_tanh": (em.nn.RNN, torch.nn.RNN, {"nonlinearity": "tanh"}),
    "rnn_relu": (em.nn.RNN, torch.nn.RNN, {"nonlinearity": "relu"}),
    "lstm": (em.nn.LSTM, torch.nn.LSTM, {}),
    "gru": (em.nn.GRU, torch.nn.GRU, {}),
}

# (num_layers, batch_first, bidirectional, bias, with initial states, batched)
CONFIGS = [
    (1, False, False, True, False, True),
    (2, False, True, True, True, True),
    (2, True, False, True, True, True),
    (1, True, True, False, False, True),
    (2, False, True, True, True, False),
    (1, False, False, True, False, False),
]


def copy_weights(src, dst) -> None:
    """torch module -> ember module, by key name through NumPy."""
    dst.load_state_dict({k: v.detach().numpy() for k, v in src.state_dict().items()})


def make_pair(kind: str, input_size: int, hidden: int, dtype=torch.float64, **kw):
    em_cls, torch_cls, extra = KINDS[kind]
    t = torch_cls(input_size, hidden, **extra, **kw).to(dtype)
    e = em_cls(input_size, hidden, **extra, **kw).to(em.float64 if dtype == torch.float64 else em.float32)
    copy_weights(t, e)
    return e, t


def to_em(a: np.ndarray):
    return em.tensor(a, requires_grad=True)


def to_torch(a: np.ndarray):
    return torch.tensor(a, requires_grad=True)


def close(e, t, atol=ATOL, what=""):
    np.testing.assert_allclose(e.detach().numpy(), t.detach().numpy(), atol=atol, rtol=0, err_msg=what)


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: "L{}-bf{}-bi{}-bias{}-h0{}-batched{}".format(*c))
@pytest.mark.parametrize("kind", list(KINDS))
def test_matches_torch(kind, config):
    layers, batch_first, bidir, bias, with_state, batched = config
    rng = np.random.default_rng(0)
    T, B, I, H = 5, 3, 4, 6
    e, t = make_pair(kind, I, H, num_layers=layers, batch_first=batch_first, bidirectional=bidir, bias=bias)
    shape = ((B, T, I) if batch_first else (T, B, I)) if batched else (T, I)
    x = rng.standard_normal(shape)
    dirs = 2 if bidir else 1
    state_shape = (layers * dirs, B, H) if batched else (layers * dirs, H)
    n_states = 2 if kind == "lstm" else 1
    states = [rng.standard_normal(state_shape) for _ in range(n_states)] if with_state else []

    xe, xt = to_em(x), to_torch(x)
    se, st = [to_em(s) for s in states], [to_torch(s) for s in states]
    pack = (lambda s: tuple(s) if s else None) if kind == "lstm" else (lambda s: s[0] if s else None)
    oe, he = e(xe, pack(se))
    ot, ht = t(xt, pack(st))
    he, ht = (he if kind == "lstm" else (he,)), (ht if kind == "lstm" else (ht,))

    assert tuple(oe.shape) == tuple(ot.shape)
    close(oe, ot, what="output")
    for a, b in zip(he, ht):
        assert tuple(a.shape) == tuple(b.shape)
        close(a, b, what="final state")

    # A random linear functional of every output, so every gradient path is exercised.
    weights = [rng.standard_normal(tuple(o.shape)) for o in (ot, *ht)]
    loss_e = sum(((o * em.tensor(w)).sum() for o, w in zip((oe, *he), weights)), em.tensor(0.0, dtype=em.float64))
    loss_t = sum((o * torch.tensor(w)).sum() for o, w in zip((ot, *ht), weights))
    loss_e.backward()
    loss_t.backward()
    close(xe.grad, xt.grad, what="input grad")
    for a, b in zip(se, st):
        close(a.grad, b.grad, what="initial state grad")
    tp = dict(t.named_parameters())
    names = [n for n, _ in e.named_parameters()]
    assert names == list(tp)
    for name, p in e.named_parameters():
        close(p.grad, tp[name].grad, what=f"grad of {name}")


def test_float32_and_train_mode_without_dropout():
    rng = np.random.default_rng(1)
    e, t = make_pair("lstm", 4, 8, dtype=torch.float32, num_layers=2)
    e.train(), t.train()
    x = rng.standard_normal((7, 2, 4)).astype(np.float32)
    oe, _ = e(em.tensor(x))
    ot, _ = t(torch.tensor(x))
    close(oe, ot, atol=1e-5)


def test_state_dict_names_shapes_and_init_distribution():
    e, t = make_pair("gru", 5, 7, num_layers=2, bidirectional=True)
    assert [(k, tuple(v.shape)) for k, v in e.state_dict().items()] == \
           [(k, tuple(v.shape)) for k, v in t.state_dict().items()]
    em.manual_seed(0)
    big = em.nn.LSTM(3, 100)
    bound = 1 / np.sqrt(100)
    for p in big.parameters():
        a = p.detach().numpy()
        assert a.min() >= -bound and a.max() <= bound and a.std() > 0.8 * bound / np.sqrt(3)


def test_dropout_between_layers_only_in_training():
    em.manual_seed(0)
    rng = np.random.default_rng(2)
    e, t = make_pair("lstm", 3, 5, num_layers=2, dropout=0.5)
    x = rng.standard_normal((4, 2, 3))
    e.eval(), t.eval()
    close(e(em.tensor(x))[0], t(torch.tensor(x))[0])  # eval: no dropout
    e.train()
    a, b = e(em.tensor(x))[0].detach().numpy(), e(em.tensor(x))[0].detach().numpy()
    assert not np.allclose(a, b)  # training: fresh masks each call
    one = em.nn.GRU(3, 5, num_layers=1, dropout=0.5)  # no layer after the only one: no dropout
    np.testing.assert_array_equal(one(em.tensor(x))[0].detach().numpy(), one(em.tensor(x))[0].detach().numpy())


def test_lstm_language_model_loads_torch_state_dict():
    """Embedding + LSTM + Linear in both frameworks: same keys and shapes, same outputs."""
    if not hasattr(em.nn, "Embedding") or not hasattr(em.nn, "Linear"):
        pytest.skip("needs nn.Embedding and nn.Linear (other parts of issue 3)")

    def build(nn):
        class LM(nn.Module):
            def __init__(self):
                super().__init__()
                self.embed = nn.Embedding(20, 8)
                self.rnn = nn.LSTM(8, 16, num_layers=2, batch_first=True)
                self.head = nn.Linear(16, 20)

            def forward(self, tokens):
                out, _ = self.rnn(self.embed(tokens))
                return self.head(out)
        return LM()

    t, e = build(torch.nn), build(em.nn)
    assert [(k, tuple(v.shape)) for k, v in e.state_dict().items()] == \
           [(k, tuple(v.shape)) for k, v in t.state_dict().items()]
    copy_weights(t, e)
    tokens = np.random.default_rng(3).integers(0, 20, size=(3, 9))
    close(e(em.tensor(tokens)), t(torch.tensor(tokens)), atol=1e-5)


@pytest.mark.parametrize("cls", [em.nn.RNN, em.nn.LSTM, em.nn.GRU])
def test_wrong_feature_size_names_layer_and_shapes(cls):
    m = cls(10, 4)
    with pytest.raises(ShapeError, match=rf"{cls.__name__}: expected input with input_size=10.*\(5, 3, 7\)"):
        m(em.randn(5, 3, 7))
    with pytest.raises(ShapeError, match=rf"{cls.__name__}: expected a 3-D input"):
        m(em.randn(2, 5, 3, 10))


def test_wrong_initial_state_shape():
    m = em.nn.LSTM(3, 4, num_layers=2)
    x = em.randn(5, 2, 3)
    with pytest.raises(ShapeError, match=r"LSTM: expected h_0 of shape \(2, 2, 4\).*got \(1, 2, 4\)"):
        m(x, (em.zeros(1, 2, 4), em.zeros(2, 2, 4)))
    with pytest.raises(ShapeError, match=r"GRU: expected hx of shape \(1, 4\)"):
        em.nn.GRU(3, 4)(em.randn(5, 3), em.zeros(1, 2, 4))


def test_long_sequence_backward_stays_linear_in_memory():
    """Time-step slicing must not hand each step a gradient the size of the whole sequence."""
    from ember.nn.functional.rnn import time_steps
    x = em.randn(64, 2, 3, requires_grad=True)
    steps = time_steps(x)
    assert len(steps) == 64
    np.testing.assert_array_equal(em.stack(steps).detach().numpy(), x.detach().numpy())
    sum(((s * (i + 1)).sum() for i, s in enumerate(steps)), em.tensor(0.0)).backward()
    np.testing.assert_allclose(x.grad.numpy()[:, 0, 0], np.arange(1, 65))
