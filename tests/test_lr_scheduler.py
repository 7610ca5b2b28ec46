"""ember.optim.lr_scheduler against torch.optim.lr_scheduler: learning-rate (and, for
OneCycleLR, momentum) trajectories over 20 steps with two parameter groups; the closed form via
step(epoch); chained schedulers; resuming; state dicts through ember.save.

Tolerance: rtol=1e-5 (both compute in Python floats, so the values agree far closer)."""
import math
import warnings

import numpy as np
import pytest

import ember as em
from ember.optim import OptimizerStateError, lr_scheduler as ls

torch = pytest.importorskip("torch", reason="torch.optim.lr_scheduler is the oracle for the schedules")

RTOL, STEPS = 1e-5, 20

SCHEDULERS = [
    ("StepLR", dict(step_size=3, gamma=0.5)),
    ("MultiStepLR", dict(milestones=[2, 5, 5, 11], gamma=0.3)),
    ("ExponentialLR", dict(gamma=0.9)),
    ("CosineAnnealingLR", dict(T_max=7)),  # 20 steps: past T_max, down and up again
    ("CosineAnnealingLR", dict(T_max=10, eta_min=0.001)),
    ("LinearLR", dict()),
    ("LinearLR", dict(start_factor=0.1, end_factor=0.8, total_iters=8)),
    ("LambdaLR", dict(lr_lambda=lambda e: 1.0 / (1 + e))),
    ("LambdaLR", dict(lr_lambda=[lambda e: 0.9 ** e, lambda e: min(1.0, (e + 1) / 5)])),
    ("OneCycleLR", dict(max_lr=[0.5, 0.05], total_steps=STEPS)),
    ("OneCycleLR", dict(max_lr=0.3, total_steps=STEPS, anneal_strategy="linear", pct_start=0.4)),
    ("OneCycleLR", dict(max_lr=0.3, epochs=4, steps_per_epoch=5, three_phase=True, div_factor=10.0)),
    ("OneCycleLR", dict(max_lr=0.3, total_steps=STEPS, cycle_momentum=False)),
]


def _pair(opt_name="SGD"):
    """Two optimizers (ember, torch) over two parameter groups with lrs 0.1 and 0.01."""
    kw = dict(momentum=0.9) if opt_name == "SGD" else {}
    mk = lambda lib: getattr(lib.optim, opt_name)(  # noqa: E731
        [{"params": [lib.zeros(2, requires_grad=True)]},
         {"params": [lib.zeros(3, requires_grad=True)], "lr": 0.01}], lr=0.1, **kw)
    return mk(em), mk(torch)


def _momenta(opt):
    return [g["betas"][0] if "betas" in g else g["momentum"] for g in opt.param_groups]


def _check(sched, tsched, opt, topt):
    np.testing.assert_allclose(sched.get_last_lr(), tsched.get_last_lr(), rtol=RTOL)
    np.testing.assert_allclose([g["lr"] for g in opt.param_groups], [g["lr"] for g in topt.param_groups], rtol=RTOL)
    np.testing.assert_allclose(_momenta(opt), _momenta(topt), rtol=RTOL)


@pytest.mark.parametrize("name,kwargs", SCHEDULERS, ids=[f"{n}-{'-'.join(k)}" for n, k in SCHEDULERS])
@pytest.mark.parametrize("opt_name", ["SGD", "Adam"])
def test_lr_trajectory_matches_torch(name, kwargs, opt_name):
    opt, topt = _pair(opt_name)
    sched, tsched = getattr(ls, name)(opt, **kwargs), getattr(torch.optim.lr_scheduler, name)(topt, **kwargs)
    _check(sched, tsched, opt, topt)  # the constructor's initial step
    for _ in range(STEPS):
        opt.step()
        topt.step()
        sched.step()
        tsched.step()
        _check(sched, tsched, opt, topt)


