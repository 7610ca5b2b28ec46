"""Every flag and environment variable ember reads, in one place (tools/sz.py counts them).

Read them through these functions so a test can monkeypatch the environment."""
from __future__ import annotations

import os
from pathlib import Path

FLAGS = {
    "EMBER_DEBUG": "0: quiet; 2: print graphs after each compiler pass; 3: also generated source",
    "EMBER_CC": "C compiler for generated kernels (default: cc)",
    "EMBER_CACHE_DIR": "compile cache folder (default: ~/.cache/ember/kernels)",
    "EMBER_DATA": "data set download/cache folder (default: ~/.cache/ember/datasets)",
}


def debug_level() -> int:
    return int(os.environ.get("EMBER_DEBUG", "0") or 0)


def c_compiler() -> str:
    return os.environ.get("EMBER_CC", "cc")


def cache_dir() -> Path:
    return Path(os.environ.get("EMBER_CACHE_DIR") or Path.home() / ".cache" / "ember" / "kernels")


def data_dir() -> Path:
    return Path(os.environ.get("EMBER_DATA") or Path.home() / ".cache" / "ember" / "datasets")
