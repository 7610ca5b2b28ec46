"""The workloads of bench/compile.py, each built the same way for ember and PyTorch.

Every builder returns a ``Work`` holding, per framework, a zero-argument step function (one
training step, or one forward+backward) plus a way to build a fresh jitted/compiled step for
the compile-time measurement. Weights start from the same NumPy arrays in both frameworks.

>>> w = WORKLOADS["W2"](quick=True); w.ember_step()
"""
from __future__ import annotations

import numpy as np


class Work:
    """One workload: ``make(fw)`` -> a step function for framework fw."""

    def __init__(self, name: str, unit: str, steps: int, make):
        self.name, self.unit, self.steps, self.make = name, unit, steps, make


def _rng():
    return np.random.default_rng(0)


# -- models ----------------------------------------------------------------------------------

def _mlp(nn, sizes):
    layers = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def _cnn(nn):
    return nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(1600, 128), nn.ReLU(), nn.Linear(128, 10))


def _copy_weights(src_torch, dst_ember):
    import ember as em
    sd = {k: em.tensor(v.detach().numpy().copy()) for k, v in src_torch.state_dict().items()}
    dst_ember.load_state_dict(sd, strict=False)


def _torch_gpt(vocab, block, n_layer, n_head, n_embd):
    """A nanoGPT twin of ember.zoo.GPT (same parameter names, tied head)."""
    import torch
    from torch import nn
    import torch.nn.functional as F

    class Attn(nn.Module):
        def __init__(self):
            super().__init__()
            self.c_attn = nn.Linear(n_embd, 3 * n_embd)
            self.c_proj = nn.Linear(n_embd, n_embd)

        def forward(self, x):
            B, T, C = x.shape
            q, k, v = self.c_attn(x).split(C, dim=2)
            q, k, v = (t.view(B, T, n_head, C // n_head).transpose(1, 2) for t in (q, k, v))
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            return self.c_proj(y.transpose(1, 2).reshape(B, T, C))

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln_1, self.attn, self.ln_2 = nn.LayerNorm(n_embd), Attn(), nn.LayerNorm(n_embd)
            self.mlp = nn.Sequential(nn.Linear(n_embd, 4 * n_embd), nn.GELU(), nn.Linear(4 * n_embd, n_embd))

        def forward(self, x):
            x = x + self.attn(self.ln_1(x))
            return x + self.mlp(self.ln_2(x))

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.wte, self.wpe = nn.Embedding(vocab, n_embd), nn.Embedding(block, n_embd)
            self.h = nn.ModuleList([Block() for _ in range(n_layer)])
            self.ln_f = nn.LayerNorm(n_embd)
            self.lm_head = nn.Linear(n_embd, vocab, bias=False)
            self.lm_head.weight = self.wte.weight
            for name, p in self.named_parameters():
                if p.ndim == 2:
                    nn.init.normal_(p, 0.0, 0.02)

        def forward(self, idx):
            T = idx.shape[1]
            x = self.wte(idx) + self.wpe(torch.arange(T))
            for b in self.h:
                x = b(x)
            return self.lm_head(self.ln_f(x))

    return GPT()


# -- training steps ----------------------------------------------------------------------------

def _train(name, steps, build_torch, build_ember, x_np, y_np, opt_name, opt_kw, flat_logits=False):
    def make(fw):
        import torch
        torch.manual_seed(0)
        tmodel = build_torch()
        if fw.startswith("torch"):
            x, y = torch.from_numpy(x_np), torch.from_numpy(y_np)
            opt = getattr(torch.optim, opt_name)(tmodel.parameters(), **opt_kw)
            F = torch.nn.functional

            def step():
                opt.zero_grad()
                out = tmodel(x)
                loss = F.cross_entropy(out.reshape(-1, out.shape[-1]) if flat_logits else out, y.reshape(-1))
                loss.backward()
                opt.step()
                return loss
            return step
        import ember as em
        emodel = build_ember()
        _copy_weights(tmodel, emodel)
        x, y = em.tensor(x_np), em.tensor(y_np)
        opt = getattr(em.optim, opt_name)(emodel.parameters(), **opt_kw)
        F = em.nn.functional

        def step(x, y):
            opt.zero_grad()
            out = emodel(x)
            loss = F.cross_entropy(out.reshape(-1, out.shape[-1]) if flat_logits else out, y.reshape(-1))
            loss.backward()
            opt.step()
            return loss
        return (step, (x, y))
    return Work(name, "steps/s", steps, make)


def w1(quick):
    r = _rng()
    x = r.standard_normal((128, 784), dtype=np.float32)
    y = r.integers(0, 10, 128)

    def bt():
        from torch import nn
        return _mlp(nn, [784, 512, 512, 10])

    def be():
        from ember import nn
        return _mlp(nn, [784, 512, 512, 10])
    return _train("W1 MLP 784-512-512-10 b128 Adam", 20 if quick else 200, bt, be, x, y, "Adam", {"lr": 1e-3})


def w2(quick):
    r = _rng()
    x = r.standard_normal((32, 64), dtype=np.float32)
    y = r.integers(0, 10, 32)

    def bt():
        from torch import nn
        return _mlp(nn, [64, 128, 10])

    def be():
        from ember import nn
        return _mlp(nn, [64, 128, 10])
    return _train("W2 MLP 64-128-10 b32 SGD-momentum", 300 if quick else 5000, bt, be, x, y, "SGD",
                  {"lr": 0.01, "momentum": 0.9})


def w3(quick):
    r = _rng()
    x = r.standard_normal((64, 1, 28, 28), dtype=np.float32)
    y = r.integers(0, 10, 64)

    def bt():
        from torch import nn
        return _cnn(nn)

    def be():
        from ember import nn
        return _cnn(nn)
    return _train("W3 CNN 32c-64c-128-10 b64 SGD-momentum", 10 if quick else 100, bt, be, x, y, "SGD",
                  {"lr": 0.01, "momentum": 0.9})


def w4(quick):
    r = _rng()
    x = r.integers(0, 65, (16, 64))
    y = r.integers(0, 65, (16, 64))
    cfg = dict(vocab=65, block=64, n_layer=2, n_head=4, n_embd=128)

    def bt():
        return _torch_gpt(**cfg)

    def be():
        from ember.zoo import GPT
        return GPT(vocab_size=65, block_size=64, n_layer=2, n_head=4, n_embd=128)
    return _train("W4 char-GPT 2x128 ctx64 b16 AdamW", 10 if quick else 100, bt, be, x, y, "AdamW",
                  {"lr": 3e-4}, flat_logits=True)


# -- forward + backward kernels --------------------------------------------------------------

def w5_chain(quick):
    n = 1 << 22
    x_np = _rng().standard_normal(n, dtype=np.float32)

    def make(fw):
        if fw.startswith("torch"):
            import torch
            x = torch.from_numpy(x_np.copy()).requires_grad_()
            F = torch.nn.functional

            def step():
                x.grad = None
                y = (F.gelu(1.7 * x + 0.3) * torch.sigmoid(x) - torch.tanh(x) ** 2).sum()
                y.backward()
                return y
            return step
        import ember as em
        F = em.nn.functional
        x = em.tensor(x_np.copy(), requires_grad=True)

        def step(x):
            y = (F.gelu(1.7 * x + 0.3) * x.sigmoid() - x.tanh() ** 2).sum()
            y.backward()
            return y

        def run(x):
            x.grad = None
        return (step, (x,), run)
    return Work("W5a sum(gelu(1.7x+.3)*sigmoid(x)-tanh(x)^2) 4M fwd+bwd", "ms", 5 if quick else 30, make)


def w5_layernorm(quick):
    r = _rng()
    x_np = r.standard_normal((4096, 1024), dtype=np.float32)
    dy_np = r.standard_normal((4096, 1024), dtype=np.float32)

    def make(fw):
        if fw.startswith("torch"):
            import torch
            x = torch.from_numpy(x_np.copy()).requires_grad_()
            dy = torch.from_numpy(dy_np)
            ln = torch.nn.LayerNorm(1024)

            def step():
                x.grad = None
                ln.zero_grad(set_to_none=True)
                y = ln(x)
                y.backward(dy)
                return y
            return step
        import ember as em
        x = em.tensor(x_np.copy(), requires_grad=True)
        dy = em.tensor(dy_np)
        ln = em.nn.LayerNorm(1024)

        def step(x, dy):
            y = ln(x)
            y.backward(dy)
            return y

        def run(x, dy):
            x.grad = None
            ln.zero_grad()
        return (step, (x, dy), run)
    return Work("W5b LayerNorm 4096x1024 fwd+bwd", "ms", 5 if quick else 30, make)


WORKLOADS = {"W1": w1, "W2": w2, "W3": w3, "W4": w4, "W5a": w5_chain, "W5b": w5_layernorm}
