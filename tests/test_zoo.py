"""The model zoo against independent PyTorch implementations of the same architectures.

Each ember model's weights are copied by state_dict key into a torch model written here from the
papers' descriptions; in float64 the outputs and the gradients of the input (for float inputs) and
of every parameter must agree to atol 1e-8 (train mode, and eval mode where BatchNorm makes them
differ). Parameter counts are checked against the papers' numbers.
"""
from collections import OrderedDict

import numpy as np
import pytest

import ember as em
from ember import zoo
from ember.errors import EmberError, ShapeError

torch = pytest.importorskip("torch", reason="PyTorch is the oracle for the zoo architectures")
tnn, TF = torch.nn, torch.nn.functional

ATOL = 1e-8


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def compare(e_model, t_model, x: np.ndarray, modes=("train", "eval")) -> None:
    """Same weights in, same outputs and gradients out (float64)."""
    e_model = e_model.double()
    t_model = t_model.double()
    state = e_model.state_dict()
    missing, unexpected = t_model.load_state_dict({k: torch.from_numpy(v.numpy().copy()) for k, v in state.items()},
                                                  strict=True)
    assert not missing and not unexpected
    rng = np.random.default_rng(1)
    for mode in modes:
        e_model.train(mode == "train")
        t_model.train(mode == "train")
        floating = x.dtype.kind == "f"
        ex = em.tensor(x, requires_grad=floating)
        tx = torch.tensor(x, requires_grad=floating)
        e_out, t_out = e_model(ex), t_model(tx)
        np.testing.assert_allclose(e_out.detach().numpy(), t_out.detach().numpy(), atol=ATOL, rtol=1e-7, err_msg=mode)
        w = rng.standard_normal(tuple(e_out.shape))
        e_model.zero_grad()
        t_model.zero_grad()
        (e_out * em.tensor(w)).sum().backward()
        (t_out * torch.tensor(w)).sum().backward()
        if floating:
            np.testing.assert_allclose(ex.grad.numpy(), tx.grad.numpy(), atol=ATOL, rtol=1e-7)
        t_params = dict(t_model.named_parameters())
        for name, p in e_model.named_parameters():
            np.testing.assert_allclose(p.grad.numpy(), t_params[name].grad.numpy(), atol=ATOL, rtol=1e-7,
                                       err_msg=f"{mode}: gradient of {name}")


# ---------------------------------------------------------------- torch references

def torch_lenet(c1=6, c2=16, size=5 * 5) -> "tnn.Module":
    """LeNet-5 for 28x28 as in the paper (conv1 on a padded 32x32 field)."""
    return tnn.Sequential(OrderedDict(
        conv1=tnn.Conv2d(1, c1, 5, padding=2), act1=tnn.ReLU(), pool1=tnn.MaxPool2d(2),
        conv2=tnn.Conv2d(c1, c2, 5), act2=tnn.ReLU(), pool2=tnn.MaxPool2d(2), flatten=tnn.Flatten(),
        fc1=tnn.Linear(c2 * size, 120), act3=tnn.ReLU(), fc2=tnn.Linear(120, 84), act4=tnn.ReLU(),
        fc3=tnn.Linear(84, 10)))


