"""Property tests (Hypothesis): broadcasting and indexing agree with NumPy, forward and back."""
import numpy as np
from hypothesis import assume, given, settings, strategies as st
from hypothesis.extra import numpy as hnp

import ember as em

SETTINGS = settings(max_examples=60, deadline=None)


@SETTINGS
@given(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, max_side=4), st.integers(0, 2**31))
def test_broadcasting_matches_numpy_and_grads_keep_input_shapes(shapes, seed):
    rng = np.random.default_rng(seed)
    a, b = (rng.standard_normal(s) for s in shapes.input_shapes)
    ta, tb = em.tensor(a, requires_grad=True), em.tensor(b, requires_grad=True)
    out = ta * tb + ta
    np.testing.assert_allclose(out.numpy(force=True), a * b + a)
    out.sum().backward()
    assert ta.grad.shape == a.shape and tb.grad.shape == b.shape
    # d/da sum(a*b + a) = sum of (b + 1) over the broadcast dims; same for b with a
    full = np.broadcast_shapes(a.shape, b.shape)
    ga = np.broadcast_to(b + 1, full)
    ga = ga.sum(axis=tuple(range(len(full) - a.ndim))) if len(full) > a.ndim else ga
    ga = ga.sum(axis=tuple(i for i, s in enumerate(a.shape) if s == 1), keepdims=True) if a.ndim else ga
    np.testing.assert_allclose(ta.grad.numpy(), np.broadcast_to(ga, a.shape) if a.ndim else np.sum(ga), rtol=1e-10)


@SETTINGS
@given(hnp.array_shapes(min_dims=1, max_dims=4, max_side=5).flatmap(
    lambda s: st.tuples(st.just(s), hnp.basic_indices(s, allow_newaxis=True, allow_ellipsis=True))))
def test_basic_indexing_matches_numpy_and_scatters_gradient(shape_index):
    shape, index = shape_index
    parts = index if isinstance(index, tuple) else (index,)
    assume(all(not isinstance(i, slice) or i.step is None or i.step > 0 for i in parts))  # PyTorch refuses step <= 0
    a = np.arange(np.prod(shape), dtype=np.float64).reshape(shape)
    t = em.tensor(a, requires_grad=True)
    out = t[index]
    np.testing.assert_array_equal(out.numpy(force=True), a[index])
    out.sum().backward()
    expected = np.zeros_like(a)
    expected[index] += 1
    np.testing.assert_array_equal(t.grad.numpy(), expected)


@SETTINGS
@given(hnp.array_shapes(min_dims=1, max_dims=3, max_side=5), st.data())
def test_integer_array_indexing_accumulates_repeats(shape, data):
    a = np.random.default_rng(0).standard_normal(shape)
    idx = data.draw(hnp.arrays(np.int64, st.integers(1, 6), elements=st.integers(0, shape[0] - 1)))
    t = em.tensor(a, requires_grad=True)
    out = t[em.tensor(idx)]
    np.testing.assert_array_equal(out.numpy(force=True), a[idx])
    out.sum().backward()
    expected = np.zeros_like(a)
    np.add.at(expected, idx, 1)
    np.testing.assert_array_equal(t.grad.numpy(), expected)


@SETTINGS
@given(hnp.array_shapes(min_dims=1, max_dims=3, max_side=4), st.integers(0, 2**31))
def test_boolean_mask_indexing_and_setitem(shape, seed):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(shape)
    mask = a > 0
    t = em.tensor(a)
    np.testing.assert_array_equal(t[em.tensor(mask)].numpy(), a[mask])
    t[em.tensor(mask)] = 0.0
    expected = a.copy()
    expected[mask] = 0.0
    np.testing.assert_array_equal(t.numpy(), expected)
