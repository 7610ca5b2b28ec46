"""TensorBoard event files written without TensorFlow or the tensorboard package.

An event file is a sequence of TFRecords, each ``[u64 length][u32 masked crc32c(length)]
[data][u32 masked crc32c(data)]``, whose data is a serialized ``tensorflow.Event`` protobuf.
Scalars need only a handful of protobuf fields, so they are encoded by hand here:

    Event   { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5; }
    Summary { repeated Value value = 1; }
    Value   { string tag = 1; float simple_value = 2; }

Example: w = EventWriter("runs/train"); w.add_scalar("epoch_loss", 0.31, step=0); w.close()
"""
from __future__ import annotations

import os
import socket
import struct
import time
from pathlib import Path

__all__ = ["EventWriter", "crc32c"]


def _crc32c_table() -> list[int]:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1  # Castagnoli polynomial, reflected
        table.append(c)
    return table


_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli) of ``data``. ``crc32c(b"123456789") == 0xE3069283``."""
    c = 0xFFFFFFFF
    for b in data:
        c = _TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def _masked_crc(data: bytes) -> int:
    c = crc32c(data)
    return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # int64 as two's complement, as protobuf does
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _field_bytes(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _event(wall_time: float, step: int, body: bytes) -> bytes:
    return _varint(1 << 3 | 1) + struct.pack("<d", wall_time) + _varint(2 << 3 | 0) + _varint(step) + body


def _scalar_summary(values: dict[str, float]) -> bytes:
    items = b"".join(_field_bytes(1, _field_bytes(1, tag.encode()) + _varint(2 << 3 | 5) + struct.pack("<f", v))
                     for tag, v in values.items())
    return _field_bytes(5, items)


class EventWriter:
    """Appends scalar summaries to a new event file in ``log_dir`` (created if missing)."""

    _count = 0

    def __init__(self, log_dir: str | os.PathLike):
        folder = Path(log_dir)
        folder.mkdir(parents=True, exist_ok=True)
        EventWriter._count += 1
        name = f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}.{os.getpid()}.{EventWriter._count}"
        self.path = folder / name
        self._file = open(self.path, "wb")
        self._write(_event(time.time(), 0, _field_bytes(3, b"brain.Event:2")))

    def _write(self, data: bytes) -> None:
        header = struct.pack("<Q", len(data))
        self._file.write(header + struct.pack("<I", _masked_crc(header)) + data +
                         struct.pack("<I", _masked_crc(data)))

    def add_scalars(self, values: dict[str, float], step: int) -> None:
        """Several scalars at one step, in one event; flushed so TensorBoard sees it live."""
        self._write(_event(time.time(), step, _scalar_summary({k: float(v) for k, v in values.items()})))
        self._file.flush()

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        self.add_scalars({tag: value}, step)

    def close(self) -> None:
        self._file.close()
