"""ember.optim against torch.optim: parameter trajectories over 20 steps from the same initial
parameters and the same pre-generated gradients, for each optimizer and each option; state
dicts (PyTorch layout, ember.save round trip, resume == not stopping); errors.

Tolerance: float32 throughout, rtol=1e-5 with atol=1e-6 (for entries that pass near zero)."""
import numpy as np
import pytest

import ember as em
from ember.optim import OptimizerStateError

torch = pytest.importorskip("torch", reason="torch.optim is the oracle for the optimizer trajectories")

RTOL, ATOL, STEPS = 1e-5, 1e-6, 20
SHAPES = [(5, 3), (3,), (2, 2, 2)]

CONFIGS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.5)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True)),
    ("SGD", dict(lr=0.05, weight_decay=0.1)),
    ("SGD", dict(lr=0.05, maximize=True)),
    ("SGD", dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.05, maximize=True)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.99))),
    ("Adam", dict(lr=0.01, eps=1e-3)),
    ("Adam", dict(lr=0.01, weight_decay=0.1)),
    ("Adam", dict(lr=0.01, amsgrad=True)),
    ("Adam", dict(lr=0.01, maximize=True)),
    ("Adam", dict(lr=0.02, betas=(0.5, 0.9), weight_decay=0.05, amsgrad=True, maximize=True)),
    ("AdamW", dict(lr=0.01)),
    ("AdamW", dict(lr=0.01, weight_decay=0.2)),
    ("AdamW", dict(lr=0.01, amsgrad=True)),
    ("AdamW", dict(lr=0.01, betas=(0.8, 0.95), eps=1e-4, maximize=True)),
    ("RMSprop", dict(lr=0.01)),
    ("RMSprop", dict(lr=0.01, alpha=0.9)),
    ("RMSprop", dict(lr=0.01, eps=1e-3)),
    ("RMSprop", dict(lr=0.01, weight_decay=0.1)),
    ("RMSprop", dict(lr=0.01, momentum=0.9)),
    ("RMSprop", dict(lr=0.01, centered=True)),
    ("RMSprop", dict(lr=0.01, maximize=True)),
    ("RMSprop", dict(lr=0.005, alpha=0.95, momentum=0.5, centered=True, weight_decay=0.01)),
    ("Adagrad", dict(lr=0.1)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.05)),
    ("Adagrad", dict(lr=0.1, initial_accumulator_value=0.5)),
    ("Adagrad", dict(lr=0.1, eps=1e-2)),
    ("Adagrad", dict(lr=0.1, weight_decay=0.1)),
    ("Adagrad", dict(lr=0.1, maximize=True)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01, weight_decay=0.05, initial_accumulator_value=0.1, maximize=True)),
]


def _initial(seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(np.float32) for s in SHAPES]


def _gradients(seed=1, steps=STEPS):
    """Per step, per parameter; magnitudes vary by step so AMSGrad's max and decays matter.
    Parameter 2 has no gradient on every third step (the optimizer must skip it)."""
    rng = np.random.default_rng(seed)
    out = []
    for t in range(steps):
        scale = np.exp(rng.standard_normal())
        gs = [(rng.standard_normal(s) * scale).astype(np.float32) for s in SHAPES]
        if t % 3 == 2:
            gs[2] = None
        out.append(gs)
    return out


def _ember_run(name, kwargs, init, grads, groups=None):
    params = [em.tensor(a.copy(), requires_grad=True) for a in init]
    opt = getattr(em.optim, name)(groups(params) if groups else params, **kwargs)
    traj = []
    for gs in grads:
        for p, g in zip(params, gs):
            p.grad = None if g is None else em.tensor(g)
        opt.step()
        traj.append([p.detach().numpy().copy() for p in params])
    return traj, opt


def _torch_run(name, kwargs, init, grads, groups=None):
    params = [torch.tensor(a.copy(), requires_grad=True) for a in init]
    opt = getattr(torch.optim, name)(groups(params) if groups else params, **kwargs)
    traj = []
    for gs in grads:
        for p, g in zip(params, gs):
            p.grad = None if g is None else torch.tensor(g)
        opt.step()
        traj.append([p.detach().numpy().copy() for p in params])
    return traj, opt


def _assert_trajectories(a, b):
    for t, (pa, pb) in enumerate(zip(a, b)):
        for i, (x, y) in enumerate(zip(pa, pb)):
            np.testing.assert_allclose(x, y, rtol=RTOL, atol=ATOL, err_msg=f"step {t + 1}, parameter {i}")