@pytest.mark.parametrize("kwargs", [
    dict(),
    dict(mode="max", factor=0.5, patience=1),
    dict(patience=2, threshold=0.1, threshold_mode="abs", cooldown=2, min_lr=[0.02, 0.004]),
    dict(mode="max", factor=0.2, patience=0, threshold_mode="abs", min_lr=0.005, cooldown=1),
])
def test_reduce_on_plateau_matches_torch(kwargs):
    opt, topt = _pair()
    sched = ls.ReduceLROnPlateau(opt, **kwargs)
    tsched = torch.optim.lr_scheduler.ReduceLROnPlateau(topt, **kwargs)
    metrics = [1.0, 0.9, 0.95, 0.95, 0.89, 0.9, 0.9, 0.9, 0.5, 0.6, 0.6, 0.7, 0.7, 0.7, 0.7, 0.7,
               0.71, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2]
    for m in metrics:
        sched.step(em.from_numpy(np.array(m)))  # a 0-d tensor metric works too
        tsched.step(m)
        _check(sched, tsched, opt, topt)
    assert sched.best == tsched.best and sched.num_bad_epochs == tsched.num_bad_epochs


CLOSED = [("StepLR", dict(step_size=3, gamma=0.5)), ("MultiStepLR", dict(milestones=[2, 5, 5], gamma=0.3)),
          ("ExponentialLR", dict(gamma=0.9)), ("CosineAnnealingLR", dict(T_max=7, eta_min=0.001)),
          ("LinearLR", dict(start_factor=0.2, total_iters=6))]


