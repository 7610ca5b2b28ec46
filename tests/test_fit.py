"""compile / fit / evaluate / predict: the loop matches a hand-written PyTorch loop (oracle),
data in every accepted form gives the same run, modes and grad switch around each phase,
the jit/eager choice is made and reported, and every bad input has a clear error."""
import sys
from pathlib import Path

import numpy as np
import pytest

import ember as em
from ember import nn
from ember.errors import EmberError, ShapeError

ROOT = Path(__file__).resolve().parents[1]
rng = np.random.default_rng(0)
X = rng.standard_normal((23, 6)).astype(np.float32)
Y = rng.integers(0, 3, 23)


def mlp(seed=0):
    em.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3))


class Probe(nn.Module):
    """Records (training, grad enabled) at every forward."""

    def __init__(self):
        super().__init__()
        self.inner = mlp()
        self.calls = []

    def forward(self, x):
        self.calls.append((self.training, em.is_grad_enabled()))
        return self.inner(x)


# ---------------------------------------------------------------- compile

@pytest.mark.parametrize("name, cls", [("adam", "Adam"), ("adamw", "AdamW"), ("sgd", "SGD"),
                                       ("rmsprop", "RMSprop"), ("adagrad", "Adagrad")])
def test_optimizer_names(name, cls):
    model = mlp().compile(optimizer=name, loss="cross_entropy")
    assert type(model.optimizer).__name__ == cls
    assert model.optimizer.param_groups[0]["params"][0] is next(model.parameters())


@pytest.mark.parametrize("name, cls", [("cross_entropy", "CrossEntropyLoss"), ("mse", "MSELoss"),
                                       ("bce", "BCELoss"), ("bce_with_logits", "BCEWithLogitsLoss"),
                                       ("l1", "L1Loss"), ("nll", "NLLLoss"), ("huber", "HuberLoss"),
                                       ("smooth_l1", "SmoothL1Loss"), ("kl_div", "KLDivLoss")])
def test_loss_names(name, cls):
    assert type(mlp().compile("sgd", name)._compiled.loss).__name__ == cls


def test_objects_accepted_and_bce_with_logits_accuracy_threshold():
    model = mlp()
    opt = em.optim.SGD(model.parameters(), lr=0.5)
    loss = nn.CrossEntropyLoss(label_smoothing=0.1)
    model.compile(opt, loss, metrics=em.metrics.TopKAccuracy(k=2))
    assert model.optimizer is opt and model._compiled.loss is loss
    assert [m.name for m in model._compiled.metrics] == ["top2_accuracy"]
    binary = mlp().compile("adam", "bce_with_logits", ["accuracy"])
    assert binary._compiled.metrics[0].threshold == 0.0  # logits: positive above 0


def test_compile_errors():
    with pytest.raises(EmberError, match=r"unknown optimizer 'adamax'.*'adagrad', 'adam'"):
        mlp().compile("adamax", "mse")
    with pytest.raises(EmberError, match=r"unknown loss 'hinge'.*'bce'"):
        mlp().compile("adam", "hinge")
    with pytest.raises(EmberError, match="optimizer must be a name or an ember.optim optimizer"):
        mlp().compile(3, "mse")
    with pytest.raises(EmberError, match="loss must be a name"):
        mlp().compile("adam", 3)
    with pytest.raises(EmberError, match="metric names must be unique"):
        mlp().compile("adam", "mse", ["mae", "mae"])
    with pytest.raises(EmberError, match=r"not compiled; call model.compile"):
        mlp().fit(X, Y)
    with pytest.raises(EmberError, match="compiled without a loss"):
        mlp().compile("adam").evaluate(X, Y)


# ---------------------------------------------------------------- the loop vs PyTorch