@pytest.mark.parametrize("name,kwargs", CONFIGS, ids=[f"{n}-{'-'.join(k)}" for n, k in CONFIGS])
def test_trajectory_matches_torch(name, kwargs):
    init, grads = _initial(), _gradients()
    ours, opt = _ember_run(name, kwargs, init, grads)
    ref, topt = _torch_run(name, kwargs, init, grads)
    _assert_trajectories(ours, ref)
    # Same state keys per parameter as PyTorch (its layout, so checkpoints port by key).
    sd, tsd = opt.state_dict(), topt.state_dict()
    assert sorted(sd["state"]) == sorted(tsd["state"])
    for k in tsd["state"]:
        assert set(sd["state"][k]) == set(tsd["state"][k])


@pytest.mark.parametrize("name,kwargs", [
    ("SGD", dict(lr=0.1, momentum=0.9)),
    ("Adam", dict(lr=0.01, betas=(0.9, 0.99))),
    ("RMSprop", dict(lr=0.01, momentum=0.5)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01)),
])
def test_param_groups_with_own_options_match_torch(name, kwargs):
    group_opts = {"SGD": dict(lr=0.01, momentum=0.5, nesterov=True), "Adam": dict(lr=0.05, amsgrad=True),
                  "RMSprop": dict(centered=True, alpha=0.9), "Adagrad": dict(weight_decay=0.1)}[name]

    def groups(ps):
        return [{"params": ps[:2]}, {"params": [ps[2]], **group_opts}]

    init, grads = _initial(), _gradients()
    ours, opt = _ember_run(name, kwargs, init, grads, groups)
    ref, _ = _torch_run(name, kwargs, init, grads, groups)
    _assert_trajectories(ours, ref)
    assert opt.param_groups[1]["lr"] == group_opts.get("lr", kwargs["lr"])


def test_add_param_group_takes_defaults():
    a, b = em.zeros(2, requires_grad=True), em.zeros(3, requires_grad=True)
    opt = em.optim.SGD([a], lr=0.1, momentum=0.9)
    opt.add_param_group({"params": b, "lr": 0.5})
    assert opt.param_groups[1]["momentum"] == 0.9 and opt.param_groups[1]["lr"] == 0.5
    assert opt.param_groups[1]["params"][0] is b
    with pytest.raises(OptimizerStateError, match="more than one parameter group"):
        opt.add_param_group({"params": [a]})


def test_zero_grad():
    p = em.ones(3, requires_grad=True)
    opt = em.optim.SGD([p], lr=0.1)
    (p * 2).sum().backward()
    opt.zero_grad(set_to_none=False)
    assert p.grad is not None and np.all(p.grad.numpy() == 0)
    opt.zero_grad()
    assert p.grad is None


def test_closure_is_called_with_grad_enabled():
    p = em.tensor([1.0, 2.0], requires_grad=True)
    opt = em.optim.SGD([p], lr=0.5)

    def closure():
        opt.zero_grad()
        loss = (p * p).sum()
        loss.backward()
        return loss

    with em.no_grad():
        loss = opt.step(closure)
    assert loss.item() == 5.0
    np.testing.assert_array_equal(p.detach().numpy(), [0.0, 0.0])  # p - 0.5 * 2p


def test_update_is_in_place_and_untracked():
    p = em.ones(3, requires_grad=True)
    data = p.detach().numpy()
    opt = em.optim.Adam([p], lr=0.1)
    (p * p).sum().backward()
    opt.step()
    assert p.is_leaf and p.requires_grad and np.all(data < 1.0)  # same memory, updated


# ---------------------------------------------------------------- state dicts

