"""The progress display of fit/evaluate/predict.

On a terminal: one live line per epoch, redrawn in place (carriage return + erase to end of
line), with a bar, steps done, ETA, rate in it/s and the running loss and metrics. When the
output is piped or redirected (a log file, CI): exactly one plain line per epoch, written when
the epoch ends, so logs stay readable.

Example: bar = Progbar(45, prefix="Epoch 1/5"); bar.update(1, {"loss": 0.7}); bar.finish({"loss": 0.3})
"""
from __future__ import annotations

import shutil
import sys
import time
from typing import IO, Any

from .callbacks import Callback

__all__ = ["Progbar", "ProgbarLogger", "format_logs", "is_live"]


def is_live(stream: IO) -> bool:
    """True when ``stream`` is a terminal (live redraws make sense)."""
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def _duration(seconds: float) -> str:
    s = int(round(seconds))
    if s < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{s}s"
    m, s = divmod(s, 60)
    return f"{m}:{s:02d}" if m < 60 else f"{m // 60}:{m % 60:02d}:{s:02d}"


def _number(v: Any) -> str:
    v = float(v)
    return f"{v:.4f}" if v == 0 or 1e-3 <= abs(v) < 1e5 else f"{v:.3e}"


def format_logs(logs: dict[str, Any]) -> str:
    """``loss: 0.1234 - accuracy: 0.9650`` for the numeric entries of ``logs``."""
    return " - ".join(f"{k}: {_number(v)}" for k, v in logs.items() if isinstance(v, (int, float)))


class Progbar:
    """Progress of one pass over ``total`` steps (None when the length is unknown)."""

    def __init__(self, total: int | None, prefix: str = "", stream: IO | None = None,
                 live: bool | None = None, interval: float = 0.05):
        self.total, self.prefix = total, prefix
        self.stream = stream if stream is not None else sys.stdout
        self.live = is_live(self.stream) if live is None else live
        self.interval = interval  # seconds between redraws: a terminal can't show more anyway
        self.start = time.perf_counter()
        self._last_draw = -1.0
        self.steps = 0

    def _bar(self, now: float, values: dict[str, Any], done: bool) -> str:
        elapsed = now - self.start
        rate = self.steps / elapsed if elapsed > 0 else 0.0
        parts = [self.prefix] if self.prefix else []
        if self.total:
            width = len(str(self.total))
            frac = min(self.steps / self.total, 1.0)
            filled = int(20 * frac)
            arrow = "=" * filled + (">" if filled < 20 else "") + "." * (19 - filled)
            parts.append(f"{self.steps:>{width}}/{self.total} [{arrow}]")
        else:
            parts.append(f"{self.steps} steps")
        if done or not self.total:
            parts.append(_duration(elapsed))
        else:
            parts.append(f"ETA {_duration((self.total - self.steps) / rate) if rate else '?'}")
        parts.append(f"{rate:.1f} it/s" if rate < 100 else f"{rate:.0f} it/s")
        text = " ".join(parts)
        metrics = format_logs(values)
        return f"{text} - {metrics}" if metrics else text

    def update(self, steps: int, values: dict[str, Any] | None = None) -> None:
        """``steps`` done so far; redraws at most every ``interval`` seconds, only when live."""
        self.steps = steps
        if not self.live:
            return
        now = time.perf_counter()
        if now - self._last_draw < self.interval and steps != self.total:
            return
        self._last_draw = now
        line = self._bar(now, values or {}, done=False)
        width = shutil.get_terminal_size((120, 24)).columns - 1  # a wrapped line can't be redrawn
        self.stream.write("\r" + line[:width] + "\x1b[K")
        self.stream.flush()

    def finish(self, values: dict[str, Any] | None = None) -> None:
        """The final line: elapsed time and the final values, then a newline."""
        line = self._bar(time.perf_counter(), values or {}, done=True)
        self.stream.write(("\r" + line + "\x1b[K" if self.live else line) + "\n")
        self.stream.flush()


class ProgbarLogger(Callback):
    """Shows fit's progress (added by fit when verbose is not 0). ``verbose=1``: a live bar on a
    terminal, one line per epoch otherwise; ``verbose=2``: one line per epoch always."""

    def __init__(self, verbose: int = 1, stream: IO | None = None):
        super().__init__()
        self.verbose, self.stream = verbose, stream
        self.bar: Progbar | None = None

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        stream = self.stream if self.stream is not None else sys.stdout
        live = is_live(stream) and self.verbose == 1
        self.bar = Progbar(self.params.get("steps"), f"Epoch {epoch + 1}/{self.params.get('epochs')}",
                           stream, live)

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.bar.update(batch + 1, logs)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.bar.finish(logs)