@pytest.mark.parametrize("name,kwargs", CLOSED, ids=[n for n, _ in CLOSED])
def test_step_with_epoch_uses_the_closed_form_like_torch(name, kwargs):
    opt, topt = _pair()
    sched, tsched = getattr(ls, name)(opt, **kwargs), getattr(torch.optim.lr_scheduler, name)(topt, **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch deprecates step(epoch)
        for epoch in [3, 4, 9, 2, 2, 12, 5, 6]:
            opt.step()
            topt.step()
            sched.step(epoch)
            tsched.step(epoch)
            _check(sched, tsched, opt, topt)


def test_chained_warmup_then_decay_matches_torch():
    opt, topt = _pair()
    ours = [ls.LinearLR(opt, start_factor=0.1, total_iters=4), ls.ExponentialLR(opt, gamma=0.9)]
    ref = [torch.optim.lr_scheduler.LinearLR(topt, start_factor=0.1, total_iters=4),
           torch.optim.lr_scheduler.ExponentialLR(topt, gamma=0.9)]
    for _ in range(STEPS):
        opt.step()
        topt.step()
        for s, t in zip(ours, ref):
            s.step()
            t.step()
        _check(ours[1], ref[1], opt, topt)


@pytest.mark.parametrize("name,kwargs", [("ExponentialLR", dict(gamma=0.9)), ("CosineAnnealingLR", dict(T_max=7)),
                                         ("StepLR", dict(step_size=2))])
def test_constructing_with_last_epoch_matches_torch(name, kwargs):
    opt, topt = _pair()
    for o in (opt, topt):
        for g in o.param_groups:
            g["initial_lr"] = g["lr"]
    sched = getattr(ls, name)(opt, last_epoch=4, **kwargs)
    tsched = getattr(torch.optim.lr_scheduler, name)(topt, last_epoch=4, **kwargs)
    _check(sched, tsched, opt, topt)
    for _ in range(5):
        opt.step()
        topt.step()
        sched.step()
        tsched.step()
        _check(sched, tsched, opt, topt)


def _lr_lambda(e):
    return 0.5 ** e


STATEFUL = [("StepLR", dict(step_size=3, gamma=0.5)), ("MultiStepLR", dict(milestones=[2, 7, 7])),
            ("CosineAnnealingLR", dict(T_max=6)), ("LinearLR", dict(start_factor=0.25, total_iters=8)),
            ("LambdaLR", dict(lr_lambda=_lr_lambda)), ("OneCycleLR", dict(max_lr=0.4, total_steps=STEPS)),
            ("ReduceLROnPlateau", dict(patience=1, cooldown=1))]


@pytest.mark.parametrize("name,kwargs", STATEFUL, ids=[n for n, _ in STATEFUL])
def test_state_dict_through_file_resumes_exactly(name, kwargs, tmp_path):
    metrics = [1.0, 0.9, 0.95, 0.97, 0.96, 0.5, 0.6, 0.6, 0.6, 0.6, 0.1, 0.2, 0.2, 0.2, 0.2, 0.2]

    def advance(sched, opt, steps):
        for i in steps:
            opt.step()
            sched.step(metrics[i]) if name == "ReduceLROnPlateau" else sched.step()

    opt, _ = _pair()
    sched = getattr(ls, name)(opt, **kwargs)
    advance(sched, opt, range(16))
    straight = sched.get_last_lr()

    opt, _ = _pair()
    sched = getattr(ls, name)(opt, **kwargs)
    advance(sched, opt, range(6))
    path = tmp_path / "sched.safetensors"
    em.save({"optimizer": opt.state_dict(), "scheduler": sched.state_dict()}, path)
    opt, _ = _pair()
    sched = getattr(ls, name)(opt, **kwargs)  # as PyTorch advises: scheduler first, then load both
    ckpt = em.load(path)
    opt.load_state_dict(ckpt["optimizer"])
    sched.load_state_dict(ckpt["scheduler"])
    advance(sched, opt, range(6, 16))
    assert sched.get_last_lr() == straight
    assert [g["lr"] for g in opt.param_groups] == straight


def test_get_last_lr_and_initial_lr():
    opt, _ = _pair()
    sched = ls.StepLR(opt, step_size=1, gamma=0.5)
    assert sched.get_last_lr() == [0.1, 0.01] and sched.base_lrs == [0.1, 0.01]
    opt.step()
    sched.step()
    assert sched.get_last_lr() == [0.05, 0.005]
    assert all(g["initial_lr"] == lr for g, lr in zip(opt.param_groups, [0.1, 0.01]))


@pytest.mark.parametrize("make,match", [
    (lambda o: ls.LinearLR(o, start_factor=0.0), "start_factor must be in"),
    (lambda o: ls.LambdaLR(o, lr_lambda=[lambda e: 1.0]), "expected 2 lr_lambdas"),
    (lambda o: ls.OneCycleLR(o, max_lr=0.1), "give total_steps"),
    (lambda o: ls.OneCycleLR(o, max_lr=[0.1], total_steps=5), "expected 2 values for max_lr"),
    (lambda o: ls.ReduceLROnPlateau(o, factor=1.5), "factor must be < 1.0"),
    (lambda o: ls.ReduceLROnPlateau(o, mode="up"), "mode must be"),
    (lambda o: ls.StepLR(o, step_size=2, last_epoch=3), "no 'initial_lr'"),
])
def test_bad_arguments(make, match):
    opt, _ = _pair()
    with pytest.raises(OptimizerStateError, match=match):
        make(opt)


def test_one_cycle_refuses_to_step_past_total_steps():
    opt, _ = _pair()
    sched = ls.OneCycleLR(opt, max_lr=0.1, total_steps=2)
    sched.step()
    sched.step()
    with pytest.raises(OptimizerStateError, match="total_steps is 2"):
        sched.step()


def test_one_cycle_without_momentum_option_needs_cycle_momentum_false():
    opt = em.optim.Adagrad([em.zeros(2, requires_grad=True)], lr=0.1)
    with pytest.raises(OptimizerStateError, match="cycle_momentum=False"):
        ls.OneCycleLR(opt, max_lr=0.1, total_steps=5)
    sched = ls.OneCycleLR(opt, max_lr=0.1, total_steps=5, cycle_momentum=False)
    assert math.isclose(sched.get_last_lr()[0], 0.1 / 25)
