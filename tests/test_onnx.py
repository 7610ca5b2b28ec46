"""ember.onnx: export (checked by onnx.checker, run by ONNX Runtime against ember's own outputs,
at the traced batch size and another one), import (ember's backend vs PyTorch for models that
torch.onnx.export wrote; ONNX's own backend node tests through tools/onnx_node_tests.py), the
round trip (state_dict keys, fine-tuning), the CLI and the clear errors.

Tolerances (float32 throughout): exported models vs ONNX Runtime rtol 1e-4, atol 1e-5; ember
reading its own export: bitwise-close (atol 1e-6); PyTorch-exported models in ember vs PyTorch
rtol 1e-4, atol 1e-5; node tests use each test's own rtol/atol.
"""
from __future__ import annotations

import importlib.util
import io
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="ember.onnx needs the onnx package (the onnx extra)")
ort = pytest.importorskip("onnxruntime", reason="export checks run the files with ONNX Runtime (test extra)")

import ember as em  # noqa: E402
import ember.onnx as eo  # noqa: E402
from ember import nn, zoo  # noqa: E402
from ember.onnx import OnnxError, OpsetError, UnsupportedOperatorError  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RTOL, ATOL = 1e-4, 1e-5


def _np(t):
    return t.detach().numpy()


def _resized(x, n):
    """The example input with n rows along dim 0 (rows repeated: token ids stay valid)."""
    a = x.numpy()
    return em.from_numpy(np.ascontiguousarray(np.take(a, np.arange(n) % a.shape[0], axis=0)))


def _check_export(tmp_path, model, x, batches=(3,)):
    path = tmp_path / "m.onnx"
    eo.export(model, (x,), path, dynamic_axes={"input": {0: "batch"}})
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    model.eval()
    for b in (x.shape[0],) + tuple(batches):
        xb = _resized(x, b)
        with em.no_grad():
            ref = _np(model(xb))
        got = sess.run(None, {"input": xb.numpy()})[0]
        assert got.shape == ref.shape
        np.testing.assert_allclose(got, ref, rtol=RTOL, atol=ATOL)
    return path


ZOO = {
    "mlp": lambda: (zoo.MLP(), em.randn(2, 64)),
    "lenet5": lambda: (zoo.LeNet5(input_size=28), em.randn(2, 1, 28, 28)),
    "resnet20": lambda: (zoo.resnet20(width=4), em.randn(2, 3, 16, 16)),
    "vgg": lambda: (zoo.VGG(input_size=16, config=(8, "M", 16, "M"), hidden=16), em.randn(2, 3, 16, 16)),
    "char_lstm": lambda: (zoo.CharLSTM(20, embed_dim=8, hidden_size=16), em.randint(0, 20, (2, 5))),
    "gpt": lambda: (zoo.GPT(20, block_size=8, n_layer=2, n_head=2, n_embd=16), em.randint(0, 20, (2, 8))),
}


@pytest.mark.parametrize("name", sorted(ZOO))
def test_zoo_exports_and_runs_in_onnxruntime_at_other_batch_sizes(tmp_path, name):
    em.manual_seed(0)
    model, x = ZOO[name]()
    if name == "resnet20":  # non-trivial running statistics, so eval-mode BatchNorm matters
        model.train()
        with em.no_grad():
            model(em.randn(8, 3, 16, 16))
    _check_export(tmp_path, model, x, batches=(1, 5))


