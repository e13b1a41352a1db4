"""The platform's partitioner puts every record where aiokafka's (and Kafka's Java client) would."""
from __future__ import annotations

import pytest
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as aiokafka_murmur2
from hypothesis import given
from hypothesis import strategies as st

from flk.events import partitioner
from flk.events.partitioner import default_partitioner, murmur2

pytestmark = pytest.mark.unit


@given(st.binary(max_size=300))
def test_murmur2_is_bit_for_bit_aiokafkas(data):
    assert murmur2(data) == aiokafka_murmur2(data)


@given(st.binary(min_size=0, max_size=120), st.integers(min_value=1, max_value=64))
def test_a_keyed_record_gets_the_partition_aiokafka_would_choose(key, count):
    partitions = list(range(count))
    assert default_partitioner(key, partitions, partitions) == DefaultPartitioner()(key, partitions, partitions)


def test_known_java_client_hashes():
    # values from Kafka's own tests (org.apache.kafka.common.utils.UtilsTest#testMurmur2), as unsigned ints
    cases = {b"21": -973932308, b"foobar": -790332482, b"a-little-bit-long-string": -985981536,
             b"a-little-bit-longer-string": -1486304829,
             b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971, b"abc": 479470107}
    for data, signed in cases.items():
        assert murmur2(data) == signed & 0xFFFFFFFF


def test_a_keyless_record_goes_to_an_available_partition():
    assert default_partitioner(None, [0, 1, 2], [2]) == 2


def test_remembered_hashes_are_bounded_and_give_the_same_partitions_when_forgotten(monkeypatch):
    monkeypatch.setattr(partitioner, "HASHES_REMEMBERED", 3)
    monkeypatch.setattr(partitioner, "_hashes", {})
    partitions = list(range(12))
    keys = [f"pk1_{i:026d}".encode() for i in range(10)]
    first = [default_partitioner(k, partitions, partitions) for k in keys]
    assert len(partitioner._hashes) <= 3
    assert [default_partitioner(k, partitions, partitions) for k in keys] == first
    assert first == [DefaultPartitioner()(k, partitions, partitions) for k in keys]
