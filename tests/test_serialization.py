"""ember.save / ember.load: safetensors round trips, official-reader compatibility, corrupt files."""
import json
import os
import struct

import numpy as np
import pytest

import ember as em
from ember import serialization as ser
from ember.errors import EmberError
from ember.serialization import CheckpointError


def _state():
    return {
        "model": {"fc.weight": em.from_numpy(np.arange(6, dtype=np.float32).reshape(2, 3)),
                  "fc.bias": em.from_numpy(np.array([1.5, -2.0], np.float64)),
                  "bn.num_batches_tracked": em.from_numpy(np.array(7, np.int64))},
        "optimizer": {"state": {0: {"step": 3, "exp_avg": em.from_numpy(np.ones(3, np.float16))}},
                      "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), "params": [0, 1],
                                        "nesterov": False, "name": None}]},
        "epoch": 4,
        "loss": 0.1 + 0.2,  # not exactly representable in decimal: must round-trip bit for bit
        "mask": em.from_numpy(np.array([True, False])),
        "pixels": em.from_numpy(np.arange(4, dtype=np.uint8)),
        "ids": em.from_numpy(np.array([1, 2], np.int32)),
        "raw": np.arange(3, dtype=np.int64),
        "rng": {"state": 2 ** 100 + 1, "name": "pcg64"},
    }


def _assert_same(a, b):
    assert type(a) is type(b), (a, b)
    if isinstance(a, dict):
        assert list(a) == list(b)
        for k in a:
            _assert_same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _assert_same(x, y)
    elif isinstance(a, em.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    else:
        assert a == b


def test_round_trip_keeps_structure_dtypes_and_values(tmp_path):
    state = _state()
    path = tmp_path / "ckpt.safetensors"
    em.serialization.save(state, path, metadata={"note": "hello"})
    _assert_same(state, ser.load(path))
    assert ser.read_metadata(path) == {"note": "hello"}


def test_file_layout_is_safetensors(tmp_path):
    path = tmp_path / "m.safetensors"
    ser.save({"a": em.from_numpy(np.ones((2, 2), np.float32)), "b": {"c": em.from_numpy(np.zeros(3, np.uint8))}}, path)
    raw = path.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    assert (8 + n) % 8 == 0
    header = json.loads(raw[8:8 + n])
    assert header["a"] == {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}
    assert header["b.c"] == {"dtype": "U8", "shape": [3], "data_offsets": [16, 19]}
    assert len(raw) == 8 + n + 19
    assert all(isinstance(v, str) for v in header["__metadata__"].values())


def test_official_safetensors_reads_our_files_and_we_read_theirs(tmp_path):
    st = pytest.importorskip("safetensors.numpy", reason="the safetensors package is not installed")
    state = _state()
    ours = tmp_path / "ours.safetensors"
    ser.save(state, ours)
    got = st.load_file(str(ours))
    np.testing.assert_array_equal(got["model.fc.weight"], state["model"]["fc.weight"].numpy())
    np.testing.assert_array_equal(got["optimizer.state.0.exp_avg"], np.ones(3, np.float16))
    assert got["mask"].dtype == np.bool_ and got["raw"].dtype == np.int64

    theirs = tmp_path / "theirs.safetensors"
    arrays = {"w": np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32),
              "b": np.arange(5, dtype=np.int64)}
    st.save_file(arrays, str(theirs), metadata={"k": "v"})
    loaded = ser.load(theirs)  # no ember structure: a flat dict of tensors
    assert set(loaded) == {"w", "b"}
    np.testing.assert_array_equal(loaded["w"].numpy(), arrays["w"])
    assert loaded["b"].dtype == em.int64
    assert ser.read_metadata(theirs) == {"k": "v"}


def test_bf16_is_widened_exactly_to_float32(tmp_path):
    values = np.array([1.0, -2.5, 3.140625], np.float32)  # exactly representable in bfloat16
    bf16 = (values.view(np.uint32) >> 16).astype("<u2")
    header = json.dumps({"x": {"dtype": "BF16", "shape": [3], "data_offsets": [0, 6]}}).encode()
    path = tmp_path / "bf16.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + bf16.tobytes())
    x = ser.load(path)["x"]
    assert x.dtype == em.float32
    np.testing.assert_array_equal(x.numpy(), values)


def test_save_is_atomic_and_leaves_no_temp_files(tmp_path, monkeypatch):
    path = tmp_path / "m.safetensors"
    ser.save({"a": em.from_numpy(np.ones(3, np.float32))}, path)
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")
    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError, match="disk full"):
        ser.save({"a": em.from_numpy(np.zeros(3, np.float32))}, path)
    assert path.read_bytes() == before  # the old file is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]


