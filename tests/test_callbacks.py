"""Callbacks: Keras's rules replayed on scripted logs (so every branch is checked exactly),
then each callback inside a real fit; TensorBoard files read back by TensorBoard's own reader."""
import csv
import math

import numpy as np
import pytest

import ember as em
from ember import nn
from ember.callbacks import (Callback, CSVLogger, EarlyStopping, LearningRateScheduler, ModelCheckpoint,
                             ReduceLROnPlateau, TensorBoard, TerminateOnNaN)
from ember.errors import EmberError
from ember.training.tensorboard import EventWriter, crc32c

rng = np.random.default_rng(0)
X = rng.standard_normal((24, 4)).astype(np.float32)
Y = rng.integers(0, 2, 24)


def model(lr=0.1):
    em.manual_seed(0)
    m = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2))
    return m.compile(em.optim.SGD(m.parameters(), lr=lr), "cross_entropy", ["accuracy"])


def replay(cb, m, values, key="val_loss", mark_weights=False):
    """Run the epoch hooks over scripted values; returns the epoch at which training stopped
    (or None). With mark_weights, the first bias holds the epoch number during that epoch."""
    cb.set_model(m)
    cb.set_params({"epochs": len(values), "steps": 1, "verbose": 0})
    m.stop_training = False
    cb.on_train_begin()
    stopped = None
    for epoch, v in enumerate(values):
        if mark_weights:
            with em.no_grad():
                m[0].bias.fill_(float(epoch))
        cb.on_epoch_begin(epoch)
        cb.on_epoch_end(epoch, {key: v})
        if m.stop_training:
            stopped = epoch
            break
    cb.on_train_end()
    return stopped


# ---------------------------------------------------------------- EarlyStopping

def test_early_stopping_patience_and_restore():
    m = model()
    es = EarlyStopping(patience=2, restore_best_weights=True)
    assert replay(es, m, [1.0, 0.9, 0.95, 0.96, 0.5], mark_weights=True) == 3
    assert es.best == 0.9 and es.best_epoch == 1
    assert float(m[0].bias[0].item()) == 1.0  # weights from the end of epoch 1


def test_early_stopping_min_delta_mode_and_baseline():
    m = model()
    # min_delta: 0.9 -> 0.89 is not an improvement of more than 0.05
    assert replay(EarlyStopping(patience=1, min_delta=0.05), m, [1.0, 0.9, 0.89, 0.1]) == 2
    # "auto" watches accuracy upwards
    es = EarlyStopping(monitor="val_accuracy", patience=1)
    assert es.mode == "max"
    assert replay(es, m, [0.5, 0.6, 0.55, 0.9], key="val_accuracy") == 2
    # improving, but never past the baseline: the patience keeps counting (Keras's rule), so
    # the first epoch without improvement stops training
    assert replay(EarlyStopping(patience=2, baseline=0.5), m, [1.0, 0.9, 0.8, 0.8]) == 3
    assert replay(EarlyStopping(patience=2), m, [1.0, 0.9, 0.8, 0.8]) is None
    assert replay(EarlyStopping(patience=2, mode="max"), m, [1.0, 2.0, 3.0, 4.0]) is None


def test_early_stopping_without_improvement_restores_first_epoch():
    m = model()
    es = EarlyStopping(patience=1, restore_best_weights=True, baseline=0.0)
    replay(es, m, [1.0, 1.0, 1.0], mark_weights=True)
    assert float(m[0].bias[0].item()) == 0.0


def test_early_stopping_missing_monitor_warns():
    with pytest.warns(UserWarning, match=r"'val_loss' is not in the logs \(available: \['loss'\]\)"):
        assert replay(EarlyStopping(), model(), [1.0, 2.0, 3.0], key="loss") is None
    with pytest.raises(EmberError, match="mode must be 'auto', 'min' or 'max'"):
        EarlyStopping(mode="up")


def test_early_stopping_in_fit():
    m = model(lr=0.5)
    noise = rng.integers(0, 2, 24)  # validation labels unrelated to the inputs: val_loss stalls
    h = m.fit(X, Y, epochs=60, batch_size=8, validation_data=(X, noise), verbose=0,
              callbacks=[EarlyStopping(patience=2)])
    v = h.history["val_loss"]
    assert len(v) < 60
    best = int(np.argmin(v))
    assert len(v) - 1 - best == 2  # stopped exactly `patience` epochs after the best


# ---------------------------------------------------------------- ModelCheckpoint

def test_checkpoint_every_epoch_with_formatted_names(tmp_path):
    m = model()
    m.fit(X, Y, epochs=3, validation_split=0.25, verbose=0,
          callbacks=[ModelCheckpoint(tmp_path / "ck" / "m-{epoch:02d}-{val_loss:.2f}.safetensors",
                                     save_weights_only=True)])
    names = sorted(p.name for p in (tmp_path / "ck").iterdir())
    assert [n[:5] for n in names] == ["m-01-", "m-02-", "m-03-"]
    last = em.load(tmp_path / "ck" / names[-1])
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(last[k].numpy(), v.numpy())


