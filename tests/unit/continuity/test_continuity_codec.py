"""The compact binary state codec: lossless, small, and safe to use per event."""
from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.continuity.adapters.state_codec import decode_state, encode_state
from services.continuity.domain.patient import (
    EMPTY_STATE,
    PatientState,
    StoredVisit,
    Tombstone,
    Visit,
    cancel_visit,
    compute_indices,
    record_visit,
    set_listing,
)
from services.continuity.domain.settings import ContinuitySettings

pytestmark = pytest.mark.unit

SETTINGS = ContinuitySettings()
AS_OF = date(2025, 6, 30)
STATE_BUDGET_BYTES = 512

ids = st.text(min_size=1, max_size=30)
stored_visits = st.builds(
    StoredVisit,
    stamp=st.integers(0, (1 << 38) - 1),
    seq=st.integers(0, (1 << 64) - 1),
    digest=st.integers(0, (1 << 64) - 1),
    practitioner_id=ids,
    care_unit_id=ids,
    counts_for=st.integers(1, 3),
)
states = st.builds(
    PatientState,
    listing_unit_id=st.none() | ids,
    fast_lakarkontakt=st.lists(ids, max_size=3, unique=True).map(lambda xs: tuple(sorted(xs))),
    visits=st.lists(stored_visits, max_size=30).map(lambda vs: tuple(sorted(vs))),
    tombstones=st.lists(
        st.builds(Tombstone, digest=st.integers(0, (1 << 64) - 1), day_number=st.integers(1, (1 << 32) - 1)), max_size=5
    ).map(tuple),
)


def typical_patient() -> PatientState:
    """Listed with one FLK; 8 visits in 18 months to 3 practitioners, one cancellation."""
    unit = "SE2321000016-A1B2"
    flk, colleague, nurse = "SE2321000016-1001", "SE2321000016-1002", "SE2321000016-2001"
    state = set_listing(EMPTY_STATE, unit, [flk])
    plan = [flk, flk, colleague, nurse, flk, nurse, flk, colleague, flk]
    for i, practitioner in enumerate(plan):
        profession = "sjuksköterska" if practitioner == nurse else "läkare"
        occurred_at = datetime(2024, 1, 10, 9, 30) + timedelta(days=55 * i)
        visit = Visit(f"cosmic-enc-{i:012d}-7f3a9c", practitioner, profession, unit, occurred_at, 10_000_000 + i, "besok")
        state = record_visit(state, visit, AS_OF, SETTINGS)
    return cancel_visit(state, "cosmic-enc-000000000008-7f3a9c", AS_OF, SETTINGS)


@given(states)
def test_decode_restores_an_equal_state(state: PatientState) -> None:
    encoded = encode_state(state)
    assert decode_state(encoded) == state
    assert encode_state(decode_state(encoded)) == encoded


def test_empty_state_round_trips() -> None:
    assert decode_state(encode_state(EMPTY_STATE)) == EMPTY_STATE


def test_typical_patient_state_is_well_under_512_bytes() -> None:
    state = typical_patient()
    assert len(state.visits) == 8 and len(state.tombstones) == 1
    size = len(encode_state(state))
    print(f"typical patient state: {size} bytes")  # shown with pytest -s
    assert size <= 320 < STATE_BUDGET_BYTES


def test_ids_are_stored_once_per_patient() -> None:
    state = typical_patient()
    encoded = encode_state(state)
    assert encoded.count(b"SE2321000016-1001") == 1
    assert encoded.count(b"SE2321000016-A1B2") == 1


def test_working_on_decoded_state_gives_the_same_indices_as_in_memory_state() -> None:
    visits = [
        Visit(f"v{i}", "ABC"[i % 3], "läkare" if i % 4 else "ssk", "U1", date(2024, 1, 1) + timedelta(days=29 * i), i)
        for i in range(20)
    ]
    in_memory = set_listing(EMPTY_STATE, "U1", ["A"])
    round_tripped = encode_state(in_memory)
    for v in reversed(visits):
        in_memory = record_visit(in_memory, v, AS_OF, SETTINGS)
        round_tripped = encode_state(record_visit(decode_state(round_tripped), v, AS_OF, SETTINGS))
    assert decode_state(round_tripped) == in_memory
    assert compute_indices(decode_state(round_tripped), AS_OF, SETTINGS) == compute_indices(in_memory, AS_OF, SETTINGS)


@pytest.mark.parametrize(
    "data",
    [b"", b"\x02" + bytes(9), encode_state(typical_patient())[:-1], encode_state(typical_patient()) + b"\x00"],
    ids=["empty", "unknown-version", "truncated", "trailing-bytes"],
)
def test_malformed_bytes_are_rejected_with_value_error(data: bytes) -> None:
    with pytest.raises(ValueError):
        decode_state(data)


def test_state_beyond_the_codec_limits_is_rejected_with_value_error() -> None:
    too_long_id = PatientState(listing_unit_id="U" * 300)
    with pytest.raises(ValueError):
        encode_state(too_long_id)
    negative_seq = PatientState(visits=(StoredVisit(0, -1, 0, "A", "U", 3),))
    with pytest.raises(ValueError):
        encode_state(negative_seq)
