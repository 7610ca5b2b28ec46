"""ember: a small deep-learning framework. Eager tensors with PyTorch semantics and autograd.

>>> import ember as em
>>> x = em.tensor([[1., 2.], [3., 4.]], requires_grad=True)
>>> (x @ x.T).relu().sum().backward(); x.grad
"""
from . import dtypes
from .dtypes import (DType, bool_ as bool, float16, float32, float64, get_default_dtype, int32, int64,
                     set_default_dtype, uint8)
from .dtypes import float16 as half, float32 as float, float64 as double, int64 as long
from .device import Device, device
from .errors import AutogradError, DeviceError, DTypeError, EmberError, ShapeError
from .tensor import Tensor, bind_methods as _bind_methods
from . import ops
from .ops import *  # noqa: F401,F403  public functions: ember.exp, ember.cat, ...
from .ops import REGISTRY
from .creation import (arange, as_tensor, empty, empty_like, eye, from_dlpack, from_numpy, full,
                       full_like, linspace, ones, ones_like, rand, rand_like, randint, randn,
                       randn_like, randperm, tensor, zeros, zeros_like)
from .random import Generator, get_rng_state, manual_seed, seed, set_rng_state
from .autograd import (backward, detect_anomaly, enable_grad, grad, is_grad_enabled, no_grad,
                       set_grad_enabled, value_and_grad)

_bind_methods(vars(ops))

from . import data, nn, optim, random, serialization  # noqa: E402  (need the bound Tensor methods)
from .serialization import load, save  # noqa: E402

__version__ = "0.1.0"
from . import callbacks, metrics, training  # noqa: E402  (Keras-style API, issue 5)
from .compiler import jit  # noqa: E402  (the compiler traces the ops above)