def test_fit_matches_torch_loop():
    """SGD with momentum, unshuffled batches of 5 over 23 samples (a short last batch), 3 epochs:
    weights and the per-epoch sample-weighted mean loss match torch to 1e-5."""
    torch = pytest.importorskip("torch", reason="PyTorch is the oracle for the training loop")
    model = mlp()
    tm = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    tm.load_state_dict({k: torch.from_numpy(v.numpy().copy()) for k, v in model.state_dict().items()})
    model.compile(em.optim.SGD(model.parameters(), lr=0.1, momentum=0.9), "cross_entropy")
    hist = model.fit(X, Y, batch_size=5, epochs=3, shuffle=False, verbose=0)

    topt = torch.optim.SGD(tm.parameters(), lr=0.1, momentum=0.9)
    losses = []
    for _ in range(3):
        total = 0.0
        for s in range(0, 23, 5):
            xb, yb = torch.from_numpy(X[s:s + 5]), torch.from_numpy(Y[s:s + 5])
            loss = torch.nn.functional.cross_entropy(tm(xb), yb)
            topt.zero_grad()
            loss.backward()
            topt.step()
            total += loss.item() * len(yb)
        losses.append(total / 23)
    np.testing.assert_allclose(hist.history["loss"], losses, rtol=1e-5)
    for k, v in tm.state_dict().items():
        np.testing.assert_allclose(model.state_dict()[k].numpy(), v.numpy(), atol=1e-5)


def run(data_kind, seed=0):
    model = mlp(seed)
    model.compile(em.optim.SGD(model.parameters(), lr=0.1), "cross_entropy", ["accuracy"])
    ds = em.data.TensorDataset(em.from_numpy(X), em.from_numpy(Y))
    args = {"numpy": (X, Y), "tensor": (em.from_numpy(X), em.from_numpy(Y)), "dataset": (ds,),
            "loader": (em.data.DataLoader(ds, batch_size=4),)}[data_kind]
    return model.fit(*args, batch_size=4, epochs=2, shuffle=False, verbose=0).history


@pytest.mark.parametrize("kind", ["tensor", "dataset", "loader"])
def test_every_data_form_gives_the_same_run(kind):
    assert run(kind) == run("numpy")


def test_float64_inputs_are_cast_to_the_model_dtype():
    model = mlp().compile("sgd", "cross_entropy")
    model.fit(X.astype(np.float64), Y, verbose=0)
    assert model.predict(X.astype(np.float64), verbose=0).dtype == em.float32


def test_shuffle_is_seeded():
    def once():
        model = mlp().compile("adam", "cross_entropy")
        em.manual_seed(5)
        return model.fit(X, Y, batch_size=4, epochs=2, verbose=0).history["loss"]
    assert once() == once()


# ---------------------------------------------------------------- validation

def test_validation_split_takes_the_last_samples_before_shuffling():
    def hist(**kw):
        model = mlp().compile("adam", "cross_entropy", ["accuracy"])
        em.manual_seed(1)
        return model.fit(batch_size=4, epochs=2, verbose=0, **kw).history
    # ceil(23 * 0.75) = 18 training samples, the last 5 validate, as Keras splits
    split = hist(x=X, y=Y, validation_split=0.25)
    explicit = hist(x=X[:18], y=Y[:18], validation_data=(X[18:], Y[18:]))
    assert split == explicit
    assert set(split) == {"loss", "accuracy", "val_loss", "val_accuracy"}


def test_validation_data_forms_agree():
    def val(vd):
        model = mlp().compile("sgd", "cross_entropy")
        return model.fit(X, Y, epochs=1, shuffle=False, verbose=0, validation_data=vd).history["val_loss"]
    ds = em.data.TensorDataset(em.from_numpy(X[:9]), em.from_numpy(Y[:9]))
    ref = val((X[:9], Y[:9]))
    assert val(ds) == ref
    assert val(em.data.DataLoader(ds, batch_size=2)) == pytest.approx(ref, rel=1e-6)


def test_validation_is_evaluate_after_the_epoch():
    model = mlp().compile("sgd", "cross_entropy", ["accuracy", "f1"])
    h = model.fit(X, Y, epochs=1, verbose=0, validation_data=(X[:10], Y[:10]))
    ev = model.evaluate(X[:10], Y[:10], verbose=0, return_dict=True)
    assert ev == {"loss": h.history["val_loss"][0], "accuracy": h.history["val_accuracy"][0],
                  "f1": h.history["val_f1"][0]}


# ---------------------------------------------------------------- modes, grads, options

def test_train_and_eval_modes_and_no_grad_around_phases():
    model = Probe().compile("sgd", "cross_entropy", jit=False)  # the probe counts Python-level forward calls
    model.eval()
    model.fit(X, Y, batch_size=8, epochs=2, validation_data=(X[:8], Y[:8]), verbose=0)
    # per epoch: 3 training batches in train mode with grad, 1 validation batch in eval without
    assert model.calls == ([(True, True)] * 3 + [(False, False)]) * 2
    assert model.training is False  # the mode from before fit is restored
    model.train()
    model.calls.clear()
    model.evaluate(X, Y, verbose=0)
    model.predict(X, verbose=0)
    assert set(model.calls) == {(False, False)} and model.training is True


