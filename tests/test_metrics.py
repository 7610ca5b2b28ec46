"""Stateful metrics vs independent NumPy references (no scikit-learn), accumulated over
several batches: the result must be the metric of all samples together, not a mean of
per-batch values. Exact integer counts, so results match to 1e-12."""
import numpy as np
import pytest

import ember as em
from ember.errors import EmberError, ShapeError
from ember.metrics import (Accuracy, F1Score, MeanAbsoluteError, MeanSquaredError, Precision, Recall,
                           TopKAccuracy)
from ember.training import metrics as M

rng = np.random.default_rng(0)


def batched(metric, y, p, sizes=(7, 13, 1, 19)):
    """Feed (y, p) in uneven batches, half as ember tensors, half as NumPy arrays."""
    metric.reset_state()
    start = 0
    for i, n in enumerate(sizes):
        yb, pb = y[start:start + n], p[start:start + n]
        if i % 2:
            yb, pb = em.from_numpy(np.ascontiguousarray(yb)), em.from_numpy(np.ascontiguousarray(pb))
        metric.update_state(yb, pb)
        start += n
    assert start == len(y)
    return metric.result()


def ref_per_class(y, pred):
    """Per-class precision, recall, F1 by counting, over the labels present in y or pred."""
    labels = sorted(set(y.tolist()) | set(pred.tolist()))
    prec, rec, f1 = [], [], []
    for c in labels:
        tp = np.sum((pred == c) & (y == c))
        fp = np.sum((pred == c) & (y != c))
        fn = np.sum((pred != c) & (y == c))
        p = tp / (tp + fp) if tp + fp else 0.0
        r = tp / (tp + fn) if tp + fn else 0.0
        prec.append(p)
        rec.append(r)
        f1.append(2 * p * r / (p + r) if p + r else 0.0)
    return np.mean(prec), np.mean(rec), np.mean(f1)


N, C = 40, 5
LOGITS = rng.standard_normal((N, C)).astype(np.float32)
Y = rng.integers(0, C, N)


def softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_accuracy_multiclass_logits_probabilities_and_one_hot():
    ref = np.mean(LOGITS.argmax(-1) == Y)
    assert batched(Accuracy(), Y, LOGITS) == pytest.approx(ref, abs=1e-12)
    assert batched(Accuracy(), Y, softmax(LOGITS)) == pytest.approx(ref, abs=1e-12)
    one_hot = np.eye(C, dtype=np.float32)[Y]
    assert batched(Accuracy(), one_hot, LOGITS) == pytest.approx(ref, abs=1e-12)


def test_accuracy_binary_probabilities_and_logits():
    z = rng.standard_normal(N).astype(np.float32)
    y = rng.integers(0, 2, N)
    ref = np.mean((z > 0) == y)
    prob = 1 / (1 + np.exp(-z))
    assert batched(Accuracy(), y, prob) == pytest.approx(ref, abs=1e-12)
    assert batched(Accuracy(), y[:, None].astype(np.float32), prob[:, None]) == pytest.approx(ref, abs=1e-12)
    assert batched(Accuracy(threshold=0.0), y, z) == pytest.approx(ref, abs=1e-12)


def test_accuracy_over_epoch_is_not_mean_of_batches():
    y, p = np.array([0, 0, 0, 1]), np.eye(2, dtype=np.float32)[[0, 0, 0, 0]]
    m = Accuracy()
    m.update_state(y[:3], p[:3])  # batch accuracy 1.0
    m.update_state(y[3:], p[3:])  # batch accuracy 0.0; mean of batches would be 0.5
    assert m.result() == 0.75


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_top_k_accuracy(k):
    top = np.argsort(-LOGITS, axis=-1)[:, :k]
    ref = np.mean([Y[i] in top[i] for i in range(N)])
    assert batched(TopKAccuracy(k=k), Y, LOGITS) == pytest.approx(ref, abs=1e-12)
    assert TopKAccuracy(k=k).name == f"top{k}_accuracy"


