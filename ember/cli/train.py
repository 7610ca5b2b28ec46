"""`ember train CONFIG.toml`: one call to ``model.fit`` plus what a run needs around it.

The output folder gets:
    last.safetensors   training checkpoint after every epoch and on Ctrl-C (model, optimizer,
                       schedule, epoch, RNG state); running the same command again resumes from it
    best.safetensors   the weights with the best validation accuracy so far (with [train] validate;
                       validation data is the last [train] validation_split of the training set)
    metrics.csv        one row per epoch (CSVLogger)
    tensorboard/       event files (tensorboard --logdir <out>/tensorboard)
    report.json, report.txt   the final test loss and accuracy, the config, the history

Ctrl-C finishes the current batch, saves last.safetensors and exits with status 130; a second
Ctrl-C aborts at once without saving. A resumed run restarts an interrupted epoch from its start.
"""
from __future__ import annotations

import json
import math
import os
import signal
import time
from pathlib import Path

import ember
from .. import nn
from ..callbacks import Callback, CSVLogger, LearningRateScheduler, ModelCheckpoint, TensorBoard
from ..data import DataLoader, Subset
from ..serialization import load_checkpoint, save_checkpoint
from .build import build_loss, build_model, build_optimizer, build_scheduler
from .config import Config
from .data import RunData, build_data

__all__ = ["train", "evaluate_test", "INTERRUPTED_EXIT"]

INTERRUPTED_EXIT = 130  # what shells report for a process ended by Ctrl-C
LAST, BEST = "last.safetensors", "best.safetensors"


class Interrupted(Exception):
    """Raised out of fit after a batch completes once Ctrl-C was pressed."""


class _RunCheckpoint(Callback):
    """Saves the full training checkpoint after each epoch; stops fit after the batch in which
    Ctrl-C arrived (the optimizer step is complete then, so the state is consistent)."""

    def __init__(self, path: Path, scheduler, extra: dict, best: ModelCheckpoint | None):
        super().__init__()
        self.path, self.scheduler, self.extra, self.best = path, scheduler, extra, best
        self.interrupt_requested = False
        self.epoch = 0  # epochs completed

    main = True  # under MPI, only rank 0 writes the checkpoint

    def save(self) -> None:
        if not self.main:
            return
        best = {} if self.best is None or not math.isfinite(self.best.best) else {"best_val_accuracy": self.best.best}
        save_checkpoint(self.path, model=self.model, optimizer=self.model.optimizer, scheduler=self.scheduler,
                        epoch=self.epoch, **self.extra, **best)

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        self.epoch = epoch

    def on_train_batch_end(self, batch: int, logs=None) -> None:
        if self.interrupt_requested:
            raise Interrupted(f"epoch {self.epoch + 1}, batch {batch + 1}")

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        self.epoch = epoch + 1
        self.save()
        if self.interrupt_requested:
            raise Interrupted(f"the end of epoch {epoch + 1}")


def _mpi_world_size() -> int:
    """Ranks in the MPI job this process was started in by mpiexec (1 when not under MPI)."""
    for var in ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE"):  # Open MPI, MPICH (Hydra)
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    return 1


def _split_validation(train, cfg: Config):
    """(train, validation) subsets: the last ``validation_split`` of the training set is held out."""
    if not cfg.train.validate:
        return train, None
    if not 0 < cfg.train.validation_split < 1:
        raise ValueError(f"{cfg.source}: [train] validation_split must be in (0, 1) when validate = true, "
                         f"got {cfg.train.validation_split}")
    n = len(train)
    k = max(1, int(round(n * cfg.train.validation_split)))
    return Subset(train, range(n - k)), Subset(train, range(n - k, n))


def _loader(ds, cfg: Config, shuffle: bool) -> DataLoader:
    return DataLoader(ds, batch_size=cfg.train.batch_size, shuffle=shuffle)


def _compile(model: nn.Module, cfg: Config, optimizer) -> None:
    model.compile(optimizer=optimizer, loss=build_loss(cfg), metrics=["accuracy"], jit=cfg.train.jit)


def evaluate_test(model: nn.Module, cfg: Config, data: RunData) -> dict[str, float]:
    """{"loss", "accuracy"} on the test set (accuracy per character for language models)."""
    if getattr(model, "_compiled", None) is None:
        _compile(model, cfg, build_optimizer(cfg, model))
    return model.evaluate(_loader(data.test, cfg, False), verbose=0, return_dict=True)


