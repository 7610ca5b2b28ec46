"""`ember time`: per-layer forward and backward times of a config's model, like `caffe time`.

Forward: a pre-hook and a hook on every leaf module take the clock around its call. Backward: a
tensor hook on the layer's output fires when the gradient reaching the layer is complete (its
backward starts) and one on its input fires when the layer has produced the input's gradient (its
backward ends). A tensor shared by several layers (a residual's input) is complete only after all
of them, so their times overlap; the totals line is the clock around the whole pass.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from .. import nn
from ..tensor import Tensor

__all__ = ["LayerTimes", "time_model", "format_table"]


@dataclass
class LayerTimes:
    name: str
    kind: str
    params: int
    out_shape: tuple = ()
    forward: list[float] = field(default_factory=list)  # seconds, one entry per timed iteration
    backward: list[float] = field(default_factory=list)


def _first_tensor(x):
    if isinstance(x, Tensor):
        return x
    if isinstance(x, (tuple, list)) and x:
        return _first_tensor(x[0])
    return None


def time_model(model: nn.Module, loss_fn, x: Tensor, y: Tensor, iterations: int = 10,
               warmup: int = 1) -> tuple[list[LayerTimes], list[float], list[float]]:
    """Time ``iterations`` forward+backward passes on one batch, per leaf layer.

    Example: layers, fwd, bwd = time_model(model, nn.CrossEntropyLoss(), x, y, iterations=5)

    Returns the layers (in first-call order) and the whole forward and backward times per iteration.
    """
    leaves = [(n, m) for n, m in model.named_modules() if not m._modules and n]
    if not leaves:
        leaves = [("model", model)]
    stats = {id(m): LayerTimes(n, type(m).__name__, sum(p.numel() for p in m.parameters()))
             for n, m in leaves}
    order: list[int] = []
    calls: list[dict] = []  # this iteration's calls: {"key", "t0", "fwd", "b0", "b1"}
    stack: list[dict] = []

    def pre(m, args):
        call = {"key": id(m), "t0": time.perf_counter(), "b0": None, "b1": None}
        stack.append(call)
        inp = _first_tensor(args)
        if inp is not None and inp.requires_grad:
            inp.register_hook(lambda g: call.__setitem__("b1", time.perf_counter()))

    def post(m, args, out):
        call = stack.pop()
        call["fwd"] = time.perf_counter() - call["t0"]
        calls.append(call)
        if id(m) not in order:
            order.append(id(m))
        o = _first_tensor(out)
        if o is not None:
            stats[id(m)].out_shape = tuple(o.shape)
            if o.requires_grad:
                o.register_hook(lambda g: call.__setitem__("b0", time.perf_counter()))

    handles = [h for _, m in leaves for h in (m.register_forward_pre_hook(pre), m.register_forward_hook(post))]
    if x.dtype.is_floating_point:
        x = x.detach().requires_grad_(True)  # so the first layer's backward end is seen too
    model.train()
    fwd_total, bwd_total = [], []
    try:
        for it in range(warmup + iterations):
            calls.clear()
            model.zero_grad()
            t0 = time.perf_counter()
            loss = loss_fn(model(x), y)
            t1 = time.perf_counter()
            loss.backward()
            t2 = time.perf_counter()
            if it < warmup:
                continue
            fwd_total.append(t1 - t0)
            bwd_total.append(t2 - t1)
            per_layer: dict[int, list[float]] = {}
            for c in calls:
                f, b = per_layer.setdefault(c["key"], [0.0, 0.0])
                # no input hook (integer ids, a leaf input): the layer's backward ran last
                b_end = c["b1"] if c["b1"] is not None else t2
                # max: a layer that returns its input (Dropout(p=0)) sees both hooks fire together
                per_layer[c["key"]] = [f + c["fwd"], b + (max(b_end - c["b0"], 0.0) if c["b0"] is not None else 0.0)]
            for key, (f, b) in per_layer.items():
                stats[key].forward.append(f)
                stats[key].backward.append(b)
    finally:
        for h in handles:
            h.remove()
    return [stats[k] for k in order], fwd_total, bwd_total


def _ms(values: list[float]) -> float:
    return 1e3 * sum(values) / max(len(values), 1)


def format_table(layers: list[LayerTimes], fwd: list[float], bwd: list[float], batch: int) -> str:
    """The table `ember time` prints: one row per layer, average milliseconds per iteration."""
    rows = [("layer", "type", "output shape", "params", "forward ms", "backward ms")]
    for t in layers:
        rows.append((t.name, t.kind, str(t.out_shape), f"{t.params:,}", f"{_ms(t.forward):.3f}",
                     f"{_ms(t.backward):.3f}"))
    widths = [max(len(r[i]) for r in rows) for i in range(6)]
    line = lambda r: "  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
    out = [line(rows[0]), "-" * len(line(rows[0])), *map(line, rows[1:]), ""]
    f, b = _ms(fwd), _ms(bwd)
    out += [f"average forward pass:          {f:9.3f} ms",
            f"average backward pass:         {b:9.3f} ms",
            f"average forward-backward:      {f + b:9.3f} ms  "
            f"({batch / max((f + b) / 1e3, 1e-12):,.0f} samples/s at batch size {batch}, {len(fwd)} iterations)"]
    return "\n".join(out)
