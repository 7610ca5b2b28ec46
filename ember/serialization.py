"""Save and load state dicts in the safetensors format: atomic writes, never pickle.

A file is what the official `safetensors` package reads and writes:

    [8 bytes: header length N, little-endian u64][N bytes: JSON header][tensor bytes]

The header maps each tensor name to {"dtype", "shape", "data_offsets"} (offsets relative to
the start of the tensor bytes) and holds string metadata under "__metadata__". ember flattens
nested dicts/lists to dotted tensor names ("model.fc.weight") and keeps the nesting and the
non-tensor leaves (ints, floats, strings, bools, None) as JSON in the metadata entry
"ember.structure", so `load` rebuilds exactly what `save` was given. A plain safetensors file
written by another tool loads as a flat {name: Tensor} dict.

A training checkpoint is just a nested dict passed to `save` (see `save_checkpoint`).
"""
from __future__ import annotations

import json
import math
import os
import secrets
from pathlib import Path
from typing import Any, Mapping

import numpy as np

import ember

from ember.errors import EmberError

__all__ = ["CheckpointError", "save", "load", "read_metadata", "save_checkpoint", "load_checkpoint"]

STRUCTURE_KEY = "ember.structure"  # metadata entry holding the nesting and non-tensor leaves
FORMAT_KEY = "ember.format"
FORMAT_VERSION = "1"
MAX_HEADER_BYTES = 100_000_000  # the official reader's limit; a larger value means corruption

# safetensors dtype name <-> little-endian numpy dtype. BF16 is read only, widened exactly to F32.
_TO_NUMPY = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "U8": "u1", "BOOL": "?"}
_FROM_NUMPY = {np.dtype(v).newbyteorder("="): k for k, v in _TO_NUMPY.items()}
_ITEMSIZE = {k: np.dtype(v).itemsize for k, v in _TO_NUMPY.items()} | {"BF16": 2}


class CheckpointError(EmberError):
    """A state dict could not be saved or a file could not be loaded."""


# ---------------------------------------------------------------- nesting <-> flat tensors

