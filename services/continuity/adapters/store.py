"""Per-partition patient tables: patient key -> encoded PatientRecord, plus the input offsets.

Like a Kafka Streams task, each input partition number (the inputs are co-partitioned) has
its own table, and a batch's state writes and the next input offsets are committed to it
**atomically** (one RocksDB WriteBatch). The table is a cache of its changelog topic (docs/adr/0008):
the worker commits the same keys and bytes to the changelog in a Kafka transaction first, then here,
with ``CHANGELOG_POSITION`` (how far into the changelog partition this table is), so a table that is
behind (a crash between the two, a partition that was away) or empty (a new disk, the memory store)
catches up by reading its changelog partition from that position to the end.
A write of ``None`` deletes the key (a changelog tombstone).
"""
from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

OFFSET_PREFIX = _OFFSET_PREFIX = b"\x00offset\x00"  # patient keys start with 'pk1_', so no clash
#: kept with the offsets (local only, never written to the changelog): the next changelog offset to read
CHANGELOG_POSITION = "@changelog"


class PatientStore(Protocol):
    def open(self, partition: int) -> None: ...
    def close(self, partition: int) -> None: ...
    @property
    def partitions(self) -> frozenset[int]: ...
    def get(self, partition: int, key: bytes) -> bytes | None: ...
    def items(self, partition: int) -> Iterator[tuple[bytes, bytes]]: ...
    def offsets(self, partition: int) -> dict[str, int]: ...
    def commit(self, partition: int, writes: dict[bytes, bytes | None], offsets: dict[str, int]) -> None: ...
    def close_all(self) -> None: ...


class MemoryStore:
    """For tests: lost on restart, so every partition is restored from its changelog."""

    def __init__(self) -> None:
        self._data: dict[int, dict[bytes, bytes]] = {}
        self._offsets: dict[int, dict[str, int]] = {}
        self._open: set[int] = set()

    def open(self, partition: int) -> None:
        self._data.setdefault(partition, {})
        self._offsets.setdefault(partition, {})
        self._open.add(partition)

    def close(self, partition: int) -> None:
        # keep the data: memory stands in for a local disk that survives a rebalance
        self._open.discard(partition)

    @property
    def partitions(self) -> frozenset[int]:
        return frozenset(self._open)

    def get(self, partition: int, key: bytes) -> bytes | None:
        return self._data[partition].get(key)

    def items(self, partition: int) -> Iterator[tuple[bytes, bytes]]:
        return iter(list(self._data[partition].items()))

    def offsets(self, partition: int) -> dict[str, int]:
        return dict(self._offsets.get(partition, {}))

    def commit(self, partition: int, writes: dict[bytes, bytes | None], offsets: dict[str, int]) -> None:
        data = self._data[partition]
        for key, value in writes.items():
            if value is None:
                data.pop(key, None)
            else:
                data[key] = value
        self._offsets[partition].update(offsets)

    def close_all(self) -> None:
        pass


class RocksStore:
    """Production: one RocksDB (rocksdict, raw bytes) per partition under ``data_dir``."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._dbs: dict[int, object] = {}

    def _path(self, partition: int) -> Path:
        return self.data_dir / f"patients-{partition}.db"

    def open(self, partition: int) -> None:
        if partition in self._dbs:
            return
        from rocksdict import Options, Rdict

        options = Options(raw_mode=True)
        options.create_if_missing(True)
        self._dbs[partition] = Rdict(str(self._path(partition)), options=options)

    def close(self, partition: int) -> None:
        db = self._dbs.pop(partition, None)
        if db is not None:
            db.close()

    @property
    def partitions(self) -> frozenset[int]:
        return frozenset(self._dbs)

    def get(self, partition: int, key: bytes) -> bytes | None:
        return self._dbs[partition].get(key)

    def items(self, partition: int) -> Iterator[tuple[bytes, bytes]]:
        for key, value in self._dbs[partition].items():
            if not key.startswith(b"\x00"):
                yield key, value

    def offsets(self, partition: int) -> dict[str, int]:
        db = self._dbs[partition]
        found: dict[str, int] = {}
        for key, value in db.items(from_key=_OFFSET_PREFIX):
            if not key.startswith(_OFFSET_PREFIX):
                break
            found[key[len(_OFFSET_PREFIX):].decode()] = int(value)
        return found

    def commit(self, partition: int, writes: dict[bytes, bytes | None], offsets: dict[str, int]) -> None:
        from rocksdict import WriteBatch

        batch = WriteBatch(raw_mode=True)
        for key, value in writes.items():
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)
        for topic, offset in offsets.items():
            batch.put(_OFFSET_PREFIX + topic.encode(), str(offset).encode())
        self._dbs[partition].write(batch)

    def close_all(self) -> None:
        for partition in list(self._dbs):
            self.close(partition)

    def destroy(self) -> None:
        self.close_all()
        shutil.rmtree(self.data_dir, ignore_errors=True)


def open_store(kind: str, data_dir: Path) -> PatientStore:
    if kind == "memory":
        return MemoryStore()
    if kind == "rocksdb":
        return RocksStore(data_dir)
    raise ValueError(f"unknown store {kind!r} (memory or rocksdb)")
