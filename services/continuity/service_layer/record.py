"""What the worker keeps per patient: the domain state plus what the stream needs around it.

``PatientRecord`` = the pure :class:`PatientState` (visits in the window, listing unit, FLKs)
+ the coordinating FLK (the doctor the patient counts for in doctor aggregates)
+ SÄBO residence periods (from ``residence.recorded.v1``) with their G3/G4 qualifier: whether the
  resident gets their main health care in the residence (``MAIN_CARE_*``)
+ the current RUB band (from ``risk.assessed.v1``: the latest assessment's band and when it was computed)
+ a fingerprint of the last *emitted* indices (so ``indices_changed`` is sent only on change).

Encoded compactly (header + ``encode_state``); bounded by the window like the state itself. Version 1
records (written before the RUB band was kept) still decode, as records without a band; version 1 and 2
records (written before the qualifier was kept) decode with every residence's qualifier not recorded.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import date

from services.continuity.adapters.state_codec import decode_state, encode_state
from services.continuity.domain.patient import EMPTY_STATE, PatientState

RECORD_VERSION = 3
_HEAD_V1 = struct.Struct("<BQBB")  # version, fingerprint, residences, coordinating length
_HEAD = struct.Struct("<BQBBBq")  # ... + RUB band (0xFF = none), its assessment's time (µs since the epoch)
_RES_V2 = struct.Struct("<QII")  # residence id digest, from ordinal, to ordinal (0 = open)
_RES = struct.Struct("<QIIB")  # ... + main care in the residence (MAIN_CARE_*)
#: a residence's qualifier ("får sin huvudsakliga hälso- och sjukvård i boendet", seed 001)
MAIN_CARE_NOT_RECORDED, MAIN_CARE_HERE, MAIN_CARE_ELSEWHERE = 0, 1, 2
_NO_RUB = 0xFF
#: the RUB bands of the ``rub45`` cohort (chronic and complex patients)
RUB45_BANDS = (4, 5)


@dataclass(frozen=True, slots=True)
class PatientRecord:
    state: PatientState = EMPTY_STATE
    coordinating: str | None = None
    residences: tuple[tuple[int, int, int, int], ...] = ()  #: (id digest, from, to or 0, MAIN_CARE_*)
    fingerprint: int = 0  #: of the last emitted indices; 0 = nothing emitted yet
    rub: int | None = None  #: the band of the latest risk assessment held; None = never assessed
    rub_assessed_at: int = 0  #: when that assessment was computed (µs since the epoch, UTC)

    def sabo_on(self, day: date) -> bool:
        """Whether the patient lives in SÄBO on ``day``."""
        n = day.toordinal()
        return any(lo <= n and (hi == 0 or n <= hi) for _, lo, hi, _main in self.residences)

    def sabo_cohort_on(self, day: date) -> bool:
        """Whether the patient is in the 'sabo' cohort (G4) on ``day``: lives in SÄBO and gets their main
        health care there, or that was not recorded — the population G3 counts (a resident recorded as
        getting it elsewhere is not in it)."""
        n = day.toordinal()
        return any(lo <= n and (hi == 0 or n <= hi) and main != MAIN_CARE_ELSEWHERE
                   for _, lo, hi, main in self.residences)

    def rub45(self) -> bool:
        """Whether the patient's current RUB band is 4 or 5 (cohort ``rub45``)."""
        return self.rub in RUB45_BANDS

    def doctor_key(self) -> str | None:
        """The FLK the patient counts for: the coordinating one, else the first (sorted)."""
        if self.coordinating and self.coordinating in self.state.fast_lakarkontakt:
            return self.coordinating
        flk = self.state.fast_lakarkontakt
        return flk[0] if flk else None


EMPTY_RECORD = PatientRecord()


def is_empty_record(value: bytes) -> bool:
    """Whether an encoded record holds nothing but the fingerprint of what was last published: no
    visit or cancellation in the window, no listing, FLK, residence or RUB band. Such a patient's
    record is deleted (a tombstone in the table's changelog, docs/adr/0008); the last event published
    for them says so (no unit, no visits). A cheap byte comparison (every batch's writes are checked)."""
    return value[:1] == _VERSION_BYTE and value[9:] == _EMPTY_TAIL


def encode_record(record: PatientRecord) -> bytes:
    coord = (record.coordinating or "").encode()
    if len(coord) > 255 or len(record.residences) > 255 or (record.rub is not None and not 0 <= record.rub <= 5):
        raise ValueError("patient record out of the codec's range")
    rub = _NO_RUB if record.rub is None else record.rub
    parts = [_HEAD.pack(RECORD_VERSION, record.fingerprint, len(record.residences), len(coord), rub,
                        record.rub_assessed_at), coord]
    parts.extend(_RES.pack(*r) for r in record.residences)
    parts.append(encode_state(record.state))
    return b"".join(parts)


def decode_record(data: bytes) -> PatientRecord:
    try:
        version = data[0]
        if version == RECORD_VERSION:
            _, fingerprint, nres, ncoord, rub, assessed_at = _HEAD.unpack_from(data, 0)
            offset = _HEAD.size
        elif version == 2:  # before the residences' qualifier was kept
            _, fingerprint, nres, ncoord, rub, assessed_at = _HEAD.unpack_from(data, 0)
            offset = _HEAD.size
        elif version == 1:  # before the RUB band was kept: no band
            _, fingerprint, nres, ncoord = _HEAD_V1.unpack_from(data, 0)
            rub, assessed_at, offset = _NO_RUB, 0, _HEAD_V1.size
        else:
            raise ValueError(f"unknown patient record version {version}")
    except (struct.error, IndexError) as exc:
        raise ValueError(f"malformed patient record: {exc}") from exc
    coord = data[offset:offset + ncoord].decode() or None
    offset += ncoord
    if version == RECORD_VERSION:
        residences = tuple(_RES.unpack_from(data, offset + i * _RES.size) for i in range(nres))
        offset += nres * _RES.size
    else:  # the qualifier was not kept: not recorded
        residences = tuple((*_RES_V2.unpack_from(data, offset + i * _RES_V2.size), MAIN_CARE_NOT_RECORDED)
                           for i in range(nres))
        offset += nres * _RES_V2.size
    return PatientRecord(decode_state(data[offset:]), coord, residences, fingerprint,
                         None if rub == _NO_RUB else rub, assessed_at)


_VERSION_BYTE = bytes([RECORD_VERSION])
_EMPTY_TAIL = encode_record(EMPTY_RECORD)[9:]  # after the version byte and the 8-byte fingerprint
