"""Layer forward+backward time, ember vs PyTorch eager in one process (float32, 2 threads).

Conv2d at LeNet sizes and ResNet basic-block sizes (target: ember at least 0.7x torch's speed),
plus LSTM and MultiheadAttention when ember has them. Prints milliseconds per step, ember/torch
(time ratio, lower is better) and speed = torch_time/ember_time (higher is better).

Run: python bench/layers.py
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _env import clean_env_and_reexec  # noqa: E402

clean_env_and_reexec()

import numpy as np  # noqa: E402

import ember as em  # noqa: E402


def best_ms_pair(fa, fb, repeats: int = 15, warmup: int = 2) -> tuple:
    """Best time of each of two functions, run alternately so that load from other processes on
    the machine hits both alike."""
    for _ in range(warmup):
        fa(), fb()
    best = [float("inf"), float("inf")]
    for _ in range(repeats):
        for i, fn in enumerate((fa, fb)):
            t0 = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - t0)
    return best[0] * 1e3, best[1] * 1e3


def step(layer, x, lib):
    """One forward+backward through ``layer`` with a fixed upstream gradient of ones."""
    def run():
        out = layer(x)
        out = out[0] if isinstance(out, tuple) else out
        out.sum().backward()
        for p in layer.parameters():
            p.grad = None
        if lib == "torch" and x.grad is not None:
            x.grad = None
        elif lib == "ember":
            x.grad = None
    return run


def load_torch_weights(em_layer, t_layer) -> None:
    em_layer.load_state_dict({k: em.from_numpy(v.detach().numpy().copy()) for k, v in t_layer.state_dict().items()})


def cases(torch):
    tnn = torch.nn
    out = [  # (name, ember layer, torch layer, input shape, input needs grad)
        ("Conv2d LeNet-1  b64  1->32  3x3 28x28", em.nn.Conv2d(1, 32, 3), tnn.Conv2d(1, 32, 3), (64, 1, 28, 28), False),
        ("Conv2d LeNet-2  b64 32->64  3x3 13x13", em.nn.Conv2d(32, 64, 3), tnn.Conv2d(32, 64, 3), (64, 32, 13, 13), True),
        ("Conv2d ResNet   b32 64->64  3x3 16x16 p1", em.nn.Conv2d(64, 64, 3, padding=1, bias=False),
         tnn.Conv2d(64, 64, 3, padding=1, bias=False), (32, 64, 16, 16), True),
        ("Conv2d ResNet   b32 64->64  3x3 32x32 p1", em.nn.Conv2d(64, 64, 3, padding=1, bias=False),
         tnn.Conv2d(64, 64, 3, padding=1, bias=False), (32, 64, 32, 32), True),
        ("MaxPool2d       b64 32ch 2x2 26x26", em.nn.MaxPool2d(2), tnn.MaxPool2d(2), (64, 32, 26, 26), True),
    ]
    if hasattr(em.nn, "LSTM"):
        out.append(("LSTM  h128 seq32 b16 (batch_first)", em.nn.LSTM(128, 128, batch_first=True),
                    tnn.LSTM(128, 128, batch_first=True), (16, 32, 128), True))
    else:
        print("skip LSTM: ember.nn.LSTM is not available yet")
    if hasattr(em.nn, "MultiheadAttention"):
        em_mha = em.nn.MultiheadAttention(128, 4, batch_first=True)
        t_mha = tnn.MultiheadAttention(128, 4, batch_first=True)
        out.append(("MultiheadAttention e128 h4 seq64 b16", SelfAttention(em_mha), SelfAttention(t_mha),
                    (16, 64, 128), True))
    else:
        print("skip MultiheadAttention: ember.nn.MultiheadAttention is not available yet")
    return out


class SelfAttention:
    """Wraps an attention module (either library) as layer(x) = mha(x, x, x)[0]."""

    def __init__(self, mha):
        self.mha = mha

    def __call__(self, x):
        return self.mha(x, x, x, need_weights=False)[0]

    def parameters(self):
        return self.mha.parameters()

    def state_dict(self):
        return self.mha.state_dict()

    def load_state_dict(self, sd):
        return self.mha.load_state_dict(sd)


def main() -> None:
    try:
        import torch
    except ImportError:
        sys.exit("bench/layers.py needs PyTorch for the comparison: pip install -e '.[oracle]'")
    torch.set_num_threads(2)
    em.manual_seed(0)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    print(f"{'layer (forward+backward, float32)':44s} {'ember ms':>9s} {'torch ms':>9s} {'ember/torch':>12s} {'speed':>7s}")
    for name, e_layer, t_layer, shape, needs_grad in cases(torch):
        load_torch_weights(e_layer, t_layer)
        x_np = rng.standard_normal(shape).astype(np.float32)
        ex = em.from_numpy(x_np.copy()).requires_grad_(needs_grad)
        tx = torch.from_numpy(x_np.copy()).requires_grad_(needs_grad)
        te, tt = best_ms_pair(step(e_layer, ex, "ember"), step(t_layer, tx, "torch"))
        print(f"{name:44s} {te:9.2f} {tt:9.2f} {te / tt:12.2f} {tt / te:6.2f}x")
    print("speed = torch_time / ember_time (1.0 = as fast as torch eager; target for Conv2d >= 0.7)")


if __name__ == "__main__":
    main()