def test_evaluate_return_forms():
    model = mlp().compile("sgd", "cross_entropy")
    loss = model.evaluate(X, Y, batch_size=5, verbose=0)
    with em.no_grad():
        ref = nn.functional.cross_entropy(model(em.from_numpy(X)), em.from_numpy(Y)).item()
    assert isinstance(loss, float) and loss == pytest.approx(ref, rel=1e-6)
    model.compile("sgd", "cross_entropy", ["accuracy"])
    loss2, acc = model.evaluate(X, Y, verbose=0)
    pred = model.predict(X, verbose=0).numpy().argmax(-1)
    assert loss2 == pytest.approx(ref, rel=1e-6) and acc == np.mean(pred == Y)
    assert model.evaluate(X, Y, verbose=0, return_dict=True) == {"loss": loss2, "accuracy": acc}


def test_predict_is_batched_eval_mode_without_grad():
    em.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.Dropout(0.5), nn.Linear(8, 3))
    out = model.predict(X, batch_size=5, verbose=0)
    assert isinstance(out, em.Tensor) and out.shape == (23, 3) and not out.requires_grad
    model.eval()
    with em.no_grad():
        np.testing.assert_allclose(out.numpy(), model(em.from_numpy(X)).numpy(), rtol=1e-6)
    ds = em.data.TensorDataset(em.from_numpy(X), em.from_numpy(Y))  # targets are ignored
    np.testing.assert_array_equal(model.predict(ds, verbose=0).numpy(), out.numpy())


def test_multiple_inputs_from_a_loader():
    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(6, 3), nn.Linear(2, 3)

        def forward(self, x, z):
            return self.a(x) + self.b(z)
    z = rng.standard_normal((23, 2)).astype(np.float32)
    ds = em.data.TensorDataset(em.from_numpy(X), em.from_numpy(z), em.from_numpy(Y))
    model = Two().compile("adam", "cross_entropy")
    model.fit(em.data.DataLoader(ds, batch_size=8), epochs=1, verbose=0)
    assert model.predict(em.data.DataLoader(ds, batch_size=8), verbose=0).shape == (23, 3)


def test_steps_per_epoch_and_initial_epoch():
    model = Probe().compile("sgd", "cross_entropy", jit=False)  # the probe counts Python-level forward calls
    h = model.fit(X, Y, batch_size=4, epochs=5, initial_epoch=3, steps_per_epoch=2, verbose=0)
    assert h.epoch == [3, 4] and len(model.calls) == 4 and model.history is h


def test_regression_with_mae_mse():
    w = rng.standard_normal((6, 1)).astype(np.float32)
    t = X @ w
    em.manual_seed(0)
    model = nn.Linear(6, 1)
    model.compile(em.optim.SGD(model.parameters(), lr=0.1), "mse", ["mae", "mse"])
    h = model.fit(X, t, batch_size=23, epochs=30, verbose=0, shuffle=False)
    assert h.history["loss"][-1] < 0.1 * h.history["loss"][0]
    # one batch per epoch: the metric mse is the loss of that batch
    np.testing.assert_allclose(h.history["mse"], h.history["loss"], rtol=1e-5)


# ---------------------------------------------------------------- jit or eager

def test_eager_when_jit_missing_or_disabled(capsys, monkeypatch):
    monkeypatch.delattr(em, "jit", raising=False)
    mlp().compile("sgd", "cross_entropy").fit(X, Y, epochs=1, verbose=2)
    assert "ember: train step: eager (ember.jit is not available)" in capsys.readouterr().out
    mlp().compile("sgd", "cross_entropy", jit=False).fit(X, Y, epochs=1, verbose=2)
    assert "train step: eager (compile(jit=False))" in capsys.readouterr().out


def test_uses_ember_jit_when_present(capsys, monkeypatch):
    calls = []

    def fake_jit(fn):
        def compiled(*args):
            calls.append(1)
            return fn(*args)
        return compiled
    monkeypatch.setattr(em, "jit", fake_jit, raising=False)
    model = mlp().compile("sgd", "cross_entropy")
    model.fit(X, Y, batch_size=8, epochs=2, verbose=2)
    assert len(calls) == 6
    assert "ember: train step: compiled with ember.jit" in capsys.readouterr().out


