"""The unit worklist (pure): which patients with open care gaps a user sees, how each is
identified, which doctors have room, and the listing command an assignment sends.

Patient-level and shown only behind login (never in an email, a URL, a log line or a metric
label). Re-identification (personnummer) is for staff of the listing unit only; a protected
identity (skyddad folkbokföring, P2) and everyone else see the pseudonymous patient key.
"""
from __future__ import annotations

import hmac
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from flk.security.access import UNIT_STAFF
from flk.security.pseudonym import PersonId
from flk.security.tokens import Principal
from services.notifier.domain.care_gaps import GapCause, GapKind
from services.notifier.domain.messages import CAUSE_TEXT, KIND_TEXT, rub_text

#: namespace of the command ids the worklist derives (a double-submitted form gives the same id)
WORKLIST_COMMAND_NAMESPACE = uuid.UUID("6f0c2f3e-3d7b-5b7e-9a51-8d2c1f0b7a11")


@dataclass(frozen=True)
class OpenGap:
    """An open care gap at the unit, patient level (only the worklist reads these)."""

    gap_id: uuid.UUID
    patient_key: str
    unit_id: str
    cause: GapCause
    rub: int | None
    sabo: bool
    opened_at: datetime
    kind: GapKind = GapKind.FAST_LAKARKONTAKT

    def __repr__(self) -> str:  # never print the patient key
        return f"OpenGap(gap_id={self.gap_id}, unit_id={self.unit_id!r}, kind={self.kind.value}, cause={self.cause.value})"

    @property
    def assignable(self) -> bool:
        """Closed by assigning an FLK from the worklist (a fast vårdkontakt is appointed by the
        verksamhetschef, V1, not from this page)."""
        return self.kind is GapKind.FAST_LAKARKONTAKT


IdentityKind = Literal["personnummer", "samordningsnummer", "reservnummer", "pseudonym"]


@dataclass(frozen=True)
class ShownIdentity:
    """How a patient is identified on the page."""

    text: str
    kind: IdentityKind
    note: str | None = None  # e.g. why only the pseudonymous key is shown
    name: str | None = None  # the person's name, when the vault has it (never for a protected identity)

    def __repr__(self) -> str:  # never print a person id or name
        return f"ShownIdentity(kind={self.kind!r})"


@dataclass(frozen=True)
class WorklistRow:
    gap_id: uuid.UUID
    identity: ShownIdentity
    cause: GapCause
    cause_text: str
    rub: int | None
    rub_text: str
    sabo: bool
    opened_on: str  # local date, YYYY-MM-DD
    days_open: int
    kind: GapKind = GapKind.FAST_LAKARKONTAKT
    kind_text: str = KIND_TEXT[GapKind.FAST_LAKARKONTAKT]

    @property
    def assignable(self) -> bool:
        return self.kind is GapKind.FAST_LAKARKONTAKT


@dataclass(frozen=True)
class DoctorList:
    """A list at the unit, as the listing API describes it."""

    list_id: str
    kind: str  # "doctor" | "fictive"
    practitioner_id: str | None
    display_name: str
    size: int
    capacity: int
    free_capacity: int
    active: bool = True  # the doctor's role at the unit is active today


def may_reidentify(principal: Principal, unit_id: str) -> bool:
    """Only the listing unit's own staff see who their patients are (region roles see keys)."""
    return principal.role in UNIT_STAFF and unit_id in principal.units


def format_person_id(person: PersonId) -> str:
    """``YYYYMMDD-NNNN`` for personnummer and samordningsnummer; a reservnummer as registered."""
    if person.kind in ("personnummer", "samordningsnummer") and len(person.value) == 12:
        return f"{person.value[:8]}-{person.value[8:]}"
    return person.value


#: the vault's answer for a patient: (person id, protected identity) or (person id, protected, name or None)
VaultEntry = tuple[PersonId, bool] | tuple[PersonId, bool, str | None]