FULL = [("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)),
        ("Adam", dict(lr=0.01, amsgrad=True, weight_decay=0.01)),
        ("AdamW", dict(lr=0.01, amsgrad=True)),
        ("RMSprop", dict(lr=0.01, momentum=0.5, centered=True)),
        ("Adagrad", dict(lr=0.1, lr_decay=0.01, initial_accumulator_value=0.1))]


@pytest.mark.parametrize("name,kwargs", FULL, ids=[n for n, _ in FULL])
def test_state_dict_round_trip_through_file_equals_not_stopping(name, kwargs, tmp_path):
    init, grads = _initial(), _gradients()
    straight, _ = _ember_run(name, kwargs, init, grads)

    first, opt = _ember_run(name, kwargs, init, grads[:10])
    path = tmp_path / "opt.safetensors"
    em.save({"params": [em.tensor(a) for a in first[-1]], "optimizer": opt.state_dict()}, path)
    del opt
    ckpt = em.load(path)
    params = [t.requires_grad_() for t in ckpt["params"]]
    opt = getattr(em.optim, name)(params, **kwargs)
    opt.load_state_dict(ckpt["optimizer"])
    for gs in grads[10:]:
        for p, g in zip(params, gs):
            p.grad = None if g is None else em.tensor(g)
        opt.step()
    for x, y in zip(params, straight[-1]):
        np.testing.assert_array_equal(x.detach().numpy(), y)  # bit for bit


def test_state_dict_layout_and_no_aliasing():
    init, grads = _initial(), _gradients(steps=3)
    _, opt = _ember_run("Adam", dict(lr=0.01), init, grads)
    sd = opt.state_dict()
    assert sd["param_groups"][0]["params"] == [0, 1, 2]
    assert sd["state"][0]["step"] == 3 and sd["state"][2]["step"] == 2  # p2 had no grad once
    params = [em.tensor(a, requires_grad=True) for a in init]
    opt2 = em.optim.Adam(params, lr=0.5)
    opt2.load_state_dict(sd)
    assert opt2.param_groups[0]["lr"] == 0.01 and opt2.param_groups[0]["params"][0] is params[0]
    opt2.state[params[0]]["exp_avg"].add_(1.0)  # loaded state is a copy, not the source's buffer
    assert not np.array_equal(opt2.state[params[0]]["exp_avg"].numpy(), sd["state"][0]["exp_avg"].numpy())


def test_loads_a_torch_state_dict_and_continues_like_torch():
    init, grads = _initial(), _gradients()
    kwargs = dict(lr=0.01, amsgrad=True)
    ref, _ = _torch_run("Adam", kwargs, init, grads)
    first, topt = _torch_run("Adam", kwargs, init, grads[:10])
    tsd = topt.state_dict()
    sd = {"state": {k: {n: em.from_numpy(v.numpy().copy()) for n, v in s.items()} for k, s in tsd["state"].items()},
          "param_groups": tsd["param_groups"]}
    params = [em.tensor(a, requires_grad=True) for a in first[-1]]
    opt = em.optim.Adam(params, **kwargs)
    opt.load_state_dict(sd)
    for gs in grads[10:]:
        for p, g in zip(params, gs):
            p.grad = None if g is None else em.tensor(g)
        opt.step()
    for x, y in zip(params, ref[-1]):
        np.testing.assert_allclose(x.detach().numpy(), y, rtol=RTOL, atol=ATOL)


def test_load_state_dict_errors():
    init, grads = _initial(), _gradients(steps=2)
    _, opt = _ember_run("Adam", dict(lr=0.01), init, grads)
    sd = opt.state_dict()
    fewer = em.optim.Adam([em.zeros(5, 3, requires_grad=True), em.zeros(3, requires_grad=True)])
    with pytest.raises(OptimizerStateError, match=r"doesn't match the size.*\[3\].*\[2\]"):
        fewer.load_state_dict(sd)
    two_groups = em.optim.Adam([{"params": [em.zeros(5, 3, requires_grad=True)]},
                                {"params": [em.zeros(3, requires_grad=True)]}])
    with pytest.raises(OptimizerStateError, match="1 parameter group.*optimizer has 2"):
        two_groups.load_state_dict(sd)
    other_shapes = em.optim.Adam([em.zeros(4, requires_grad=True) for _ in range(3)])
    with pytest.raises(OptimizerStateError, match=r"shape \(5, 3\) but the parameter has shape \(4,\)"):
        other_shapes.load_state_dict(sd)
    with pytest.raises(OptimizerStateError, match="'state' and 'param_groups'"):
        other_shapes.load_state_dict({"lr": 1})


@pytest.mark.parametrize("make,match", [
    (lambda p: em.optim.SGD(p, lr=-1.0), "invalid learning rate"),
    (lambda p: em.optim.SGD(p, lr=0.1, nesterov=True), "Nesterov momentum requires"),
    (lambda p: em.optim.Adam(p, betas=(1.0, 0.9)), "invalid betas"),
    (lambda p: em.optim.RMSprop(p, alpha=-0.1), "invalid alpha"),
    (lambda p: em.optim.Adagrad(p, lr_decay=-1.0), "invalid lr_decay"),
    (lambda p: em.optim.SGD([], lr=0.1), "empty parameter list"),
    (lambda p: em.optim.SGD(p + p, lr=0.1), "more than one parameter group"),
    (lambda p: em.optim.SGD([p[0] * 2], lr=0.1), "non-leaf"),
])
def test_bad_arguments(make, match):
    with pytest.raises(OptimizerStateError, match=match):
        make([em.zeros(2, requires_grad=True)])


def test_single_tensor_is_refused_with_a_hint():
    with pytest.raises(TypeError, match=r"wrap it in a list"):
        em.optim.SGD(em.zeros(2, requires_grad=True), lr=0.1)
