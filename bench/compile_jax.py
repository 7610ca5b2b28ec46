"""JAX versions of the workloads of bench/compile_workloads.py, for the jax.jit column of
bench/compile.py (JAX is an optional bench dependency: ``pip install -e .[bench]``).

Each workload's torch eager step is built first, and the JAX step reads from it the data, the
starting weights (the torch model's parameters as NumPy) and the optimizer's hyperparameters,
so it starts from the same numbers and does the same work; tests/test_bench_jax.py checks that
the losses (W1-W4) and values and gradients (W5) match torch. Images stay NCHW with OIHW
kernels, torch's layout, so the weights copy as they are (XLA picks its own internal layout).

A training step is one ``jax.jit`` function: loss, gradients (``jax.value_and_grad``) and the
optimizer update written out as torch writes it; parameters and optimizer state are donated,
so XLA updates them in place. Every step blocks until its results are ready (JAX dispatches
asynchronously, so an unblocked step would time only the dispatch).

>>> from compile_workloads import WORKLOADS
>>> step = make(WORKLOADS["W2"](quick=True)); loss = step()
"""
from __future__ import annotations

import inspect

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

N_HEAD = 4  # W4's attention heads (the torch twin keeps n_head in a closure, not an attribute)


def _torch_parts(work):
    """The torch eager step of ``work`` and the objects its closure holds (model, data, optimizer)."""
    tstep = work.make("torch eager")
    return tstep, inspect.getclosurevars(tstep).nonlocals


def _np(t) -> np.ndarray:
    return t.detach().numpy().copy()


# -- layers ----------------------------------------------------------------------------------

def _linear(p, prefix, x):
    y = x @ p[prefix + "weight"].T
    return y + p[prefix + "bias"] if prefix + "bias" in p else y


def _layer_norm(p, prefix, x, eps=1e-5):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)  # biased, as torch
    return (x - mu) * lax.rsqrt(var + eps) * p[prefix + "weight"] + p[prefix + "bias"]


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def _sequential(tmodel):
    """A JAX forward ``f(params, x)`` for a torch nn.Sequential of Linear, ReLU, Conv2d,
    MaxPool2d and Flatten (W1-W3), parameters named by torch's state_dict keys."""
    from torch import nn
    layers = []
    for name, m in tmodel.named_children():
        pre = name + "."
        if isinstance(m, nn.Linear):
            layers.append(lambda p, x, pre=pre: _linear(p, pre, x))
        elif isinstance(m, nn.ReLU):
            layers.append(lambda p, x: jax.nn.relu(x))
        elif isinstance(m, nn.Flatten):
            layers.append(lambda p, x: x.reshape(x.shape[0], -1))
        elif isinstance(m, nn.Conv2d):
            def conv(p, x, pre=pre, m=m):
                y = lax.conv_general_dilated(x, p[pre + "weight"], m.stride, [(q, q) for q in m.padding],
                                             rhs_dilation=m.dilation, feature_group_count=m.groups,
                                             dimension_numbers=("NCHW", "OIHW", "NCHW"))
                return y + p[pre + "bias"][:, None, None]
            layers.append(conv)
        elif isinstance(m, nn.MaxPool2d) and m.padding == 0 and m.dilation == 1 and not m.ceil_mode:
            k, s = _pair(m.kernel_size), _pair(m.stride)
            layers.append(lambda p, x, k=k, s=s: lax.reduce_window(x, -jnp.inf, lax.max, (1, 1) + k,
                                                                   (1, 1) + s, "VALID"))
        else:
            raise NotImplementedError(f"compile_jax: no JAX version of layer {name}: {m}")

    def forward(p, x):
        for f in layers:
            x = f(p, x)
        return x
    return forward


