"""Reverse-mode autograd over the tape that ``ops.registry`` records.

Each Node holds its inputs' nodes (``parents``), so gradients flow along the graph as it was
when recorded, even if a tensor is later rebased by an in-place op. Vjps are ember code: under
``create_graph=True`` they record too, which gives higher-order gradients.
"""
from __future__ import annotations

import functools
from typing import Callable, Sequence

from . import dtypes as D
from .errors import AutogradError, shape_str
from .ops import registry as R
from .tensor import Tensor, _new


def _ones(t: Tensor):
    from .backends import backend_for
    return backend_for(t._dev).xp.ones(t._data.shape, t._data.dtype)


class no_grad:
    """Context manager and decorator that turns off gradient recording.

    >>> with ember.no_grad(): y = x * 2   # y.requires_grad is False
    """

    _flag = False

    def __enter__(self):
        self._prev = R.set_grad_enabled(self._flag)

    def __exit__(self, *exc):
        R.set_grad_enabled(self._prev)

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with self.__class__():
                return fn(*args, **kwargs)
        return wrapper


class enable_grad(no_grad):
    """Turn gradient recording back on inside a ``no_grad`` block."""

    _flag = True


class set_grad_enabled(no_grad):
    """``with ember.set_grad_enabled(False): ...`` (also usable as a plain call)."""

    def __init__(self, mode: bool):
        self._flag = bool(mode)
        self._prev = R.set_grad_enabled(self._flag)

    def __enter__(self):
        pass


is_grad_enabled = R.is_grad_enabled


def _topo_order(roots: list) -> tuple[list, dict]:
    """Nodes reachable from ``roots``, every node after all nodes that consume it; and for each
    leaf (by id) how many edges lead to it, so it can be finalized when the last one arrives."""
    order, seen, leaf_refs = [], set(), {}
    for root in roots:
        if root is None or id(root) in seen:
            continue
        seen.add(id(root))
        stack = [(root, iter(root.parents))]
        while stack:
            node, it = stack[-1]
            for p in it:
                if type(p) is R.Node:
                    if id(p) not in seen:
                        seen.add(id(p))
                        stack.append((p, iter(p.parents)))
                        break
                elif p is not None:
                    leaf_refs[id(p)] = leaf_refs.get(id(p), 0) + 1
            else:
                stack.pop()
                order.append(node)
    order.reverse()
    return order, leaf_refs


def sum_to(g: Tensor, shape: tuple) -> Tensor:
    """Sum a broadcast gradient back to ``shape`` (the inverse of broadcasting)."""
    if g.shape == shape:
        return g
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(i + lead for i, s in enumerate(shape) if s == 1 and g.shape[i + lead] != 1)
    if axes:
        g = g.sum(dim=axes, keepdim=True)
    return g.reshape(shape) if g.shape != shape else g


def _check_versions(node) -> None:
    if node.versions is None:
        return
    for x, v in zip(node.inputs, node.versions):
        if v != -1 and type(x) is Tensor and (x._vc[0] if x._vc is not None else 0) != v:
            raise AutogradError(
                f"{node.op.name}: one of the tensors needed for its gradient (shape "
                f"{tuple(x.shape)}) was modified by an in-place operation after it was used "
                f"(version {v} -> {x._vc[0]}). Use the out-of-place form (x = x + y instead of "
                f"x += y), or .clone() the tensor before changing it.")


