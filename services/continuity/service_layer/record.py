"""What the worker keeps per patient: the domain state plus what the stream needs around it.

``PatientRecord`` = the pure :class:`PatientState` (visits in the window, listing unit, FLKs)
+ the coordinating FLK (the doctor the patient counts for in doctor aggregates)
+ SÄBO residence periods (from ``residence.recorded.v1``)
+ a fingerprint of the last *emitted* indices (so ``indices_changed`` is sent only on change).

Encoded compactly (header + ``encode_state``); bounded by the window like the state itself.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import date

from services.continuity.domain.codec import decode_state, encode_state
from services.continuity.domain.patient import EMPTY_STATE, PatientState

RECORD_VERSION = 1
_HEAD = struct.Struct("<BQBB")  # version, fingerprint, residences, coordinating length
_RES = struct.Struct("<QII")  # residence id digest, from ordinal, to ordinal (0 = open)


@dataclass(frozen=True, slots=True)
class PatientRecord:
    state: PatientState = EMPTY_STATE
    coordinating: str | None = None
    residences: tuple[tuple[int, int, int], ...] = ()
    fingerprint: int = 0  #: of the last emitted indices; 0 = nothing emitted yet

    def sabo_on(self, day: date) -> bool:
        """Whether the patient lives in SÄBO on ``day``."""
        n = day.toordinal()
        return any(lo <= n and (hi == 0 or n <= hi) for _, lo, hi in self.residences)

    def doctor_key(self) -> str | None:
        """The FLK the patient counts for: the coordinating one, else the first (sorted)."""
        if self.coordinating and self.coordinating in self.state.fast_lakarkontakt:
            return self.coordinating
        flk = self.state.fast_lakarkontakt
        return flk[0] if flk else None


EMPTY_RECORD = PatientRecord()


def encode_record(record: PatientRecord) -> bytes:
    coord = (record.coordinating or "").encode()
    if len(coord) > 255 or len(record.residences) > 255:
        raise ValueError("patient record out of the codec's range")
    parts = [_HEAD.pack(RECORD_VERSION, record.fingerprint, len(record.residences), len(coord)), coord]
    parts.extend(_RES.pack(*r) for r in record.residences)
    parts.append(encode_state(record.state))
    return b"".join(parts)


def decode_record(data: bytes) -> PatientRecord:
    try:
        version, fingerprint, nres, ncoord = _HEAD.unpack_from(data, 0)
    except struct.error as exc:
        raise ValueError(f"malformed patient record: {exc}") from exc
    if version != RECORD_VERSION:
        raise ValueError(f"unknown patient record version {version}")
    offset = _HEAD.size
    coord = data[offset:offset + ncoord].decode() or None
    offset += ncoord
    residences = tuple(_RES.unpack_from(data, offset + i * _RES.size) for i in range(nres))
    offset += nres * _RES.size
    return PatientRecord(decode_state(data[offset:]), coord, residences, fingerprint)
