"""Tensor: an array + device + autograd state. Math methods are bound from the op registry by
``bind_methods`` (the one loop of metaprogramming in ember), so ``x.exp()`` is ``ember.exp(x)``."""
from __future__ import annotations

import numpy as np

from . import dtypes as D
from .device import Device, cpu, device as as_device
from .errors import AutogradError

_object_new = object.__new__


class Tensor:
    """An n-dimensional array with PyTorch semantics. Make one with ``ember.tensor([1., 2.])``."""

    __slots__ = ("_data", "_dev", "_node", "requires_grad", "grad", "_vc", "_base", "_hooks",
                 "_retain", "_param", "_post_hooks", "__weakref__")
    __array_priority__ = 1000  # NumPy defers binary operators to Tensor's reflected ones

    def __init__(self, data, dtype=None, device=None, requires_grad: bool = False):
        from .creation import tensor as make
        t = make(data, dtype=dtype, device=device, requires_grad=requires_grad)
        for s in ("_data", "_dev", "_node", "requires_grad", "grad", "_vc", "_base"):
            setattr(self, s, getattr(t, s))

    @staticmethod
    def _const(value, dtype: D.DType, dev: Device) -> "Tensor":
        from .backends import backend_for
        return _new(backend_for(dev).from_host(np.asarray(value, dtype.np), dev), dev)

    @staticmethod
    def _from_node(node) -> "Tensor":
        """The output of a recorded node, rebuilt for its vjp (keeps create_graph connected)."""
        t = _new(node.out, node.out_dev)
        t._node = node
        t.requires_grad = True
        return t

    # -- metadata ---------------------------------------------------------------------------
    @property
    def shape(self) -> tuple:
        return self._data.shape

    def size(self, dim: int | None = None):
        return self._data.shape if dim is None else self._data.shape[dim]

    @property
    def dtype(self) -> D.DType:
        return D.from_numpy(self._data.dtype)

    @property
    def device(self) -> Device:
        return self._dev

    @property
    def ndim(self) -> int:
        return self._data.ndim

    def dim(self) -> int:
        return self._data.ndim

    def numel(self) -> int:
        return int(self._data.size)

    def element_size(self) -> int:
        return self._data.itemsize

    @property
    def nbytes(self) -> int:
        return int(self._data.nbytes)

    @property
    def is_leaf(self) -> bool:
        return self._node is None

    @property
    def grad_fn(self):
        return self._node

    @property
    def is_cuda(self) -> bool:
        return self._dev.type == "cuda"

    def is_floating_point(self) -> bool:
        return self._data.dtype.kind == "f"

    def is_contiguous(self) -> bool:
        return bool(self._data.flags.c_contiguous)

    def stride(self, dim: int | None = None):
        st = tuple(s // self._data.itemsize for s in self._data.strides)
        return st if dim is None else st[dim]

    def data_ptr(self) -> int:
        return self._data.__array_interface__["data"][0] if self._dev is cpu else int(self._data.data.ptr)

    def __len__(self) -> int:
        if self._data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self._data.shape[0]

    def __iter__(self):
        if self._data.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self._data.shape[0]))

    def __hash__(self) -> int:
        return id(self)

    # -- conversion -------------------------------------------------------------------------
    def numpy(self, *, force: bool = False) -> np.ndarray:
        """The data as a NumPy array (zero-copy on CPU). ``x.detach().numpy()`` if it needs grad."""
        if self.requires_grad and not force:
            raise AutogradError("numpy(): this tensor requires grad; call tensor.detach().numpy() "
                                "to get its values without the graph")
        if self._dev is cpu:
            return self._data
        if not force:
            raise AutogradError(f"numpy(): tensor is on {self._dev}; call .cpu() first")
        return self._host()

    def _host(self) -> np.ndarray:
        if self._dev is cpu:
            return self._data
        from .backends import backend_for
        return backend_for(self._dev).to_host(self._data)

    def __array__(self, dtype=None, copy=None):
        a = self._host()
        if dtype is not None and a.dtype != dtype:
            return a.astype(dtype)
        return a.copy() if copy else a

    def __dlpack__(self, *args, **kwargs):
        return self._data.__dlpack__(*args, **kwargs)

    def __dlpack_device__(self):
        return self._data.__dlpack_device__()

    def item(self):
        if self._data.size != 1:
            raise ValueError(f"item(): only one-element tensors can be converted to Python "
                             f"scalars, this one has shape {tuple(self.shape)}")
        return self._host().reshape(()).item()

    def tolist(self):
        return self._host().tolist()

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __bool__(self) -> bool:
        if self._data.size != 1:
            raise ValueError(f"the truth value of a tensor with {self._data.size} elements is "
                             f"ambiguous; use .any() or .all()")
        return bool(self.item())

    def __index__(self) -> int:
        if self._data.dtype.kind not in "iu" or self._data.size != 1:
            raise TypeError("only integer tensors of a single element can be used as an index")
        return int(self.item())

    def to(self, *args, dtype=None, device=None, copy: bool = False) -> "Tensor":
        """``x.to("cuda")``, ``x.to(ember.float64)``, ``x.to(other_tensor)``."""
        for a in args:
            if isinstance(a, Tensor):
                dtype, device = a.dtype, a.device
            elif isinstance(a, (Device, str)) and not (isinstance(a, str) and a in D._BY_NAME):
                device = a
            else:
                dtype = a
        out = self
        if device is not None and as_device(device) is not self._dev:
            from .ops.movement import to_device
            out = to_device(out, device=as_device(device))
        if dtype is not None and D.as_dtype(dtype) is not out.dtype:
            from .ops.elementwise import cast
            out = cast(out, dtype=D.as_dtype(dtype))
        if copy and out is self:
            out = self.clone()
        return out

    def cpu(self) -> "Tensor":
        return self.to("cpu")

    def cuda(self, index: int | None = None) -> "Tensor":
        return self.to("cuda" if index is None else f"cuda:{index}")

    def float(self) -> "Tensor":
        return self.to(D.float32)

    def double(self) -> "Tensor":
        return self.to(D.float64)

    def half(self) -> "Tensor":
        return self.to(D.float16)

    def long(self) -> "Tensor":
        return self.to(D.int64)

    def int(self) -> "Tensor":
        return self.to(D.int32)

    def bool(self) -> "Tensor":
        return self.to(D.bool_)

    def type_as(self, other: "Tensor") -> "Tensor":
        return self.to(other.dtype)

    # -- autograd ---------------------------------------------------------------------------
    def detach(self) -> "Tensor":
        """A tensor sharing this one's data, cut from the graph."""
        t = _new(self._data, self._dev)
        if self._vc is None:
            self._vc = [0]
        t._vc = self._vc
        return t

    def detach_(self) -> "Tensor":
        self._node = None
        self.requires_grad = False
        return self

    def requires_grad_(self, requires_grad: bool = True) -> "Tensor":
        if requires_grad and self._data.dtype.kind not in "fc":
            raise AutogradError(f"requires_grad_: only floating-point tensors can require "
                                f"gradients, this one is {self.dtype.name}; convert it with .float()")
        if not requires_grad and self._node is not None:
            raise AutogradError("requires_grad_(False) on a non-leaf tensor; use .detach() instead")
        self.requires_grad = requires_grad
        return self

    def backward(self, gradient=None, retain_graph: bool | None = None,
                 create_graph: bool = False, inputs=None) -> None:
        """Accumulate d(self)/d(leaf) into each leaf's ``.grad``. ``loss.backward()``."""
        from .autograd import backward
        backward(self, gradient, retain_graph=retain_graph, create_graph=create_graph, inputs=inputs)

    def register_hook(self, hook):
        """Call ``hook(grad)`` when this tensor's gradient is computed; a non-None return
        replaces the gradient. Returns a handle with ``remove()``."""
        if not self.requires_grad:
            raise AutogradError("register_hook: this tensor does not require grad")
        if self._node is not None:
            if self._node.hooks is None:
                self._node.hooks = []
            hooks = self._node.hooks
        else:
            if self._hooks_or_none() is None:
                self._hooks = []
            hooks = self._hooks
        hooks.append(hook)
        return _HookHandle(hooks, hook)

    def register_post_accumulate_grad_hook(self, hook):
        """Call ``hook(tensor)`` right after backward writes this leaf's ``.grad`` — while the
        rest of backward is still running (data-parallel training starts communication here)."""
        if self._node is not None:
            raise AutogradError("register_post_accumulate_grad_hook: only leaf tensors accumulate .grad")
        if getattr(self, "_post_hooks", None) is None:
            self._post_hooks = []
        self._post_hooks.append(hook)
        return _HookHandle(self._post_hooks, hook)

    def _hooks_or_none(self):
        return getattr(self, "_hooks", None)

    def retain_grad(self) -> None:
        """Keep ``.grad`` for this non-leaf tensor after backward."""
        if self._node is None or getattr(self, "_retain", False):
            return
        import weakref
        ref = weakref.ref(self)

        def keep(g):
            t = ref()
            if t is not None:
                t.grad = g if t.grad is None else t.grad + g

        self._retain = True
        self.register_hook(keep)

    @property
    def retains_grad(self) -> bool:
        return getattr(self, "_retain", False)

    @property
    def data(self) -> "Tensor":
        return self.detach()

    @data.setter
    def data(self, value: "Tensor") -> None:
        self._data = value._data if isinstance(value, Tensor) else np.asarray(value)

    # -- printing ---------------------------------------------------------------------------
    def __repr__(self) -> str:
        from .printing import tensor_repr
        return tensor_repr(self)

    def __format__(self, spec: str) -> str:
        if self._data.ndim == 0 and spec:
            return format(self.item(), spec)
        return repr(self)