def _run_backward(roots, root_grads, *, retain_graph: bool, create_graph: bool, targets=None):
    """Propagate ``root_grads`` from ``roots``. A leaf's gradient is finalized (hooks run, .grad
    written) as soon as its last contribution arrives, so hooks can start work (gradient
    all-reduce) while backward goes on. With ``targets`` (nodes or leaves), return their
    gradients instead of accumulating into ``.grad``."""
    grads: dict = {}  # id(node or leaf) -> summed gradient so far
    captured: dict = {}
    target_ids = {id(t) for t in targets} if targets is not None else ()
    order, leaf_refs = _topo_order([r._node for r in roots])
    owned: set = set()
    for r, g in zip(roots, root_grads):
        if r._node is not None:
            _add(grads, r._node, g)
        elif leaf_refs.get(id(r), 0) == 0:  # a leaf root that no node leads to
            _finish_leaf(r, g, create_graph, target_ids, captured, owned)
        else:
            _add(grads, r, g)
    prev_mode = R.set_grad_enabled(create_graph)
    try:
        for node in order:
            g = grads.pop(id(node), None)
            if g is None:
                continue
            if node.hooks:
                for hook in node.hooks:
                    new = hook(g)
                    if new is not None:
                        g = new
            if target_ids and id(node) in target_ids:
                captured[id(node)] = g
            if node.inputs is None:
                raise AutogradError(
                    f"{node.op.name}: trying to backward through the graph a second time (its saved "
                    f"tensors were freed); pass retain_graph=True to the first backward() call")
            if node.versions is not None:
                _check_versions(node)
            if node.out is None:
                raise AutogradError(
                    f"{node.op.name}: its output, needed for its gradient, was modified by an in-place "
                    f"operation under no_grad; use an out-of-place op or .clone() the output first")
            in_grads = node.op.vjp(g, Tensor._from_node(node), *node.inputs, **node.params)
            for parent, x, gi in zip(node.parents, node.inputs, in_grads):
                if parent is None:
                    continue
                if gi is not None:
                    if gi._data.shape != x.shape:
                        gi = sum_to(gi, tuple(x.shape))
                    xd = x._data.dtype if type(x) is Tensor else x.dtype
                    if gi._data.dtype is not xd:
                        gi = gi.to(D.from_numpy(xd))
                    if _anomaly[0]:
                        _check_finite(node, gi)
                    _add(grads, parent, gi)
                if type(parent) is Tensor:  # a leaf: finalize once its last edge is done
                    k = id(parent)
                    leaf_refs[k] -= 1
                    if leaf_refs[k] == 0 and k in grads:
                        R.set_grad_enabled(prev_mode)
                        try:
                            _finish_leaf(parent, grads.pop(k), create_graph, target_ids, captured, owned)
                        finally:
                            R.set_grad_enabled(create_graph)
            if not retain_graph:
                node.inputs = None
    finally:
        R.set_grad_enabled(prev_mode)
    return captured


def _add(grads: dict, key, g: Tensor) -> None:
    k = id(key)
    prev = grads.get(k)
    grads[k] = g if prev is None else prev + g


def _finish_leaf(leaf: Tensor, g: Tensor, create_graph: bool, target_ids, captured: dict, owned: set) -> None:
    hooks = leaf._hooks_or_none()
    if hooks:
        for hook in hooks:
            new = hook(g)
            if new is not None:
                g = new
    if target_ids:
        if id(leaf) in target_ids:
            captured[id(leaf)] = g
        return
    if create_graph:
        leaf.grad = g if leaf.grad is None else leaf.grad + g
    elif leaf.grad is not None:
        leaf.grad = _acc(leaf.grad, g)
    else:
        # .grad must own writable memory: optimizers update it in place.
        if g._node is not None or g._data.base is not None or id(g) in owned or not g._data.flags.writeable:
            # While tracing (ember.jit) copy with an op, which the tracer records; else the
            # direct copy (1.5 us cheaper per leaf).
            g = g.detach().clone() if R._tracer is not None else _new(g._data.copy(), g._dev)
        owned.add(id(g))
        leaf.grad = g
    post = getattr(leaf, "_post_hooks", None)
    if post:
        for hook in post:
            hook(leaf)


def _acc(old: Tensor, g: Tensor) -> Tensor:
    """Accumulate into an existing .grad without recording (a fresh tensor: never aliases g)."""
    prev = R.set_grad_enabled(False)
    try:
        return old + g
    finally:
        R.set_grad_enabled(prev)


def _root_grad(t: Tensor, gradient, op: str) -> Tensor:
    if gradient is None:
        if t.numel() != 1:
            raise AutogradError(
                f"{op}: grad can be implicitly created only for scalar outputs, this one has shape "
                f"{tuple(t.shape)}; pass gradient=ember.ones_like(t) or reduce it (.sum(), .mean())")
        return _new(_ones(t), t._dev)
    if not isinstance(gradient, Tensor):
        from .creation import tensor
        gradient = tensor(gradient, dtype=t.dtype, device=t.device)
    if tuple(gradient.shape) != tuple(t.shape):
        raise AutogradError(f"{op}: gradient shape {shape_str(gradient.shape)} does not match the "
                            f"output shape {shape_str(t.shape)}")
    return gradient


def _check_root(t: Tensor, op: str) -> None:
    if not isinstance(t, Tensor):
        raise AutogradError(f"{op}: expected a Tensor, got {type(t).__name__}")
    if not t.requires_grad:
        kind = t.dtype.name
        hint = (f"it is {kind}: gradients exist only for floating-point tensors"
                if not t.dtype.is_floating_point else
                "no input had requires_grad=True (or it was computed under no_grad)")
        raise AutogradError(f"{op}: element 0 of tensors does not require grad and does not have "
                            f"a grad_fn; {hint}")


