"""compile / fit / evaluate / predict: the Keras-style loop over ember's eager (or jit) step.

Example:
    model.compile(optimizer="adam", loss="cross_entropy", metrics=["accuracy"])
    history = model.fit(x, y, epochs=5, batch_size=64, validation_split=0.1)
    loss, acc = model.evaluate(x_test, y_test); probs = model.predict(x_test).softmax(-1)
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

import numpy as np

import ember
from ..autograd import no_grad
from ..data import DataLoader, Dataset, Subset, TensorDataset
from ..errors import EmberError, ShapeError
from ..tensor import Tensor
from . import metrics as metrics_mod
from .callbacks import CallbackList
from .history import History
from .progress import Progbar, ProgbarLogger

__all__ = ["compile_model", "fit", "evaluate", "predict"]

_OPTIMIZERS = {"adam": "Adam", "adamw": "AdamW", "sgd": "SGD", "rmsprop": "RMSprop", "adagrad": "Adagrad"}
_LOSSES = {"cross_entropy": "CrossEntropyLoss", "nll": "NLLLoss", "mse": "MSELoss", "l1": "L1Loss",
           "huber": "HuberLoss", "smooth_l1": "SmoothL1Loss", "bce": "BCELoss",
           "bce_with_logits": "BCEWithLogitsLoss", "kl_div": "KLDivLoss"}


@dataclass
class Compiled:
    """What ``compile`` attached to a model (``model._compiled``)."""

    optimizer: Any
    loss: Callable | None
    metrics: list[metrics_mod.Metric]
    jit: bool
    step: Callable | None = None  # the train step, built on first use
    step_mode: str = ""  # says how the step runs, printed once by fit


# ---------------------------------------------------------------- compile

def _make_optimizer(optimizer: Any, model) -> Any:
    if isinstance(optimizer, str):
        name = _OPTIMIZERS.get(optimizer.lower())
        if name is None:
            raise EmberError(f"compile: unknown optimizer {optimizer!r}; use one of {sorted(_OPTIMIZERS)} "
                             "or an optimizer object such as ember.optim.SGD(model.parameters(), lr=0.1)")
        return getattr(ember.optim, name)(model.parameters())
    if not hasattr(optimizer, "step") or not hasattr(optimizer, "param_groups"):
        raise EmberError(f"compile: optimizer must be a name or an ember.optim optimizer, got "
                         f"{type(optimizer).__name__}")
    return optimizer


def _make_loss(loss: Any) -> Callable | None:
    if loss is None or callable(loss):
        return loss
    if isinstance(loss, str):
        name = _LOSSES.get(loss)
        if name is None:
            raise EmberError(f"compile: unknown loss {loss!r}; use one of {sorted(_LOSSES)}, an "
                             "ember.nn loss module or a function (output, target) -> scalar tensor")
        return getattr(ember.nn, name)()
    raise EmberError(f"compile: loss must be a name, an ember.nn loss module or a function, "
                     f"got {type(loss).__name__}")


def compile_model(model, optimizer: Any = "adam", loss: Any = None, metrics: Iterable[Any] | None = None,
                  jit: bool = True):
    """Attach an optimizer, a loss and metrics to ``model`` for fit/evaluate; returns the model.
    The optimizer is a name ("adam", "adamw", "sgd", "rmsprop", "adagrad": created over
    ``model.parameters()`` with its defaults) or an ember.optim object, and is kept as
    ``model.optimizer``. ``jit=True`` compiles the train step with ``ember.jit`` when available.

    Example: model.compile("adam", "cross_entropy", metrics=["accuracy", "f1"])
    """
    if isinstance(metrics, (str, metrics_mod.Metric)):
        metrics = [metrics]
    loss_fn = _make_loss(loss)
    logits_binary = isinstance(loss_fn, ember.nn.BCEWithLogitsLoss)
    built = [metrics_mod.get(m, logits_binary=logits_binary) for m in (metrics or [])]
    names = [m.name for m in built]
    clash = {n for n in names if names.count(n) > 1 or n == "loss"}
    if clash:
        raise EmberError(f"compile: metric names must be unique and not 'loss', got {names}; "
                         "give metrics distinct names with name=...")
    model.optimizer = _make_optimizer(optimizer, model)
    model.stop_training = False
    model._compiled = Compiled(model.optimizer, loss_fn, built, bool(jit))
    return model


def _compiled(model, who: str, need_loss: bool = True) -> Compiled:
    c = getattr(model, "_compiled", None)
    if c is None:
        raise EmberError(f"{who}: the model is not compiled; call model.compile(optimizer=\"adam\", "
                         f"loss=\"cross_entropy\") first")
    if need_loss and c.loss is None:
        raise EmberError(f"{who}: the model was compiled without a loss; call model.compile(..., loss=...)")
    return c


# ---------------------------------------------------------------- data

def _tensor(a: Any, name: str) -> Tensor:
    if isinstance(a, Tensor):
        return a
    try:
        return ember.as_tensor(np.asarray(a) if not isinstance(a, np.ndarray) else a)
    except Exception as e:
        raise EmberError(f"fit: {name} must be a tensor or an array, got {type(a).__name__} ({e})") from None


def _dataset(x: Any, y: Any, who: str) -> Dataset:
    """Arrays/tensors become a TensorDataset; a Dataset is used as is."""
    if isinstance(x, Dataset):
        if y is not None:
            raise EmberError(f"{who}: y must be None when x is a Dataset (it yields (input, target) pairs)")
        return x
    if x is None:
        raise EmberError(f"{who}: no data; pass x (and y), a Dataset or a DataLoader")
    x = _tensor(x, "x")
    if y is None:
        return TensorDataset(x)
    y = _tensor(y, "y")
    if not x.shape or not y.shape or x.shape[0] != y.shape[0]:
        raise ShapeError(f"{who}: x and y need the same number of samples (first dimension), got "
                         f"x {tuple(x.shape)} and y {tuple(y.shape)}")
    return TensorDataset(x, y)


def _loader(x: Any, y: Any, batch_size: int, shuffle: bool, who: str) -> DataLoader:
    if isinstance(x, DataLoader):
        if y is not None:
            raise EmberError(f"{who}: y must be None when x is a DataLoader (it yields (input, target) batches)")
        return x
    return DataLoader(_dataset(x, y, who), batch_size=batch_size, shuffle=shuffle)


def _split_off_validation(x: Any, y: Any, split: float) -> tuple[Dataset, Dataset]:
    """The last ``split`` fraction of the samples, taken before any shuffling (as Keras)."""
    if not 0.0 < split < 1.0:
        raise EmberError(f"fit: validation_split must be in [0, 1), got {split}")
    if isinstance(x, DataLoader):
        raise EmberError("fit: validation_split needs arrays or a Dataset, not a DataLoader; "
                         "pass validation_data=<another DataLoader> instead")
    data = _dataset(x, y, "fit")
    n = len(data)
    cut = int(math.ceil(n * (1.0 - split)))
    if cut == n or cut == 0:
        raise EmberError(f"fit: validation_split={split} of {n} samples leaves an empty training or "
                         "validation set; use a larger data set or another split")
    return Subset(data, range(cut)), Subset(data, range(cut, n))


def _validation_loader(validation_data: Any, batch_size: int) -> DataLoader:
    if isinstance(validation_data, (DataLoader, Dataset)):
        return _loader(validation_data, None, batch_size, False, "fit")
    if isinstance(validation_data, (tuple, list)) and len(validation_data) == 2:
        return _loader(validation_data[0], validation_data[1], batch_size, False, "fit")
    raise EmberError(f"fit: validation_data must be (x_val, y_val), a Dataset or a DataLoader, "
                     f"got {type(validation_data).__name__}")


def _steps(loader: DataLoader, limit: int | None) -> int | None:
    try:
        n = len(loader)
    except TypeError:
        return limit
    return n if limit is None else min(n, limit)


def _batches(loader: DataLoader, limit: int | None) -> Iterator[Any]:
    for i, batch in enumerate(loader):
        if limit is not None and i >= limit:
            return
        yield batch


class _Placement:
    """Moves batches where the model is: its device, and its float dtype for float inputs."""

    def __init__(self, model):
        params = list(model.parameters())
        self.device = params[0].device if params else None
        floats = [p.dtype for p in params if p.dtype.is_floating_point]
        self.dtype = floats[0] if floats else None

    def _move(self, t: Any, cast: bool) -> Any:
        t = _tensor(t, "a batch")
        if self.device is not None and t.device != self.device:
            t = t.to(self.device)
        if cast and self.dtype is not None and t.dtype.is_floating_point and t.dtype != self.dtype:
            t = t.to(self.dtype)
        return t

    def __call__(self, batch: Any) -> tuple[tuple, Any]:
        """(model inputs, target or None): a batch (x, y) or (x1, x2, ..., y), or x alone."""
        if not isinstance(batch, (tuple, list)):
            return (self._move(batch, True),), None
        if len(batch) == 1:
            return (self._move(batch[0], True),), None
        return tuple(self._move(b, True) for b in batch[:-1]), self._move(batch[-1], False)


def _verbosity(verbose: Any) -> int:
    if verbose == "auto":
        return 1
    if verbose not in (0, 1, 2):
        raise EmberError(f"verbose must be 'auto', 0 (silent), 1 (progress bar) or 2 (one line per epoch), "
                         f"got {verbose!r}")
    return int(verbose)


# ---------------------------------------------------------------- the steps

class _Tracker:
    """Sample-weighted mean loss and the stateful metrics over one pass."""

    def __init__(self, metrics: list[metrics_mod.Metric]):
        self.metrics, self.loss_sum, self.count = metrics, 0.0, 0
        for m in metrics:
            m.reset_state()

    def update(self, loss: Tensor, out: Any, target: Any) -> None:
        n = int(target.shape[0]) if target is not None and target.shape else 1
        self.loss_sum += float(loss.item()) * n
        self.count += n
        for m in self.metrics:
            m.update_state(target, out)

    def logs(self) -> dict[str, float]:
        logs = {"loss": self.loss_sum / self.count if self.count else float("nan")}
        logs.update((m.name, m.result()) for m in self.metrics)
        return logs


def _eager_step(model, c: Compiled) -> Callable:
    def train_step(inputs: tuple, target: Tensor):
        out = model(*inputs)
        loss = c.loss(out, target)
        c.optimizer.zero_grad()
        loss.backward()
        c.optimizer.step()
        return loss.detach(), out.detach()
    return train_step


def _train_step(model, c: Compiled) -> Callable:
    """The step fit runs: ``ember.jit`` of the eager step when asked for and available (if
    compiling fails on the first batch, fit falls back to eager and says why)."""
    if c.step is not None:
        return c.step
    eager = _eager_step(model, c)
    if not c.jit:
        c.step, c.step_mode = eager, "train step: eager (compile(jit=False))"
    elif not hasattr(ember, "jit"):
        c.step, c.step_mode = eager, "train step: eager (ember.jit is not available)"
    else:
        compiled = ember.jit(eager)

        def first_call(inputs, target):
            try:
                result = compiled(inputs, target)
                c.step = compiled
                return result
            except Exception as e:  # any compiler limitation must not stop training
                c.step = eager
                c.step_mode = f"train step: eager (ember.jit failed: {type(e).__name__}: {e})"
                print(f"ember: {c.step_mode}", file=sys.stderr)
                return eager(inputs, target)
        c.step, c.step_mode = first_call, "train step: compiled with ember.jit"
    return c.step


def _run_eval(model, c: Compiled, loader: DataLoader, place: _Placement, steps: int | None = None,
              bar: Progbar | None = None) -> dict[str, float]:
    tracker = _Tracker(c.metrics)
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            for i, batch in enumerate(_batches(loader, steps)):
                inputs, target = place(batch)
                if target is None:
                    raise EmberError("evaluate: the data has no targets; pass y, or (x, y) batches")
                out = model(*inputs)
                tracker.update(c.loss(out, target), out, target)
                if bar is not None:
                    bar.update(i + 1, tracker.logs())
    finally:
        model.train(was_training)
    return tracker.logs()


# ---------------------------------------------------------------- public API

def fit(model, x: Any = None, y: Any = None, batch_size: int = 32, epochs: int = 1, verbose: Any = "auto",
        callbacks: Iterable[Any] | None = None, validation_split: float = 0.0, validation_data: Any = None,
        shuffle: bool = True, initial_epoch: int = 0, steps_per_epoch: int | None = None,
        distributed: bool = False) -> History:
    """Train for ``epochs`` epochs (from ``initial_epoch``); returns a History.

    x, y: tensors or arrays; or x a Dataset or DataLoader of (input, target) batches (then
    batch_size and shuffle are the loader's). validation_split takes the last fraction of the
    samples before shuffling; validation_data is (x_val, y_val), a Dataset or a DataLoader.
    steps_per_epoch caps the batches per epoch (each epoch starts a fresh pass over the data).
    verbose: "auto"/1 progress bar on a terminal (one line per epoch when piped), 2 one line
    per epoch, 0 silent.
    distributed: data-parallel over the MPI ranks (run under ``mpiexec -n N`` or ``ember run``):
    each rank trains on its shard of every epoch (batch_size is per rank), gradients are averaged
    in backward, logged metrics are averaged over ranks, and only rank 0 prints and runs the
    callbacks that write files (``writes_files``). The step runs eagerly: the gradient all-reduce
    lives in backward hooks, which a compiled step would bypass.

    Example: history = model.fit(x, y, epochs=10, validation_split=0.1, callbacks=[EarlyStopping()])
    """
    c = _compiled(model, "fit")
    verbose = _verbosity(verbose)
    if validation_split and validation_data is not None:
        raise EmberError("fit: give validation_split or validation_data, not both")
    if validation_split:
        train_set, val_set = _split_off_validation(x, y, validation_split)
        loader = _loader(train_set, None, batch_size, shuffle, "fit")
        val_loader = _loader(val_set, None, batch_size, False, "fit")
    else:
        loader = _loader(x, y, batch_size, shuffle, "fit")
        val_loader = None if validation_data is None else _validation_loader(validation_data, batch_size)
    user = list(callbacks or [])
    if distributed:
        import ember.distributed as dist
        dist.init()
        ddp, loader = dist.prepare(model, loader)
        step, mode = _eager_step(ddp, c), f"train step: eager, data-parallel over {dist.world_size()} ranks"
        if not dist.is_main_process():
            verbose, user = 0, [cb for cb in user if not getattr(cb, "writes_files", False)]
    else:
        step, mode = _train_step(model, c), None
    steps = _steps(loader, steps_per_epoch)
    place = _Placement(model)

    history = History()
    extra = [ProgbarLogger(verbose)] if verbose else []
    cbs = CallbackList(user + [history] + extra, model, {"epochs": epochs, "steps": steps, "verbose": verbose})
    if verbose:
        print(f"ember: {mode or c.step_mode}")
    was_training = model.training
    model.stop_training = False
    logs: dict[str, float] = {}
    cbs.on_train_begin()
    for epoch in range(initial_epoch, epochs):
        model.train()
        tracker = _Tracker(c.metrics)
        if distributed:
            loader.sampler.set_epoch(epoch)
        cbs.on_epoch_begin(epoch)
        for i, batch in enumerate(_batches(loader, steps_per_epoch)):
            cbs.on_train_batch_begin(i)
            inputs, target = place(batch)
            if target is None:
                raise EmberError("fit: the data has no targets; pass y, or a Dataset/DataLoader of (x, y)")
            loss, out = step(inputs, target)
            tracker.update(loss, out, target)
            cbs.on_train_batch_end(i, tracker.logs())
            if model.stop_training:
                break
        if tracker.count == 0:
            raise EmberError("fit: the training data gave no batches; check its length and steps_per_epoch")
        logs = tracker.logs()
        if distributed:
            logs = _average_over_ranks(logs, tracker.count)
        if val_loader is not None:
            logs.update({f"val_{k}": v for k, v in _run_eval(model, c, val_loader, place).items()})
        cbs.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    cbs.on_train_end(logs)
    model.train(was_training)
    model.history = history
    return history


def _average_over_ranks(logs: dict[str, float], count: int) -> dict[str, float]:
    """Logged values averaged over ranks, weighted by each rank's batch count (exact for the
    loss and accuracy-like metrics; an approximation for precision/recall/F1)."""
    import ember.distributed as dist
    keys = list(logs)  # same order on every rank: same code, same metrics
    t = ember.tensor([float(count)] + [logs[k] * count for k in keys], dtype=ember.float64)
    dist.all_reduce(t)
    total = t[0].item()
    return {k: t[i + 1].item() / total for i, k in enumerate(keys)}


def evaluate(model, x: Any = None, y: Any = None, batch_size: int = 32, verbose: Any = "auto",
             steps: int | None = None, return_dict: bool = False):
    """Loss and metrics over the data, in eval mode without gradients: the loss alone when
    compiled without metrics, else [loss, *metrics], or a dict with ``return_dict=True``.

    Example: loss, acc = model.evaluate(x_test, y_test)
    """
    c = _compiled(model, "evaluate")
    verbose = _verbosity(verbose)
    loader = _loader(x, y, batch_size, False, "evaluate")
    bar = Progbar(_steps(loader, steps), "evaluate", live=None if verbose == 1 else False) if verbose else None
    logs = _run_eval(model, c, loader, _Placement(model), steps, bar)
    if bar is not None:
        bar.finish(logs)
    if return_dict:
        return logs
    return logs["loss"] if len(logs) == 1 else list(logs.values())


def predict(model, x: Any, batch_size: int = 32, verbose: Any = "auto", steps: int | None = None):
    """The model's outputs for ``x`` (tensor/array, Dataset or DataLoader), computed in
    batches in eval mode without gradients and concatenated along the first axis; a tuple
    when the model returns several outputs. Targets in (x, y) batches are ignored.

    Example: classes = model.predict(x_test).argmax(-1)
    """
    verbose = _verbosity(verbose)
    loader = _loader(x, None, batch_size, False, "predict")
    bar = Progbar(_steps(loader, steps), "predict", live=None if verbose == 1 else False) if verbose else None
    place, outs = _Placement(model), []
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            for i, batch in enumerate(_batches(loader, steps)):
                inputs, _ = place(batch)
                outs.append(model(*inputs))
                if bar is not None:
                    bar.update(i + 1)
    finally:
        model.train(was_training)
    if bar is not None:
        bar.finish()
    if not outs:
        raise EmberError("predict: the data gave no batches")
    if isinstance(outs[0], (tuple, list)):
        return tuple(ember.cat([o[k] for o in outs]) for k in range(len(outs[0])))
    return ember.cat(outs)
