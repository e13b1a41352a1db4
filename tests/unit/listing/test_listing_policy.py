"""Policy profiles, versioning, dispatch and messages."""

from __future__ import annotations

import dataclasses
import importlib
import sys
from datetime import date

import pytest

from listing_builders import ADULT, DAY, UNIT_A, world
from services.listing.domain import commands as cmd
from services.listing.domain import events as ev
from services.listing.domain.evolve import EVOLVERS
from services.listing.domain.model import EmploymentType
from services.listing.domain.policy import (
    PROFILES,
    NoProfileVersion,
    PolicyNotApplicable,
    PolicyProfile,
    UnknownProfile,
    profile_for,
    registry_problems,
)
from services.listing.domain.reasons import RejectionReason, RuleId
from services.listing.domain.rules import DECIDERS, decide, decide_under

pytestmark = pytest.mark.unit


def test_registry_has_the_four_profiles_without_overlaps_or_gaps() -> None:
    assert {"national", "vastmanland", "kronoberg", "kalmar"} <= set(PROFILES)
    assert registry_problems() == []


def test_registry_problems_finds_overlaps() -> None:
    a = PolicyProfile(name="x", version=1, valid_from=date(2020, 1, 1))
    b = PolicyProfile(name="x", version=2, valid_from=date(2021, 1, 1))
    assert registry_problems({"x": (a, b)}) == ["x: x@1 overlaps x@2"]


def test_profile_for_picks_the_version_valid_on_the_date() -> None:
    assert profile_for("vastmanland", date(2021, 9, 20)).version == 1
    assert profile_for("vastmanland", date(2021, 9, 21)).version == 2
    assert profile_for("kronoberg", date(2020, 8, 31)).f5_max_fast_lakarkontakter == 1
    assert profile_for("kronoberg", date(2020, 9, 1)).f5_max_fast_lakarkontakter is None


def test_profile_for_unknown_name_or_date_raises() -> None:
    with pytest.raises(UnknownProfile):
        profile_for("gotland", DAY)
    with pytest.raises(NoProfileVersion):
        profile_for("national", date(2010, 1, 1))


def test_decide_refuses_a_profile_version_not_valid_on_the_effective_date() -> None:
    request = cmd.RequestListing(patient_key=ADULT, care_unit_id=UNIT_A, effective_date=DAY)
    with pytest.raises(PolicyNotApplicable):
        decide(world(), request, profile_for("vastmanland", date(2021, 1, 1)))
    assert decide_under(world(), request, "vastmanland") == decide(world(), request, profile_for("vastmanland", DAY))


def test_vastmanland_profile_is_strict_on_eligibility() -> None:
    v = profile_for("vastmanland", DAY)
    assert v.f2_allowed_employment_types == {EmploymentType.TILLSVIDARE, EmploymentType.ST_ALLMANMEDICIN}
    assert v.f3_fictive_lists_enabled and v.f5_max_fast_lakarkontakter == 1


def test_kalmar_is_national_defaults_plus_rub_focus() -> None:
    national, kalmar = profile_for("national", DAY), profile_for("kalmar", DAY)
    differing = {
        f.name for f in dataclasses.fields(PolicyProfile) if getattr(national, f.name) != getattr(kalmar, f.name)
    }
    assert differing == {"name", "region_code", "rub_high_need_requires_fast_vardkontakt"}
    assert kalmar.rub_high_need_bands == {4, 5}


def test_profile_rejects_inconsistent_values() -> None:
    with pytest.raises(ValueError):
        PolicyProfile(name="x", version=1, valid_from=date(2020, 1, 1), valid_to=date(2020, 1, 1))
    with pytest.raises(ValueError):
        PolicyProfile(name="x", version=1, valid_from=date(2020, 1, 1), f5_max_fast_lakarkontakter=0)


def test_every_rejection_reason_carries_a_rule_id_and_swedish_and_english_messages() -> None:
    codes = set()
    for reason in RejectionReason:
        assert isinstance(reason.rule_id, RuleId)
        assert reason.message_sv.strip() and reason.message_en.strip()
        assert reason.message_sv != reason.message_en
        assert reason.message("sv") == reason.message_sv and reason.message("en") == reason.message_en
        codes.add(reason.value)
    assert len(codes) == len(RejectionReason)
    assert RejectionReason("switch_limit") is RejectionReason.SWITCH_LIMIT
    assert RejectionReason.SWITCH_LIMIT.message_sv.startswith("Högst två egna byten av vårdcentral per 12 månader")
    assert RejectionReason.SWITCH_LIMIT.message_en.startswith("At most two person-initiated")


def test_every_command_has_a_decider_and_every_event_an_evolver() -> None:
    assert set(DECIDERS) == set(cmd.ALL_COMMANDS)
    assert set(EVOLVERS) == set(ev.ALL_EVENTS)


TEST_MODULES = (
    "test_listing_rules_listing",
    "test_listing_rules_flk",
    "test_listing_rules_person",
    "test_listing_views",
    "test_listing_properties",
)


def test_every_rule_id_has_a_named_test() -> None:
    names = set()
    for module_name in TEST_MODULES:
        module = sys.modules.get(module_name) or importlib.import_module(module_name)
        names |= {n for n in vars(module) if n.startswith("test_")}
    missing = [r.value for r in RuleId if not any(n.startswith(f"test_{r.value}_") for n in names)]
    assert missing == []