def test_checkpoint_save_best_only_and_full_checkpoint(tmp_path):
    m = model()
    path = tmp_path / "best.safetensors"
    ck = ModelCheckpoint(path, monitor="val_accuracy", save_best_only=True)
    assert ck.mode == "max"
    ck.set_model(m)
    saved = []
    for epoch, acc in enumerate([0.5, 0.7, 0.6, 0.7, 0.8]):
        with em.no_grad():
            m[0].bias.fill_(float(epoch))
        before = path.stat().st_mtime_ns if path.exists() else None
        ck.on_epoch_end(epoch, {"val_accuracy": acc})
        if path.exists() and path.stat().st_mtime_ns != before:
            saved.append(epoch)
        ckpt = em.serialization.load_checkpoint(path)
        assert ckpt["epoch"] == [1, 2, 2, 2, 5][epoch]
    assert ckpt["model"]["0.bias"].numpy()[0] == 4.0 and ckpt["optimizer"] is not None
    assert ck.best == 0.8


def test_checkpoint_bad_format_key(tmp_path):
    ck = ModelCheckpoint(tmp_path / "{val_acc:.2f}.safetensors")
    ck.set_model(model())
    with pytest.raises(EmberError, match=r"cannot format filepath.*log keys \['loss'\]"):
        ck.on_epoch_end(0, {"loss": 1.0})


# ---------------------------------------------------------------- learning rates

def test_learning_rate_scheduler_function():
    m = model(lr=1.0)
    h = m.fit(X, Y, epochs=4, verbose=0, callbacks=[LearningRateScheduler(lambda epoch, lr: lr * 0.5)])
    assert h.history["learning_rate"] == [0.5, 0.25, 0.125, 0.0625]
    assert m.optimizer.param_groups[0]["lr"] == 0.0625


def test_ember_scheduler_objects_step_per_epoch():
    m = model(lr=1.0)
    sched = em.optim.lr_scheduler.StepLR(m.optimizer, step_size=2, gamma=0.1)
    h = m.fit(X, Y, epochs=5, verbose=0, callbacks=[sched])  # a bare scheduler is accepted
    np.testing.assert_allclose(h.history["learning_rate"], [1.0, 1.0, 0.1, 0.1, 0.01])
    plateau = em.optim.lr_scheduler.ReduceLROnPlateau(m.optimizer, patience=0, factor=0.5)
    cb = LearningRateScheduler(plateau, monitor="val_loss")
    m.optimizer.param_groups[0]["lr"] = 1.0
    replay(cb, m, [1.0, 2.0, 3.0, 0.5])
    assert m.optimizer.param_groups[0]["lr"] == 0.25  # halved after epochs 1 and 2
    with pytest.raises(EmberError, match="schedule must be a function"):
        LearningRateScheduler(3)


def test_reduce_lr_on_plateau_keras_rules():
    m = model(lr=1.0)
    cb = ReduceLROnPlateau(factor=0.5, patience=2, cooldown=1, min_lr=0.2)
    lrs = []
    cb.set_model(m)
    for epoch, v in enumerate([1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]):
        cb.on_epoch_end(epoch, logs := {"val_loss": v})
        lrs.append(m.optimizer.param_groups[0]["lr"])
        assert logs["learning_rate"] == (lrs[-2] if epoch else 1.0)
    # Keras's rule: reduce when 2 epochs in a row did not improve; the cooldown epoch after a
    # reduction resets the count and then counts itself; the lr never drops below min_lr
    assert lrs == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25, 0.2, 0.2]
    assert replay(ReduceLROnPlateau(), m, [1.0]) is None
    with pytest.raises(EmberError, match="factor must be in"):
        ReduceLROnPlateau(factor=2.0)


# ---------------------------------------------------------------- CSVLogger

def test_csv_logger_and_append(tmp_path):
    path = tmp_path / "logs" / "metrics.csv"
    m = model()
    h = m.fit(X, Y, epochs=2, validation_split=0.25, verbose=0, callbacks=[CSVLogger(path)])
    h2 = m.fit(X, Y, epochs=4, initial_epoch=2, validation_split=0.25, verbose=0,
               callbacks=[CSVLogger(path, append=True)])
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["epoch", "accuracy", "loss", "val_accuracy", "val_loss"]
    assert [r[0] for r in rows[1:]] == ["0", "1", "2", "3"]
    losses = h.history["loss"] + h2.history["loss"]
    np.testing.assert_allclose([float(r[2]) for r in rows[1:]], losses, rtol=1e-12)


# ---------------------------------------------------------------- TensorBoard

def test_crc32c_known_values():
    assert crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value
    assert crc32c(b"") == 0
    assert crc32c(bytes(32)) == 0x8A9136AA  # RFC 3720 B.4: 32 bytes of zeros


