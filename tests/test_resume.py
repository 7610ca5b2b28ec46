"""Resuming training: 2 epochs, a checkpoint, then 2 more epochs in a NEW process give the same
parameters, bit for bit, as 4 uninterrupted epochs. The run uses every piece of state a
checkpoint must carry: weights, AdamW moments, a per-batch OneCycleLR schedule (which also
cycles beta1), dropout and the shuffling order (ember's default generator).

Run as a script (``python tests/test_resume.py CKPT OUT``) it is the second process."""
import subprocess
import sys

import numpy as np
import pytest

import ember as em
from ember import nn
from ember.nn import StateDictError
from ember.optim import OptimizerStateError
from ember.serialization import load_checkpoint, save_checkpoint

EPOCHS, BATCH, SEED = 4, 64, 7


def _setup(hidden=32):
    em.manual_seed(SEED)
    (x, y), _ = em.data.datasets.digits(flatten=True)
    loader = em.data.DataLoader(em.data.TensorDataset(x, y), batch_size=BATCH, shuffle=True)
    model = nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Dropout(0.2), nn.Linear(hidden, 10))
    opt = em.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    sched = em.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.01, epochs=EPOCHS, steps_per_epoch=len(loader))
    return model, opt, sched, loader


def _train(model, opt, sched, loader, epochs):
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    for _ in epochs:
        for xb, yb in loader:
            loss = loss_fn(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()


def _resume(ckpt_path, out_path):
    """The second process: fresh objects, load the checkpoint, finish the run, save the weights."""
    model, opt, sched, loader = _setup()
    epoch = load_checkpoint(ckpt_path, model=model, optimizer=opt, scheduler=sched)["epoch"]
    _train(model, opt, sched, loader, range(epoch, EPOCHS))
    em.save({"model": model.state_dict(), "lr": sched.get_last_lr()}, out_path)


def test_resume_in_a_new_process_is_bit_identical(tmp_path):
    model, opt, sched, loader = _setup()
    _train(model, opt, sched, loader, range(EPOCHS))
    straight = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    straight_lr = sched.get_last_lr()

    model, opt, sched, loader = _setup()
    _train(model, opt, sched, loader, range(2))
    ckpt, out = tmp_path / "ckpt.safetensors", tmp_path / "resumed.safetensors"
    save_checkpoint(ckpt, model=model, optimizer=opt, scheduler=sched, epoch=2)
    proc = subprocess.run([sys.executable, __file__, str(ckpt), str(out)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    resumed = em.load(out)
    assert resumed["lr"] == straight_lr
    assert list(resumed["model"]) == list(straight)
    for k, v in straight.items():
        np.testing.assert_array_equal(resumed["model"][k].numpy(), v, err_msg=k)
    # Not trivially equal: the checkpointed weights differ from the final ones.
    assert not np.array_equal(model.state_dict()["0.weight"].numpy(), straight["0.weight"])


def test_resume_without_restoring_rng_diverges(tmp_path):
    """The check above has teeth: the shuffling/dropout stream is part of the result."""
    model, opt, sched, loader = _setup()
    _train(model, opt, sched, loader, range(EPOCHS))
    straight = model.state_dict()["0.weight"].numpy().copy()

    model, opt, sched, loader = _setup()
    _train(model, opt, sched, loader, range(2))
    save_checkpoint(tmp_path / "c.safetensors", model=model, optimizer=opt, scheduler=sched, epoch=2)
    model, opt, sched, loader = _setup()
    load_checkpoint(tmp_path / "c.safetensors", model=model, optimizer=opt, scheduler=sched, restore_rng=False)
    _train(model, opt, sched, loader, range(2, EPOCHS))
    assert not np.array_equal(model.state_dict()["0.weight"].numpy(), straight)


def test_checkpoint_of_another_model_gives_a_clear_error(tmp_path):
    model, opt, sched, _ = _setup(hidden=32)
    save_checkpoint(tmp_path / "c.safetensors", model=model, optimizer=opt, scheduler=sched, epoch=1)
    other, other_opt, other_sched, _ = _setup(hidden=16)
    with pytest.raises(StateDictError, match=r"size mismatch for 0\.weight: checkpoint has shape "
                                             r"\(32, 64\), model has \(16, 64\)"):
        load_checkpoint(tmp_path / "c.safetensors", model=other, optimizer=other_opt, scheduler=other_sched)


def test_checkpoint_with_another_optimizer_layout_gives_a_clear_error(tmp_path):
    model, opt, sched, loader = _setup()
    _train(model, opt, sched, loader, range(1))
    save_checkpoint(tmp_path / "c.safetensors", model=model, optimizer=opt, epoch=1)
    model, _, _, _ = _setup()
    head_only = em.optim.AdamW(model[3].parameters())
    with pytest.raises(OptimizerStateError, match=r"doesn't match the size.*\[4\].*\[2\]"):
        load_checkpoint(tmp_path / "c.safetensors", model=model, optimizer=head_only)


if __name__ == "__main__":
    _resume(sys.argv[1], sys.argv[2])