LAYERS = {
    "linear": (lambda: nn.Linear(6, 4), (3, 6)),
    "conv2d": (lambda: nn.Conv2d(3, 4, 3, stride=2, padding=1, dilation=1, groups=1), (2, 3, 9, 9)),
    "conv2d_groups_dilation": (lambda: nn.Conv2d(4, 6, 3, padding=2, dilation=2, groups=2), (2, 4, 8, 8)),
    "conv1d": (lambda: nn.Conv1d(3, 4, 3, padding=1), (2, 3, 10)),
    "conv_transpose2d": (lambda: nn.ConvTranspose2d(3, 2, 3, stride=2, padding=1, output_padding=1), (2, 3, 5, 5)),
    "maxpool2d": (lambda: nn.MaxPool2d(3, stride=2, padding=1), (2, 3, 9, 9)),
    "maxpool2d_ceil": (lambda: nn.MaxPool2d(2, ceil_mode=True), (2, 3, 7, 7)),
    "maxpool1d": (lambda: nn.MaxPool1d(2), (2, 3, 8)),
    "avgpool2d": (lambda: nn.AvgPool2d(3, stride=2, padding=1), (2, 3, 9, 9)),
    "avgpool1d": (lambda: nn.AvgPool1d(2), (2, 3, 8)),
    "adaptive_avgpool2d": (lambda: nn.AdaptiveAvgPool2d(1), (2, 3, 6, 6)),
    "adaptive_avgpool1d": (lambda: nn.AdaptiveAvgPool1d(1), (2, 3, 6)),
    "batchnorm1d": (lambda: nn.BatchNorm1d(5), (4, 5)),
    "batchnorm2d": (lambda: nn.BatchNorm2d(3), (2, 3, 4, 4)),
    "layernorm": (lambda: nn.LayerNorm(6), (2, 3, 6)),
    "groupnorm": (lambda: nn.GroupNorm(2, 4), (2, 4, 3, 3)),
    "dropout": (lambda: nn.Dropout(0.5), (2, 6)),
    "flatten": (lambda: nn.Flatten(), (2, 3, 4)),
    "unflatten": (lambda: nn.Unflatten(1, (2, 3)), (2, 6)),
    "identity": (lambda: nn.Identity(), (2, 6)),
    "relu": (lambda: nn.ReLU(), (2, 6)),
    "relu6": (lambda: nn.ReLU6(), (2, 6)),
    "leaky_relu": (lambda: nn.LeakyReLU(0.1), (2, 6)),
    "elu": (lambda: nn.ELU(), (2, 6)),
    "gelu": (lambda: nn.GELU(), (2, 6)),
    "gelu_tanh": (lambda: nn.GELU(approximate="tanh"), (2, 6)),
    "silu": (lambda: nn.SiLU(), (2, 6)),
    "sigmoid": (lambda: nn.Sigmoid(), (2, 6)),
    "tanh": (lambda: nn.Tanh(), (2, 6)),
    "hardtanh": (lambda: nn.Hardtanh(), (2, 6)),
    "softplus": (lambda: nn.Softplus(), (2, 6)),
    "softmax": (lambda: nn.Softmax(dim=1), (2, 6)),
    "log_softmax": (lambda: nn.LogSoftmax(dim=1), (2, 6)),
    "rnn": (lambda: _First(nn.RNN(4, 5, batch_first=True)), (2, 3, 4)),
    "gru": (lambda: _First(nn.GRU(4, 5, batch_first=True)), (2, 3, 4)),
    "lstm": (lambda: _First(nn.LSTM(4, 5, num_layers=2, batch_first=True)), (2, 3, 4)),
    "multihead_attention": (lambda: _SelfAttention(nn.MultiheadAttention(8, 2, batch_first=True)), (2, 3, 8)),
    "transformer_encoder": (lambda: nn.TransformerEncoder(
        nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True), 2), (2, 3, 8)),
}


