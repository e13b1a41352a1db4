"""The baseline CLI's output: one JSON object per patient and line, written in blocks (both engines)."""
from __future__ import annotations

from typing import Any, BinaryIO

import orjson


class JsonLines:
    def __init__(self, out: BinaryIO, block: int = 10_000) -> None:
        self.out = out
        self.block = block
        self._buffer: list[bytes] = []

    def write(self, row: dict[str, Any]) -> None:
        self._buffer.append(orjson.dumps(row))
        if len(self._buffer) >= self.block:
            self._flush_buffer()

    def close(self) -> None:
        self._flush_buffer()
        self.out.flush()

    def _flush_buffer(self) -> None:
        if self._buffer:
            self.out.write(b"\n".join(self._buffer) + b"\n")
            self._buffer.clear()