def test_tensorboard_event_files_read_by_tensorboard(tmp_path):
    ea_mod = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator",
                                 reason="tensorboard is not installed (pip install tensorboard); "
                                        "its reader is the oracle for the event files")
    m = model()
    h = m.fit(X, Y, epochs=3, batch_size=6, validation_split=0.25, verbose=0,
              callbacks=[LearningRateScheduler(lambda e, lr: lr), TensorBoard(tmp_path / "tb", update_freq=2)])
    runs = {}
    for run in ("train", "validation"):
        acc = ea_mod.EventAccumulator(str(tmp_path / "tb" / run))
        acc.Reload()
        runs[run] = {t: [(e.step, e.value) for e in acc.Scalars(t)] for t in acc.Tags()["scalars"]}
    assert set(runs["train"]) == {"epoch_loss", "epoch_accuracy", "epoch_learning_rate",
                                  "batch_loss", "batch_accuracy"}
    assert set(runs["validation"]) == {"epoch_loss", "epoch_accuracy"}
    for run, prefix in (("train", ""), ("validation", "val_")):
        for name in ("loss", "accuracy"):
            steps, values = zip(*runs[run][f"epoch_{name}"])
            assert steps == (0, 1, 2)
            np.testing.assert_allclose(values, h.history[prefix + name], rtol=1e-6)  # stored as float32
    assert [s for s, _ in runs["train"]["batch_loss"]] == [2, 4, 6, 8]  # 3 batches/epoch, every 2nd


def test_event_records_parse_with_tensorboard_protobufs(tmp_path):
    event_pb2 = pytest.importorskip("tensorboard.compat.proto.event_pb2",
                                    reason="tensorboard is not installed (pip install tensorboard)")
    w = EventWriter(tmp_path)
    w.add_scalars({"a": 1.5, "b/c": -2.0}, step=7)
    w.close()
    data, events = w.path.read_bytes(), []
    while data:
        n = int.from_bytes(data[:8], "little")
        events.append(event_pb2.Event.FromString(data[12:12 + n]))
        data = data[16 + n:]
    assert events[0].file_version == "brain.Event:2"
    assert events[1].step == 7 and [(v.tag, v.simple_value) for v in events[1].summary.value] == [("a", 1.5), ("b/c", -2.0)]


def test_tensorboard_bad_update_freq():
    with pytest.raises(EmberError, match="update_freq must be 'epoch' or a positive int"):
        TensorBoard(update_freq="step")


# ---------------------------------------------------------------- TerminateOnNaN, hooks

def test_terminate_on_nan(capsys):
    m = model()
    calls = []

    def loss(out, target):
        calls.append(1)
        ce = nn.functional.cross_entropy(out, target)
        return ce * float("nan") if len(calls) == 2 else ce
    m.compile(m.optimizer, loss)
    h = m.fit(X, Y, epochs=5, batch_size=4, verbose=0, callbacks=[TerminateOnNaN()])
    assert len(calls) == 2 and len(h.history["loss"]) == 1 and math.isnan(h.history["loss"][0])
    assert "Batch 1: invalid loss nan, terminating training" in capsys.readouterr().out


def test_hook_order_and_params():
    events = []

    class Rec(Callback):
        def on_train_begin(self, logs=None):
            events.append(("train_begin", self.params))

        def on_epoch_begin(self, epoch, logs=None):
            events.append(("epoch_begin", epoch))

        def on_train_batch_begin(self, batch, logs=None):
            events.append(("batch_begin", batch, self.model.training))

        def on_train_batch_end(self, batch, logs=None):
            events.append(("batch_end", batch, sorted(logs)))

        def on_epoch_end(self, epoch, logs=None):
            events.append(("epoch_end", epoch, sorted(logs)))

        def on_train_end(self, logs=None):
            events.append(("train_end", sorted(logs)))
    m = model()
    m.fit(X[:10], Y[:10], epochs=2, batch_size=8, validation_data=(X, Y), verbose=0, callbacks=[Rec()])
    keys = ["accuracy", "loss"]
    val_keys = ["accuracy", "loss", "val_accuracy", "val_loss"]
    epoch = lambda e: [("epoch_begin", e), ("batch_begin", 0, True), ("batch_end", 0, keys),  # noqa: E731
                       ("batch_begin", 1, True), ("batch_end", 1, keys), ("epoch_end", e, val_keys)]
    assert events == [("train_begin", {"epochs": 2, "steps": 2, "verbose": 0}), *epoch(0), *epoch(1),
                      ("train_end", val_keys)]


def test_stop_training_from_a_batch_hook_ends_the_epoch():
    class StopAt(Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 1:
                self.model.stop_training = True
    m = model()
    seen = []
    h = m.fit(X, Y, epochs=3, batch_size=4, verbose=0,
              callbacks=[StopAt(), LearningRateScheduler(lambda e, lr: seen.append(e) or lr)])
    assert h.epoch == [0] and seen == [0]
