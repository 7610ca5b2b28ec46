"""The `ember` command: every example config trains (shortened) and writes readable outputs; Ctrl-C
saves a checkpoint and a rerun resumes; eval, time, export, sample and info run; config errors
exit with status 2 and a message naming the file."""
import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import ember as em
from ember.cli.main import main
from ember.data.datasets import dataset_root
from ember.data.datasets._mnist import FASHION_MNIST_SYSTEM_DIR

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
TEXT = ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"  # ../shared/data, as in CI
needs_text = pytest.mark.skipif(not TEXT.is_file(), reason=f"{TEXT} is absent (tests and CI keep it in ../shared/data)")

TINY_LM = {"char_lstm.toml": ["model.args={embed_dim=8, hidden_size=16, num_layers=1}"],
           "gpt_shakespeare.toml": ["model.args={n_layer=1, n_head=2, n_embd=16}"]}


def ember(capsys, *args) -> tuple[int, str, str]:
    rc = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


def sets(*items) -> list[str]:
    return [a for item in items for a in ("--set", item)]


def text_sets() -> list[str]:
    return sets(f'data.path="{TEXT}"', "data.seq_len=16", "data.train_subset=48", "data.test_subset=8")


@pytest.fixture
def fake_cifar(tmp_path) -> Path:
    """A CIFAR-10 folder of 12 random records per batch file, in the real binary format."""
    folder = tmp_path / "cifar" / "cifar-10-batches-bin"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        records = rng.integers(0, 256, (12, 3073), dtype=np.uint8)
        records[:, 0] %= 10
        (folder / name).write_bytes(records.tobytes())
    return folder.parent


def fashion_available() -> bool:
    return any(d.is_dir() and any(d.glob("*ubyte*")) for d in (FASHION_MNIST_SYSTEM_DIR, dataset_root("fashion-mnist")))