def test_falls_back_to_eager_when_jit_fails(capsys, monkeypatch):
    def broken_jit(fn):
        def compiled(*args):
            raise NotImplementedError("no rule for op 'tanh'")
        return compiled
    monkeypatch.setattr(em, "jit", broken_jit, raising=False)
    model = mlp().compile("sgd", "cross_entropy")
    h = model.fit(X, Y, batch_size=8, epochs=2, verbose=0)
    assert len(h.history["loss"]) == 2
    assert "eager (ember.jit failed: NotImplementedError: no rule for op 'tanh')" in capsys.readouterr().err
    assert model._compiled.step_mode.startswith("train step: eager (ember.jit failed")


@pytest.mark.parametrize("opt", ["sgd", "rmsprop", "adagrad", "adam", "adamw"])
def test_real_jit_trains_like_eager(opt, monkeypatch):
    compiler = pytest.importorskip("ember.compiler", reason="the compiler (ember.jit) is not in this tree")
    monkeypatch.setattr(em, "jit", compiler.jit, raising=False)

    def history(jit):
        model = mlp().compile(opt, "cross_entropy", ["accuracy"], jit=jit)
        h = model.fit(X, Y, batch_size=5, epochs=3, shuffle=False, verbose=0).history
        return h, model._compiled.step_mode
    (eager, _), (jitted, mode) = history(False), history(True)
    assert mode == "train step: compiled with ember.jit"
    for k in eager:
        np.testing.assert_allclose(jitted[k], eager[k], rtol=1e-5, err_msg=k)


# ---------------------------------------------------------------- History.plot

def test_history_plot(tmp_path):
    pytest.importorskip("matplotlib", reason="History.plot needs matplotlib (the 'plot' extra)")
    h = mlp().compile("adam", "cross_entropy", ["accuracy"]).fit(X, Y, epochs=2, validation_split=0.2, verbose=0)
    h.plot(tmp_path / "curves.png")
    assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"


def test_history_plot_without_matplotlib(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes the import fail
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    h = em.callbacks.History()
    h.on_epoch_end(0, {"loss": 1.0})
    with pytest.raises(EmberError, match="pip install matplotlib"):
        h.plot(tmp_path / "x.png")


# ---------------------------------------------------------------- errors

def test_fit_errors():
    model = mlp().compile("sgd", "cross_entropy")
    with pytest.raises(ShapeError, match=r"same number of samples.*x \(23, 6\) and y \(20,\)"):
        model.fit(X, Y[:20])
    with pytest.raises(EmberError, match="validation_split must be in"):
        model.fit(X, Y, validation_split=1.5)
    with pytest.raises(EmberError, match="validation_split needs arrays or a Dataset, not a DataLoader"):
        model.fit(em.data.DataLoader(em.data.TensorDataset(em.from_numpy(X), em.from_numpy(Y))),
                  validation_split=0.2)
    with pytest.raises(EmberError, match="leaves an empty"):
        model.fit(X[:2], Y[:2], validation_split=0.1)
    with pytest.raises(EmberError, match="not both"):
        model.fit(X, Y, validation_split=0.2, validation_data=(X, Y))
    with pytest.raises(EmberError, match="y must be None when x is a Dataset"):
        model.fit(em.data.TensorDataset(em.from_numpy(X), em.from_numpy(Y)), Y)
    with pytest.raises(EmberError, match="the data has no targets"):
        model.fit(X)
    with pytest.raises(EmberError, match="validation_data must be"):
        model.fit(X, Y, validation_data=X)
    with pytest.raises(EmberError, match="verbose must be"):
        model.fit(X, Y, verbose=3)
    with pytest.raises(EmberError, match="no data"):
        model.fit()
    with pytest.raises(EmberError, match="callbacks must be ember.callbacks.Callback"):
        model.fit(X, Y, callbacks=[print], verbose=0)


# ---------------------------------------------------------------- the example

def test_keras_style_digits_example_short():
    """The full example (40 epochs max, early stopping) reaches 99.2% test accuracy; here 4
    epochs must reach 90%."""
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        import keras_style_digits
    finally:
        sys.path.remove(str(ROOT / "examples"))
    assert keras_style_digits.main(epochs=4, verbose=0) >= 0.90
