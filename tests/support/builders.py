"""Scenario builders shared by tests: valid event data with sensible defaults."""
from __future__ import annotations

import uuid
from datetime import datetime, timezone

from flk.security.pseudonym import PersonId, patient_key

TEST_PSEUDONYM_KEY = b"test-pseudonymisation-key"
UNIT_A = "SE2321000016-VCA1"
UNIT_B = "SE2321000016-VCB2"
DOCTOR_1 = "SE2321000016-L001"
NURSE_1 = "SE2321000016-S001"


def a_patient_key(serial: int = 1) -> str:
    """A realistic pseudonymous key derived from a synthetic personnummer-like id."""
    return patient_key(PersonId("personnummer", f"19500101{serial:04d}"), TEST_PSEUDONYM_KEY)


def a_visit(**overrides: object) -> dict:
    data = {
        "visit_id": f"v-{uuid.uuid4().hex[:12]}",
        "patient_key": a_patient_key(),
        "practitioner_id": DOCTOR_1,
        "profession": "läkare",
        "care_unit_id": UNIT_A,
        "contact_type": "besok",
        "occurred_at": datetime(2026, 3, 1, 9, 30, tzinfo=timezone.utc).isoformat().replace("+00:00", "Z"),
    }
    data.update(overrides)
    return data