def check_outputs(out: Path, epochs: int) -> dict:
    """The run folder holds a loadable checkpoint, a metrics CSV, event files and a report."""
    ckpt = em.load(out / "last.safetensors")
    assert ckpt["epoch"] == epochs and ckpt["model"] and ckpt["optimizer"] is not None
    with open(out / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == list(range(epochs))
    assert all(np.isfinite(float(r["loss"])) for r in rows)
    assert list((out / "tensorboard" / "train").glob("events.out.tfevents.*"))
    report = json.loads((out / "report.json").read_text())
    assert 0.0 <= report["test_accuracy"] <= 1.0 and np.isfinite(report["test_loss"])
    assert "test accuracy" in (out / "report.txt").read_text()
    return report


@pytest.mark.parametrize("name", ["digits_mlp.toml", "digits_cnn.toml"])
def test_digits_examples_train(name, tmp_path, capsys):
    rc, out, err = ember(capsys, "train", EXAMPLES / name, "--epochs", 1, "--out", tmp_path / "run",
                         *sets("train.verbose=2"))
    assert rc == 0, err
    assert "Epoch 1/1" in out and "loss:" in out and "test accuracy: " in out
    report = check_outputs(tmp_path / "run", 1)
    assert report["test_accuracy"] > 0.5  # one epoch on digits already learns a lot
    assert (tmp_path / "run" / "best.safetensors").is_file()


def test_cifar10_resnet20_example_trains(fake_cifar, tmp_path, capsys):
    rc, _, err = ember(capsys, "train", EXAMPLES / "cifar10_resnet20.toml", "--epochs", 1, "--out", tmp_path / "run",
                       *sets(f'data.root="{fake_cifar}"', "data.train_subset=8", "data.test_subset=4",
                             "batch_size=4", "verbose=0"))
    assert rc == 0, err
    check_outputs(tmp_path / "run", 1)


@pytest.mark.skipif(not fashion_available(), reason="Fashion-MNIST files are absent (apt-get install "
                    "dataset-fashion-mnist, or let ember download them once)")
def test_fashion_mnist_example_trains(tmp_path, capsys):
    rc, _, err = ember(capsys, "train", EXAMPLES / "fashion_mnist_cnn.toml", "--epochs", 1, "--out", tmp_path / "run",
                       *sets("data.train_subset=64", "data.test_subset=32", "verbose=0"))
    assert rc == 0, err
    check_outputs(tmp_path / "run", 1)


@needs_text
@pytest.mark.parametrize("name", ["char_lstm.toml", "gpt_shakespeare.toml"])
def test_language_model_examples_train_and_sample(name, tmp_path, capsys):
    run = tmp_path / "run"
    rc, out, err = ember(capsys, "train", EXAMPLES / name, "--epochs", 1, "--out", run, *text_sets(),
                         *sets(*TINY_LM[name], "verbose=0"))
    assert rc == 0, err
    assert "test per-character accuracy" in out
    check_outputs(run, 1)
    assert len(em.load(run / "last.safetensors")["vocab"]) == 65  # Tiny Shakespeare's characters
    rc, out, err = ember(capsys, "sample", run / "last.safetensors", "--config", EXAMPLES / name,
                         "--prompt", "ROMEO:", "--length", 30, *text_sets(), *sets(*TINY_LM[name]))
    assert rc == 0, err
    assert out.startswith("ROMEO:") and len(out.rstrip("\n")) >= 6 + 20  # (samples may hold newlines)
    rc, _, err = ember(capsys, "sample", run / "last.safetensors", "--config", EXAMPLES / name,
                       "--prompt", "\u00e9", *text_sets(), *sets(*TINY_LM[name]))
    assert rc == 2 and "--prompt" in err and "vocabulary lacks" in err


def test_sample_needs_a_text_config(tmp_path, capsys):
    rc, _, err = ember(capsys, "sample", tmp_path / "x.safetensors", "--config", EXAMPLES / "digits_mlp.toml")
    assert rc == 2 and "needs a language model config" in err


def test_eval_time_export(tmp_path, capsys):
    run = tmp_path / "run"
    cfg = EXAMPLES / "digits_cnn.toml"
    assert ember(capsys, "train", cfg, "--epochs", 1, "--out", run, *sets("verbose=0"))[0] == 0
    report = json.loads((run / "report.json").read_text())

    rc, out, _ = ember(capsys, "eval", cfg, "--checkpoint", run / "last.safetensors")
    assert rc == 0 and f"test accuracy {100 * report['test_accuracy']:.2f}%" in out  # same weights, same number

    rc, out, _ = ember(capsys, "time", cfg, "--iterations", 2, "--batch-size", 8)
    assert rc == 0
    lines = out.splitlines()
    assert "forward ms" in lines[1] and "backward ms" in lines[1]
    assert sum(line.startswith(("0 ", "1 ", "4 ")) for line in lines) == 3  # Conv2d, ReLU, Conv2d rows
    assert "Conv2d" in out and "(8, 16, 8, 8)" in out and "average forward-backward" in out

    rc, _, err = ember(capsys, "export", run / "last.safetensors")
    assert rc == 2 and "--safetensors" in err and "--onnx" in err
    rc, out, _ = ember(capsys, "export", run / "last.safetensors", "--safetensors", tmp_path / "w.safetensors")
    assert rc == 0 and "wrote" in out
    weights = em.load(tmp_path / "w.safetensors")
    assert set(weights) == set(em.load(run / "last.safetensors")["model"])
    rc, out, _ = ember(capsys, "eval", cfg, "--checkpoint", tmp_path / "w.safetensors")  # a plain state dict
    assert rc == 0 and f"test accuracy {100 * report['test_accuracy']:.2f}%" in out


@needs_text
def test_time_language_model(capsys):
    rc, out, _ = ember(capsys, "time", EXAMPLES / "gpt_shakespeare.toml", "--iterations", 1, "--batch-size", 2,
                       *text_sets(), *sets(*TINY_LM["gpt_shakespeare.toml"]))
    assert rc == 0 and "h.0.attn.c_attn" in out and "Embedding" in out


def test_info(capsys):
    rc, out, _ = ember(capsys, "info")
    assert rc == 0
    for item in (f"ember {em.__version__}", "backends: numpy (cpu): available", "devices: cpu",
                 "C compiler: ", "compile cache: "):
        assert item in out


def test_config_errors_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text('[model]\nzoo = "mlp"\n[optimizer]\nname = "adamx"\n')
    rc, _, err = ember(capsys, "train", bad, "--out", tmp_path / "run")
    assert rc == 2 and f"{bad}: [optimizer] name = 'adamx' is not one of the allowed values" in err
    assert not (tmp_path / "run").exists()  # nothing written for a bad config
    rc, _, err = ember(capsys, "train", EXAMPLES / "digits_mlp.toml", "--out", tmp_path / "run",
                       *sets("data.name=text", 'data.path="nope.txt"'))
    assert rc == 2 and "[data] path = 'nope.txt': no such file" in err
    # errors found when building: a layer's own check, block_size shorter than the sequences
    rc, _, err = ember(capsys, "time", EXAMPLES / "digits_cnn.toml", *sets("optimizer.betas=[0.9]"))
    assert rc == 0  # time builds no optimizer
    rc, _, err = ember(capsys, "train", EXAMPLES / "digits_cnn.toml", "--out", tmp_path / "r2",
                       *sets("optimizer.betas=[0.9]"))
    assert rc == 2 and "[optimizer] betas must be two numbers" in err
    if TEXT.is_file():
        rc, _, err = ember(capsys, "time", EXAMPLES / "gpt_shakespeare.toml", *text_sets(),
                           *sets("model.args={block_size=8}"))
        assert rc == 2 and "block_size = 8 is smaller than [data] seq_len = 16" in err


def test_interrupt_saves_and_rerun_resumes(tmp_path):
    """SIGINT in the middle of epoch 2 saves a checkpoint and exits 130; the same command resumes."""
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "ember", "train", str(EXAMPLES / "digits_cnn.toml"), "--out", str(out),
           *sets("epochs=3", "batch_size=4", "data.train_subset=800", "verbose=2")]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        deadline = time.monotonic() + 60
        while not (out / "last.safetensors").exists():  # the first checkpoint: epoch 1 is done
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[0]
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        log, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, log
    # the checkpoint file appears inside epoch 1's end-of-epoch save, so the signal can land
    # before that callback checks for it: "the end of epoch 1" is as right as a batch of epoch 2
    assert ("interrupted at epoch 2, batch" in log or "interrupted at the end of epoch 1" in log), log
    assert "Traceback" not in log
    assert em.load(out / "last.safetensors")["epoch"] == 1

    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 of 3 epochs done" in done.stdout and "Epoch 1/3" not in done.stdout and "Epoch 3/3" in done.stdout
    report = check_outputs(out, 3)  # metrics.csv: epochs 0, 1, 2 once each (the interrupted one not logged)
    assert report["resumed_from_epoch"] == 1 and report["test_accuracy"] > 0.8


