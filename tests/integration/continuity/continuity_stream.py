"""Helpers for the continuity stream tests: event builders, an in-process worker, waiting."""
from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import date
from pathlib import Path

from flk.events.envelope import make_record
from flk.events.producer import publish_many
from flk.settings import PlatformSettings
from services.continuity.bootstrap import ContinuityWorker
from services.continuity.settings import ContinuityServiceSettings
from tests.support.builders import DOCTOR_1, UNIT_A, a_visit

AS_OF = date(2026, 3, 15)
DOCTOR_2 = "SE2321000016-L002"
JWT_SECRET = "continuity-integration-secret-0123456789"


def service_settings(bootstrap: str, prefix: str, database_url: str | None = None, **overrides) -> ContinuityServiceSettings:
    platform = dict(kafka_bootstrap=bootstrap, topic_prefix=prefix, jwt_verify_key=JWT_SECRET, environment="test")
    if database_url:
        platform["database_url"] = database_url
    values = dict(
        platform=PlatformSettings(**platform), as_of=AS_OF, store="memory", api_enabled=False, metrics_port=None,
        snapshot_enabled=False, group_id="continuity", session_timeout_ms=6000, heartbeat_interval_ms=1000,
        batch_timeout_ms=50, region_id="19",
    )
    values.update(overrides)
    return ContinuityServiceSettings(**values)


def visit(patient: str, visit_id: str, practitioner: str = DOCTOR_1, when: str = "2026-03-01T09:30:00Z",
          unit: str = UNIT_A, profession: str = "läkare"):
    return make_record("visit.recorded.v1", a_visit(patient_key=patient, visit_id=visit_id, practitioner_id=practitioner,
                                                    occurred_at=when, care_unit_id=unit, profession=profession),
                       source="ehr/test")


def cancellation(patient: str, visit_id: str):
    return make_record("visit.cancelled.v1", {"visit_id": visit_id, "patient_key": patient,
                                              "cancelled_at": "2026-03-02T10:00:00Z", "reason": "entered_in_error"},
                       source="ehr/test")


def listing(patient: str, unit: str = UNIT_A, started: str = "2025-01-01"):
    return make_record("listing.started.v1", {
        "listing_id": str(uuid.uuid5(uuid.NAMESPACE_URL, patient + unit)), "patient_key": patient,
        "care_unit_id": unit, "started_on": started, "responsibility_from": started,
        "origin": "active_choice", "initiated_by": "person"}, source="listing/test")


def flk_assigned(patient: str, doctor: str | None = DOCTOR_1, unit: str = UNIT_A, coordinating: bool = True):
    """An FLK on ``doctor``'s list; ``doctor`` None: on the unit's fictive list (a locum's patients, F3)."""
    return make_record("fast_lakarkontakt.assigned.v1", {
        "assignment_id": str(uuid.uuid5(uuid.NAMESPACE_URL, patient + (doctor or "fictive"))), "patient_key": patient,
        "care_unit_id": unit, "list_id": doctor or unit + "-F1", "list_kind": "doctor" if doctor else "fictive",
        "practitioner_id": doctor, "coordinating": coordinating, "assigned_on": "2025-01-02"}, source="listing/test")


def sabo(patient: str, since: str = "2024-06-01", main_care_in_residence: bool | None = None,
         recorded_at: str = "2024-06-01T08:00:00Z", until: str | None = None):
    """A SÄBO residence; ``main_care_in_residence`` None leaves the optional qualifier out (an older producer)."""
    data = {"residence_id": f"r-{patient[-8:]}", "patient_key": patient, "sabo_from": since, "sabo_to": until,
            "recorded_at": recorded_at}
    if main_care_in_residence is not None:
        data["main_care_in_residence"] = main_care_in_residence
    return make_record("residence.recorded.v1", data, source="municipality/test")


def risk(patient: str, rub: int, computed_at: str = "2026-03-01T03:00:00Z"):
    """An ACG run's assessment of the patient's RUB band (its id: the run's time and the patient)."""
    return make_record("risk.assessed.v1", {
        "assessment_id": f"acg-{computed_at[:10]}-{patient[-8:]}", "patient_key": patient, "rub": rub,
        "acg_version": "12.1", "lookback_months": 12, "computed_at": computed_at}, source="acg/test")


async def publish(producer, prefix: str, *records) -> None:
    await publish_many(producer, list(records), topic_prefix=prefix)


async def eventually(check, timeout_s: float = 15.0, interval_s: float = 0.05):
    """Poll ``check()`` until it returns a truthy value; return it (fail after the timeout)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s")
        await asyncio.sleep(interval_s)


@contextlib.asynccontextmanager
async def running_worker(settings: ContinuityServiceSettings, store=None):
    worker = ContinuityWorker(settings, store=store)
    await worker.start()
    try:
        yield worker
    finally:
        await worker.stop()


def indices_of(worker: ContinuityWorker, patient: str):
    found = worker.processor.patient(patient)
    return found[1] if found else None


def write_csvs(directory: Path, visits: list[dict], listings: list[tuple[str, str, str]]) -> tuple[Path, Path]:
    """The batch CLI's input files for the same events (visits in publish order)."""
    import csv

    vpath, lpath = directory / "visits.csv", directory / "listings.csv"
    with vpath.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["patient_id", "visit_id", "practitioner_id", "profession", "care_unit_id", "occurred_at",
                    "contact_type"])
        for v in visits:
            w.writerow([v["patient_key"], v["visit_id"], v["practitioner_id"], v["profession"], v["care_unit_id"],
                        v["occurred_at"], v["contact_type"]])
    with lpath.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["patient_id", "care_unit_id", "fast_lakarkontakt_id"])
        for row in listings:
            w.writerow(row)
    return vpath, lpath
