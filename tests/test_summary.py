"""summary(): per-layer parameter counts, totals (shared weights once), the trainable split
and output shapes equal what PyTorch reports for the same layers (oracle)."""
import re

import numpy as np
import pytest

import ember as em

torch = pytest.importorskip("torch", reason="PyTorch is the oracle for parameter counts and shapes")


def mlp(lib):
    nn = lib.nn
    return nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Dropout(0.2), nn.Linear(128, 10))


def cnn(lib):
    nn = lib.nn
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(8, 16, 3, bias=False), nn.Flatten(), nn.Linear(16 * 2 * 2, 10))


def lm(lib):
    """Embedding + LSTM + LayerNorm + a head tied to the embedding, and a parameter of its own."""
    nn = lib.nn

    class LM(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(50, 16)
            self.rnn = nn.LSTM(16, 16, num_layers=2, batch_first=True)
            self.norm = nn.LayerNorm(16)
            self.head = nn.Linear(16, 50)
            self.head.weight = self.emb.weight  # weight tying: counted once in the total
            self.scale = nn.Parameter(lib.ones(16))

        def forward(self, idx):
            out, _ = self.rnn(self.emb(idx))
            return self.head(self.norm(out) * self.scale)
    return LM()


CASES = {"mlp": (mlp, (2, 64), np.float32), "cnn": (cnn, (2, 1, 8, 8), np.float32), "lm": (lm, (2, 7), np.int64)}


def rows(text):
    """{name: (type, shape, count)} from the table."""
    out = {}
    for line in text.splitlines():
        m = re.fullmatch(r"(\S+) \((\w+)\)\s{3,}(.+?)\s{3,}([\d,]+)", line)
        if m:
            out[m[1]] = (m[2], m[3], int(m[4].replace(",", "")))
    return out


def torch_shape(o):
    if isinstance(o, torch.Tensor):
        return str(tuple(o.shape))
    return "[" + ", ".join(torch_shape(x) for x in o) + "]"


@pytest.mark.parametrize("name", CASES)
def test_counts_and_shapes_match_torch(name):
    build, shape, dtype = CASES[name]
    model, tm = build(em), build(torch)
    for m in (model, tm):  # freeze one layer in both
        next(iter(m.parameters())).requires_grad_(False)
    x = np.random.default_rng(0).integers(0, 50, shape).astype(dtype) if dtype == np.int64 else \
        np.random.default_rng(0).standard_normal(shape).astype(dtype)
    text = model.summary(input=em.from_numpy(x), print_fn=None)

    shapes = {}
    leaves = [(n, m) for n, m in tm.named_modules()
              if not list(m.children()) or list(m.parameters(recurse=False))]
    hooks = [m.register_forward_hook(lambda mod, a, o, n=n: shapes.setdefault(n, torch_shape(o)) and None)
             for n, m in leaves]
    tm.eval()
    with torch.no_grad():
        tm(torch.from_numpy(x))
    for h in hooks:
        h.remove()

    got = rows(text)
    root = type(model).__name__
    expected = {(n or root): (type(m).__name__, shapes[n], sum(p.numel() for p in m.parameters(recurse=False)))
                for n, m in leaves}
    assert got == expected
    total = sum(p.numel() for p in tm.parameters())
    trainable = sum(p.numel() for p in tm.parameters() if p.requires_grad)
    assert f"Total params: {total:,} (" in text
    assert f"Trainable params: {trainable:,}\n" in text
    assert f"Non-trainable params: {total - trainable:,}\n" in text


def test_input_shape_prints_and_leaves_the_model_as_it_was(capsys):
    model = cnn(em)
    model.train()
    text = model.summary(input_shape=(1, 1, 8, 8))
    assert capsys.readouterr().out == text + "\n"
    assert rows(text)["6"] == ("Linear", "(1, 10)", 650)
    assert text.startswith('Model: "Sequential"\n')
    assert model.training and all(not m._forward_hooks for m in model.modules())


def test_without_input_shapes_are_dashes():
    text = mlp(em).summary(print_fn=None)
    assert rows(text)["0"] == ("Linear", "-", 64 * 128 + 128)
    assert "Total params: 9,610 (37.5 KB)" in text


def test_single_layer_model():
    text = em.nn.Linear(3, 2).summary(input_shape=(4, 3), print_fn=None)
    assert rows(text) == {"Linear": ("Linear", "(4, 2)", 8)}
