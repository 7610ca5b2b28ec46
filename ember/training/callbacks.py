"""Callbacks for ``fit``, with Keras's names, arguments and hook names.

A callback sees ``self.model`` and ``self.params`` ({"epochs", "steps", "verbose"}) and may
set ``self.model.stop_training = True``. Epoch logs hold "loss", the metrics and their
"val_" forms; callbacks may add entries (the lr callbacks add "learning_rate").

Example: model.fit(x, y, epochs=50, callbacks=[EarlyStopping(patience=3, restore_best_weights=True)])
"""
from __future__ import annotations

import csv
import math
import os
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable

from ..errors import EmberError
from .tensorboard import EventWriter

__all__ = ["Callback", "CallbackList", "EarlyStopping", "ModelCheckpoint", "LearningRateScheduler",
           "ReduceLROnPlateau", "CSVLogger", "TensorBoard", "TerminateOnNaN"]


class Callback:
    """Base class; override the hooks you need. Every hook gets a ``logs`` dict (or None).
    ``writes_files = True`` marks a callback that only rank 0 runs under ``fit(distributed=True)``."""

    writes_files = False

    def __init__(self):
        self.model = None
        self.params: dict[str, Any] = {}

    def set_model(self, model) -> None:
        self.model = model

    def set_params(self, params: dict[str, Any]) -> None:
        self.params = params

    def on_train_begin(self, logs: dict | None = None) -> None: ...
    def on_train_end(self, logs: dict | None = None) -> None: ...
    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None: ...
    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None: ...
    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None: ...
    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None: ...


class CallbackList:
    """Calls each hook on every callback in order. An ember lr scheduler object in the list is
    wrapped in ``LearningRateScheduler`` (stepped once per epoch)."""

    def __init__(self, callbacks: Iterable[Any], model, params: dict[str, Any]):
        from ..optim.lr_scheduler import LRScheduler
        self.callbacks = []
        for cb in callbacks:
            if isinstance(cb, LRScheduler):
                cb = LearningRateScheduler(cb)
            if not isinstance(cb, Callback):
                raise EmberError(f"fit: callbacks must be ember.callbacks.Callback objects or ember.optim "
                                 f"lr schedulers, got {type(cb).__name__}")
            cb.set_model(model)
            cb.set_params(params)
            self.callbacks.append(cb)

    def __getattr__(self, hook: str) -> Callable:
        if not hook.startswith("on_"):
            raise AttributeError(hook)

        def call(*args):
            for cb in self.callbacks:
                getattr(cb, hook)(*args)
        return call


# ---------------------------------------------------------------- monitoring a logged value

