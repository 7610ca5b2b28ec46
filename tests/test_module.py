"""Module features: registration, traversal order, buffers, state_dict round trips and strict
loading errors, modes, dtype moves, grads, apply, hooks, repr; and a model ported from PyTorch
by key name."""
import numpy as np
import pytest

import ember as em
from ember import nn


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 4)
        self.scale = nn.Parameter(em.ones(4))
        self.register_buffer("count", em.zeros(()))
        self.register_buffer("cache", em.zeros(2), persistent=False)
        self.plain = 5  # not registered

    def forward(self, x):
        return self.fc(x) * self.scale


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = Block()
        self.norm = nn.BatchNorm1d(4)
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        return self.head(self.norm(self.block(x)))


def test_registration_and_order():
    n = Net()
    assert [k for k, _ in n.named_parameters()] == [
        "block.scale", "block.fc.weight", "block.fc.bias", "norm.weight", "norm.bias", "head.weight", "head.bias"]
    assert [k for k, _ in n.named_buffers()] == [
        "block.count", "block.cache", "norm.running_mean", "norm.running_var", "norm.num_batches_tracked"]
    assert [k for k, _ in n.named_children()] == ["block", "norm", "head"]
    assert len(list(n.modules())) == 5
    assert n.block.plain == 5 and "plain" not in dict(n.block.named_parameters())


def test_state_dict_skips_non_persistent_buffers():
    keys = list(Net().state_dict())
    assert "block.count" in keys and "block.cache" not in keys
    assert keys[:4] == ["block.scale", "block.count", "block.fc.weight", "block.fc.bias"]


def test_shared_parameter_listed_once():
    lin = nn.Linear(2, 2)
    seq = nn.Sequential(lin, lin)
    assert len(list(seq.parameters())) == 2


def test_state_dict_round_trip():
    a, b = Net(), Net()
    a.block.count.fill_(3.0)
    b.load_state_dict(a.state_dict())
    for k, v in a.state_dict().items():
        np.testing.assert_array_equal(b.state_dict()[k].numpy(), v.numpy())


def test_load_state_dict_reports_every_problem_at_once():
    sd = dict(Net().state_dict())
    del sd["head.bias"]
    sd["extra.weight"] = em.zeros(1)
    sd["block.fc.weight"] = em.zeros(5, 3)
    with pytest.raises(nn.StateDictError) as e:
        Net().load_state_dict(sd)
    msg = str(e.value)
    assert "block.fc.weight: checkpoint has shape (5, 3), model has (4, 3)" in msg
    assert "missing keys: ['head.bias']" in msg and "unexpected keys: ['extra.weight']" in msg
    sd["block.fc.weight"] = em.zeros(4, 3)
    res = Net().load_state_dict(sd, strict=False)
    assert res.missing_keys == ["head.bias"] and res.unexpected_keys == ["extra.weight"]


def test_train_eval_propagates():
    n = Net()
    n.eval()
    assert not any(m.training for m in n.modules())
    n.train()
    assert all(m.training for m in n.modules())


def test_to_dtype_keeps_integer_buffers():
    n = Net().to(em.float64)
    assert all(p.dtype is em.float64 for p in n.parameters())
    assert n.norm.running_mean.dtype is em.float64
    assert n.norm.num_batches_tracked.dtype is em.int64
    assert n(em.randn(3, 3, dtype=em.float64)).dtype is em.float64
    assert all(isinstance(p, nn.Parameter) for p in n.parameters())


def test_zero_grad_and_requires_grad():
    n = Net()
    n(em.randn(5, 3)).sum().backward()
    assert all(p.grad is not None for p in n.parameters())
    n.zero_grad()
    assert all(p.grad is None for p in n.parameters())
    n.requires_grad_(False)
    assert not any(p.requires_grad for p in n.parameters())


def test_apply_visits_children_first():
    seen = []
    Net().apply(lambda m: seen.append(type(m).__name__))
    assert seen == ["Linear", "Block", "BatchNorm1d", "Linear", "Net"]


def test_apply_with_init():
    n = Net()
    n.apply(lambda m: nn.init.zeros_(m.weight) if isinstance(m, nn.Linear) else None)
    assert not n.head.weight.detach().numpy().any()


def test_forward_hooks():
    n = Net()
    calls = []
    h1 = n.head.register_forward_pre_hook(lambda m, args: calls.append("pre"))
    h2 = n.head.register_forward_hook(lambda m, args, out: out * 0)
    out = n(em.randn(4, 3))
    assert calls == ["pre"] and not out.detach().numpy().any()
    h1.remove()
    h2.remove()
    assert n(em.randn(4, 3)).detach().numpy().any() and calls == ["pre"]


def test_repr():
    assert repr(Net()) == (
        "Net(\n"
        "  (block): Block(\n"
        "    (fc): Linear(in_features=3, out_features=4, bias=True)\n"
        "  )\n"
        "  (norm): BatchNorm1d(4, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)\n"
        "  (head): Linear(in_features=4, out_features=2, bias=True)\n"
        ")")


# -- porting a PyTorch model by key name ----------------------------------------------------------
def _mlp(lib):
    class MLP(lib.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = lib.nn.Embedding(10, 6, padding_idx=0)
            self.body = lib.nn.Sequential(lib.nn.Linear(6, 8), lib.nn.LayerNorm(8), lib.nn.GELU(),
                                          lib.nn.Linear(8, 8), lib.nn.BatchNorm1d(8), lib.nn.ReLU(),
                                          lib.nn.Dropout(0.2), lib.nn.Linear(8, 3))

        def forward(self, ids):
            return self.body(self.emb(ids).mean(1))
    return MLP()


def test_port_pytorch_mlp_by_state_dict():
    torch = pytest.importorskip("torch", reason="PyTorch is the oracle for the porting test")
    tm, em_m = _mlp(torch), _mlp(em)
    tm.train()
    tm(torch.randint(0, 10, (16, 5)))  # move BatchNorm's running statistics off their init
    tsd, esd = tm.state_dict(), em_m.state_dict()
    assert list(tsd) == list(esd)
    assert all(tuple(tsd[k].shape) == tuple(esd[k].shape) for k in tsd)
    em_m.load_state_dict({k: v.numpy() for k, v in tsd.items()})
    tm.eval()
    em_m.eval()
    ids = np.random.default_rng(0).integers(0, 10, (7, 5))
    np.testing.assert_allclose(em_m(em.tensor(ids)).detach().numpy(), tm(torch.tensor(ids)).detach().numpy(),
                               rtol=1e-5, atol=1e-5)  # float32 in both
    assert int(em_m.body[4].num_batches_tracked.item()) == 1


def test_to_keeps_tied_weights_tied():
    import ember as em
    a, b = em.nn.Linear(3, 3), em.nn.Linear(3, 3)
    b.weight = a.weight
    model = em.nn.Sequential(a, b).double()
    assert model[0].weight is model[1].weight and model[0].weight.dtype is em.float64
    assert len(list(model.parameters())) == 3