def backward(tensors, grad_tensors=None, *, retain_graph: bool | None = None,
             create_graph: bool = False, inputs=None) -> None:
    """Accumulate gradients of ``tensors`` into the ``.grad`` of the leaves they depend on."""
    tensors = [tensors] if isinstance(tensors, Tensor) else list(tensors)
    if grad_tensors is None or isinstance(grad_tensors, Tensor):
        grad_tensors = [grad_tensors] * len(tensors) if grad_tensors is None else [grad_tensors]
    for t in tensors:
        _check_root(t, "backward")
    gs = [_root_grad(t, g, "backward") for t, g in zip(tensors, grad_tensors)]
    retain = create_graph if retain_graph is None else retain_graph
    if inputs is not None:
        inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
        res = grad(tensors, inputs, gs, retain_graph=retain, create_graph=create_graph,
                   allow_unused=True)
        for x, g in zip(inputs, res):
            if g is not None:
                x.grad = g if x.grad is None else x.grad + g
        return
    _run_backward(tensors, gs, retain_graph=retain, create_graph=create_graph)


def grad(outputs, inputs, grad_outputs=None, *, retain_graph: bool | None = None,
         create_graph: bool = False, allow_unused: bool = False) -> tuple:
    """Gradients of ``outputs`` with respect to ``inputs``, returned (not accumulated).

    >>> (gx,) = ember.grad((x * x).sum(), [x])
    """
    single = isinstance(inputs, Tensor)
    inputs = [inputs] if single else list(inputs)
    outputs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    if grad_outputs is None or isinstance(grad_outputs, Tensor):
        grad_outputs = [grad_outputs] * len(outputs) if grad_outputs is None else [grad_outputs]
    for t in outputs:
        _check_root(t, "grad")
    for x in inputs:
        if not x.requires_grad:
            raise AutogradError(f"grad: an input of shape {tuple(x.shape)} does not require grad; "
                                f"create it with requires_grad=True")
    gs = [_root_grad(t, g, "grad") for t, g in zip(outputs, grad_outputs)]
    keys = [x._node if x._node is not None else x for x in inputs]
    retain = create_graph if retain_graph is None else retain_graph
    captured = _run_backward(outputs, gs, retain_graph=retain, create_graph=create_graph, targets=keys)
    result = []
    for x, k in zip(inputs, keys):
        g = captured.get(id(k))
        if g is None and not allow_unused:
            raise AutogradError(f"grad: an input of shape {tuple(x.shape)} was not used to compute "
                                f"the outputs; pass allow_unused=True to get None for it")
        if g is not None and not create_graph:
            g = g.detach()
        result.append(g)
    return tuple(result)


def value_and_grad(fn: Callable, argnums: int | Sequence[int] = 0, has_aux: bool = False) -> Callable:
    """JAX-style: ``value_and_grad(f)(x)`` returns ``(f(x), df/dx)``; f must return a scalar.

    >>> loss, g = ember.value_and_grad(lambda w: (w * w).sum())(w)
    """
    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)

    def wrapped(*args, **kwargs):
        args = list(args)
        for i in nums:
            a = args[i]
            if not isinstance(a, Tensor):
                raise AutogradError(f"value_and_grad: argument {i} must be a Tensor, got {type(a).__name__}")
            args[i] = a.detach().requires_grad_(True) if a._node is not None or not a.requires_grad else a
        with enable_grad():
            out = fn(*args, **kwargs)
        value, aux = (out[0], out[1]) if has_aux else (out, None)
        gs = grad(value, [args[i] for i in nums], allow_unused=True)
        gs = gs[0] if isinstance(argnums, int) else gs
        value = value.detach()
        return ((value, aux), gs) if has_aux else (value, gs)

    return wrapped


def grad_of(fn: Callable, argnums: int | Sequence[int] = 0) -> Callable:
    """JAX-style ``grad(f)``: a function returning only the gradient."""
    vg = value_and_grad(fn, argnums)
    return lambda *a, **k: vg(*a, **k)[1]


class detect_anomaly:
    """Check every gradient for NaN/inf during backward and name the op that produced it."""

    def __enter__(self):
        _anomaly[0] += 1

    def __exit__(self, *exc):
        _anomaly[0] -= 1


_anomaly = [0]


def _check_finite(node, g: Tensor) -> None:
    import numpy as np
    if not np.all(np.isfinite(g._host())):
        raise AutogradError(f"anomaly: the gradient computed by {node.name} contains NaN or inf "
                            f"(shape {tuple(g.shape)}); look at the forward inputs of "
                            f"{node.op.name} (log of 0, division by 0, overflow)")
