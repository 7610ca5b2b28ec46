"""Optimizer: parameter groups, per-parameter state, state_dict in PyTorch's layout.

A subclass implements ``step`` as one loop over groups and parameters that updates
``p`` and ``self.state[p]`` in place under ``no_grad`` with ember ops (add_, mul_, lerp_,
addcdiv_...), so the same code runs eagerly and, later, under the tracer.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable

from ..autograd import enable_grad
from ..creation import tensor
from ..errors import EmberError
from ..tensor import Tensor

__all__ = ["Optimizer", "OptimizerStateError", "required"]


class OptimizerStateError(EmberError, ValueError):
    """A state dict does not fit the optimizer it is loaded into, or a group is malformed."""


class _Required:
    """Marks a hyperparameter without a default (e.g. SGD's ``lr`` in old PyTorch)."""

    def __repr__(self) -> str:
        return "<required>"


required = _Required()


class Optimizer:
    """Base class: ``Optimizer(params, defaults)``; params are tensors or dicts of groups.

    Example: opt = ember.optim.SGD([{"params": enc.parameters()}, {"params": head.parameters(), "lr": 0.1}], lr=0.01)
    """

    def __init__(self, params: Iterable[Tensor] | Iterable[dict], defaults: dict[str, Any]):
        self.defaults = defaults
        self.state: dict[Tensor, dict[str, Any]] = {}
        self.param_groups: list[dict[str, Any]] = []
        if isinstance(params, Tensor):
            raise TypeError(f"{type(self).__name__}: params must be an iterable of tensors or of "
                            f"dicts, got a single Tensor; wrap it in a list: [tensor]")
        groups = list(params)
        if not groups:
            raise OptimizerStateError(f"{type(self).__name__} got an empty parameter list; pass "
                                      f"model.parameters() of a model that has parameters")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for g in groups:
            self.add_param_group(g)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group ``{"params": [...], **options}``; missing options take the defaults."""
        if not isinstance(param_group, dict):
            raise TypeError(f"add_param_group: expected a dict, got {type(param_group).__name__}")
        group = dict(param_group)
        params = group["params"]
        group["params"] = [params] if isinstance(params, Tensor) else list(params)
        for i, p in enumerate(group["params"]):
            if not isinstance(p, Tensor):
                raise TypeError(f"{type(self).__name__}: parameter {i} of a group is a "
                                f"{type(p).__name__}, not an ember Tensor")
            if not p.is_leaf:
                raise OptimizerStateError(f"{type(self).__name__}: can't optimize a non-leaf tensor "
                                          f"(shape {tuple(p.shape)}); pass parameters or .detach() it")
        for name, default in self.defaults.items():
            if default is required and name not in group:
                raise OptimizerStateError(f"{type(self).__name__}: parameter group didn't specify a "
                                          f"value of required optimization parameter {name!r}")
            group.setdefault(name, default)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in group["params"]) or len({id(p) for p in group["params"]}) != len(group["params"]):
            raise OptimizerStateError(f"{type(self).__name__}: some parameters appear in more than "
                                      f"one parameter group (or twice in one)")
        self.param_groups.append(group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset every parameter's gradient: to None (default) or to zeros in place."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    p.grad = p.grad.detach() if p.grad.requires_grad else p.grad
                    p.grad.zero_()

    def step(self, closure: Callable[[], Any] | None = None):
        raise NotImplementedError

    def _closure_loss(self, closure):
        if closure is None:
            return None
        with enable_grad():
            return closure()

    # -- state dicts (PyTorch's layout: params referred to by their integer index) ----------
    def state_dict(self) -> dict[str, Any]:
        """``{"state": {index: {...}}, "param_groups": [{..., "params": [indices]}]}``.

        Example: ember.save(opt.state_dict(), "opt.safetensors")
        """
        index: dict[int, int] = {}
        groups = []
        for g in self.param_groups:
            ids = []
            for p in g["params"]:
                ids.append(index.setdefault(id(p), len(index)))
            groups.append({**{k: v for k, v in g.items() if k != "params"}, "params": ids})
        state = {index[id(p)]: dict(s) for p, s in self.state.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned; state tensors are copied to each parameter's
        dtype and device, so the loaded dict is never aliased.

        Example: opt.load_state_dict(ember.load("opt.safetensors"))
        """
        name = type(self).__name__
        try:
            saved_groups, saved_state = state_dict["param_groups"], state_dict["state"]
        except (KeyError, TypeError):
            raise OptimizerStateError(f"{name}.load_state_dict: expected a dict with 'state' and "
                                      f"'param_groups' (what optimizer.state_dict() returns)") from None
        if len(saved_groups) != len(self.param_groups):
            raise OptimizerStateError(f"{name}.load_state_dict: the state dict has {len(saved_groups)} "
                                      f"parameter group(s) but the optimizer has {len(self.param_groups)}")
        sizes = [len(g["params"]) for g in self.param_groups]
        saved_sizes = [len(g["params"]) for g in saved_groups]
        if sizes != saved_sizes:
            raise OptimizerStateError(f"{name}.load_state_dict: a parameter group doesn't match the "
                                      f"size of the optimizer's group: the state dict has groups of "
                                      f"{saved_sizes} parameters, the optimizer {sizes}; build the "
                                      f"optimizer over the same parameters, in the same order")
        id_map = {}
        for saved, group in zip(saved_groups, self.param_groups):
            id_map.update(zip(saved["params"], group["params"]))
        state: dict[Tensor, dict[str, Any]] = {}
        for k, s in saved_state.items():
            p = id_map.get(int(k))
            if p is None:
                raise OptimizerStateError(f"{name}.load_state_dict: state for parameter index {k}, "
                                          f"but the groups list only indices {sorted(id_map)}")
            state[p] = {key: _cast(p, v, key, name, k) for key, v in s.items()}
        new_groups = []
        for saved, group in zip(saved_groups, self.param_groups):
            new_groups.append({**{k: v for k, v in saved.items() if k != "params"}, "params": group["params"]})
        self.state, self.param_groups = state, new_groups

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {v}" for k, v in sorted(g.items()) if k != "params"]
        return "\n".join(lines + [")"])


def _cast(p: Tensor, value, key: str, opt_name: str, index):
    """A fresh copy of a saved state value, on p's device; floating tensors in p's dtype."""
    if key == "step":  # a 0-d float32 tensor, as PyTorch keeps it (a plain number is accepted)
        return tensor(float(value.item() if isinstance(value, Tensor) else value))
    if isinstance(value, Tensor):
        if value.ndim and tuple(value.shape) != tuple(p.shape):
            raise OptimizerStateError(f"{opt_name}.load_state_dict: state {key!r} of parameter {index} "
                                      f"has shape {tuple(value.shape)} but the parameter has shape "
                                      f"{tuple(p.shape)}; the checkpoint belongs to another model")
        if value.is_floating_point():
            return value.to(dtype=p.dtype, device=p.device, copy=True)
        return value.to(device=p.device, copy=True)
    return value
