"""P3 in the simulated region: the register states a minor's guardians, and a minority of children's
listing requests by one of two guardians wait for the other guardian's `listing.consent.v1`."""
from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import date

import pytest

from tools.simulator.generate import ts
from tools.simulator.presets import PRESETS
from tests.unit.simulator.conftest import small

pytestmark = pytest.mark.unit


def by_type(items, event_type: str) -> list[dict]:
    return [i.data for i in items if i.event_type == event_type]


def _age(birth: str, on: str) -> float:
    return (date.fromisoformat(on[:10]) - date.fromisoformat(birth)).days / 365.25


@pytest.fixture(scope="module")
def consent_heavy():
    """Every child with two guardians asks by one guardian, so the answers' shares can be checked."""
    settings = replace(PRESETS["small"].settings, one_guardian_request_share=1.0)
    sim = small(settings=settings)
    return sim, list(sim.stream())


def test_minors_are_registered_with_one_or_two_guardians_and_adults_without_the_field(small_run) -> None:
    _, items = small_run
    registered = by_type(items, "person.registered.v1")
    minors = [d for d in registered if _age(d["birth_date"], d["updated_at"]) < 18]
    adults = [d for d in registered if _age(d["birth_date"], d["updated_at"]) >= 18]
    assert len(minors) > 500 and adults
    assert all("guardian_keys" not in d for d in adults)
    sizes = Counter(len(d["guardian_keys"]) for d in minors)
    assert set(sizes) == {1, 2}
    assert 0.85 <= sizes[2] / len(minors) <= 0.95  # two_guardians_share 0.90
    for d in minors:
        assert d["patient_key"] not in d["guardian_keys"]
        assert len(set(d["guardian_keys"])) == len(d["guardian_keys"])
    # mostly adults of the region, old enough to be the child's parent
    births = {d["patient_key"]: d["birth_date"] for d in registered}
    in_region = [(d, g) for d in minors for g in d["guardian_keys"] if g in births]
    assert len(in_region) > 0.9 * sum(sizes[n] * n for n in sizes)
    assert all(18 <= _age(births[g], d["birth_date"]) <= 50 for d, g in in_region)


def test_a_childs_listing_requests_name_the_guardians_the_register_states(small_run) -> None:
    _, items = small_run
    guardians = {d["patient_key"]: d["guardian_keys"] for d in by_type(items, "person.registered.v1")
                 if "guardian_keys" in d}
    requests = [d for d in by_type(items, "listing.request.v1") if "consenting_guardian_keys" in d
                and d["patient_key"] in guardians]  # (not: adults today, listed years ago as minors)
    assert len(requests) > 100
    for d in requests:
        assert set(d["consenting_guardian_keys"]) <= set(guardians[d["patient_key"]])
        assert d["consenting_guardian_keys"][0] == guardians[d["patient_key"]][0]


def test_a_minority_of_childrens_requests_wait_for_the_second_guardian_who_answers_days_later(small_run) -> None:
    sim, items = small_run
    guardians = {d["patient_key"]: d["guardian_keys"] for d in by_type(items, "person.registered.v1")
                 if "guardian_keys" in d}
    by_two = [d for d in by_type(items, "listing.request.v1")
              if d["channel"] == "1177" and len(guardians.get(d["patient_key"], ())) == 2
              and "consenting_guardian_keys" in d]
    alone = {d["patient_key"]: d for d in by_two if len(d["consenting_guardian_keys"]) == 1}
    assert 0.08 <= len(alone) / len(by_two) <= 0.35  # one_guardian_request_share 0.20
    answers = by_type(items, "listing.consent.v1")
    assert answers
    for answer in answers:
        request = alone[answer["patient_key"]]
        assert answer["care_unit_id"] == request["care_unit_id"]
        assert answer["guardian_key"] == guardians[answer["patient_key"]][1]  # the one who did not ask
        waited = (date.fromisoformat(answer["effective_date"]) - date.fromisoformat(request["effective_date"])).days
        assert 1 <= waited <= 14
    counts = sim.summary.as_dict()["guardian_consent"]
    assert counts["one_guardian_requests"] == len(alone)
    assert counts["consents"] + counts["refusals"] == len(answers)
    assert counts["consents"] + counts["refusals"] + counts["unanswered"] == len(alone)


def test_most_second_guardians_consent_a_few_refuse_and_a_few_never_answer(consent_heavy) -> None:
    sim, items = consent_heavy
    counts = sim.summary.guardian_consent
    n = counts["one_guardian_requests"]
    assert n >= 40
    decisions = Counter(d["decision"] for d in by_type(items, "listing.consent.v1"))
    assert decisions == {"consent": counts["consents"], "refuse": counts["refusals"]}
    # settings: 85 % consent, 5 % refuse, 10 % never answer (+ answers due after the period's end);
    # about 50 requests, so the bounds are wide
    assert counts["consents"] / n >= 0.6
    assert 0 < counts["refusals"] / n <= 0.15
    assert 0 < counts["unanswered"] / n <= 0.35
    assert counts["unanswered"] < counts["consents"] and counts["refusals"] < counts["consents"]


def test_a_refused_or_unanswered_child_stays_where_it_was(consent_heavy) -> None:
    """The listing facts at the end (LISTINGS.csv) say what the listing service decides: a refused or
    never answered request lists nobody at the requested unit."""
    _, items = consent_heavy
    answered = {d["patient_key"]: d["decision"] for d in by_type(items, "listing.consent.v1")}
    alone = [d for d in by_type(items, "listing.request.v1")
             if d["channel"] == "1177" and len(d.get("consenting_guardian_keys", ())) == 1
             and d.get("guardian_count") == 2]
    gone = {d["patient_key"] for d in by_type(items, "person.updated.v1") if d["status"] != "folkbokford"}
    facts = {d["patient_id"]: d["care_unit_id"] for d in by_type(items, "sim.listing_fact")}
    checked = Counter()
    for request in alone:
        key = request["patient_key"]
        if key in gone:
            continue
        later = [r for r in by_type(items, "listing.request.v1") if r["patient_key"] == key
                 and r["effective_date"] > request["effective_date"]]
        if later:
            continue
        decision = answered.get(key, "silent")
        listed_there = facts.get(key) == request["care_unit_id"]
        assert listed_there == (decision == "consent"), (decision, listed_there)
        checked[decision] += 1
    assert checked["consent"] and checked["refuse"] and checked["silent"]


def test_the_guardians_have_a_random_stream_of_their_own() -> None:
    """Fewer children with two guardians changes the guardian fields and nothing else of the opening:
    the guardians take no draw from the stream that makes the people, listings and visits."""
    def opening(sim) -> list:
        start = ts(sim.start_date.toordinal())
        out = []
        for e in sim.stream():
            if e.at > start:
                break
            out.append((e.event_type, {k: v for k, v in e.data.items()
                                       if k not in ("guardian_keys", "consenting_guardian_keys", "guardian_count")}))
        return out

    base = PRESETS["small"].settings
    usual = opening(small(limit_people=800))
    fewer = opening(small(limit_people=800, settings=replace(base, two_guardians_share=0.5)))
    assert len(usual) > 2_000
    assert usual == fewer
