"""Typed decoding that validates while it decodes (msgspec), for a hot path's usual input.

The JSON Schemas in ``schemas/events/`` stay the contract. For the event types a stream worker reads
by the hundred thousand, a msgspec ``Struct`` mirrors the schema (types, required fields, lengths,
patterns, enums, no unknown fields), so one pass over the bytes both decodes and checks them: about
a tenth of ``orjson.loads`` + the compiled JSON Schema check.

The typed decoder is a *filter*, never the judge: it only ever says "valid, here is the data" or
"not sure". Whatever it does not accept goes the reference way (orjson or the stdlib, then the JSON
Schema), which gives the result and the reason. So a message is accepted or refused exactly as the
schema says as long as everything the typed decoder accepts the schema accepts too, with the same
data — which a property test checks against events drawn from the schemas and garbled ones
(tests/unit/platform/test_typed_decoding.py). Formats the Struct cannot express (``date-time``) are
checked after decoding as the contracts check them.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from flk.events import formats


__all__ = ["typed_decode", "TYPED_EVENTS", "VisitRecorded", "RiskAssessed", "PersonRegistered", "ListingRequest",
           "ListingStarted", "FlkAssign", "FlkAssigned"]

# common.v1.json's $defs, as msgspec constraints
# (the patterns are checked after decoding, by flk.events.formats: msgspec's own pattern check calls the
# regex engine per field, which cost more than the rest of the decoding)
_PatientKey = str
_HsaId = Annotated[str, msgspec.Meta(max_length=44)]
_Profession = Annotated[str, msgspec.Meta(min_length=2, max_length=64)]
_ContactType = Literal["besok", "telefon", "digital", "hembesok"]
_DateTime = str

#: the format checks: flk.events.formats, or its compiled twin (flk.native) from the first typed decode on
_f: Any = formats

_Unset = msgspec.UnsetType
_UNSET = msgspec.UNSET
_Channel = Literal["1177", "ehr", "admin", "import"]
_InitiatedBy = Literal["person", "region"]
_ListKind = Literal["doctor", "fictive"]


class VisitRecorded(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """``visit.recorded.v1`` (schemas/events/visit.recorded.v1.json)."""

    visit_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    patient_key: _PatientKey
    practitioner_id: _HsaId
    profession: _Profession
    care_unit_id: _HsaId
    contact_type: _ContactType
    occurred_at: _DateTime
    source_system: Annotated[str, msgspec.Meta(max_length=32)] | msgspec.UnsetType = msgspec.UNSET

    def _checks_ok(self) -> bool:
        return (_f.patient_key_ok(self.patient_key) and _f.hsa_id_ok(self.practitioner_id)
                and _f.hsa_id_ok(self.care_unit_id) and _f.date_time_ok(self.occurred_at))


class RiskAssessed(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """``risk.assessed.v1``."""

    assessment_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    patient_key: _PatientKey
    rub: Annotated[int, msgspec.Meta(ge=0, le=5)]
    acg_version: Annotated[str, msgspec.Meta(min_length=1, max_length=32)]
    lookback_months: Annotated[int, msgspec.Meta(ge=1, le=36)]
    computed_at: _DateTime

    def _checks_ok(self) -> bool:
        return _f.patient_key_ok(self.patient_key) and _f.date_time_ok(self.computed_at)


class PersonRegistered(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """``person.registered.v1``."""

    patient_key: _PatientKey
    id_kind: Literal["personnummer", "samordningsnummer", "reservnummer"]
    birth_date: str
    region_code: str
    protected_identity: bool
    status: Literal["folkbokford", "deceased", "emigrated", "moved_out_of_region"]
    updated_at: _DateTime
    municipality_code: str | _Unset = _UNSET
    guardian_keys: Annotated[list[str], msgspec.Meta(max_length=2)] | _Unset = _UNSET
    status_date: str | _Unset = _UNSET

    def _checks_ok(self) -> bool:
        return (_f.patient_key_ok(self.patient_key) and _f.date_ok(self.birth_date)
                and _f.two_digits_ok(self.region_code) and _f.date_time_ok(self.updated_at)
                and (self.municipality_code is _UNSET or _f.four_digits_ok(self.municipality_code))
                and (self.guardian_keys is _UNSET or _f.patient_keys_ok(self.guardian_keys))
                and (self.status_date is _UNSET or _f.date_ok(self.status_date)))


class ListingRequest(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """``listing.request.v1`` (a command)."""

    command_id: str
    patient_key: _PatientKey
    care_unit_id: _HsaId
    requested_at: _DateTime
    channel: _Channel
    origin: Literal["active_choice", "no_choice_placement", "assigned"]
    initiated_by: _InitiatedBy
    requested_by: Annotated[str, msgspec.Meta(max_length=64)] | _Unset = _UNSET
    effective_date: str | _Unset = _UNSET
    exemption_reason: Literal["sarskilda_skal", "unit_closed", "moved"] | _Unset = _UNSET
    guardian_count: Annotated[int, msgspec.Meta(ge=0, le=4)] | _Unset = _UNSET
    consenting_guardian_keys: Annotated[list[str], msgspec.Meta(max_length=4)] | _Unset = _UNSET

    def _checks_ok(self) -> bool:
        return (_f.uuid_ok(self.command_id) and _f.patient_key_ok(self.patient_key) and _f.hsa_id_ok(self.care_unit_id)
                and _f.date_time_ok(self.requested_at)
                and (self.effective_date is _UNSET or _f.date_ok(self.effective_date))
                and (self.consenting_guardian_keys is _UNSET or _f.patient_keys_ok(self.consenting_guardian_keys)))


class ListingStarted(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """``listing.started.v1``."""

    listing_id: str
    patient_key: _PatientKey
    care_unit_id: _HsaId
    started_on: str
    responsibility_from: str
    origin: Literal["active_choice", "no_choice_placement", "assigned", "import"]
    initiated_by: _InitiatedBy
    channel: _Channel | _Unset = _UNSET
    previous_care_unit_id: _HsaId | None | _Unset = _UNSET
    command_id: str | _Unset = _UNSET

    def _checks_ok(self) -> bool:
        return (_f.uuid_ok(self.listing_id) and _f.patient_key_ok(self.patient_key) and _f.hsa_id_ok(self.care_unit_id)
                and _f.date_ok(self.started_on) and _f.date_ok(self.responsibility_from)
                and (self.previous_care_unit_id is _UNSET or self.previous_care_unit_id is None
                     or _f.hsa_id_ok(self.previous_care_unit_id))
                and (self.command_id is _UNSET or _f.uuid_ok(self.command_id)))


class FlkAssign(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """``fast_lakarkontakt.assign.v1`` (a command)."""

    command_id: str
    patient_key: _PatientKey
    care_unit_id: _HsaId
    requested_at: _DateTime
    channel: _Channel
    requested_by: Annotated[str, msgspec.Meta(max_length=64)] | _Unset = _UNSET
    practitioner_id: _HsaId | _Unset = _UNSET
    list_id: Annotated[str, msgspec.Meta(max_length=64)] | _Unset = _UNSET
    coordinating: bool | _Unset = _UNSET
    effective_date: str | _Unset = _UNSET

    def _checks_ok(self) -> bool:
        return (_f.uuid_ok(self.command_id) and _f.patient_key_ok(self.patient_key) and _f.hsa_id_ok(self.care_unit_id)
                and _f.date_time_ok(self.requested_at)
                and (self.practitioner_id is _UNSET or _f.hsa_id_ok(self.practitioner_id))
                and (self.effective_date is _UNSET or _f.date_ok(self.effective_date)))


class FlkAssigned(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """``fast_lakarkontakt.assigned.v1``."""

    assignment_id: str
    patient_key: _PatientKey
    care_unit_id: _HsaId
    list_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    list_kind: _ListKind
    practitioner_id: _HsaId | None
    coordinating: bool
    assigned_on: str
    command_id: str | _Unset = _UNSET

    def _checks_ok(self) -> bool:
        return (_f.uuid_ok(self.assignment_id) and _f.patient_key_ok(self.patient_key) and _f.hsa_id_ok(self.care_unit_id)
                and (self.practitioner_id is None or _f.hsa_id_ok(self.practitioner_id))
                and _f.date_ok(self.assigned_on) and (self.command_id is _UNSET or _f.uuid_ok(self.command_id)))


#: event type -> its Struct (the types read or made by the hundred thousand in a region's replay; any other
#: type: the reference way). Each mirrors its schema in schemas/events/ field by field.
TYPED_EVENTS: dict[str, type[msgspec.Struct]] = {
    "visit.recorded.v1": VisitRecorded,
    "risk.assessed.v1": RiskAssessed,
    "person.registered.v1": PersonRegistered,
    "listing.request.v1": ListingRequest,
    "listing.started.v1": ListingStarted,
    "fast_lakarkontakt.assign.v1": FlkAssign,
    "fast_lakarkontakt.assigned.v1": FlkAssigned,
}
_DECODERS = {t: msgspec.json.Decoder(s) for t, s in TYPED_EVENTS.items()}
_to_builtins = msgspec.to_builtins


def typed_decode(event_type: str, value: bytes) -> dict[str, Any] | None:
    """The event's data as the reference decodes it (a dict), if the typed decoder is sure it is valid;
    None: not sure (not a typed type, or the Struct refused it) — decode and validate the reference way."""
    decoder = _DECODERS.get(event_type)
    if decoder is None:
        return None
    if not _formats_chosen:
        _choose_formats()
    try:
        event = decoder.decode(value)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None
    if not event._checks_ok():
        return None
    return _to_builtins(event)


_formats_chosen = False


def _choose_formats() -> None:
    """The format checks from the compiled twin where one is built from the current source (choosing
    reads the module's source: at the first decode, not at import)."""
    global _f, _formats_chosen
    from flk.native import twin

    _f = twin(formats).module
    _formats_chosen = True