def test_tensorboard_reads_the_event_files(tmp_path, capsys):
    ea = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator",
                             reason="tensorboard is not installed (CI installs it)")
    rc, _, err = ember(capsys, "train", EXAMPLES / "digits_mlp.toml", "--epochs", 2, "--out", tmp_path / "run",
                       *sets("verbose=0"))
    assert rc == 0, err
    for run, tag in (("train", "epoch_loss"), ("validation", "epoch_accuracy")):
        acc = ea.EventAccumulator(str(tmp_path / "run" / "tensorboard" / run))
        acc.Reload()
        assert [e.step for e in acc.Scalars(tag)] == [0, 1]


def test_ember_run_launches_n_mpi_processes(tmp_path):
    pytest.importorskip("mpi4py", reason="ember run needs the mpi extra (pip install -e '.[mpi]')")
    script = tmp_path / "hello.py"
    script.write_text("import ember.distributed as dist\ndist.init()\n"
                      "print(f'rank {dist.rank()} of {dist.world_size()}', flush=True)\n")
    r = subprocess.run([sys.executable, "-m", "ember", "run", "-n", "2", str(script)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    import re
    assert sorted(re.findall(r"rank \d of \d", r.stdout)) == ["rank 0 of 2", "rank 1 of 2"]  # lines may interleave


def test_ember_train_under_mpiexec_is_data_parallel_and_rank0_writes(tmp_path):
    pytest.importorskip("mpi4py", reason="needs the mpi extra (pip install -e '.[mpi]')")
    from ember.distributed import launcher
    out = tmp_path / "run"
    cmd = [launcher.find_mpiexec(), "-n", "2", sys.executable, "-m", "ember", "train",
           str(EXAMPLES / "digits_cnn.toml"), "--out", str(out), "--epochs", "1", "--set", "train.verbose=2"]
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("data-parallel over 2 ranks") == 1 and r.stdout.count("test accuracy") == 1
    assert "Epoch 1/1 21/21" in r.stdout  # each rank trains on half of the 41 batches
    assert len((out / "metrics.csv").read_text().splitlines()) == 2
    assert (out / "last.safetensors").is_file() and (out / "report.json").is_file()