def _encode(obj: Any, name: str, tensors: dict[str, np.ndarray]) -> Any:
    """Return a JSON node describing `obj`; tensor leaves go into `tensors` under `name`.

    Nodes: {"d": [[key, node], ...]} dict (int or str keys), {"l": [...]} list, {"t": [...]}
    tuple, {"T": name} ember Tensor, {"N": name} numpy array, {"S": name} numpy scalar,
    {"v": value} JSON scalar.
    """
    def leaf(tag: str, arr: np.ndarray) -> dict:
        if name in tensors:
            raise CheckpointError(f"save: two entries flatten to the same tensor name {name!r}; "
                                  "rename a key (dict keys containing '.' can collide with nesting)")
        tensors[name] = arr
        return {tag: name}

    join = (lambda k: f"{name}.{k}") if name else str
    if isinstance(obj, ember.Tensor):
        return leaf("T", obj.detach().cpu().numpy())
    if isinstance(obj, np.ndarray):
        return leaf("N", obj)
    if isinstance(obj, np.generic):
        return leaf("S", np.asarray(obj))
    if isinstance(obj, Mapping):
        for k in obj:
            if not isinstance(k, (str, int)) or isinstance(k, bool):
                raise CheckpointError(f"save: key {k!r} at {name or '<root>'!r} is a "
                                      f"{type(k).__name__}; only str and int keys can be saved")
        return {"d": [[k, _encode(v, join(k), tensors)] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        nodes = [_encode(v, join(i), tensors) for i, v in enumerate(obj)]
        return {"t" if isinstance(obj, tuple) else "l": nodes}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return {"v": obj}
    raise CheckpointError(f"save: cannot store {type(obj).__name__} at {name or '<root>'!r}; "
                          "a state dict holds tensors, numpy arrays, numbers, strings, None, "
                          "and dicts/lists/tuples of them (call .state_dict() on modules and optimizers)")


def _decode(node: Any, tensors: dict[str, np.ndarray], path: Path) -> Any:
    """Inverse of `_encode`."""
    try:
        (tag, val), = node.items()
        if tag == "v":
            return val
        if tag in ("T", "N", "S"):
            arr = tensors[val]
            return ember.from_numpy(arr) if tag == "T" else arr if tag == "N" else arr[()]
        if tag == "d":
            return {k: _decode(v, tensors, path) for k, v in val}
        if tag in ("l", "t"):
            items = [_decode(v, tensors, path) for v in val]
            return tuple(items) if tag == "t" else items
    except (ValueError, TypeError, AttributeError, KeyError) as e:
        raise CheckpointError(f"load: {path}: metadata {STRUCTURE_KEY!r} is corrupt "
                              f"({type(e).__name__}: {e})") from None
    raise CheckpointError(f"load: {path}: metadata {STRUCTURE_KEY!r} has an unknown node {tag!r}")


# ---------------------------------------------------------------- writing

def save(obj: Any, path: str | os.PathLike, metadata: Mapping[str, str] | None = None) -> None:
    """Write a (nested) state dict to `path` as safetensors, atomically.

    Example: ember.save({"model": model.state_dict(), "epoch": 3}, "ckpt.safetensors")

    `metadata` is extra string key/value pairs for the header (read back with `read_metadata`).
    The file appears complete or not at all: the bytes go to a temporary file in the same
    folder, which is flushed, fsynced and renamed over `path`.
    """
    path = Path(path)
    tensors: dict[str, np.ndarray] = {}
    structure = _encode(obj, "", tensors)
    meta = {}
    for k, v in (metadata or {}).items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise CheckpointError(f"save: metadata must map str to str, got {k!r}: {type(v).__name__}; "
                                  "use json.dumps for structured values")
        if k.startswith("ember."):
            raise CheckpointError(f"save: metadata key {k!r} is reserved (keys starting with 'ember.')")
        meta[k] = v
    meta[FORMAT_KEY] = FORMAT_VERSION
    meta[STRUCTURE_KEY] = json.dumps(structure, separators=(",", ":"))

    # Larger items first keeps every tensor aligned to its item size, as the official writer does.
    order = sorted(tensors, key=lambda k: -tensors[k].dtype.itemsize)
    header: dict[str, Any] = {"__metadata__": meta}
    arrays, offset = [], 0
    for name in order:
        arr = tensors[name]
        code = _FROM_NUMPY.get(arr.dtype.newbyteorder("="))
        if code is None:
            raise CheckpointError(f"save: tensor {name!r} has dtype {arr.dtype}, which safetensors "
                                  f"files from ember cannot hold; supported: {', '.join(_TO_NUMPY)}")
        arr = np.asarray(arr, dtype=_TO_NUMPY[code], order="C")  # (ascontiguousarray would make 0-d 1-d)
        header[name] = {"dtype": code, "shape": list(arr.shape), "data_offsets": [offset, offset + arr.nbytes]}
        arrays.append(arr)
        offset += arr.nbytes
    blob = json.dumps(header, separators=(",", ":")).encode("utf-8")
    blob += b" " * (-len(blob) % 8)  # pad so the tensor bytes start 8-byte aligned
    _atomic_write(path, [len(blob).to_bytes(8, "little"), blob, *arrays])


def _atomic_write(path: Path, chunks: list) -> None:
    """Write `chunks` (bytes or contiguous arrays) to `path` via temp file + fsync + rename."""
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise CheckpointError(f"save: folder {folder} does not exist; create it first")
    tmp = folder / f".{path.name}.{secrets.token_hex(4)}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # umask decides, as for open()
        with os.fdopen(fd, "wb") as f:
            for c in chunks:  # arrays are written from their own memory, without a bytes copy
                f.write(c.reshape(-1).view(np.uint8) if isinstance(c, np.ndarray) else c)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable; not possible on every platform
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:  # pragma: no cover
        pass


# ---------------------------------------------------------------- reading

def _read_header(f, path: Path, size: int) -> tuple[dict, int]:
    """Return (header dict, byte offset of the tensor data), validating the framing."""
    def bad(what: str) -> CheckpointError:
        return CheckpointError(f"load: {path} is not a valid safetensors file: {what}")

    raw = f.read(8)
    if len(raw) < 8:
        raise bad(f"it is {size} bytes long, too short for the 8-byte header length (truncated?)")
    n = int.from_bytes(raw, "little")
    if n > MAX_HEADER_BYTES or n > size - 8:
        raise bad(f"the header length field says {n} bytes but only {size - 8} bytes follow "
                  "(truncated, or not a safetensors file)")
    try:
        header = json.loads(f.read(n).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise bad(f"the header is not valid JSON ({e})") from None
    if not isinstance(header, dict):
        raise bad(f"the header is a JSON {type(header).__name__}, not an object")
    return header, 8 + n


def _read_file(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Return ({name: array}, metadata) of a safetensors file."""
    if not path.is_file():
        raise CheckpointError(f"load: no file at {path}")
    size = path.stat().st_size
    arrays: dict[str, np.ndarray] = {}
    with open(path, "rb") as f:
        header, start = _read_header(f, path, size)
        meta = header.pop("__metadata__", None) or {}
        if not isinstance(meta, dict):
            raise CheckpointError(f"load: {path}: '__metadata__' must be an object of strings")
        data_len = size - start
        for name, info in header.items():
            try:
                code, shape, (begin, end) = info["dtype"], [int(d) for d in info["shape"]], info["data_offsets"]
            except (TypeError, KeyError, ValueError) as e:
                raise CheckpointError(f"load: {path}: entry {name!r} needs dtype, shape and "
                                      f"data_offsets [begin, end] ({type(e).__name__}: {e})") from None
            if code not in _ITEMSIZE:
                raise CheckpointError(f"load: {path}: tensor {name!r} has dtype {code!r}, which ember "
                                      f"cannot load; supported: {', '.join(_ITEMSIZE)}")
            nbytes = math.prod(shape) * _ITEMSIZE[code]
            if min(shape, default=0) < 0 or not 0 <= begin <= end or end - begin != nbytes:
                raise CheckpointError(f"load: {path}: tensor {name!r} of dtype {code} and shape "
                                      f"{tuple(shape)} needs {nbytes} bytes but its data_offsets are "
                                      f"[{begin}, {end}]: the header is corrupt")
            if end > data_len:
                raise CheckpointError(f"load: {path}: tensor {name!r} ends at byte {end} of the data "
                                      f"but the file holds only {data_len} data bytes: it is truncated")
            raw = np.empty(nbytes, np.uint8)  # one aligned, writable copy per tensor
            f.seek(start + begin)
            f.readinto(memoryview(raw))
            if code == "BF16":  # bfloat16 is the top half of a float32: widening is exact
                arrays[name] = (raw.view("<u2").astype(np.uint32) << 16).view(np.float32).reshape(shape)
            else:
                arrays[name] = raw.view(_TO_NUMPY[code]).astype(np.dtype(_TO_NUMPY[code]).newbyteorder("="),
                                                                copy=False).reshape(shape)
    return arrays, meta


def load(path: str | os.PathLike) -> Any:
    """Read a file written by `save` and rebuild the same nested structure.

    Example: model.load_state_dict(ember.load("model.safetensors"))

    Tensors come back as ember Tensors (numpy arrays saved as such come back as numpy arrays).
    A safetensors file from another tool loads as a flat {name: Tensor} dict. Never unpickles.
    """
    path = Path(path)
    arrays, meta = _read_file(path)
    if STRUCTURE_KEY not in meta:
        return {k: ember.from_numpy(v) for k, v in arrays.items()}
    try:
        structure = json.loads(meta[STRUCTURE_KEY])
    except (TypeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"load: {path}: metadata {STRUCTURE_KEY!r} is not valid JSON ({e})") from None
    return _decode(structure, arrays, path)


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """Return the user metadata given to `save` (without ember's own entries).

    Example: ember.serialization.read_metadata("model.safetensors")["note"]
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"load: no file at {path}")
    with open(path, "rb") as f:
        header, _ = _read_header(f, path, path.stat().st_size)
    meta = header.get("__metadata__") or {}
    return {k: v for k, v in meta.items() if not k.startswith("ember.")}


# ---------------------------------------------------------------- training checkpoints

def save_checkpoint(path: str | os.PathLike, *, model=None, optimizer=None, scheduler=None,
                    epoch: int | None = None, metadata: Mapping[str, str] | None = None,
                    **extra: Any) -> None:
    """Save everything needed to resume training bit for bit, atomically.

    Example: save_checkpoint("ckpt.safetensors", model=model, optimizer=opt, epoch=epoch)

    The file holds {"model", "optimizer", "scheduler", "epoch", "rng", **extra}: the three
    state dicts, the epoch and the state of ember's default random generator.
    """
    ckpt = {"model": model.state_dict() if model is not None else None,
            "optimizer": optimizer.state_dict() if optimizer is not None else None,
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "epoch": epoch,
            "rng": ember.random.default_generator.get_state(),
            **extra}
    save(ckpt, path, metadata=metadata)


def load_checkpoint(path: str | os.PathLike, *, model=None, optimizer=None, scheduler=None,
                    restore_rng: bool = True) -> dict:
    """Load a `save_checkpoint` file into the given objects and return the whole dict.

    Example: epoch = load_checkpoint("ckpt.safetensors", model=model, optimizer=opt)["epoch"]
    """
    ckpt = load(path)
    if not isinstance(ckpt, dict) or "rng" not in ckpt:
        raise CheckpointError(f"load_checkpoint: {path} holds no training checkpoint (no 'rng' entry); "
                              "use ember.load for plain state dicts")
    for name, obj in (("model", model), ("optimizer", optimizer), ("scheduler", scheduler)):
        if obj is not None:
            if ckpt.get(name) is None:
                raise CheckpointError(f"load_checkpoint: {path} has no {name} state to load")
            obj.load_state_dict(ckpt[name])
    if restore_rng:
        ember.random.default_generator.set_state(ckpt["rng"])
    return ckpt
