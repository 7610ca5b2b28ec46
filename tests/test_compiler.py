"""ember.jit end to end: traced + replayed functions equal eager execution (forward, backward,
optimizer updates written back), guards and recompiles, clear errors for data-dependent
control flow, and the registry sweep (every op with a Case runs under jit == eager).

Tolerances: the compiled program may reorder float32 arithmetic (fused C kernels), so values are
compared with rtol 1e-5 / atol 1e-6 in float32 and 1e-10 in float64; loss trajectories over
20 steps with rtol 1e-5."""
import numpy as np
import pytest

import ember as em
from ember.compiler import TraceError, jit
from opcases import all_cases

CASES = all_cases()


def close(a, b, rtol=1e-5, atol=1e-6):
    a = a.detach().numpy() if isinstance(a, em.Tensor) else np.asarray(a)
    b = b.detach().numpy() if isinstance(b, em.Tensor) else np.asarray(b)
    assert a.shape == b.shape and a.dtype == b.dtype, (a.shape, a.dtype, b.shape, b.dtype)
    np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)


def test_pure_function_matches_eager_on_new_inputs():
    w = em.randn(3, 2)

    def f(x):
        return ((x @ w).relu() * 2 + 1).sum(dim=0), x.exp().mean()

    jf = jit(f)
    for _ in range(3):
        x = em.randn(4, 3)
        got, want = jf(x), f(x)
        close(got[0], want[0])
        close(got[1], want[1])
    assert len(jf.variants) == 1


def test_new_shape_compiles_a_new_variant():
    jf = jit(lambda x: (x * x).sum(dim=-1))
    for n in (2, 3, 2):
        x = em.randn(n, 4)
        close(jf(x), (x * x).sum(dim=-1))
    assert len(jf.variants) == 2


def _mlp_params(seed):
    rng = np.random.default_rng(seed)
    shapes = [(8, 16), (16,), (16, 4), (4,)]
    return [em.tensor(rng.standard_normal(s).astype(np.float32) * 0.3, requires_grad=True) for s in shapes]


def _make_step(params, lr=0.1, momentum=0.9):
    """An MLP step with a hand-written SGD-momentum whose buffers are created on the first call."""
    state = {}

    def step(x, y):
        w1, b1, w2, b2 = params
        h = (x @ w1 + b1).relu()
        logits = h @ w2 + b2
        loss = -(logits.log_softmax(dim=1) * y).sum(dim=1).mean()
        for p in params:
            p.grad = None
        loss.backward()
        with em.no_grad():
            for i, p in enumerate(params):
                if i not in state:
                    state[i] = em.zeros_like(p)
                buf = state[i]
                buf.mul_(momentum).add_(p.grad)
                p.sub_(buf * lr)
        return loss
    return step


def _batches(n=20):
    rng = np.random.default_rng(1)
    for _ in range(n):
        x = rng.standard_normal((5, 8)).astype(np.float32)
        y = np.eye(4, dtype=np.float32)[rng.integers(0, 4, 5)]
        yield em.tensor(x), em.tensor(y)


def test_mlp_training_step_matches_eager_over_20_steps():
    pe, pj = _mlp_params(0), _mlp_params(0)
    eager, compiled = _make_step(pe), jit(_make_step(pj))
    le = [eager(x, y).item() for x, y in _batches()]
    lj = [compiled(x, y).item() for x, y in _batches()]
    np.testing.assert_allclose(lj, le, rtol=1e-5)
    for a, b in zip(pj, pe):
        close(a, b, rtol=1e-5, atol=1e-6)
        close(a.grad, b.grad, rtol=1e-5, atol=1e-6)
    assert len(compiled.variants) == 1


def test_gradients_of_arguments_go_to_each_calls_arguments():
    def f(x):
        (x * x).sum().backward()
        return x.grad * 1

    jf = jit(f)
    for _ in range(2):
        x = em.randn(3, requires_grad=True)
        g = jf(x)
        close(x.grad, 2 * x.detach())
        close(g, 2 * x.detach())


def test_in_place_write_to_an_argument_is_written_back():
    jf = jit(lambda x: x.mul_(2))
    for _ in range(2):
        x = em.randn(4)
        x0 = x.numpy().copy()
        jf(x)
        np.testing.assert_allclose(x.numpy(), 2 * x0)


def test_gradient_accumulates_across_calls():
    w = em.ones(3, requires_grad=True)

    @jit
    def f(x):
        (w * x).sum().backward()

    x = em.tensor([1., 2., 3.])
    for k in range(1, 4):
        f(x)
        close(w.grad, k * x)


def test_zero_dim_state_updated_in_place_is_written_back():
    """Adam's step counter: a 0-d tensor created on the first call and add_-ed every call."""
    state = {}

    @jit
    def f(x):
        if "step" not in state:
            state["step"] = em.zeros(())
        step = state["step"].add_(1).double()
        return x * (1 - 0.9 ** step).float()

    for k in range(1, 5):
        out = f(em.ones(2))
        assert state["step"].item() == k
        close(out, em.ones(2) * (1 - 0.9 ** k))