def _resolve_mode(mode: str, monitor: str, who: str) -> str:
    if mode not in ("auto", "min", "max"):
        raise EmberError(f"{who}: mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode != "auto":
        return mode
    higher_is_better = ("acc", "precision", "recall", "f1", "auc")
    return "max" if any(w in monitor for w in higher_is_better) else "min"


def _improves(mode: str, current: float, reference: float, min_delta: float = 0.0) -> bool:
    """current beats reference by more than min_delta in the direction of ``mode``."""
    return current - min_delta > reference if mode == "max" else current + min_delta < reference


def _monitored(logs: dict | None, monitor: str, who: str) -> float | None:
    value = (logs or {}).get(monitor)
    if value is None:
        warnings.warn(f"{who}: the monitored value {monitor!r} is not in the logs (available: "
                      f"{sorted(logs or {})}); pass validation data for 'val_*' keys or change monitor",
                      stacklevel=3)
        return None
    return float(value)


def _lrs(model) -> list[dict]:
    opt = getattr(model, "optimizer", None)
    if opt is None:
        raise EmberError("learning-rate callback: the model has no optimizer; call model.compile(...) first")
    return opt.param_groups


# ---------------------------------------------------------------- the callbacks

class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience``
    epochs; optionally put back the weights of the best epoch when training ends.

    Example: EarlyStopping(monitor="val_loss", patience=5, restore_best_weights=True)
    """

    def __init__(self, monitor: str = "val_loss", min_delta: float = 0.0, patience: int = 0,
                 verbose: int = 0, mode: str = "auto", baseline: float | None = None,
                 restore_best_weights: bool = False, start_from_epoch: int = 0):
        super().__init__()
        self.monitor, self.min_delta, self.patience = monitor, abs(min_delta), patience
        self.verbose, self.baseline, self.restore_best_weights = verbose, baseline, restore_best_weights
        self.start_from_epoch = start_from_epoch
        self.mode = _resolve_mode(mode, monitor, "EarlyStopping")

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.wait, self.stopped_epoch, self.best_epoch = 0, 0, 0
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_weights = None

    def _snapshot(self) -> dict:
        return {k: v.clone() for k, v in self.model.state_dict().items()}

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        current = _monitored(logs, self.monitor, "EarlyStopping")
        if current is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights, self.best_epoch = self._snapshot(), epoch  # nothing better seen yet
        self.wait += 1
        if _improves(self.mode, current, self.best, self.min_delta):
            self.best, self.best_epoch = current, epoch
            if self.restore_best_weights:
                self.best_weights = self._snapshot()
            # The patience restarts only when the value also beats the baseline.
            if self.baseline is None or _improves(self.mode, current, self.baseline, self.min_delta):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs: dict | None = None) -> None:
        if self.stopped_epoch > 0 and self.verbose > 0:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                print(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}")
            self.model.load_state_dict(self.best_weights)


class ModelCheckpoint(Callback):
    """Save the model after every epoch, or only when ``monitor`` improved (``save_best_only``).

    ``filepath`` may hold ``{epoch}`` (1-based) and any log key with a format, e.g.
    ``"ckpt/model-{epoch:02d}-{val_loss:.2f}.safetensors"``. ``save_weights_only=True`` writes
    ``model.state_dict()`` (load it with ``model.load_state_dict(ember.load(path))``); otherwise a
    training checkpoint with the optimizer, the epoch and the RNG state
    (``ember.serialization.load_checkpoint``). Writes are atomic; folders are created.

    Example: ModelCheckpoint("best.safetensors", monitor="val_accuracy", save_best_only=True)
    """

    writes_files = True

    def __init__(self, filepath: str | os.PathLike, monitor: str = "val_loss", verbose: int = 0,
                 save_best_only: bool = False, save_weights_only: bool = False, mode: str = "auto",
                 initial_value_threshold: float | None = None):
        super().__init__()
        self.filepath, self.monitor, self.verbose = os.fspath(filepath), monitor, verbose
        self.save_best_only, self.save_weights_only = save_best_only, save_weights_only
        self.mode = _resolve_mode(mode, monitor, "ModelCheckpoint")
        default = math.inf if self.mode == "min" else -math.inf
        self.best = default if initial_value_threshold is None else initial_value_threshold

    def _path(self, epoch: int, logs: dict) -> Path:
        try:
            return Path(self.filepath.format(epoch=epoch + 1, **logs))
        except (KeyError, IndexError, ValueError) as e:
            raise EmberError(f"ModelCheckpoint: cannot format filepath {self.filepath!r} ({type(e).__name__}: "
                             f"{e}); it may use {{epoch}} and the log keys {sorted(logs)}") from None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        if self.save_best_only:
            current = _monitored(logs, self.monitor, "ModelCheckpoint")
            if current is None or not _improves(self.mode, current, self.best):
                return
            if self.verbose > 0:
                print(f"Epoch {epoch + 1}: {self.monitor} improved from {self.best:.5f} to {current:.5f}")
            self.best = current
        self._save(self._path(epoch, logs), epoch)

    def _save(self, path: Path, epoch: int) -> None:
        from ..serialization import save, save_checkpoint
        path.parent.mkdir(parents=True, exist_ok=True)
        if self.save_weights_only:
            save(self.model.state_dict(), path)
        else:
            save_checkpoint(path, model=self.model, optimizer=getattr(self.model, "optimizer", None),
                            epoch=epoch + 1)
        if self.verbose > 0:
            print(f"Epoch {epoch + 1}: saved model to {path}")


class LearningRateScheduler(Callback):
    """Set the learning rate each epoch from ``schedule``: a function ``(epoch, lr) -> lr``
    (applied to every parameter group at the start of the epoch), or an ember lr scheduler
    object, stepped at the end of each epoch (``ReduceLROnPlateau`` gets ``logs[monitor]``).
    The lr used in the epoch is logged as "learning_rate".

    Example: LearningRateScheduler(lambda epoch, lr: lr * 0.9)
    """

    def __init__(self, schedule: Callable | Any, verbose: int = 0, monitor: str = "val_loss"):
        super().__init__()
        self.schedule, self.verbose, self.monitor = schedule, verbose, monitor
        self._is_function = not hasattr(schedule, "step")
        if self._is_function and not callable(schedule):
            raise EmberError(f"LearningRateScheduler: schedule must be a function (epoch, lr) -> lr or an "
                             f"ember.optim.lr_scheduler object, got {type(schedule).__name__}")

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        groups = _lrs(self.model)
        if self._is_function:
            lr = float(self.schedule(epoch, float(groups[0]["lr"])))
            if not math.isfinite(lr):
                raise EmberError(f"LearningRateScheduler: the schedule returned lr={lr} at epoch {epoch}")
            for g in groups:
                g["lr"] = lr
            if self.verbose > 0:
                print(f"Epoch {epoch + 1}: LearningRateScheduler setting learning rate to {lr}")
        self._lr = float(groups[0]["lr"])

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is not None:
            logs["learning_rate"] = self._lr
        if self._is_function:
            return
        from ..optim.lr_scheduler import ReduceLROnPlateau as TorchStylePlateau
        if isinstance(self.schedule, TorchStylePlateau):
            current = _monitored(logs, self.monitor, "LearningRateScheduler")
            if current is not None:
                self.schedule.step(current)
        else:
            self.schedule.step()


class ReduceLROnPlateau(Callback):
    """Multiply the lr by ``factor`` when ``monitor`` has not improved by more than
    ``min_delta`` for ``patience`` epochs (Keras semantics), then wait ``cooldown`` epochs.

    Example: ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=2, min_lr=1e-5)
    """

    def __init__(self, monitor: str = "val_loss", factor: float = 0.1, patience: int = 10,
                 verbose: int = 0, mode: str = "auto", min_delta: float = 1e-4, cooldown: int = 0,
                 min_lr: float = 0.0):
        super().__init__()
        if not 0 < factor < 1:
            raise EmberError(f"ReduceLROnPlateau: factor must be in (0, 1), got {factor}")
        self.monitor, self.factor, self.patience, self.verbose = monitor, factor, patience, verbose
        self.min_delta, self.cooldown, self.min_lr = min_delta, cooldown, min_lr
        self.mode = _resolve_mode(mode, monitor, "ReduceLROnPlateau")
        self.wait, self.cooldown_counter = 0, 0
        self.best = math.inf if self.mode == "min" else -math.inf

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        groups = _lrs(self.model)
        if logs is not None:
            logs["learning_rate"] = float(groups[0]["lr"])
        current = _monitored(logs, self.monitor, "ReduceLROnPlateau")
        if current is None:
            return
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if _improves(self.mode, current, self.best, self.min_delta):
            self.best, self.wait = current, 0
        elif self.cooldown_counter == 0:
            self.wait += 1
            if self.wait >= self.patience:
                for g in groups:
                    g["lr"] = max(float(g["lr"]) * self.factor, self.min_lr)
                if self.verbose > 0:
                    print(f"Epoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {groups[0]['lr']}")
                self.cooldown_counter, self.wait = self.cooldown, 0


class CSVLogger(Callback):
    """One CSV row per epoch: ``epoch`` (0-based, as Keras) and every log value. With
    ``append=True`` rows are added to an existing file (no second header), e.g. when resuming.

    Example: CSVLogger("runs/metrics.csv", append=True)
    """

    writes_files = True

    def __init__(self, filename: str | os.PathLike, separator: str = ",", append: bool = False):
        super().__init__()
        self.filename, self.sep, self.append = Path(filename), separator, append
        self.keys: list[str] | None = None
        self._file = None

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.filename.parent.mkdir(parents=True, exist_ok=True)
        self._header = True
        if self.append and self.filename.exists() and self.filename.stat().st_size > 0:
            with open(self.filename, newline="") as f:
                first = next(csv.reader(f, delimiter=self.sep), None)
            self.keys, self._header = (first[1:] if first else None), False
        self._file = open(self.filename, "a" if self.append else "w", newline="")
        self._writer = csv.writer(self._file, delimiter=self.sep)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        if self.keys is None:
            self.keys = sorted(logs)
        if self._header:
            self._writer.writerow(["epoch", *self.keys])
            self._header = False
        self._writer.writerow([epoch, *(logs.get(k, "NA") for k in self.keys)])
        self._file.flush()

    def on_train_end(self, logs: dict | None = None) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class TensorBoard(Callback):
    """Write the epoch logs as TensorBoard scalars: ``log_dir/train`` gets "epoch_loss",
    "epoch_accuracy", ... and ``log_dir/validation`` the same tags from the "val_" values, so
    TensorBoard draws the two runs on one chart. ``update_freq=N`` also writes "batch_*"
    scalars every N batches. View with ``tensorboard --logdir log_dir``.

    Example: TensorBoard(log_dir="runs/digits/tb")
    """

    writes_files = True

    def __init__(self, log_dir: str | os.PathLike = "logs", update_freq: str | int = "epoch"):
        super().__init__()
        if update_freq != "epoch" and not (isinstance(update_freq, int) and update_freq > 0):
            raise EmberError(f"TensorBoard: update_freq must be 'epoch' or a positive int, got {update_freq!r}")
        self.log_dir, self.update_freq = Path(log_dir), update_freq
        self._writers: dict[str, EventWriter] = {}
        self._batches = 0

    def _writer(self, run: str) -> EventWriter:
        if run not in self._writers:
            self._writers[run] = EventWriter(self.log_dir / run)
        return self._writers[run]

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self._batches += 1
        if self.update_freq != "epoch" and self._batches % self.update_freq == 0 and logs:
            self._writer("train").add_scalars({f"batch_{k}": v for k, v in logs.items()}, self._batches)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        train, val = {}, {}
        for k, v in (logs or {}).items():
            if isinstance(v, (int, float)):
                if k.startswith("val_"):
                    val[f"epoch_{k[4:]}"] = v
                else:
                    train[f"epoch_{k}"] = v
        if train:
            self._writer("train").add_scalars(train, epoch)
        if val:
            self._writer("validation").add_scalars(val, epoch)

    def on_train_end(self, logs: dict | None = None) -> None:
        for w in self._writers.values():
            w.close()
        self._writers.clear()


class TerminateOnNaN(Callback):
    """Stop training as soon as a batch's loss is NaN or infinite."""

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            print(f"Batch {batch}: invalid loss {loss}, terminating training")
            self.model.stop_training = True
