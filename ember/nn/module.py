"""Module: the base of every layer and model. Attributes that are Parameters, Modules or
registered buffers are found automatically, as in PyTorch, so ``state_dict`` keys match."""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable, Iterator

from ..errors import EmberError
from ..tensor import Tensor
from .parameter import Parameter


class StateDictError(EmberError, KeyError):
    """load_state_dict found missing, unexpected or mis-shaped keys."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class Module:
    """Base class for layers and models. Subclass it, create parameters and submodules in
    ``__init__`` and write ``forward``. ``model(x)`` calls ``forward`` (with hooks)."""

    training: bool

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent", set())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_forward_pre_hooks", OrderedDict())
        object.__setattr__(self, "_forward_hooks", OrderedDict())
        object.__setattr__(self, "training", True)

    # -- registration -----------------------------------------------------------------------
    def __setattr__(self, name: str, value) -> None:
        d = self.__dict__
        if "_parameters" not in d:
            raise EmberError(f"{type(self).__name__}: call super().__init__() before assigning attributes")
        if isinstance(value, Parameter):
            d.pop(name, None)
            d["_modules"].pop(name, None)
            d["_parameters"][name] = value
        elif isinstance(value, Module):
            d.pop(name, None)
            d["_parameters"].pop(name, None)
            d["_modules"][name] = value
        elif name in d["_buffers"] and (value is None or isinstance(value, Tensor)):
            d["_buffers"][name] = value
        elif name in d["_parameters"] and value is None:
            d["_parameters"][name] = None
        else:
            d["_parameters"].pop(name, None)
            d["_modules"].pop(name, None)
            object.__setattr__(self, name, value)

    def __getattr__(self, name: str):
        d = self.__dict__
        for store in ("_parameters", "_buffers", "_modules"):
            s = d.get(store)
            if s is not None and name in s:
                return s[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name: str) -> None:
        for store in (self._parameters, self._buffers, self._modules):
            if name in store:
                del store[name]
                return
        object.__delattr__(self, name)

    def register_parameter(self, name: str, param: Tensor | None) -> None:
        if param is not None and not isinstance(param, Parameter):
            raise EmberError(f"register_parameter: {name!r} must be a Parameter (wrap it with nn.Parameter)")
        self._parameters[name] = param

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        """A tensor that is state but not trained (running statistics); saved in state_dict
        unless ``persistent=False``."""
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent.discard(name)
        else:
            self._non_persistent.add(name)

    def add_module(self, name: str, module: "Module | None") -> None:
        self._modules[name] = module

    register_module = add_module

    def get_submodule(self, target: str) -> "Module":
        mod = self
        for part in target.split(".") if target else []:
            if part not in mod._modules:
                raise AttributeError(f"{type(mod).__name__} has no submodule {part!r} (in {target!r})")
            mod = mod._modules[part]
        return mod

    # -- traversal --------------------------------------------------------------------------
    def named_modules(self, memo=None, prefix: str = "") -> Iterator[tuple[str, "Module"]]:
        memo = set() if memo is None else memo
        if id(self) in memo:
            return
        memo.add(id(self))
        yield prefix, self
        for name, m in self._modules.items():
            if m is not None:
                yield from m.named_modules(memo, f"{prefix}.{name}" if prefix else name)

    def modules(self) -> Iterator["Module"]:
        for _, m in self.named_modules():
            yield m

    def named_children(self) -> Iterator[tuple[str, "Module"]]:
        for name, m in self._modules.items():
            if m is not None:
                yield name, m

    def children(self) -> Iterator["Module"]:
        for _, m in self.named_children():
            yield m

    def _named(self, store: str, prefix: str, recurse: bool):
        seen = set()
        mods = self.named_modules(prefix=prefix) if recurse else [(prefix, self)]
        for mp, m in mods:
            for name, t in getattr(m, store).items():
                if t is None or id(t) in seen:
                    continue
                seen.add(id(t))
                yield (f"{mp}.{name}" if mp else name), t

    def named_parameters(self, prefix: str = "", recurse: bool = True) -> Iterator[tuple[str, Tensor]]:
        return self._named("_parameters", prefix, recurse)

    def parameters(self, recurse: bool = True) -> Iterator[Tensor]:
        """All trainable tensors, each once. ``Adam(model.parameters())``."""
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "", recurse: bool = True) -> Iterator[tuple[str, Tensor]]:
        return self._named("_buffers", prefix, recurse)

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    # -- state ------------------------------------------------------------------------------
    def state_dict(self, prefix: str = "", keep_vars: bool = False) -> "OrderedDict[str, Tensor]":
        """Parameters and persistent buffers by dotted name (PyTorch's key names)."""
        out = OrderedDict()
        for mp, m in self.named_modules(prefix=prefix.rstrip(".")):
            base = f"{mp}." if mp else ""
            for name, p in m._parameters.items():
                if p is not None:
                    out[base + name] = p if keep_vars else p.detach()
            for name, b in m._buffers.items():
                if b is not None and name not in m._non_persistent:
                    out[base + name] = b if keep_vars else b.detach()
        return out

    def load_state_dict(self, state_dict, strict: bool = True):
        """Copy values into this module's parameters and buffers. With ``strict`` every key
        must match; all problems are reported in one error."""
        own = self.state_dict(keep_vars=True)
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        mismatched = []
        for k, target in own.items():
            if k in state_dict:
                src = state_dict[k]
                shape = tuple(src.shape) if hasattr(src, "shape") else ()
                if shape != tuple(target.shape):
                    mismatched.append(f"{k}: checkpoint has shape {shape}, model has {tuple(target.shape)}")
        problems = []
        if mismatched:
            problems.append("size mismatch for " + "; ".join(mismatched))
        if strict and missing:
            problems.append(f"missing keys: {missing}")
        if strict and unexpected:
            problems.append(f"unexpected keys: {unexpected}")
        if problems:
            raise StateDictError(f"load_state_dict for {type(self).__name__}: " + ". ".join(problems))
        from ..autograd import no_grad
        from ..creation import as_tensor
        with no_grad():
            for k, target in own.items():
                if k in state_dict:
                    src = state_dict[k]
                    src = src if isinstance(src, Tensor) else as_tensor(src)
                    target.copy_(src.to(dtype=target.dtype, device=target.device))
        return _IncompatibleKeys(missing, unexpected)

    # -- modes and devices ------------------------------------------------------------------
    def train(self, mode: bool = True) -> "Module":
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self) -> "Module":
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> "Module":
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.parameters():
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.zero_()

    def _apply_to_tensors(self, fn: Callable[[Tensor], Tensor]) -> "Module":
        """Replace every parameter and buffer by ``fn`` of it. A tensor shared by several
        modules (tied weights) is converted once and stays shared."""
        done: dict = {}
        for m in self.modules():
            for name, p in m._parameters.items():
                if p is not None:
                    if id(p) not in done:
                        new = fn(p)
                        done[id(p)] = p if new is p else Parameter(new, requires_grad=p.requires_grad)
                    m._parameters[name] = done[id(p)]
            for name, b in m._buffers.items():
                if b is not None:
                    if id(b) not in done:
                        done[id(b)] = fn(b)
                    m._buffers[name] = done[id(b)]
        return self

    def to(self, *args, **kwargs) -> "Module":
        """Move parameters and buffers: ``model.to("cuda")``, ``model.to(ember.float64)``.
        Integer buffers keep their dtype."""
        def move(t: Tensor) -> Tensor:
            if not t.dtype.is_floating_point:
                dev = [a for a in args if not _is_dtype(a)] or ([kwargs["device"]] if "device" in kwargs else [])
                return t.to(dev[0]) if dev else t
            return t.to(*args, **kwargs)
        return self._apply_to_tensors(move)

    def cpu(self) -> "Module":
        return self.to("cpu")

    def cuda(self) -> "Module":
        return self.to("cuda")

    def float(self) -> "Module":
        from .. import dtypes
        return self.to(dtypes.float32)

    def double(self) -> "Module":
        from .. import dtypes
        return self.to(dtypes.float64)

    def apply(self, fn: Callable[["Module"], Any]) -> "Module":
        """Call ``fn`` on every submodule (children first) and self: ``model.apply(init_fn)``."""
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    # -- calling ----------------------------------------------------------------------------
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must implement forward()")

    def __call__(self, *args, **kwargs):
        for hook in self._forward_pre_hooks.values():
            r = hook(self, args)
            if r is not None:
                args = r if isinstance(r, tuple) else (r,)
        out = self.forward(*args, **kwargs)
        for hook in self._forward_hooks.values():
            r = hook(self, args, out)
            if r is not None:
                out = r
        return out

    def register_forward_pre_hook(self, hook) -> "_RemovableHandle":
        """``hook(module, args)``; may return replacement args."""
        return _RemovableHandle(self._forward_pre_hooks, hook)

    def register_forward_hook(self, hook) -> "_RemovableHandle":
        """``hook(module, args, output)``; may return a replacement output."""
        return _RemovableHandle(self._forward_hooks, hook)

    # -- Keras-style training (implemented in ember.training; Module only delegates) -------
    def compile(self, optimizer="adam", loss=None, metrics=None, **kwargs) -> "Module":
        """Attach an optimizer, loss and metrics for ``fit``. ``model.compile("adam", "cross_entropy")``."""
        from ..training import compile_model
        return compile_model(self, optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)

    def fit(self, *args, **kwargs):
        """Train; returns a History. ``model.fit(x, y, epochs=5, batch_size=64)``."""
        from ..training import fit
        return fit(self, *args, **kwargs)

    def evaluate(self, *args, **kwargs):
        """Loss and metrics on data. ``model.evaluate(x_test, y_test)``."""
        from ..training import evaluate
        return evaluate(self, *args, **kwargs)

    def predict(self, *args, **kwargs):
        """Outputs for inputs, batched. ``model.predict(x_test)``."""
        from ..training import predict
        return predict(self, *args, **kwargs)

    def summary(self, *args, **kwargs):
        """A table of layers, output shapes and parameter counts."""
        from ..training import summary
        return summary(self, *args, **kwargs)

    # -- printing ---------------------------------------------------------------------------
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = []
        for name, m in self._modules.items():
            sub = repr(m).replace("\n", "\n  ")
            lines.append(f"({name}): {sub}")
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not lines:
            return head + ")"
        return head + "\n  " + "\n  ".join(lines) + "\n)"

    def __dir__(self):
        return list(super().__dir__()) + list(self._parameters) + list(self._modules) + list(self._buffers)


def _is_dtype(a) -> bool:
    from ..dtypes import DType
    return isinstance(a, DType)


class _IncompatibleKeys(tuple):
    def __new__(cls, missing, unexpected):
        t = super().__new__(cls, (missing, unexpected))
        t.missing_keys, t.unexpected_keys = missing, unexpected
        return t


class _RemovableHandle:
    _next = 0

    def __init__(self, store: dict, hook):
        _RemovableHandle._next += 1
        self.id, self.store = _RemovableHandle._next, store
        store[self.id] = hook

    def remove(self) -> None:
        self.store.pop(self.id, None)
