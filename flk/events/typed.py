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

import re
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec


__all__ = ["typed_decode", "TYPED_EVENTS", "VisitRecorded"]

# common.v1.json's $defs, as msgspec constraints
# (the patterns are checked after decoding, through caches of the ids already seen: msgspec's own pattern
# check calls the regex engine per field, which cost more than the rest of the decoding)
_PatientKey = str
_HsaId = Annotated[str, msgspec.Meta(max_length=44)]
_Profession = Annotated[str, msgspec.Meta(min_length=2, max_length=64)]
_ContactType = Literal["besok", "telefon", "digital", "hembesok"]
_DateTime = str
_PATIENT_KEY = re.compile("pk1_[a-z2-7]{26}").fullmatch
_HSA_ID = re.compile("SE[0-9]{10}-[0-9A-Za-z]{1,31}").fullmatch
_DATE_TIME = re.compile("[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\\.[0-9]+)?(?:Z|[+-][0-9]{2}:[0-9]{2})").fullmatch
_fromisoformat = datetime.fromisoformat


class _Seen:
    """Strings already found to match a pattern (bounded: forgotten all at once when full)."""

    __slots__ = ("match", "seen", "limit")

    def __init__(self, match, limit: int = 200_000) -> None:
        self.match, self.seen, self.limit = match, set(), limit

    def __call__(self, text: str) -> bool:
        seen = self.seen
        if text in seen:
            return True
        if self.match(text) is None:
            return False
        if len(seen) >= self.limit:
            seen.clear()
        seen.add(text)
        return True


_patient_key_ok = _Seen(_PATIENT_KEY)
_hsa_id_ok = _Seen(_HSA_ID, 50_000)


def _date_time_ok(text: str) -> bool:
    """The schema's date_time pattern (stricter: no trailing newline) and the contracts' date-time format."""
    if _DATE_TIME(text) is None:
        return False
    try:
        return _fromisoformat(text).tzinfo is not None
    except ValueError:
        return False


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
        return (_patient_key_ok(self.patient_key) and _hsa_id_ok(self.practitioner_id)
                and _hsa_id_ok(self.care_unit_id) and _date_time_ok(self.occurred_at))


#: event type -> its Struct (the types a hot path reads typed; any other type: the reference way)
TYPED_EVENTS: dict[str, type[msgspec.Struct]] = {"visit.recorded.v1": VisitRecorded}
_DECODERS = {t: msgspec.json.Decoder(s) for t, s in TYPED_EVENTS.items()}
_to_builtins = msgspec.to_builtins


def typed_decode(event_type: str, value: bytes) -> dict[str, Any] | None:
    """The event's data as the reference decodes it (a dict), if the typed decoder is sure it is valid;
    None: not sure (not a typed type, or the Struct refused it) — decode and validate the reference way."""
    decoder = _DECODERS.get(event_type)
    if decoder is None:
        return None
    try:
        event = decoder.decode(value)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None
    if not event._checks_ok():
        return None
    return _to_builtins(event)
