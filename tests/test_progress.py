"""The progress display: a live bar redrawn in place on a terminal (checked in a real
pseudo-terminal with pexpect), one plain line per epoch when the output is piped."""
import io
import re
import os
import subprocess
import sys
import textwrap

import pytest

from ember.training.progress import Progbar, _duration, format_logs

SCRIPT = textwrap.dedent("""
    import sys, time
    import numpy as np
    import ember as em

    class Slow(em.callbacks.Callback):  # long enough batches for several redraws
        def on_train_batch_end(self, batch, logs=None):
            time.sleep(0.03)

    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((40, 4)).astype(np.float32), rng.integers(0, 2, 40)
    em.manual_seed(0)
    model = em.nn.Sequential(em.nn.Linear(4, 2))
    model.compile("sgd", "cross_entropy", ["accuracy"])
    verbose = sys.argv[1] if sys.argv[1] == "auto" else int(sys.argv[1])
    model.fit(x, y, batch_size=4, epochs=2, validation_split=0.2, verbose=verbose, callbacks=[Slow()])
    model.evaluate(x, y, verbose=verbose)
    print("done")
""")


@pytest.fixture(scope="module")
def script(tmp_path_factory):
    path = tmp_path_factory.mktemp("progress") / "train.py"
    path.write_text(SCRIPT)
    return str(path)


def env():
    # One BLAS thread: these tiny runs should not fight other processes for cores.
    return {**os.environ, "OPENBLAS_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def in_terminal(script, verbose):
    pexpect = pytest.importorskip("pexpect", reason="pexpect runs the script in a pseudo-terminal")
    child = pexpect.spawn(sys.executable, [script, verbose], env=env(), dimensions=(24, 200),
                          encoding="utf-8", timeout=120)
    child.expect("done")
    out = child.before
    child.expect(pexpect.EOF)
    return out


def test_live_bar_in_a_terminal(script):
    out = in_terminal(script, "auto")
    lines = out.split("\r\n")  # the terminal turns "\n" into "\r\n"
    assert lines[0].startswith("ember: train step: ")  # eager or compiled, said once
    epoch1, epoch2, evaluate = lines[1:4]
    # each epoch's line was redrawn in place several times: carriage return, erase to end of line
    assert epoch1.count("\r") >= 3 and epoch1.count("\x1b[K") == epoch1.count("\r")
    frames = [f.replace("\x1b[K", "") for f in epoch1.split("\r") if f]
    assert any("ETA" in f and "it/s" in f and "loss:" in f for f in frames[:-1])
    assert frames[0].startswith("Epoch 1/2 ")
    final = frames[-1]
    assert final.startswith("Epoch 1/2 8/8 [====================] ") and "ETA" not in final
    assert "it/s - loss: " in final and "val_accuracy: " in final
    assert epoch2.split("\r")[-1].startswith("Epoch 2/2 8/8 [")
    assert evaluate.split("\r")[-1].startswith("evaluate 2/2 [")


def test_verbose_2_in_a_terminal_is_one_line_per_epoch(script):
    out = in_terminal(script, "2")
    lines = out.split("\r\n")
    assert "\r" not in "".join(lines) and "\x1b" not in out
    assert lines[1].startswith("Epoch 1/2 8/8 [") and lines[2].startswith("Epoch 2/2 8/8 [")


@pytest.mark.parametrize("verbose", ["auto", "1", "2"])
def test_piped_output_is_one_plain_line_per_epoch(script, verbose):
    r = subprocess.run([sys.executable, script, verbose], env=env(), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "\r" not in r.stdout and "\x1b" not in r.stdout
    lines = r.stdout.splitlines()
    assert len(lines) == 5
    assert lines[0].startswith("ember: train step: ") and r.stdout.count("train step") == 1
    for i, line in enumerate(lines[1:3]):
        assert line.startswith(f"Epoch {i + 1}/2 8/8 [====================] ")
        assert "ETA" not in line and " it/s - loss: " in line and "- val_loss: " in line
    assert lines[3].startswith("evaluate 2/2 [") and lines[4] == "done"


def test_silent(script):
    r = subprocess.run([sys.executable, script, "0"], env=env(), capture_output=True, text=True, timeout=120)
    assert r.stdout == "done\n"


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_progbar_units():
    live = FakeTerminal()
    bar = Progbar(4, "Epoch 1/1", live, interval=0.0)
    bar.update(1, {"loss": 0.5})
    assert live.getvalue().startswith("\rEpoch 1/1 1/4 [=====>..............] ETA ")
    for i in (2, 3, 4):
        bar.update(i, {"loss": 0.5})
    bar.finish({"loss": 0.25, "note": "text is skipped"})
    frames = live.getvalue().split("\r")
    assert len(frames) == 6 and frames[4].startswith("Epoch 1/1 4/4 [====================] ETA 0.0s ")
    assert re.fullmatch(r"Epoch 1/1 4/4 \[=+\] \d+\.\ds [\d.]+ it/s - loss: 0\.2500\x1b\[K\n", frames[5])

    piped = io.StringIO()
    bar = Progbar(None, "predict", piped)
    bar.update(3)
    assert piped.getvalue() == ""  # nothing until the end when not a terminal
    bar.finish()
    assert piped.getvalue().startswith("predict 3 steps ") and piped.getvalue().count("\n") == 1


def test_formatting():
    assert format_logs({"loss": 0.123456, "learning_rate": 1e-5, "acc": 1, "s": "x"}) == \
        "loss: 0.1235 - learning_rate: 1.000e-05 - acc: 1.0000"
    assert [_duration(s) for s in (3.14, 42, 125, 3725)] == ["3.1s", "42s", "2:05", "1:02:05"]
