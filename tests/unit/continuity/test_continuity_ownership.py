"""Which partitions a continuity replica may answer for: assigned by the group, and only under a live
lease (the last heartbeat the broker accepted plus the session timeout). Pure: a fake clock, no broker."""
from __future__ import annotations

import pytest

from services.continuity.bootstrap import NotServedHere, Ownership, ServedIndices, partition_of

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Tables:
    as_of = None

    def patient(self, key):
        return ("record", key)


def test_a_replica_serves_its_assigned_partitions_while_its_lease_lives():
    clock = Clock()
    own = Ownership(session_timeout_s=10, clock=clock)
    own.assigned({0, 1})
    assert own.serves(0) and own.serves(1) and not own.serves(2)
    clock.now += 9.9
    assert own.serves(0)


def test_a_replica_paused_past_its_session_serves_nothing_before_it_hears_of_the_rebalance():
    clock = Clock()
    own = Ownership(session_timeout_s=10, clock=clock)
    own.assigned({0, 1})
    clock.now += 8
    own.confirmed(sent_at=clock.now)  # a heartbeat the broker accepted
    clock.now += 9
    assert own.serves(0)
    clock.now += 30  # paused: no heartbeat reached the broker; the listener has heard nothing yet
    assert own.partitions == {0, 1}
    assert not own.serves(0) and not own.serves(1)


def test_a_late_confirmation_counts_from_when_its_heartbeat_was_sent():
    clock = Clock()
    own = Ownership(session_timeout_s=10, clock=clock)
    own.assigned({3})
    own.confirmed(sent_at=clock.now - 20)  # an old heartbeat's answer does not extend the lease
    clock.now += 10.1
    assert not own.serves(3)


def test_revoked_and_lost_partitions_are_no_longer_served():
    own = Ownership(session_timeout_s=10, clock=Clock())
    own.assigned({0, 1, 2})
    own.revoked({1})
    assert [own.serves(p) for p in range(3)] == [True, False, True]
    own.lost()
    assert not any(own.serves(p) for p in range(3))


def test_a_patient_of_a_partition_this_replica_does_not_own_is_not_served_here():
    clock = Clock()
    own = Ownership(session_timeout_s=10, clock=clock)
    key = "pk1_aaaaaaaaaaaaaaaaaaaaaaaaaa"
    mine = partition_of(key, 6)
    own.assigned({mine})
    served = ServedIndices(Tables(), own, 6)
    assert served.patient(key) == ("record", key)
    own.revoked({mine})
    with pytest.raises(NotServedHere) as raised:
        served.patient(key)
    assert raised.value.partition == mine


def test_the_partition_of_a_patient_is_the_producers_default_partitioners():
    from aiokafka.partitioner import DefaultPartitioner

    for n in range(200):
        key = f"pk1_{n:026d}"
        assert partition_of(key, 6) == DefaultPartitioner()(key.encode(), list(range(6)), list(range(6)))