class _HookHandle:
    def __init__(self, hooks: list, hook):
        self.hooks, self.hook = hooks, hook

    def remove(self) -> None:
        if self.hook in self.hooks:
            self.hooks.remove(self.hook)


def _new(array, dev: Device) -> Tensor:
    """Wrap a backend array without copying (the hot path: keep it minimal)."""
    t = _object_new(Tensor)
    t._data = array
    t._dev = dev
    t._node = None
    t.requires_grad = False
    t.grad = None
    t._vc = None
    t._base = None
    return t


def bind_methods(namespace: dict) -> None:
    """Bind ember functions as Tensor methods and operators (``x.exp()``, ``x + y``)."""
    def plain(f):  # ops are bound through their dispatch closure (a real function)
        return getattr(f, "fn", f)
    for name in METHODS:
        setattr(Tensor, name, plain(namespace[name]))
    Tensor.__getitem__ = namespace["getitem"]
    Tensor.__setitem__ = namespace["setitem"]
    where = namespace["where"]
    Tensor.where = lambda self, condition, other: where(condition, self, other)
    transpose = namespace["transpose"]
    permute = namespace["permute"]
    Tensor.T = property(lambda self: permute(self, *range(self.ndim - 1, -1, -1)))
    Tensor.mT = property(lambda self: transpose(self, -2, -1))
    for dunder, fn_name in OPERATORS.items():
        setattr(Tensor, dunder, plain(namespace[fn_name]))
    for dunder, fn_name in REFLECTED.items():
        fn = plain(namespace[fn_name])
        setattr(Tensor, dunder, (lambda f: lambda self, other: f(other, self))(fn))


