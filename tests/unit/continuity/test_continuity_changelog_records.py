"""The changelog's records (docs/adr/0008): the table's bytes, its offsets, and which records are tombstones."""
from __future__ import annotations

from collections import namedtuple
from dataclasses import replace

import pytest

from services.continuity.adapters.changelog import offset_record, table_writes, transactional_id
from services.continuity.adapters.store import CHANGELOG_POSITION, MemoryStore, RocksStore
from services.continuity.domain.patient import EMPTY_STATE, StoredVisit, Tombstone
from services.continuity.service_layer.record import EMPTY_RECORD, encode_record, is_empty_record

pytestmark = pytest.mark.unit

Rec = namedtuple("Rec", "key value")
VISIT = StoredVisit(739_000 * 86_400, 1, 42, "SE2321000016-L001", "SE2321000016-VCA1", 3)


def test_a_record_with_nothing_but_its_fingerprint_is_empty_and_anything_worth_keeping_is_not():
    assert is_empty_record(encode_record(EMPTY_RECORD))
    assert is_empty_record(encode_record(replace(EMPTY_RECORD, fingerprint=123456789)))
    kept = [
        replace(EMPTY_RECORD, state=replace(EMPTY_STATE, visits=(VISIT,))),
        replace(EMPTY_RECORD, state=replace(EMPTY_STATE, tombstones=(Tombstone(7, 739_000),))),
        replace(EMPTY_RECORD, state=replace(EMPTY_STATE, listing_unit_id="SE2321000016-VCA1")),
        replace(EMPTY_RECORD, state=replace(EMPTY_STATE, fast_lakarkontakt=("SE2321000016-L001",))),
        replace(EMPTY_RECORD, coordinating="SE2321000016-L001"),
        replace(EMPTY_RECORD, residences=((1, 739_000, 0, 1),)),
        replace(EMPTY_RECORD, rub=4, rub_assessed_at=1),
    ]
    assert [is_empty_record(encode_record(r)) for r in kept] == [False] * len(kept)


def test_changelog_records_become_the_tables_writes_and_offsets_the_later_record_of_a_key_winning():
    records = [Rec(b"pk1_a", b"1"), Rec(*offset_record("ehr.visits.v1", 10)), Rec(b"pk1_b", b"2"),
               Rec(b"pk1_a", None), Rec(*offset_record("ehr.visits.v1", 12)), Rec(*offset_record("@known-until", 7))]
    assert table_writes(records) == ({b"pk1_a": None, b"pk1_b": b"2"}, {"ehr.visits.v1": 12, "@known-until": 7})


@pytest.mark.parametrize("kind", ["memory", "rocksdb"])
def test_a_tables_offset_records_are_the_bytes_the_rocksdb_table_holds_and_a_none_write_deletes(kind, tmp_path):
    store = MemoryStore() if kind == "memory" else RocksStore(tmp_path)
    store.open(0)
    try:
        store.commit(0, {b"pk1_a": b"x", b"pk1_b": b"y"}, {"ehr.visits.v1": 5, CHANGELOG_POSITION: 9})
        store.commit(0, {b"pk1_a": None}, {})
        assert dict(store.items(0)) == {b"pk1_b": b"y"}
        assert store.offsets(0) == {"ehr.visits.v1": 5, CHANGELOG_POSITION: 9}
        if kind == "rocksdb":
            key, value = offset_record("ehr.visits.v1", 5)
            assert store._dbs[0][key] == value
    finally:
        store.close_all()


def test_every_replica_derives_the_same_transactional_id_for_a_partition():
    assert transactional_id("t1.", "continuity", 3) == "t1.continuity-3"
    assert transactional_id("", "continuity", 0) != transactional_id("", "continuity", 1)