@pytest.mark.parametrize("name, kw", [("SGD", dict(lr=0.1, momentum=0.9)), ("Adam", dict(lr=0.01)),
                                      ("AdamW", dict(lr=0.01, weight_decay=0.1))])
def test_nn_and_optim_step_matches_eager_over_20_steps(name, kw):
    def make():
        em.manual_seed(0)
        m = em.nn.Sequential(em.nn.Linear(6, 16), em.nn.Tanh(), em.nn.Linear(16, 3))
        opt = getattr(em.optim, name)(m.parameters(), **kw)
        loss_fn = em.nn.CrossEntropyLoss()

        def step(x, y):
            opt.zero_grad()
            loss = loss_fn(m(x), y)
            loss.backward()
            opt.step()
            return loss
        return step, m

    (eager, me), (compiled, mj) = make(), make()
    compiled = em.jit(compiled)
    rng = np.random.default_rng(0)
    data = [(em.tensor(rng.standard_normal((8, 6)).astype(np.float32)), em.tensor(rng.integers(0, 3, 8)))
            for _ in range(20)]
    le = [eager(x, y).item() for x, y in data]
    lj = [compiled(x, y).item() for x, y in data]
    np.testing.assert_allclose(lj, le, rtol=1e-5)
    for a, b in zip(mj.parameters(), me.parameters()):
        close(a, b)


def test_data_dependent_control_flow_names_the_line():
    @jit
    def f(x):
        if x.sum() > 0:  # the line the error must name
            return x
        return -x

    with pytest.raises(TraceError, match=r"test_compiler.py:\d+ \(`if x.sum\(\) > 0:"):
        f(em.randn(3))
    with pytest.raises(TraceError, match="item"):
        jit(lambda x: x.sum().item())(em.randn(3))


def test_train_eval_mode_is_a_guard():
    lin = em.nn.Module()

    def f(x):
        return x * (2.0 if lin.training else 3.0)

    jf = jit(f)
    x = em.ones(2)
    close(jf(x), 2 * x)
    lin.eval()
    close(jf(x), 3 * x)
    lin.train()
    close(jf(x), 2 * x)
    assert len(jf.variants) == 2


def test_learning_rate_change_by_a_scheduler_is_a_guard():
    def make():
        w = em.ones(3, requires_grad=True)
        opt = em.optim.SGD([w], lr=0.1)
        sched = em.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)

        def step():
            opt.zero_grad()
            (w * w).sum().backward()
            opt.step()
        return step, sched, w
    (se, sche, we), (sj, schj, wj) = make(), make()
    sj = jit(sj)
    for _ in range(6):
        se(); sj(); sche.step(); schj.step()
        close(wj, we)
    assert len(sj.variants) == 3


def test_ir_prints_before_and_after():
    jf = jit(lambda x: x.exp() + 0)
    with pytest.raises(TraceError, match="call the jitted function once"):
        jf.ir()
    jf(em.randn(2))
    text = jf.ir()
    assert "# traced" in text and "# optimized" in text and "exp" in text


# -- the registry sweep ----------------------------------------------------------------------

def _perturbed(arrays, rng):
    """Same shapes, slightly different float values (keeps each case's domain)."""
    return tuple(np.asarray(a * (1 + 0.01 * rng.uniform(-1, 1, a.shape))) if a.dtype.kind == "f" else a
                 for a in arrays)


def _jit_or_skip(jf, *ts):
    """Cases that turn a traced input into NumPy values cannot be traced (the values would be
    frozen); the case file should build them with ember ops instead."""
    try:
        return jf(*ts)
    except TraceError as e:
        if ".numpy()" in str(e) and "opcases" in str(e):
            pytest.skip(f"the case is not traceable as written: {e}")
        raise


def _sweep_inputs(case):
    rng = np.random.default_rng(0)
    first = case.inputs(rng)
    return first, _perturbed(first, rng)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_registry_sweep_forward_under_jit(case):
    jf = jit(case.ember)
    for arrays in _sweep_inputs(case):
        ts = [em.from_numpy(a) for a in arrays]
        want = case.ember(*ts)
        got = _jit_or_skip(jf, *ts)
        close(got, want, rtol=1e-10, atol=1e-12)
    assert len(jf.variants) == 1


@pytest.mark.parametrize("case", [c for c in CASES if c.grad], ids=[c.id for c in CASES if c.grad])
def test_registry_sweep_gradient_under_jit(case):
    def grads(*ts):
        out = case.ember(*ts)
        w = em.from_numpy(np.linspace(0.5, 1.5, out.numel()).reshape(out.shape))
        fl = [t for t in ts if t.requires_grad]
        return em.grad((out * w).sum(), fl, allow_unused=True)

    jf = jit(grads)
    for arrays in _sweep_inputs(case):
        mk = lambda: [em.from_numpy(a).requires_grad_(True) if a.dtype.kind == "f" else em.from_numpy(a)
                      for a in arrays]
        want, got = grads(*mk()), _jit_or_skip(jf, *mk())
        for g, w in zip(got, want):
            if w is None:
                assert g is None
            else:
                close(g, w, rtol=1e-10, atol=1e-12)
