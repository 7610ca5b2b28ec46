"""summary(): a table of a model's layers, their output shapes and parameter counts.

Example: model.summary(input_shape=(1, 1, 8, 8))  # prints the table and returns it as a string
"""
from __future__ import annotations

from typing import Any, Callable

import ember
from ..autograd import no_grad
from ..tensor import Tensor

__all__ = ["summary"]


def _shape(out: Any) -> str:
    if isinstance(out, Tensor):
        return str(tuple(out.shape))
    if isinstance(out, (tuple, list)):
        return "[" + ", ".join(_shape(o) for o in out) + "]"
    return type(out).__name__


def _bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return ""


def summary(model, input_shape: tuple[int, ...] | None = None, *, input: Any = None, dtype=None,
            print_fn: Callable[[str], Any] | None = print) -> str:
    """Print and return a table: one row per layer (leaf modules, and any module holding
    parameters of its own) with its dotted name, type, output shape and parameter count; then
    the totals, split into trainable (requires_grad) and non-trainable parameters.

    Output shapes come from one forward pass in eval mode without gradients, on ``input`` (an
    example batch; a tuple for a model of several inputs) or on zeros of ``input_shape``
    (including the batch dimension) of ``dtype`` (default: the parameters' dtype; pass
    ember.int64 for token ids); without either the column shows "-". ``print_fn=None`` only
    returns the string.

    Example: text = model.summary(input_shape=(1, 64), print_fn=None)
    """
    rows = [(name, m) for name, m in model.named_modules()
            if not m._modules or any(p is not None for p in m._parameters.values())]
    shapes: dict[int, str] = {}
    if input is None and input_shape is not None:
        params = list(model.parameters())
        dt = dtype or (params[0].dtype if params else ember.get_default_dtype())
        input = ember.zeros(*input_shape, dtype=dt, device=params[0].device if params else None)
    if input is not None:
        def record(module, args, out):
            shapes.setdefault(id(module), _shape(out))  # the first call's shape
        handles = [m.register_forward_hook(record) for _, m in rows]
        was_training = model.training
        model.eval()
        try:
            with no_grad():
                model(*input) if isinstance(input, tuple) else model(input)
        finally:
            model.train(was_training)
            for h in handles:
                h.remove()

    table = [("Layer (type)", "Output shape", "Param #")]
    for name, m in rows:
        count = sum(p.numel() for p in m._parameters.values() if p is not None)
        table.append((f"{name or type(model).__name__} ({type(m).__name__})", shapes.get(id(m), "-"), f"{count:,}"))
    widths = [max(len(r[i]) for r in table) for i in range(3)]

    def line(r: tuple[str, str, str]) -> str:
        return f"{r[0]:<{widths[0]}}   {r[1]:<{widths[1]}}   {r[2]:>{widths[2]}}"
    rule = "-" * (sum(widths) + 6)

    params = list(model.parameters())  # each shared tensor once
    total = sum(p.numel() for p in params)
    trainable = sum(p.numel() for p in params if p.requires_grad)
    size = sum(p.numel() * p.dtype.itemsize for p in params)
    out = [f'Model: "{type(model).__name__}"', rule, line(table[0]), "=" * len(rule)]
    out += [line(r) for r in table[1:]]
    out += [rule, f"Total params: {total:,} ({_bytes(size)})", f"Trainable params: {trainable:,}",
            f"Non-trainable params: {total - trainable:,}", rule]
    text = "\n".join(out)
    if print_fn is not None:
        print_fn(text)
    return text