def test_save_rejects_what_it_cannot_store(tmp_path):
    with pytest.raises(CheckpointError, match="cannot store set"):
        ser.save({"a": {1, 2}}, tmp_path / "x.safetensors")
    with pytest.raises(CheckpointError, match="same tensor name 'a.b'"):
        ser.save({"a.b": np.ones(1), "a": {"b": np.ones(1)}}, tmp_path / "x.safetensors")
    with pytest.raises(CheckpointError, match="str to str"):
        ser.save({}, tmp_path / "x.safetensors", metadata={"n": 1})
    with pytest.raises(CheckpointError, match="complex128"):
        ser.save({"z": np.ones(2, np.complex128)}, tmp_path / "x.safetensors")
    with pytest.raises(CheckpointError, match="does not exist"):
        ser.save({}, tmp_path / "missing" / "x.safetensors")
    assert not list(tmp_path.glob("*.tmp")) and not (tmp_path / "x.safetensors").exists()


@pytest.fixture
def good_file(tmp_path):
    path = tmp_path / "good.safetensors"
    ser.save({"w": em.from_numpy(np.arange(100, dtype=np.float32)), "epoch": 2}, path)
    return path


def _write(path, header_obj=None, header_bytes=None, data=b""):
    h = header_bytes if header_bytes is not None else json.dumps(header_obj).encode()
    path.write_bytes(struct.pack("<Q", len(h)) + h + data)
    return path


@pytest.mark.parametrize("cut", [3, 20, -1])
def test_truncated_file_is_a_clear_error(good_file, cut):
    raw = good_file.read_bytes()
    good_file.write_bytes(raw[:cut])
    with pytest.raises(CheckpointError, match="truncated") as e:
        ser.load(good_file)
    assert str(good_file) in str(e.value)
    assert isinstance(e.value, EmberError)


def test_corrupt_headers_are_clear_errors(tmp_path):
    cases = [
        (_write(tmp_path / "json.st", header_bytes=b"{not json!"), "not valid JSON"),
        (_write(tmp_path / "list.st", header_obj=[1, 2]), "not an object"),
        (_write(tmp_path / "dtype.st", {"x": {"dtype": "C64", "shape": [1], "data_offsets": [0, 8]}},
                data=b"\0" * 8), "dtype 'C64'"),
        (_write(tmp_path / "size.st", {"x": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}},
                data=b"\0" * 8), "needs 12 bytes"),
        (_write(tmp_path / "past.st", {"x": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}},
                data=b"\0" * 8), "truncated"),
        (_write(tmp_path / "fields.st", {"x": {"dtype": "F32"}}), "needs dtype, shape"),
        (_write(tmp_path / "struct.st", {"__metadata__": {"ember.structure": "{\"q\": 1}"}}), "unknown node"),
    ]
    for path, message in cases:
        with pytest.raises(CheckpointError, match=message) as e:
            ser.load(path)
        assert str(path) in str(e.value)
    with pytest.raises(CheckpointError, match="no file"):
        ser.load(tmp_path / "nope.safetensors")


def test_load_never_unpickles(tmp_path):
    import pickle
    path = tmp_path / "evil.safetensors"
    path.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(CheckpointError):
        ser.load(path)


class _Stateful:
    def __init__(self, value):
        self.value = value

    def state_dict(self):
        return {"value": self.value}

    def load_state_dict(self, state):
        self.value = state["value"]


def test_checkpoint_restores_objects_epoch_and_rng(tmp_path):
    path = tmp_path / "ckpt.safetensors"
    em.manual_seed(123)
    model, opt, sched = _Stateful(em.from_numpy(np.ones(2, np.float32))), _Stateful(0.5), _Stateful([1, 2])
    ser.save_checkpoint(path, model=model, optimizer=opt, scheduler=sched, epoch=2, best=0.9)
    expected = em.random.default_generator.np.random(3)

    em.manual_seed(999)
    model2, opt2, sched2 = _Stateful(None), _Stateful(None), _Stateful(None)
    ckpt = ser.load_checkpoint(path, model=model2, optimizer=opt2, scheduler=sched2)
    assert ckpt["epoch"] == 2 and ckpt["best"] == 0.9
    np.testing.assert_array_equal(model2.value.numpy(), [1, 1])
    assert opt2.value == 0.5 and sched2.value == [1, 2]
    np.testing.assert_array_equal(em.random.default_generator.np.random(3), expected)

    plain = tmp_path / "plain.safetensors"
    ser.save({"w": np.ones(1)}, plain)
    with pytest.raises(CheckpointError, match="no training checkpoint"):
        ser.load_checkpoint(plain)
