"""Care-gap detection's service layer (service_layer/detection.py) on the in-memory fakes of its
store and unit of work (tests/support/notifier_fakes.py): the inbox, the gap rows, the outbox and the
ticker — without PostgreSQL. tests/integration/notifier keeps the same paths on the real store."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from flk.events.envelope import make_record, read_record
from flk.events.registry import registry
from services.notifier.adapters.inbound import FactMapper
from services.notifier.domain.care_gaps import CarePolicy
from services.notifier.service_layer.detection import CareGapDetection
from tests.support.builders import DOCTOR_1, UNIT_A, a_patient_key
from tests.support.notifier_fakes import FakeCareStore, FakeCareUnitOfWork

STOCKHOLM = ZoneInfo("Europe/Stockholm")
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=STOCKHOLM)
UNIT = UNIT_A
DOCTOR = DOCTOR_1
PATIENT = a_patient_key(31)


@dataclass
class FixedClock:
    moment: datetime

    def now(self) -> datetime:
        return self.moment


class RecordingProbe:
    def __init__(self) -> None:
        self.duplicates: list[str] = []
        self.gap_events: list[str] = []

    def duplicate(self, event_type: str) -> None:
        self.duplicates.append(event_type)

    def gap_event(self, kind: str, unit_id: str) -> None:
        self.gap_events.append(kind)


def envelope(event_type: str, data: dict):
    record = make_record(event_type, data, source="urn:test")
    return read_record(registry().topic_for(event_type).name, record.key, record.value, record.headers)


def listed(key: str = PATIENT, on: date = T0.date()):  # noqa: B008 - a constant
    return envelope("listing.started.v1", {
        "listing_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"listing|{key}")), "patient_key": key,
        "care_unit_id": UNIT, "started_on": on.isoformat(), "responsibility_from": (on + timedelta(days=1)).isoformat(),
        "origin": "active_choice", "initiated_by": "person"})


def rub(band: int, key: str = PATIENT):
    computed = (T0 - timedelta(days=30)).astimezone(ZoneInfo("UTC")).isoformat().replace("+00:00", "Z")
    return envelope("risk.assessed.v1", {
        "assessment_id": f"acg-{key[-6:]}-{band}", "patient_key": key, "rub": band, "acg_version": "12.1",
        "lookback_months": 18, "computed_at": computed})


def flk_assigned(key: str = PATIENT):
    return envelope("fast_lakarkontakt.assigned.v1", {
        "assignment_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"assignment|{key}")), "patient_key": key,
        "care_unit_id": UNIT, "list_id": f"list-{DOCTOR}", "list_kind": "doctor", "practitioner_id": DOCTOR,
        "coordinating": True, "assigned_on": T0.date().isoformat()})


def detection(uow: FakeCareUnitOfWork, grace_days: int = 0, clock: FixedClock | None = None,
              probe: RecordingProbe | None = None) -> tuple[CareGapDetection, list[set[str]]]:
    changed: list[set[str]] = []
    return CareGapDetection(None, clock or FixedClock(T0), CarePolicy(grace_days=grace_days),
                            FactMapper("Europe/Stockholm"), probe or RecordingProbe(),  # type: ignore[arg-type]
                            on_change=changed.append, uow_factory=lambda: uow), changed


def outbox_types(store: FakeCareStore) -> list[str]:
    return [e.event_type for e in store.outbox.values()]


async def test_a_listed_high_need_patient_without_flk_gets_one_gap_even_when_events_are_redelivered() -> None:
    uow, probe = FakeCareUnitOfWork(), RecordingProbe()
    detect, changed = detection(uow, probe=probe)
    first, high = listed(), rub(5)

    await detect.handle_batch([first, high, high, first])
    await detect.handle_batch([high])  # redelivered in a later batch: the inbox stops it

    assert [g.unit_id for g in uow.store.open_gaps(PATIENT)] == [UNIT]
    assert outbox_types(uow.store) == ["care_gap.opened.v1"]
    assert len(uow.store.inbox) == 2 and changed == [{UNIT}]
    assert probe.duplicates == ["risk.assessed.v1", "listing.started.v1", "risk.assessed.v1"]


async def test_an_flk_assignment_resolves_the_open_gap_one_message_at_a_time() -> None:
    uow = FakeCareUnitOfWork()
    detect, _ = detection(uow)
    for event in (listed(), rub(5), flk_assigned()):
        await detect.handle(event)

    assert uow.store.open_gaps(PATIENT) == []
    assert outbox_types(uow.store) == ["care_gap.opened.v1", "care_gap.resolved.v1"]
    (row,) = uow.store.gaps.values()
    assert row.resolved is not None and row.resolved.resolution.value == "fast_lakarkontakt_assigned"


async def test_a_low_need_patient_gets_no_gap() -> None:
    uow = FakeCareUnitOfWork()
    detect, changed = detection(uow)

    await detect.handle_batch([listed(), rub(2)])

    assert uow.store.gaps == {} and uow.store.outbox == {} and changed == []
    assert PATIENT in uow.store.states  # the state is kept for later facts


async def test_the_gap_opens_on_the_tick_after_the_grace_period_not_before() -> None:
    uow = FakeCareUnitOfWork()
    clock = FixedClock(T0)
    detect, changed = detection(uow, grace_days=14, clock=clock)
    await detect.handle_batch([listed(), rub(5)])
    assert uow.store.gaps == {}
    assert await detect.tick_due() == 0  # the wake-up is in the future

    clock.moment = T0 + timedelta(days=16)
    assert await detect.tick_due() == 1

    assert [g.unit_id for g in uow.store.open_gaps(PATIENT)] == [UNIT]
    assert changed == [{UNIT}]
    assert await detect.tick_due() == 0  # nothing due any more


@dataclass
class BrokenOutbox(FakeCareStore):
    refusing: bool = True

    async def add_outbox(self, events) -> None:  # type: ignore[no-untyped-def]
        if events and self.refusing:
            raise RuntimeError("outbox refused")
        await super().add_outbox(events)


async def test_a_failed_transaction_claims_nothing_so_the_redelivered_event_is_handled() -> None:
    uow = FakeCareUnitOfWork(BrokenOutbox())
    detect, _ = detection(uow)
    await detect.handle(listed())  # no gap yet: nothing in the outbox to fail

    with pytest.raises(RuntimeError):
        await detect.handle(rub(5))
    assert len(uow.store.inbox) == 1 and uow.store.gaps == {} and uow.rollbacks == 1

    uow.store.refusing = False  # the outbox works again
    await detect.handle(rub(5))
    assert outbox_types(uow.store) == ["care_gap.opened.v1"]


def test_detection_reaches_the_database_only_through_its_unit_of_work() -> None:
    import ast
    from pathlib import Path

    source = Path(__file__).resolve().parents[3] / "services/notifier/service_layer/detection.py"
    tree = ast.parse(source.read_text(encoding="utf-8"))
    reached = sorted({ast.unparse(node) for node in ast.walk(tree)
                      if isinstance(node, ast.Attribute) and node.attr in {"conn", "acquire", "transaction"}})
    assert reached == []