class _First(nn.Module):
    """A recurrent layer's output sequence (its first result)."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x)[0]


class _SelfAttention(_First):
    def forward(self, x):
        return self.inner(x, x, x)[0]


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_nn_layers_export(tmp_path, name):
    em.manual_seed(1)
    make, shape = LAYERS[name]
    _check_export(tmp_path, make(), em.randn(*shape))


def test_embedding_and_cross_entropy_export(tmp_path):
    em.manual_seed(2)
    emb = nn.Embedding(10, 4)
    _check_export(tmp_path, emb, em.randint(0, 10, (3, 5)))

    def loss(logits, target):
        return nn.functional.cross_entropy(logits, target, reduction="none")
    x, t = em.randn(4, 5), em.randint(0, 5, (4,))
    path = tmp_path / "ce.onnx"
    eo.export(loss, (x, t), path, input_names=["logits", "target"])
    got = ort.InferenceSession(str(path)).run(None, {"logits": x.numpy(), "target": t.numpy()})[0]
    np.testing.assert_allclose(got, _np(loss(x, t)), rtol=RTOL, atol=ATOL)


def test_functions_with_elementwise_reductions_and_indexing_export(tmp_path):
    def fn(x):
        y = (x.exp() - 1).abs().sqrt() + x.clamp(-0.5, 0.5) * 2 - x.sign() + em.log1p(x.abs())
        z = em.where(x > 0, y, -y).sum(dim=1, keepdim=True) + x.amax(dim=0) - x.mean(dim=1, keepdim=True)
        return z[:, 1:3], x.argmax(dim=1), x[:, [2, 0]].flip(1), em.cumsum(x, 1), x.round(), ((x * 10).long() // 3) % 7
    em.manual_seed(5)
    x = em.randn(4, 5)
    path = tmp_path / "f.onnx"
    eo.export(fn, (x,), path, dynamic_axes={"input": [0]})
    sess = ort.InferenceSession(str(path))
    for b in (4, 6):
        xb = _resized(x, b) * 1.7
        for got, ref in zip(sess.run(None, {"input": xb.numpy()}), fn(xb)):
            np.testing.assert_allclose(got, _np(ref), rtol=RTOL, atol=ATOL)


def test_ember_reads_its_exports_back_as_a_finetunable_module(tmp_path):
    em.manual_seed(3)
    model = zoo.VGG(input_size=16, config=(8, "M", 16, "M"), hidden=16)
    x = em.randn(2, 3, 16, 16)
    path = _check_export(tmp_path, model, x, batches=())
    loaded = eo.load(path)
    used = {k for k in model.state_dict() if not k.endswith("num_batches_tracked")}  # unread in eval
    assert set(loaded.state_dict()) == used
    assert {k for k, _ in loaded.named_buffers()} == {k for k, _ in model.named_buffers() if k in used}
    y = loaded(x)
    np.testing.assert_allclose(_np(y), _np(model(x)), atol=1e-6)
    (y, ) = eo.run(str(path), [x.numpy()])
    np.testing.assert_allclose(_np(y), _np(model(x)), atol=1e-6)
    # gradients reach every parameter and a few SGD steps lower the loss
    target = em.randint(0, 10, (2,))
    opt = em.optim.SGD(loaded.parameters(), lr=0.05)
    losses = []
    for _ in range(5):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(loaded(x), target)
        loss.backward()
        assert all(p.grad is not None for p in loaded.parameters())
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_dynamic_batch_and_sequence_axes_and_static_export(tmp_path):
    em.manual_seed(4)
    attn = _SelfAttention(nn.MultiheadAttention(8, 2, batch_first=True))
    x = em.randn(2, 5, 8)
    path = tmp_path / "seq.onnx"
    eo.export(attn, (x,), path, dynamic_axes={"input": {0: "batch", 1: "time"}})
    sess = ort.InferenceSession(str(path))
    inp = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in inp] == ["batch", "time", 8]
    x2 = em.randn(3, 7, 8)
    np.testing.assert_allclose(sess.run(None, {"input": x2.numpy()})[0], _np(attn(x2)), rtol=RTOL, atol=ATOL)
    # without dynamic axes the shape is fixed, and ONNX Runtime refuses another batch size
    eo.export(attn, (x,), tmp_path / "static.onnx")
    with pytest.raises(Exception):
        ort.InferenceSession(str(tmp_path / "static.onnx")).run(None, {"input": x2.numpy()})
    # an LSTM unrolls one step per time step: its time axis cannot be dynamic, and says so
    with pytest.raises(OnnxError, match="different ops when dynamic axis 'time'"):
        eo.export(_First(nn.LSTM(8, 4, batch_first=True)), (x,), path, dynamic_axes={"input": {1: "time"}})


# -- import of PyTorch's exports ---------------------------------------------------------------
torch = pytest.importorskip("torch", reason="PyTorch writes the models ember imports")


def _torch_models():
    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.GELU(), torch.nn.Linear(16, 4), torch.nn.LogSoftmax(-1))
    lenet = torch.nn.Sequential(
        torch.nn.Conv2d(1, 6, 5, padding=2), torch.nn.ReLU(), torch.nn.MaxPool2d(2), torch.nn.Conv2d(6, 16, 5),
        torch.nn.ReLU(), torch.nn.AvgPool2d(2), torch.nn.Flatten(), torch.nn.Linear(16 * 5 * 5, 120),
        torch.nn.ReLU(), torch.nn.Linear(120, 10))
    enc = torch.nn.TransformerEncoder(torch.nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True),
                                      2, enable_nested_tensor=False)
    return {"mlp": (mlp, (3, 8)), "lenet": (lenet, (2, 1, 28, 28)), "transformer_encoder": (enc, (2, 5, 16))}


@pytest.mark.parametrize("name", ["mlp", "lenet", "transformer_encoder"])
def test_pytorch_exports_import_and_match(name):
    model, shape = _torch_models()[name]
    model.eval()
    x = torch.randn(*shape)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # the legacy TorchScript exporter: the dynamo one needs onnxscript
        torch.onnx.export(model, (x,), buf, dynamo=False, input_names=["x"], dynamic_axes={"x": {0: "batch"}})
    loaded = eo.load(buf.getvalue())
    assert sorted(k for k, _ in loaded.named_parameters()) == sorted(k for k, _ in model.named_parameters()) \
        or name == "transformer_encoder"  # PyTorch renames the fused attention weights
    for b in (shape[0], shape[0] + 2):
        xb = torch.randn(b, *shape[1:])
        with torch.no_grad():
            ref = model(xb).numpy()
        np.testing.assert_allclose(_np(loaded(xb.numpy())), ref, rtol=RTOL, atol=ATOL)


# -- ONNX's backend node tests --------------------------------------------------------------------
def _runner():
    spec = importlib.util.spec_from_file_location("onnx_node_tests", ROOT / "tools" / "onnx_node_tests.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("onnx_node_tests", mod)
    spec.loader.exec_module(mod)
    return mod


def test_onnx_node_tests_pass_for_covered_operators(capsys):
    runner = _runner()
    cases = runner.load_cases()
    assert len(cases) > 1000
    report = runner.run_all(cases)
    t = runner.totals(report)
    covered = t["passed"] + t["failed"]
    assert t["passed"] / covered >= 0.8, f"{t}"
    assert t["passed"] >= 900  # 910 of 1,884 on onnx 1.23 (ONNX Runtime: about 1,590)
    for op in ("Relu", "Conv", "MatMul", "Gemm", "Softmax", "Reshape", "Slice", "BatchNormalization"):
        assert report["table"][op]["passed"] > 0 and not report["table"][op]["failed"], op
    runner.main(["-k", "test_relu"])
    assert "passed 2 of 2 covered" in capsys.readouterr().out  # test_relu, test_relu_expanded_ver18


# -- the command line ---------------------------------------------------------------------------
def test_cli_export_onnx(tmp_path, capsys):
    from ember.cli.build import build_model
    from ember.cli.config import load_config
    from ember.cli.data import build_data
    from ember.cli.main import main
    cfg_path = ROOT / "examples" / "digits_cnn.toml"
    cfg = load_config(str(cfg_path), [])
    data = build_data(cfg)
    model = build_model(cfg, data, flat_logits=False)
    em.save(model.state_dict(), tmp_path / "w.safetensors")
    out = tmp_path / "m.onnx"
    assert main(["export", str(tmp_path / "w.safetensors"), "--onnx", str(out), "--config", str(cfg_path)]) == 0
    assert "wrote" in capsys.readouterr().out
    x = data.test.__getitems__(list(range(5)))[0]
    model.eval()
    got = ort.InferenceSession(str(out)).run(None, {"input": x.numpy()})[0]
    np.testing.assert_allclose(got, _np(model(x)), rtol=RTOL, atol=ATOL)


# -- errors ----------------------------------------------------------------------------------------
def _tiny(op_type="Relu", opset=17, **attrs):
    from onnx import TensorProto, helper
    node = helper.make_node(op_type, ["x"], ["y"], name="the_node", **attrs)
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


def test_error_not_an_onnx_file(tmp_path):
    p = tmp_path / "notes.onnx"
    p.write_text("this is not a model\n" * 20)
    with pytest.raises(OnnxError, match="not .*ONNX model"):
        eo.load(p)
    with pytest.raises(OnnxError, match="no such file"):
        eo.load(tmp_path / "missing.onnx")


def test_error_truncated_file(tmp_path):
    em.manual_seed(0)
    path = tmp_path / "m.onnx"
    eo.export(nn.Linear(30, 20), (em.randn(2, 30),), path)
    data = path.read_bytes()
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(data[:len(data) // 2])
    with pytest.raises(OnnxError, match="not a valid ONNX model|truncated|not an ONNX model"):
        eo.load(cut)


def test_error_unsupported_operator_names_it_and_the_node():
    with pytest.raises(UnsupportedOperatorError, match=r"Unique.*the_node"):
        eo.run(_tiny("Unique"), [np.ones(2, np.float32)])


def test_error_opset_too_new():
    model = _tiny(opset=eo.MAX_OPSET + 1)
    with pytest.raises(OpsetError, match=f"opset {eo.MAX_OPSET + 1}, newer"):
        eo.load(model)
    with pytest.raises(OpsetError, match="not supported"):
        eo.export(nn.Linear(2, 2), (em.randn(1, 2),), "unused.onnx", opset=eo.MAX_OPSET + 1)


def test_error_op_without_onnx_form_is_named(tmp_path):
    def fn(x):
        y = x * 1
        y[0] = 5.0  # index_put: no entry in the export table
        return y
    with pytest.raises(UnsupportedOperatorError, match="index_put"):
        eo.export(fn, (em.randn(3),), tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()


def test_error_inputs_and_dynamic_axes():
    m = nn.Linear(2, 2)
    with pytest.raises(OnnxError, match="example input 0"):
        eo.export(m, (np.ones((1, 2)),), "unused.onnx")
    with pytest.raises(OnnxError, match="out of range"):
        eo.export(m, (em.randn(1, 2),), "unused.onnx", dynamic_axes={"input": {5: "b"}})
    with pytest.raises(OnnxError, match="takes 1 input"):
        eo.run(_tiny(), [np.ones(2, np.float32)] * 2)
