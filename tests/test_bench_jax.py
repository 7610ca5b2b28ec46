"""bench/compile_jax.py's JAX workloads do the same work as the torch ones they are timed against:
from the same weights and data, the first losses of the W1-W4 training steps match torch eager's
(optimizer updates included), and W5a/W5b's values and gradients match torch's."""
import inspect
import os
import sys

import numpy as np
import pytest

jax = pytest.importorskip("jax", reason="JAX is an optional bench dependency (pip install -e .[bench])")
torch = pytest.importorskip("torch", reason="torch eager is the reference the JAX steps must match")

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench"))
import compile_jax  # noqa: E402
from compile_workloads import WORKLOADS  # noqa: E402

STEPS = 3
LOSS_RTOL = 1e-4  # float32, different summation orders; seen: <= 2e-6 after 3 Adam steps


@pytest.mark.parametrize("name", ["W1", "W2", "W3", "W4"])
def test_training_losses_match_torch(name):
    work = WORKLOADS[name](quick=True)
    tstep, jstep = work.make("torch eager"), compile_jax.make(work)
    want = [tstep().item() for _ in range(STEPS)]
    got = [float(jstep()) for _ in range(STEPS)]
    np.testing.assert_allclose(got, want, rtol=LOSS_RTOL)
    assert want[0] != want[-1], "the steps must update the weights"


def test_w5a_value_and_grad_match_torch():
    work = WORKLOADS["W5a"](quick=True)
    tstep = work.make("torch eager")
    want_y, want_dx = tstep().item(), inspect.getclosurevars(tstep).nonlocals["x"].grad.numpy()
    y, dx = compile_jax.make(work)()
    np.testing.assert_allclose(float(y), want_y, rtol=1e-5)  # a sum of 4M float32 terms
    np.testing.assert_allclose(np.asarray(dx), want_dx, rtol=1e-5, atol=1e-5)


def test_w5b_layernorm_value_and_grads_match_torch():
    work = WORKLOADS["W5b"](quick=True)
    tstep = work.make("torch eager")
    ln = inspect.getclosurevars(tstep).nonlocals["ln"]
    y = tstep()
    want = [y.detach().numpy(), inspect.getclosurevars(tstep).nonlocals["x"].grad.numpy(),
            ln.weight.grad.numpy(), ln.bias.grad.numpy()]
    got = compile_jax.make(work)()
    for name, g, w in zip(["y", "dx", "dweight", "dbias"], got, want):
        # dweight, dbias: sums over 4096 rows, so the tolerance scales with their size
        np.testing.assert_allclose(np.asarray(g), w, rtol=1e-5, atol=1e-5 * np.abs(w).max(), err_msg=name)
