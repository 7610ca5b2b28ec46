"""ember.data: datasets, DataLoader (shuffle, collate, prefetch, errors), transforms."""
import collections
import gc

import numpy as np
import pytest

import ember as em
from ember.data import (CollateError, DataError, DataLoader, Dataset, Subset, TensorDataset,
                        default_collate, random_split)
from ember.data import transforms as T


def _xy(n=10):
    x = em.from_numpy(np.arange(n * 3, dtype=np.float32).reshape(n, 3))
    y = em.from_numpy(np.arange(n, dtype=np.int64))
    return x, y


class Listy(Dataset):
    """Per-sample dataset (no __getitems__) returning numpy arrays and ints."""

    def __init__(self, shapes):
        self.shapes = shapes

    def __len__(self):
        return len(self.shapes)

    def __getitem__(self, i):
        return np.full(self.shapes[i], i, np.float32), i


def test_tensor_dataset_indexing_and_length_check():
    x, y = _xy()
    ds = TensorDataset(x, y)
    assert len(ds) == 10
    xi, yi = ds[3]
    np.testing.assert_array_equal(xi.numpy(), [9, 10, 11])
    assert int(yi) == 3
    xb, yb = ds.__getitems__([4, 1])
    np.testing.assert_array_equal(yb.numpy(), [4, 1])
    with pytest.raises(DataError, match=r"\(10, 3\), \(4,\)"):
        TensorDataset(x, em.from_numpy(np.zeros(4)))


def test_loader_batches_in_order_with_remainder_and_drop_last():
    x, y = _xy(10)
    batches = list(DataLoader(TensorDataset(x, y), batch_size=4))
    assert [b[1].numpy().tolist() for b in batches] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert batches[0][0].shape == (4, 3) and batches[0][0].dtype == em.float32
    loader = DataLoader(TensorDataset(x, y), batch_size=4, drop_last=True)
    assert len(loader) == 2 and len(list(loader)) == 2
    assert len(DataLoader(TensorDataset(x, y), batch_size=4)) == 3


def test_tensor_dataset_uses_one_fancy_index_per_batch():
    calls = []

    class Counting(TensorDataset):
        def __getitem__(self, i):
            calls.append(i)
            return super().__getitem__(i)
    x, y = _xy(10)
    list(DataLoader(Counting(x, y), batch_size=5, shuffle=True))
    assert calls == []  # no per-sample __getitem__ on the fast path


def test_shuffle_is_reproducible_with_manual_seed_and_changes_each_epoch():
    x, y = _xy(50)
    loader = DataLoader(TensorDataset(x, y), batch_size=50, shuffle=True)
    em.manual_seed(0)
    first = next(iter(loader))[1].numpy().tolist()
    second = next(iter(loader))[1].numpy().tolist()
    em.manual_seed(0)
    assert next(iter(loader))[1].numpy().tolist() == first
    assert first != second and sorted(first) == list(range(50))
    own = DataLoader(TensorDataset(x, y), batch_size=50, shuffle=True, generator=em.random.Generator(5))
    own2 = DataLoader(TensorDataset(x, y), batch_size=50, shuffle=True, generator=em.random.Generator(5))
    assert next(iter(own))[1].numpy().tolist() == next(iter(own2))[1].numpy().tolist()


def test_sampler_gives_the_order():
    x, y = _xy(10)
    got = [b[1].numpy().tolist() for b in DataLoader(TensorDataset(x, y), batch_size=2, sampler=[9, 0, 5])]
    assert got == [[9, 0], [5]]
    with pytest.raises(DataError, match="not both"):
        DataLoader(TensorDataset(x, y), shuffle=True, sampler=[0])
    with pytest.raises(DataError, match="batch_size"):
        DataLoader(TensorDataset(x, y), batch_size=0)


def test_default_collate_nested_structures():
    Point = collections.namedtuple("Point", "a b")
    batch = [{"img": np.zeros((2, 2), np.uint8), "label": 1, "w": 0.5, "name": "a", "p": Point(1, 2.0),
              "t": em.from_numpy(np.ones(3, np.float32))},
             {"img": np.ones((2, 2), np.uint8), "label": 2, "w": 1.5, "name": "b", "p": Point(3, 4.0),
              "t": em.from_numpy(np.zeros(3, np.float32))}]
    out = default_collate(batch)
    assert out["img"].shape == (2, 2, 2) and out["img"].dtype == em.uint8
    assert out["label"].dtype == em.int64 and out["label"].numpy().tolist() == [1, 2]
    assert out["w"].dtype.is_floating_point and out["name"] == ["a", "b"]
    assert isinstance(out["p"], Point) and out["p"].a.numpy().tolist() == [1, 3]
    assert out["t"].shape == (2, 3)
    with pytest.raises(DataError, match="cannot batch a object"):
        default_collate([object(), object()])


def test_mismatched_shapes_name_the_dataset_index_and_both_shapes():
    shapes = [(3,), (3,), (3,), (3,), (3,), (4,), (3,), (3,)]
    with pytest.raises(CollateError) as e:
        list(DataLoader(Listy(shapes), batch_size=4))
    msg = str(e.value)
    assert "dataset index 5" in msg and "(4,)" in msg and "(3,)" in msg and "dataset index 4" in msg
    assert "field [0]" in msg
    # the same with shuffling and in the prefetch thread
    em.manual_seed(1)
    with pytest.raises(CollateError, match="dataset index 5 has shape \\(4,\\)"):
        list(DataLoader(Listy(shapes), batch_size=8, shuffle=True, prefetch=2))