def shown_identity(patient_key: str, vault_entry: VaultEntry | None, reidentify: bool) -> ShownIdentity:
    """The name and personnummer when the viewer may re-identify and the identity is not protected;
    otherwise the pseudonymous key, with the reason (never a protected identity's name)."""
    if not reidentify:
        return ShownIdentity(patient_key, "pseudonym", "Pseudonym – endast enhetens personal ser personnummer")
    if vault_entry is None:
        return ShownIdentity(patient_key, "pseudonym", "Identitet saknas i identitetsregistret")
    person, protected, *rest = vault_entry
    if protected:
        return ShownIdentity(patient_key, "pseudonym", "Skyddad identitet – endast pseudonym visas")
    return ShownIdentity(format_person_id(person), person.kind, name=(rest[0] if rest else None) or None)


def days_open(opened_at: datetime, now: datetime) -> int:
    return max(0, (now - opened_at) // timedelta(days=1))


def worklist_rows(
    gaps: Iterable[OpenGap],
    identities: Mapping[str, VaultEntry],
    reidentify: bool,
    now: datetime,
    tz: ZoneInfo,
) -> list[WorklistRow]:
    """Rows, the longest-waiting first."""
    rows = []
    for gap in sorted(gaps, key=lambda g: (g.opened_at, str(g.gap_id))):
        rows.append(WorklistRow(
            gap_id=gap.gap_id,
            identity=shown_identity(gap.patient_key, identities.get(gap.patient_key), reidentify),
            cause=gap.cause,
            cause_text=CAUSE_TEXT.get(gap.cause, gap.cause.value),
            rub=gap.rub,
            rub_text=rub_text(gap.rub),
            sabo=gap.sabo,
            opened_on=gap.opened_at.astimezone(tz).date().isoformat(),
            days_open=days_open(gap.opened_at, now),
            kind=gap.kind,
            kind_text=KIND_TEXT[gap.kind],
        ))
    return rows


def doctors_with_free_capacity(lists: Iterable[DoctorList]) -> list[DoctorList]:
    """Named doctors' lists with room, the most room first (fictive lists are not an FLK)."""
    doctors = [d for d in lists if d.kind == "doctor" and d.practitioner_id and d.active and d.free_capacity > 0]
    return sorted(doctors, key=lambda d: (-d.free_capacity, d.display_name, d.list_id))


def assignment_command_id(form_nonce: str, gap_id: uuid.UUID, list_id: str) -> str:
    """The same rendered form submitted twice is the same command (the listing API is idempotent
    on command_id); a fresh page gives a fresh id."""
    return str(uuid.uuid5(WORKLIST_COMMAND_NAMESPACE, f"{form_nonce}|{gap_id}|{list_id}"))


def assign_command(gap: OpenGap, doctor: DoctorList, requested_by: str, form_nonce: str, now: datetime,
                   tz: ZoneInfo) -> dict:
    """The body of ``POST /commands/fast_lakarkontakt.assign.v1`` (the contract's data)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return {
        "command_id": assignment_command_id(form_nonce, gap.gap_id, doctor.list_id),
        "patient_key": gap.patient_key,
        "care_unit_id": gap.unit_id,
        "requested_at": now.astimezone(ZoneInfo("UTC")).isoformat().replace("+00:00", "Z"),
        "channel": "admin",
        "requested_by": requested_by[:64],
        "practitioner_id": doctor.practitioner_id,
        "list_id": doctor.list_id,
        "coordinating": True,
        "effective_date": now.astimezone(tz).date().isoformat(),
    }


def csrf_matches(cookie_value: str | None, form_value: str | None) -> bool:
    """Double-submit check: the form's token equals the cookie's (constant time)."""
    if not cookie_value or not form_value:
        return False
    return hmac.compare_digest(cookie_value.encode(), form_value.encode())


def safe_next_path(candidate: str | None, default: str) -> str:
    """Where to go after login: a path on this site only (no open redirect)."""
    if not candidate or not candidate.startswith("/") or candidate.startswith("//") or "\\" in candidate:
        return default
    return candidate
