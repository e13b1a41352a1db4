"""Properties of care-gap detection over random fact sequences (with redeliveries)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.notifier.domain.care_gaps import (
    CareGapOpened,
    CareGapResolved,
    CarePolicy,
    FlkAssignedFact,
    FlkDeclinedFact,
    FlkEndedFact,
    FlkEndReason,
    ListingEndedFact,
    ListingEndReason,
    ListingStartedFact,
    PersonStatusFact,
    ResidenceFact,
    RiskAssessedFact,
    Tick,
    apply,
    initial_state,
)

pytestmark = pytest.mark.unit

UTC = timezone.utc
T0 = datetime(2025, 1, 1, tzinfo=UTC)
KEY = "199001012380"
UNITS = ("U1", "U2", "U3")


def _t(days: int) -> datetime:
    return T0 + timedelta(days=days)


# Each strategy draws a builder: given the fact's effective time, it returns the fact.
ids = st.integers(0, 3)
units = st.sampled_from(UNITS)

builders = st.one_of(
    st.builds(lambda n, unit: lambda at: ListingStartedFact(KEY, f"L{n}", unit, at), ids, units),
    st.builds(
        lambda n, unit, r: lambda at: ListingEndedFact(KEY, f"L{n}", unit, at, r),
        ids, units, st.sampled_from(ListingEndReason),
    ),
    st.builds(
        lambda n, unit, fictive: lambda at: FlkAssignedFact(KEY, f"A{n}", unit, "doc", at, fictive),
        ids, units, st.booleans(),
    ),
    st.builds(
        lambda n, unit, r: lambda at: FlkEndedFact(KEY, f"A{n}", unit, at, r),
        ids, units, st.sampled_from(FlkEndReason),
    ),
    st.builds(
        lambda unit, declined, suppresses: lambda at: FlkDeclinedFact(KEY, unit, at, declined, suppresses),
        units, st.booleans(), st.booleans()
    ),
    st.builds(lambda r: lambda at: RiskAssessedFact(KEY, r, at), st.integers(0, 5)),
    st.builds(
        lambda length: lambda at: ResidenceFact(
            KEY, at, None if length is None else at + timedelta(days=length)
        ),
        st.one_of(st.none(), st.integers(0, 90)),
    ),
    st.builds(
        lambda status: lambda at: PersonStatusFact(KEY, at, *status),
        st.sampled_from([(False, False)] * 4 + [(True, False), (False, True)]),
    ),
    st.just(lambda at: "tick"),
    st.just(lambda at: "tick"),
)

policies = st.builds(
    CarePolicy,
    grace_days=st.integers(0, 30),
    rub_threshold=st.integers(3, 5),
    include_sabo=st.booleans(),
)


@st.composite
def journeys(draw):
    """Facts with non-decreasing processing times (days after T0), effective a little
    before (sometimes much before: late arrivals); some are redeliveries of earlier facts."""
    steps = []
    now = 0
    for _ in range(draw(st.integers(1, 40))):
        now += draw(st.integers(0, 15))
        lag = draw(st.one_of(st.integers(0, 5), st.integers(0, 200)))
        fact = draw(builders)(_t(now - lag))
        steps.append((fact, now))
        if draw(st.integers(0, 4)) == 0:  # redeliver an earlier fact, later
            earlier = draw(st.sampled_from([f for f, _ in steps]))
            now += draw(st.integers(0, 3))
            steps.append((earlier, now))
    return steps


def _run(steps, policy):
    state = initial_state(KEY)
    log = []
    for fact, offset in steps:
        now = _t(offset)
        if fact == "tick":
            fact = Tick(now)
        state, events = apply(state, fact, now, policy)
        log.append((fact, now, state, events))
    return log


@settings(max_examples=300, deadline=None)
@given(journeys(), policies)
def test_at_most_one_open_gap_per_patient_over_any_fact_sequence(steps, policy):
    open_gap = None
    seen_ids = set()
    for fact, now, state, events in _run(steps, policy):
        for event in events:
            if isinstance(event, CareGapOpened):
                assert open_gap is None, "a second gap opened while one is open"
                assert event.gap_id not in seen_ids, "a gap id was reused"
                assert event.opened_at <= now
                assert state.listing is not None and event.unit_id == state.listing.unit_id
                seen_ids.add(event.gap_id)
                open_gap = event
            else:
                assert isinstance(event, CareGapResolved)
                assert open_gap is not None and event.gap_id == open_gap.gap_id
                assert open_gap.opened_at <= event.resolved_at <= now
                open_gap = None
        assert (state.open_gap.gap_id if state.open_gap else None) == (
            open_gap.gap_id if open_gap else None
        )
        if state.deceased or state.emigrated or state.listing is None or state.has_real_flk():
            assert state.open_gap is None


@settings(max_examples=300, deadline=None)
@given(journeys(), policies)
def test_applying_any_fact_twice_emits_nothing_the_second_time(steps, policy):
    for fact, now, state, _ in _run(steps, policy):
        again, events = apply(state, fact, now, policy)
        assert events == []
        assert again == state


@settings(max_examples=100, deadline=None)
@given(journeys(), policies)
def test_replaying_the_same_facts_gives_the_same_events(steps, policy):
    first = [events for *_, events in _run(steps, policy)]
    second = [events for *_, events in _run(steps, policy)]
    assert first == second


@settings(max_examples=200, deadline=None)
@given(journeys(), policies)
def test_the_compiled_state_codec_writes_and_reads_exactly_what_the_generic_one_does(steps, policy):
    """The stored state's codec is compiled once per type (adapters/state_codec.py); over every state a
    fact sequence reaches it gives the generic, hint-walking codec's JSON and reads it back."""
    import json

    from services.notifier.adapters.state_codec import _decode, _encode, decode_state, encode_state
    from services.notifier.domain.care_gaps import PatientCareState

    for _, _, state, _ in _run(steps, policy):
        stored = encode_state(state)
        generic = _encode(state)
        assert {k: v for k, v in stored.items() if k != "_format"} == generic
        assert json.dumps(stored, sort_keys=True) == json.dumps({**generic, **({"_format": 2} if "_format" in stored else {})}, sort_keys=True)
        assert decode_state(stored) == state == _decode(PatientCareState, generic)