METHODS = (
    "neg abs exp log log1p expm1 sqrt rsqrt sin cos tanh sigmoid relu gelu silu erf floor ceil "
    "round sign reciprocal logical_not isnan isinf isfinite add sub mul div floor_divide remainder "
    "pow maximum minimum eq ne lt le gt ge logical_and logical_or logical_xor clamp clip "
    "sum mean prod max min amax amin argmax argmin var std logsumexp cumsum all any softmax "
    "log_softmax reshape view view_as permute transpose expand expand_as broadcast_to squeeze "
    "unsqueeze flatten unflatten flip gather scatter_add index_select masked_fill tril triu "
    "split chunk unbind matmul contiguous clone square norm repeat narrow movedim lerp "
    "bitwise_and bitwise_or bitwise_xor bitwise_not "
    "add_ sub_ mul_ div_ pow_ zero_ fill_ clamp_ copy_ neg_ exp_ sqrt_ masked_fill_ uniform_ "
    "normal_ addcmul_ addcdiv_ lerp_"
).split()

OPERATORS = {
    "__add__": "add", "__sub__": "sub", "__mul__": "mul", "__truediv__": "div",
    "__floordiv__": "floor_divide", "__mod__": "remainder", "__pow__": "pow",
    "__matmul__": "matmul", "__neg__": "neg", "__abs__": "abs", "__eq__": "eq", "__ne__": "ne",
    "__lt__": "lt", "__le__": "le", "__gt__": "gt", "__ge__": "ge", "__and__": "bitwise_and",
    "__or__": "bitwise_or", "__xor__": "bitwise_xor", "__invert__": "bitwise_not",
    "__iadd__": "iadd", "__isub__": "isub", "__imul__": "imul", "__itruediv__": "itruediv",
}
REFLECTED = {
    "__radd__": "add", "__rsub__": "sub", "__rmul__": "mul", "__rtruediv__": "div",
    "__rfloordiv__": "floor_divide", "__rmod__": "remainder", "__rpow__": "pow",
    "__rmatmul__": "matmul",
}