def test_custom_collate_gets_the_samples():
    loader = DataLoader(Listy([(2,)] * 5), batch_size=2, collate_fn=lambda s: [i for _, i in s])
    assert list(loader) == [[0, 1], [2, 3], [4]]


def test_prefetch_yields_the_same_batches_and_stops_cleanly():
    x, y = _xy(37)
    plain = [b[1].numpy().tolist() for b in DataLoader(TensorDataset(x, y), batch_size=5)]
    pre = DataLoader(TensorDataset(x, y), batch_size=5, prefetch=3)
    assert [b[1].numpy().tolist() for b in pre] == plain
    it = iter(pre)
    next(it)
    it.close()  # an early break must not leave the thread blocked forever
    it._thread.join(timeout=2)
    assert not it._thread.is_alive()
    it = iter(pre)
    next(it)
    thread = it._thread
    del it  # abandoned without close(), as after a `break`: collected, and the thread ends
    gc.collect()
    thread.join(timeout=2)
    assert not thread.is_alive()


def test_subset_and_random_split():
    x, y = _xy(10)
    ds = TensorDataset(x, y)
    sub = Subset(ds, [7, 2])
    assert len(sub) == 2 and int(sub[0][1]) == 7
    assert sub.__getitems__([1, 0])[1].numpy().tolist() == [2, 7]
    assert not hasattr(Subset(Listy([(1,)] * 3), [0]), "__getitems__")
    with pytest.raises(DataError, match=r"\[0, 10\)"):
        Subset(ds, [10])

    a, b = random_split(ds, [0.7, 0.3], generator=em.random.Generator(0))
    assert (len(a), len(b)) == (7, 3)
    assert sorted(a.indices.tolist() + b.indices.tolist()) == list(range(10))
    c, d, e = random_split(range(10), [0.34, 0.33, 0.33], generator=em.random.Generator(0))
    assert (len(c), len(d), len(e)) == (4, 3, 3)  # remainder goes round robin from the first
    a2, _ = random_split(ds, [7, 3], generator=em.random.Generator(0))
    assert a2.indices.tolist() == a.indices.tolist()
    with pytest.raises(DataError, match="summing"):
        random_split(ds, [5, 6])


def test_normalize():
    img = np.stack([np.full((2, 2), 1.0), np.full((2, 2), 3.0)]).astype(np.float32)
    out = T.Normalize([1.0, 2.0], [2.0, 0.5])(img)
    np.testing.assert_allclose(out[:, 0, 0], [0.0, 2.0])
    t = T.Normalize([1.0, 2.0], [2.0, 0.5])(em.from_numpy(img))
    assert isinstance(t, em.Tensor) and t.shape == (2, 2, 2)
    batched = T.Normalize([1.0, 2.0], [2.0, 0.5])(np.stack([img, img]))
    assert batched.shape == (2, 2, 2, 2)
    with pytest.raises(DataError, match="C = 2"):
        T.Normalize([1.0, 2.0], [1.0, 1.0])(np.zeros((3, 2, 2), np.float32))


def test_to_tensor_scales_and_adds_channel():
    t = T.ToTensor()(np.full((4, 5), 255, np.uint8))
    assert t.shape == (1, 4, 5) and t.dtype == em.float32 and float(t.numpy().max()) == 1.0
    assert T.ToTensor(channels_last=True)(np.zeros((4, 5, 3), np.uint8)).shape == (3, 4, 5)


def test_random_crop_and_flip_are_seeded_and_correct():
    img = np.arange(2 * 4 * 4, dtype=np.float32).reshape(2, 4, 4)
    crop = T.RandomCrop(4, padding=2)
    em.manual_seed(0)
    outs = [crop(img) for _ in range(20)]
    em.manual_seed(0)
    assert all(np.array_equal(a, crop(img)) for a in outs)
    assert all(o.shape == (2, 4, 4) for o in outs)
    padded = np.pad(img, ((0, 0), (2, 2), (2, 2)))
    windows = [padded[:, i:i + 4, j:j + 4] for i in range(5) for j in range(5)]
    assert all(any(np.array_equal(o, w) for w in windows) for o in outs)
    assert len({o.tobytes() for o in outs}) > 1

    flipped = T.RandomHorizontalFlip(1.0)(em.from_numpy(img))
    np.testing.assert_array_equal(flipped.numpy(), img[:, :, ::-1])
    assert T.RandomHorizontalFlip(0.0)(img) is img
    with pytest.raises(DataError, match="larger"):
        T.RandomCrop(9)(img)
    with pytest.raises(DataError, match=r"\(C, H, W\)"):
        T.RandomCrop(2)(np.zeros((4, 4)))


def test_compose_in_a_dataset():
    class Images(Dataset):
        def __init__(self, tf):
            self.tf = tf

        def __len__(self):
            return 6

        def __getitem__(self, i):
            return self.tf(np.full((8, 8), i * 40, np.uint8)), i
    tf = T.Compose([T.ToTensor(), T.RandomCrop(8, padding=1), T.RandomHorizontalFlip(), T.Normalize([0.5], [0.5])])
    xb, yb = next(iter(DataLoader(Images(tf), batch_size=6)))
    assert xb.shape == (6, 1, 8, 8) and xb.dtype == em.float32
    assert yb.numpy().tolist() == list(range(6))