class TorchBlock(tnn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = tnn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = tnn.BatchNorm2d(cout)
        self.conv2 = tnn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = tnn.BatchNorm2d(cout)
        self.stride, self.extra = stride, cout - cin

    def forward(self, x):
        out = TF.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        short = x
        if self.stride != 1 or self.extra:  # option A: subsample, zero-pad channels
            short = TF.pad(x[:, :, ::self.stride, ::self.stride], (0, 0, 0, 0, self.extra // 2, self.extra - self.extra // 2))
        return TF.relu(out + short)


class TorchResNet20(tnn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = tnn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = tnn.BatchNorm2d(16)
        cin, stages = 16, []
        for i, w in enumerate((16, 32, 64)):
            blocks = []
            for j in range(3):
                blocks.append(TorchBlock(cin, w, 2 if i > 0 and j == 0 else 1))
                cin = w
            stages.append(tnn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.fc = tnn.Linear(64, 10)

    def forward(self, x):
        x = TF.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(x.mean(dim=(2, 3)))


class TorchGPT(tnn.Module):
    """nanoGPT's model (pre-LN blocks, causal attention, tied head)."""

    def __init__(self, vocab, block, n_layer, n_head, n_embd):
        super().__init__()
        self.n_head = n_head
        self.wte, self.wpe = tnn.Embedding(vocab, n_embd), tnn.Embedding(block, n_embd)
        self.drop = tnn.Dropout(0.0)
        self.h = tnn.ModuleList()
        for _ in range(n_layer):
            b = tnn.Module()
            b.ln_1, b.ln_2 = tnn.LayerNorm(n_embd), tnn.LayerNorm(n_embd)
            b.attn = tnn.Module()
            b.attn.c_attn, b.attn.c_proj = tnn.Linear(n_embd, 3 * n_embd), tnn.Linear(n_embd, n_embd)
            b.mlp = tnn.Sequential(tnn.Linear(n_embd, 4 * n_embd), tnn.GELU(), tnn.Linear(4 * n_embd, n_embd),
                                   tnn.Dropout(0.0))
            self.h.append(b)
        self.ln_f = tnn.LayerNorm(n_embd)
        self.lm_head = tnn.Linear(n_embd, vocab, bias=False)
        self.lm_head.weight = self.wte.weight

    def forward(self, idx):
        B, T = idx.shape
        x = self.wte(idx) + self.wpe(torch.arange(T))
        for b in self.h:
            y = b.ln_1(x)
            q, k, v = b.attn.c_attn(y).split(y.shape[-1], dim=2)
            q, k, v = (t.view(B, T, self.n_head, -1).transpose(1, 2) for t in (q, k, v))
            y = TF.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B, T, -1)
            x = x + b.attn.c_proj(y)
            x = x + b.mlp(b.ln_2(x))
        return self.lm_head(self.ln_f(x))


class TorchCharLSTM(tnn.Module):
    def __init__(self, vocab, emb, hidden, layers):
        super().__init__()
        self.embed = tnn.Embedding(vocab, emb)
        self.lstm = tnn.LSTM(emb, hidden, layers, batch_first=True)
        self.head = tnn.Linear(hidden, vocab)

    def forward(self, idx):
        return self.head(self.lstm(self.embed(idx))[0])


# ---------------------------------------------------------------- tests

def test_mlp_matches_torch():
    em.manual_seed(0)
    m = zoo.MLP(in_features=64, hidden=(32, 16), num_classes=10)
    t = tnn.Sequential(OrderedDict(flatten=tnn.Flatten(), fc1=tnn.Linear(64, 32), act1=tnn.ReLU(),
                                   fc2=tnn.Linear(32, 16), act2=tnn.ReLU(), out=tnn.Linear(16, 10)))
    compare(m, t, np.random.default_rng(0).standard_normal((5, 1, 8, 8)), modes=("train",))


def test_lenet5_classic_sizes_and_torch():
    em.manual_seed(0)
    m = zoo.LeNet5()
    assert n_params(m) == 61_706  # LeNet-5 with 6/16 channels and 120/84 units on 28x28 input
    compare(m, torch_lenet(), np.random.default_rng(0).standard_normal((3, 1, 28, 28)), modes=("train",))


def test_lenet5_adapts_to_8x8_digits():
    m = zoo.LeNet5(input_size=8, kernel_size=3)
    assert tuple(m(em.randn(4, 1, 8, 8)).shape) == (4, 10)
    assert tuple(zoo.LeNet5(input_size=8)(em.randn(2, 1, 8, 8)).shape) == (2, 10)  # kernel 5: conv2 padded
    with pytest.raises(ValueError, match="too small"):
        zoo.LeNet5(input_size=2, kernel_size=5)


def test_resnet20_param_count_and_torch():
    em.manual_seed(0)
    m = zoo.resnet20()
    assert n_params(m) == 269_722  # He et al. 2016, table 6: 0.27M
    compare(m, TorchResNet20(), np.random.default_rng(0).standard_normal((2, 3, 16, 16)))


def test_resnet_depth_rule():
    with pytest.raises(ValueError, match="6n\\+2"):
        zoo.ResNet(depth=21)
    assert n_params(zoo.ResNet(depth=8)) < n_params(zoo.resnet20())


def test_vgg_matches_torch():
    em.manual_seed(0)
    cfg = (8, "M", 16, "M")
    m = zoo.VGG(in_channels=3, input_size=8, config=cfg, hidden=32, dropout=0.0)
    t = tnn.Sequential(OrderedDict(
        conv1=tnn.Conv2d(3, 8, 3, padding=1, bias=False), bn1=tnn.BatchNorm2d(8), relu1=tnn.ReLU(),
        pool3=tnn.MaxPool2d(2),
        conv2=tnn.Conv2d(8, 16, 3, padding=1, bias=False), bn2=tnn.BatchNorm2d(16), relu2=tnn.ReLU(),
        pool7=tnn.MaxPool2d(2), flatten=tnn.Flatten(), fc1=tnn.Linear(16 * 2 * 2, 32), relu_fc=tnn.ReLU(),
        drop=tnn.Dropout(0.0), fc2=tnn.Linear(32, 10)))
    compare(m, t, np.random.default_rng(0).standard_normal((4, 3, 8, 8)))
    assert tuple(zoo.VGG()(em.randn(2, 3, 32, 32)).shape) == (2, 10)
    with pytest.raises(ValueError, match="too small"):
        zoo.VGG(input_size=4)


def test_char_lstm_matches_torch():
    em.manual_seed(0)
    m = zoo.CharLSTM(vocab_size=11, embed_dim=6, hidden_size=8, num_layers=2)
    ids = np.random.default_rng(0).integers(0, 11, (3, 7))
    compare(m, TorchCharLSTM(11, 6, 8, 2), ids, modes=("train",))


def test_gpt_matches_torch_and_ties_weights():
    em.manual_seed(0)
    m = zoo.GPT(vocab_size=13, block_size=8, n_layer=2, n_head=2, n_embd=16)
    assert m.lm_head.weight is m.wte.weight
    # token + position embeddings, per block 12 d^2 + 13 d, final LN; the head is tied (no weights)
    d = 16
    assert n_params(m) == 13 * d + 8 * d + 2 * (12 * d * d + 13 * d) + 2 * d
    ids = np.random.default_rng(0).integers(0, 13, (2, 8))
    compare(m, TorchGPT(13, 8, 2, 2, 16), ids, modes=("train",))
    assert m.lm_head.weight is m.wte.weight  # still tied after .double()


def test_gpt_errors():
    with pytest.raises(ValueError, match="divisible"):
        zoo.GPT(vocab_size=5, n_embd=10, n_head=3)
    m = zoo.GPT(vocab_size=5, block_size=4, n_layer=1, n_head=1, n_embd=8)
    with pytest.raises(ShapeError, match="block_size 4"):
        m(em.zeros(1, 5, dtype=em.int64))


@pytest.mark.parametrize("name", ["char_lstm", "gpt"])
def test_generate(name):
    em.manual_seed(0)
    kw = {"n_layer": 1, "n_head": 2, "n_embd": 16, "block_size": 8} if name == "gpt" else {"hidden_size": 16}
    m = zoo.get_model(name, vocab_size=7, **kw)
    start = em.tensor([[1, 2, 3]])
    a = m.generate(start, 12, generator=em.Generator(5))
    b = m.generate(start, 12, generator=em.Generator(5))
    assert tuple(a.shape) == (1, 15) and a.numpy()[0, :3].tolist() == [1, 2, 3]
    assert (a.numpy() == b.numpy()).all()  # a seeded generator repeats
    assert m.training  # generate restores the mode
    # top_k=1 is greedy decoding: each new token is the argmax given the sequence so far
    g = m.generate(start, 4, top_k=1).numpy()
    m.eval()
    with em.no_grad():
        for t in range(3, 7):
            ctx = g[:, max(0, t - m.block_size):t]
            assert g[0, t] == int(m(em.tensor(ctx))[0, -1].numpy().argmax())
    with pytest.raises(ValueError, match="temperature"):
        m.generate(start, 1, temperature=0)


def test_registry():
    assert set(zoo.MODELS) == {"mlp", "lenet5", "resnet20", "vgg", "char_lstm", "gpt"}
    assert isinstance(zoo.get_model("mlp", hidden=[8]), em.nn.Module)
    with pytest.raises(EmberError, match="unknown model 'lenet'.*lenet5"):
        zoo.get_model("lenet")
    with pytest.raises(EmberError, match="no argument width.*allowed: in_features"):
        zoo.get_model("mlp", width=3)
