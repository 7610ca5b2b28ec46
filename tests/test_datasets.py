"""Data sets: bundled digits; MNIST / Fashion-MNIST / CIFAR-10 parsed from small files written in
the real formats (IDX gz; CIFAR-10 binary tar.gz). The network is never touched."""
import gzip
import hashlib
import io
import struct
import tarfile

import numpy as np
import pytest

import ember as em
from ember.data import datasets
from ember.data.datasets import _cifar as cifar, _fetch, _mnist as mnist_mod
from ember.data.datasets import DatasetError


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    """Every test here is offline and uses an empty cache folder."""
    def no_network(url, dest):
        raise OSError(f"network disabled in tests ({url})")
    monkeypatch.setattr(_fetch, "download_file", no_network)
    monkeypatch.setenv(_fetch.DATA_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(mnist_mod, "FASHION_MNIST_SYSTEM_DIR", tmp_path / "no-system-dir")


def test_digits_shapes_split_and_values():
    (x_train, y_train), (x_test, y_test) = datasets.digits()
    assert x_train.shape == (1437, 1, 8, 8) and x_test.shape == (360, 1, 8, 8)
    assert x_train.dtype == em.float32 and y_train.dtype == em.int64
    x = x_train.numpy()
    assert x.min() == 0.0 and x.max() == 1.0
    assert np.all(np.isin(x * 16, np.arange(17)))  # pixels were 0..16
    assert sorted(set(y_test.numpy().tolist())) == list(range(10))
    (f_train, _), _ = datasets.digits(flatten=True)
    assert f_train.shape == (1437, 64)
    np.testing.assert_array_equal(f_train.numpy(), x.reshape(1437, 64))
    from ember.data.datasets._digits import DIGITS_FILE
    with np.load(DIGITS_FILE, allow_pickle=False) as f:
        idx = np.concatenate([f["train_index"], f["test_index"]])
        raw_first = f["x_train"][0] if f["train_index"][0] == 0 else f["x_test"][0]
    assert sorted(idx.tolist()) == list(range(1797))  # a true split of the 1,797 UCI images
    assert raw_first[0].tolist() == [0, 0, 5, 13, 9, 1, 0, 0]  # the UCI set's first image (a 0)


def _idx_bytes(arr: np.ndarray, code: int) -> bytes:
    header = bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


def _write_mnist(folder, n_train=5, n_test=3, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    data = {"train-images-idx3-ubyte.gz": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
            "train-labels-idx1-ubyte.gz": rng.integers(0, 10, n_train, dtype=np.uint8),
            "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
            "t10k-labels-idx1-ubyte.gz": rng.integers(0, 10, n_test, dtype=np.uint8)}
    md5 = {}
    for name, arr in data.items():
        raw = gzip.compress(_idx_bytes(arr, 0x08))
        (folder / name).write_bytes(raw)
        md5[name] = hashlib.md5(raw).hexdigest()
    return data, md5


def test_read_idx_types_plain_and_gzip(tmp_path):
    arr = np.arange(24, dtype=np.int32).reshape(2, 3, 4) - 5
    (tmp_path / "a.idx").write_bytes(_idx_bytes(arr, 0x0C))
    np.testing.assert_array_equal(mnist_mod.read_idx(tmp_path / "a.idx"), arr)
    f = np.linspace(0, 1, 5).astype(np.float32)
    (tmp_path / "f.gz").write_bytes(gzip.compress(_idx_bytes(f, 0x0D)))
    out = mnist_mod.read_idx(tmp_path / "f.gz")
    assert out.dtype == np.float32 and out.dtype.isnative
    np.testing.assert_array_equal(out, f)


def test_read_idx_rejects_truncated_and_foreign_files(tmp_path):
    arr = np.zeros((4, 28, 28), np.uint8)
    (tmp_path / "t.idx").write_bytes(_idx_bytes(arr, 0x08)[:-10])
    with pytest.raises(DatasetError, match="truncated"):
        mnist_mod.read_idx(tmp_path / "t.idx")
    (tmp_path / "x.idx").write_bytes(b"PK\x03\x04 not idx")
    with pytest.raises(DatasetError, match="not an IDX file"):
        mnist_mod.read_idx(tmp_path / "x.idx")
    noise = np.random.default_rng(0).integers(0, 256, (4, 28, 28), dtype=np.uint8)
    (tmp_path / "g.gz").write_bytes(gzip.compress(_idx_bytes(noise, 0x08))[:500])
    with pytest.raises(DatasetError, match="decompress"):
        mnist_mod.read_idx(tmp_path / "g.gz")


def _patch_md5(monkeypatch, name, md5):
    monkeypatch.setattr(mnist_mod, name, tuple(md5[f] for f in mnist_mod._FILES))


def test_mnist_loads_real_format_from_root(tmp_path, monkeypatch):
    data, md5 = _write_mnist(tmp_path / "m")
    _patch_md5(monkeypatch, "MNIST_MD5", md5)
    (x_train, y_train), (x_test, y_test) = datasets.mnist(root=tmp_path / "m")
    assert x_train.shape == (5, 1, 28, 28) and x_test.shape == (3, 1, 28, 28)
    assert x_train.dtype == em.float32 and y_train.dtype == em.int64
    np.testing.assert_allclose(x_train.numpy()[:, 0], data["train-images-idx3-ubyte.gz"] / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(y_test.numpy(), data["t10k-labels-idx1-ubyte.gz"])
    (flat, _), _ = datasets.mnist(root=tmp_path / "m", flatten=True)
    assert flat.shape == (5, 784)


def test_checksum_mismatch_is_an_error(tmp_path):
    _write_mnist(tmp_path / "m")  # random files: the real MNIST checksums cannot match
    with pytest.raises(DatasetError, match="checksum") as e:
        datasets.mnist(root=tmp_path / "m")
    assert "train-images-idx3-ubyte.gz" in str(e.value) and "Delete it" in str(e.value)


def test_download_goes_to_the_env_cache_and_is_verified(tmp_path, monkeypatch):
    data, md5 = _write_mnist(tmp_path / "server")
    _patch_md5(monkeypatch, "MNIST_MD5", md5)
    fetched = []

    def fake_download(url, dest):
        fetched.append(url)
        dest.write_bytes((tmp_path / "server" / url.rsplit("/", 1)[1]).read_bytes())
    monkeypatch.setattr(_fetch, "download_file", fake_download)
    (x_train, _), _ = datasets.mnist()
    assert x_train.shape == (5, 1, 28, 28)
    assert len(fetched) == 4 and fetched[0].startswith(mnist_mod.MNIST_MIRRORS[0])
    assert sorted(p.name for p in (tmp_path / "cache" / "mnist").iterdir()) == sorted(data)
    datasets.mnist()  # second call: files are cached, nothing downloaded
    assert len(fetched) == 4


def test_bad_download_is_deleted_and_next_mirror_tried(tmp_path, monkeypatch):
    data, md5 = _write_mnist(tmp_path / "server")
    _patch_md5(monkeypatch, "MNIST_MD5", md5)

    def flaky(url, dest):
        good = (tmp_path / "server" / url.rsplit("/", 1)[1]).read_bytes()
        dest.write_bytes(b"<html>mirror error</html>" if url.startswith(mnist_mod.MNIST_MIRRORS[0]) else good)
    monkeypatch.setattr(_fetch, "download_file", flaky)
    (x_train, _), _ = datasets.mnist(root=tmp_path / "r")
    assert x_train.shape[0] == 5


def test_offline_error_lists_files_and_folder(tmp_path):
    with pytest.raises(DatasetError) as e:
        datasets.mnist(root=tmp_path / "empty")
    msg = str(e.value)
    for name in mnist_mod._FILES:
        assert name in msg
    assert str(tmp_path / "empty") in msg and "network disabled" in msg and "EMBER_DATA" in msg
    with pytest.raises(DatasetError, match="apt-get install dataset-fashion-mnist"):
        datasets.fashion_mnist()
    with pytest.raises(DatasetError, match="download=False"):
        datasets.mnist(root=tmp_path / "empty", download=False)


def test_fashion_mnist_found_in_the_debian_folder(tmp_path, monkeypatch):
    data, md5 = _write_mnist(tmp_path / "usr-share", n_train=4, n_test=2, seed=1)
    _patch_md5(monkeypatch, "FASHION_MD5", md5)
    monkeypatch.setattr(mnist_mod, "FASHION_MNIST_SYSTEM_DIR", tmp_path / "usr-share")
    (x_train, y_train), (x_test, _) = datasets.fashion_mnist()
    assert x_train.shape == (4, 1, 28, 28) and x_test.shape == (2, 1, 28, 28)
    np.testing.assert_array_equal(y_train.numpy(), data["train-labels-idx1-ubyte.gz"])


@pytest.mark.skipif(not mnist_mod.FASHION_MNIST_SYSTEM_DIR.is_dir(),
                    reason="the Debian package dataset-fashion-mnist is not installed")
def test_real_fashion_mnist_from_the_debian_package(monkeypatch):
    monkeypatch.undo()  # use the real system folder and checksums
    monkeypatch.setattr(_fetch, "download_file", lambda url, dest: pytest.fail("tried the network"))
    (x_train, y_train), (x_test, y_test) = datasets.fashion_mnist(download=False)
    assert x_train.shape == (60000, 1, 28, 28) and x_test.shape == (10000, 1, 28, 28)
    assert np.bincount(y_train.numpy()).tolist() == [6000] * 10


def _cifar_records(n, seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n, dtype=np.uint8)
    images = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    raw = np.concatenate([labels[:, None], images.reshape(n, -1)], axis=1).tobytes()
    return raw, images, labels


def _write_cifar_archive(path):
    buf = io.BytesIO()
    parts = {}
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        names = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
        for k, name in enumerate(names):
            raw, images, labels = _cifar_records(2 + k % 2, k)
            parts[name] = (images, labels)
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue())
    return parts, hashlib.md5(buf.getvalue()).hexdigest()


def test_read_cifar_bin_layout_and_errors():
    raw, images, labels = _cifar_records(3, 0)
    x, y = cifar.read_cifar_bin(raw)
    np.testing.assert_array_equal(x, images)
    np.testing.assert_array_equal(y, labels)
    with pytest.raises(DatasetError, match="truncated"):
        cifar.read_cifar_bin(raw[:-1], "test_batch.bin")
    bad = bytearray(raw)
    bad[0] = 42
    with pytest.raises(DatasetError, match="label 42"):
        cifar.read_cifar_bin(bytes(bad))


def test_cifar10_from_archive_and_from_extracted_folder(tmp_path, monkeypatch):
    parts, md5 = _write_cifar_archive(tmp_path / "c" / "cifar-10-binary.tar.gz")
    monkeypatch.setattr(cifar, "ARCHIVE", _fetch.RemoteFile(cifar.ARCHIVE.name, cifar.ARCHIVE.urls, (f"md5:{md5}",)))
    (x_train, y_train), (x_test, y_test) = datasets.cifar10(root=tmp_path / "c")
    assert x_train.shape == (12, 3, 32, 32) and x_test.shape == (3, 3, 32, 32)
    assert x_train.dtype == em.float32 and y_train.dtype == em.int64
    np.testing.assert_allclose(x_test.numpy(), parts["test_batch.bin"][0] / 255.0, rtol=1e-6)
    train_labels = np.concatenate([parts[f"data_batch_{i}.bin"][1] for i in range(1, 6)])
    np.testing.assert_array_equal(y_train.numpy(), train_labels)

    folder = tmp_path / "x" / "cifar-10-batches-bin"
    folder.mkdir(parents=True)
    with tarfile.open(tmp_path / "c" / "cifar-10-binary.tar.gz") as tar:
        for m in tar.getmembers():
            (folder / m.name.split("/")[-1]).write_bytes(tar.extractfile(m).read())
    (x2, y2), _ = datasets.cifar10(root=tmp_path / "x", download=False)
    np.testing.assert_array_equal(x2.numpy(), x_train.numpy())


def test_cifar10_offline_and_wrong_archive(tmp_path):
    with pytest.raises(DatasetError, match="cifar-10-binary.tar.gz") as e:
        datasets.cifar10(root=tmp_path / "none")
    assert "cifar-10-batches-bin" in str(e.value)
    _write_cifar_archive(tmp_path / "c" / "cifar-10-binary.tar.gz")
    with pytest.raises(DatasetError, match="checksum"):
        datasets.cifar10(root=tmp_path / "c")


def test_dataset_root_rule(tmp_path, monkeypatch):
    assert _fetch.dataset_root("mnist") == tmp_path / "cache" / "mnist"
    assert _fetch.dataset_root("mnist", tmp_path / "r") == tmp_path / "r"
    monkeypatch.delenv(_fetch.DATA_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert _fetch.dataset_root("cifar-10") == tmp_path / "xdg" / "ember" / "datasets" / "cifar-10"