def train(cfg: Config, restart: bool = False) -> int:
    """Run (or resume) the training that ``cfg`` describes; returns the exit status.

    Example: train(load_config("examples/digits_cnn.toml"))
    """
    ember.manual_seed(cfg.train.seed)
    data = build_data(cfg)
    model = build_model(cfg, data)
    optimizer = build_optimizer(cfg, model)
    scheduler = build_scheduler(cfg, optimizer)
    _compile(model, cfg, optimizer)
    out = Path(cfg.train.out)
    out.mkdir(parents=True, exist_ok=True)  # only now: a config that fails to build writes nothing

    distributed = _mpi_world_size() > 1
    if distributed:  # under mpiexec: data-parallel; rank 0 alone prints and writes
        import ember.distributed as dist
        dist.init()
        main = dist.is_main_process()
    else:
        main = True
    say = print if main else (lambda *a, **k: None)
    start, best_so_far, last = 0, None, out / LAST
    if last.is_file() and not restart:
        ckpt = load_checkpoint(last, model=model, optimizer=optimizer, scheduler=scheduler)
        start, best_so_far = int(ckpt["epoch"]), ckpt.get("best_val_accuracy")
        say(f"resuming from {last}: {start} of {cfg.train.epochs} epochs done")
    train_set, val_set = _split_validation(data.train, cfg)
    n_params = sum(p.numel() for p in model.parameters())
    val_note = f" / {len(val_set):,} validation" if val_set is not None else ""
    say(f"training {cfg.model.zoo or 'a list of layers'} ({n_params:,} parameters) on {cfg.data.name} "
          f"({len(train_set):,} train{val_note} / {len(data.test):,} test) for {cfg.train.epochs} epoch(s); "
          f"output in {out}")

    best = None
    if val_set is not None:
        best = ModelCheckpoint(out / BEST, monitor="val_accuracy", mode="max", save_best_only=True,
                               save_weights_only=True, initial_value_threshold=best_so_far)
    extra = {"config": cfg.to_dict(), **({"vocab": data.vocab} if data.vocab is not None else {})}
    run_ckpt = _RunCheckpoint(last, scheduler, extra, best)
    run_ckpt.main = main
    callbacks = ([LearningRateScheduler(scheduler)] if scheduler is not None else []) + [
        CSVLogger(out / "metrics.csv", append=start > 0 and not restart),
        TensorBoard(out / "tensorboard"),
        *([best] if best is not None else []),
        run_ckpt]  # last: it saves the scheduler after LearningRateScheduler stepped it

    def on_sigint(signum, frame):
        run_ckpt.interrupt_requested = True
        signal.signal(signal.SIGINT, signal.default_int_handler)  # a second Ctrl-C aborts at once
        print("\ninterrupt: saving a checkpoint after this batch (Ctrl-C again to abort without saving)",
              flush=True)

    previous = signal.signal(signal.SIGINT, on_sigint)
    t0 = time.perf_counter()
    try:
        history = model.fit(_loader(train_set, cfg, True), epochs=cfg.train.epochs, initial_epoch=start,
                            callbacks=callbacks,
                            validation_data=_loader(val_set, cfg, False) if val_set is not None else None,
                            verbose=cfg.train.verbose, distributed=distributed)
    except Interrupted as e:
        run_ckpt.save()
        print(f"interrupted at {e}: saved {last} ({run_ckpt.epoch} epochs complete); "
              "run the same command again to resume", flush=True)
        return INTERRUPTED_EXIT
    finally:
        signal.signal(signal.SIGINT, previous)
    seconds = time.perf_counter() - t0

    test = evaluate_test(model, cfg, data)
    report = {"config_file": cfg.source, "out": str(out), "epochs": cfg.train.epochs, "resumed_from_epoch": start,
              "parameters": n_params, "train_seconds": round(seconds, 2),
              "test_loss": test["loss"], "test_accuracy": test["accuracy"], "test_samples": len(data.test),
              "history": {k: [float(v) for v in vs] for k, vs in history.history.items()},
              "config": cfg.to_dict()}
    if main:
        _write_report(out, report)
    what = "per-character accuracy" if data.vocab is not None else "accuracy"
    say(f"test {what}: {100 * test['accuracy']:.2f}% (loss {test['loss']:.4f}, {len(data.test):,} samples); "
          f"report in {out / 'report.txt'}", flush=True)
    return 0


def _write_atomic(path: Path, text: str) -> None:
    """Write via a temporary file and a rename, so a reader never sees half a report."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _write_report(out: Path, report: dict) -> None:
    _write_atomic(out / "report.json", json.dumps(report, indent=2) + "\n")
    lines = [f"config:         {report['config_file']}",
             f"parameters:     {report['parameters']:,}",
             f"epochs:         {report['epochs']} (resumed from epoch {report['resumed_from_epoch']})",
             f"train time:     {report['train_seconds']} s (this session)",
             f"test loss:      {report['test_loss']:.4f}",
             f"test accuracy:  {100 * report['test_accuracy']:.2f}% of {report['test_samples']:,} samples",
             f"checkpoint:     {out / LAST}"]
    _write_atomic(out / "report.txt", "\n".join(lines) + "\n")
