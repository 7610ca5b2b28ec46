"""Random draws inside a jitted function (dropout masks, rand/randn) are fresh at every call and
consume ember's generator exactly as eager execution does: same seed, same numbers (exact in the
masks; losses to rtol 1e-5 because fused kernels may reorder float32 sums)."""
import numpy as np

import ember as em
from ember.compiler import jit


def _dropout_step():
    em.manual_seed(1)
    model = em.nn.Sequential(em.nn.Linear(16, 32), em.nn.ReLU(), em.nn.Dropout(0.5), em.nn.Linear(32, 4))
    opt = em.optim.SGD(model.parameters(), lr=0.1)
    x, y = em.randn(8, 16), em.tensor(np.arange(8) % 4)

    def step(x, y):
        opt.zero_grad()
        loss = em.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss
    return step, x, y


def test_dropout_mask_is_fresh_per_call_and_matches_eager_stream():
    step, x, y = _dropout_step()
    em.manual_seed(7)
    eager = [step(x, y).item() for _ in range(5)]
    step, x, y = _dropout_step()
    f = jit(step)
    em.manual_seed(7)
    jitted = [f(x, y).item() for _ in range(5)]
    np.testing.assert_allclose(jitted, eager, rtol=1e-5)
    assert "random" in f.ir("after")


def test_rand_is_redrawn_each_call():
    f = jit(lambda x: x + em.rand(3, 4) + em.randn(3, 4))
    x = em.zeros(3, 4)
    a, b, c = (f(x).numpy() for _ in range(3))
    assert not np.array_equal(b, c) and not np.array_equal(a, b)
    em.manual_seed(3)
    got = f(x).numpy()
    em.manual_seed(3)
    want = (em.rand(3, 4) + em.randn(3, 4)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_unused_draw_still_advances_the_stream_like_eager():
    def g(x):
        em.rand(5)  # drawn, never used
        return x * em.rand(2)

    f = jit(g)
    x = em.ones(2)
    f(x)
    em.manual_seed(4)
    got = f(x).numpy()
    em.manual_seed(4)
    np.testing.assert_array_equal(got, g(x).numpy())


def test_check_mode_shares_the_draws_with_eager():
    f = jit(lambda x: (x * em.rand(4, 4)).sum(), check=True)
    x = em.ones(4, 4)
    f(x)
    f(x)