def _gpt(tmodel):
    """A JAX forward for compile_workloads._torch_gpt (nanoGPT; lm_head tied to wte)."""
    assert tmodel.lm_head.weight is tmodel.wte.weight, "W4's head is tied to the embedding"
    n_layer = len(tmodel.h)

    def attn(p, pre, x):
        B, T, C = x.shape
        q, k, v = jnp.split(_linear(p, pre + "c_attn.", x), 3, axis=-1)
        q, k, v = (t.reshape(B, T, N_HEAD, C // N_HEAD) for t in (q, k, v))  # (B, T, nh, hs)
        y = jax.nn.dot_product_attention(q, k, v, is_causal=True)  # scale 1/sqrt(hs), as torch's SDPA
        return _linear(p, pre + "c_proj.", y.reshape(B, T, C))

    def forward(p, idx):
        x = p["wte.weight"][idx] + p["wpe.weight"][: idx.shape[1]]  # (B, T, C)
        for i in range(n_layer):
            h = f"h.{i}."
            x = x + attn(p, h + "attn.", _layer_norm(p, h + "ln_1.", x))
            m = jax.nn.gelu(_linear(p, h + "mlp.0.", _layer_norm(p, h + "ln_2.", x)), approximate=False)
            x = x + _linear(p, h + "mlp.2.", m)
        return _layer_norm(p, "ln_f.", x) @ p["wte.weight"].T  # (B, T, vocab)
    return forward


def _cross_entropy(logits, y):
    logp = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.take_along_axis(logp, y[:, None], axis=-1).mean()


# -- optimizers, as torch.optim writes them ----------------------------------------------------

def _optimizer(opt, params):
    """(initial state, update(params, grads, state) -> (params, state)) for torch optimizer ``opt``."""
    g = opt.param_groups[0]
    lr = g["lr"]
    zeros = lambda: jax.tree.map(jnp.zeros_like, params)  # noqa: E731 - fresh buffers: each is donated
    if type(opt).__name__ == "SGD":
        if g["dampening"] or g["nesterov"] or g["weight_decay"]:
            raise NotImplementedError("compile_jax: SGD is written for momentum only")
        mu = g["momentum"]

        def sgd(p, grads, buf):  # buf starts at 0, so the first step's buf is grad, as torch's
            buf = jax.tree.map(lambda b, d: mu * b + d, buf, grads)
            return jax.tree.map(lambda w, b: w - lr * b, p, buf), buf
        return zeros(), sgd
    decoupled = type(opt).__name__ == "AdamW"
    if type(opt).__name__ not in ("Adam", "AdamW") or g["amsgrad"] or (g["weight_decay"] and not decoupled):
        raise NotImplementedError(f"compile_jax: no JAX update for {opt}")
    (b1, b2), eps, wd = g["betas"], g["eps"], g["weight_decay"]

    def adam(p, grads, state):
        t, m, v = state
        t = t + 1
        m = jax.tree.map(lambda m, d: m + (d - m) * (1 - b1), m, grads)  # torch's lerp_
        v = jax.tree.map(lambda v, d: v * b2 + d * d * (1 - b2), v, grads)
        step_size = lr / (1 - b1 ** t)  # bias corrections in float32 (torch: Python floats)
        bc2_sqrt = jnp.sqrt(1 - b2 ** t)

        def upd(w, m, v):
            w = w * (1 - lr * wd) if decoupled else w
            return w - step_size * m / (jnp.sqrt(v) / bc2_sqrt + eps)
        return jax.tree.map(upd, p, m, v), (t, m, v)
    return (jnp.zeros((), jnp.float32), zeros(), zeros()), adam


# -- steps -------------------------------------------------------------------------------------

def _train_step(parts):
    tmodel, opt = parts["tmodel"], parts["opt"]
    forward = _gpt(tmodel) if hasattr(tmodel, "lm_head") else _sequential(tmodel)
    params = {k: jnp.asarray(_np(v)) for k, v in tmodel.named_parameters()}  # tied weights once
    state, update = _optimizer(opt, params)
    x, y = jnp.asarray(parts["x"].numpy()), jnp.asarray(parts["y"].numpy().reshape(-1))

    def loss_fn(p, x, y):
        out = forward(p, x)
        return _cross_entropy(out.reshape(-1, out.shape[-1]), y)

    def train(p, state, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(p, x, y)
        p, state = update(p, grads, state)
        return p, state, loss

    jitted = jax.jit(train, donate_argnums=(0, 1))
    held = [params, state]

    def step():
        held[0], held[1], loss = jax.block_until_ready(jitted(held[0], held[1], x, y))
        return loss
    return step


def _chain_step(parts):
    """W5a: value and gradient of sum(gelu(1.7x+0.3)*sigmoid(x)-tanh(x)^2)."""
    x = jnp.asarray(_np(parts["x"]))

    def f(x):
        return (jax.nn.gelu(1.7 * x + 0.3, approximate=False) * jax.nn.sigmoid(x) - jnp.tanh(x) ** 2).sum()
    jitted = jax.jit(jax.value_and_grad(f))
    return lambda: jax.block_until_ready(jitted(x))  # (y, dx)


def _layernorm_step(parts):
    """W5b: LayerNorm forward, and the gradients for x, weight and bias given dy."""
    ln = parts["ln"]
    x, dy = jnp.asarray(_np(parts["x"])), jnp.asarray(parts["dy"].numpy())
    w, b = jnp.asarray(_np(ln.weight)), jnp.asarray(_np(ln.bias))

    def fwd_bwd(x, w, b, dy):
        y, vjp = jax.vjp(lambda x, w, b: _layer_norm({"weight": w, "bias": b}, "", x, ln.eps), x, w, b)
        return (y,) + vjp(dy)
    jitted = jax.jit(fwd_bwd)
    return lambda: jax.block_until_ready(jitted(x, w, b, dy))  # (y, dx, dw, db)


def make(work):
    """A zero-argument JAX step for ``work`` (a bench/compile_workloads.Work), jitted afresh: a new
    function object and a new ``jax.jit`` on every call, so its first call traces and compiles.

    Training steps return the loss (parameters are updated in place); W5a returns (y, dx) and
    W5b (y, dx, dweight, dbias)."""
    _, parts = _torch_parts(work)
    key = work.name.split()[0]
    if key == "W5a":
        return _chain_step(parts)
    if key == "W5b":
        return _layernorm_step(parts)
    return _train_step(parts)