def test_precision_recall_f1_macro():
    pred = LOGITS.argmax(-1)
    p, r, f = ref_per_class(Y, pred)
    assert batched(Precision(), Y, LOGITS) == pytest.approx(p, abs=1e-12)
    assert batched(Recall(), Y, LOGITS) == pytest.approx(r, abs=1e-12)
    assert batched(F1Score(), Y, LOGITS) == pytest.approx(f, abs=1e-12)


def test_macro_average_skips_classes_never_seen():
    # 4 score columns but class 3 is neither a target nor a prediction: it is not averaged in.
    y = np.array([0, 1, 2, 2, 1])
    scores = np.eye(4, dtype=np.float32)[[0, 2, 2, 1, 1]]
    p, r, f = ref_per_class(y, scores.argmax(-1))
    assert batched(Precision(), y, scores, sizes=(2, 3)) == pytest.approx(p, abs=1e-12)
    assert batched(Recall(), y, scores, sizes=(2, 3)) == pytest.approx(r, abs=1e-12)
    assert batched(F1Score(), y, scores, sizes=(2, 3)) == pytest.approx(f, abs=1e-12)


def test_precision_recall_f1_binary():
    prob = rng.random(N).astype(np.float32)
    y = rng.integers(0, 2, N)
    pred = (prob > 0.5).astype(int)
    tp, fp, fn = np.sum((pred == 1) & (y == 1)), np.sum((pred == 1) & (y == 0)), np.sum((pred == 0) & (y == 1))
    assert batched(Precision(average="binary"), y, prob) == pytest.approx(tp / (tp + fp), abs=1e-12)
    assert batched(Recall(average="binary"), y, prob) == pytest.approx(tp / (tp + fn), abs=1e-12)
    assert batched(F1Score(average="binary"), y, prob) == pytest.approx(2 * tp / (2 * tp + fp + fn), abs=1e-12)


def test_mae_mse():
    y = rng.standard_normal((N, 3))
    p = rng.standard_normal((N, 3)).astype(np.float32)
    assert batched(MeanAbsoluteError(), y, p) == pytest.approx(np.abs(p - y).mean(), rel=1e-6)
    assert batched(MeanSquaredError(), y, p) == pytest.approx(((p - y) ** 2).mean(), rel=1e-6)


def test_reset_state_and_empty_result():
    m = Accuracy()
    m.update_state(Y, LOGITS)
    m.reset_state()
    assert m.result() == 0.0
    assert F1Score().result() == 0.0


def test_get_by_name_and_custom_names():
    assert type(M.get("accuracy")) is Accuracy
    assert M.get("top5").k == 5 and M.get("top_k_accuracy").k == 5
    assert [M.get(n).name for n in ("precision", "recall", "f1", "mae", "mse")] == \
        ["precision", "recall", "f1", "mae", "mse"]
    assert M.get("accuracy", logits_binary=True).threshold == 0.0
    m = Accuracy(name="acc")
    assert M.get(m) is m and m.name == "acc"


def test_errors():
    with pytest.raises(EmberError, match="unknown metric 'auc'.*accuracy"):
        M.get("auc")
    with pytest.raises(EmberError, match="name or an ember.metrics.Metric"):
        M.get(3)
    with pytest.raises(ShapeError, match=r"Accuracy: predictions of shape \(40, 5\) need targets of shape \(40,\)"):
        Accuracy().update_state(Y[:10], LOGITS)
    with pytest.raises(ShapeError, match="TopKAccuracy: needs class scores"):
        TopKAccuracy().update_state(Y, LOGITS[:, 0])
    with pytest.raises(EmberError, match="average must be 'macro' or 'binary'"):
        Precision(average="micro")
    with pytest.raises(ShapeError, match="do not broadcast"):
        MeanSquaredError().update_state(np.zeros(3), np.zeros(4))
    with pytest.raises(EmberError, match="labels must be >= 0"):
        Recall().update_state(np.array([-1, 0]), np.eye(2, dtype=np.float32))
