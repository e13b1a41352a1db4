"""Compact, lossless binary codec for :class:`PatientState`.

Layout (little-endian, version 1)::

    header      B version, H strings, H visits, H tombstones,
                H listing unit (string index, 0xFFFF = not listed), B FLKs
    FLKs        H string index each
    strings     B byte length + UTF-8, each    (per-patient intern table:
                                                practitioner and unit ids)
    visits      Q digest, Q seq, Q packed each
                packed = stamp << 26 | counts_for << 24 | practitioner << 12 | unit
    tombstones  Q digest, I day ordinal each

A typical patient (8 visits, 3 practitioners, 1 unit, 1 FLK, 1 tombstone,
HSA-ids of 17 characters) takes 288 bytes.  Limits: 4 096 distinct ids per
patient, ids of at most 255 UTF-8 bytes, 65 535 visits.
"""
from __future__ import annotations

import struct

from services.continuity.domain.patient import PatientState, StoredVisit, Tombstone

__all__ = ["encode_state", "decode_state", "CODEC_VERSION"]

CODEC_VERSION = 1
_HEADER = struct.Struct("<BHHHHB")
_NO_UNIT = 0xFFFF
_INDEX_LIMIT = 1 << 12
_STAMP_LIMIT = 1 << 38
_new_tuple = tuple.__new__


def encode_state(state: PatientState) -> bytes:
    """The state as compact bytes; ``decode_state`` restores an equal state."""
    table: dict[str, int] = {}
    setdefault = table.setdefault
    unit = state.listing_unit_id
    unit_index = _NO_UNIT if unit is None else setdefault(unit, 0)
    flk_indices = [setdefault(f, len(table)) for f in state.fast_lakarkontakt]
    flat: list[int] = []
    append = flat.append
    for stamp, seq, digest, practitioner, care_unit, counts_for in state.visits:
        p = setdefault(practitioner, len(table))
        u = setdefault(care_unit, len(table))
        append(digest)
        append(seq)
        append(stamp << 26 | counts_for << 24 | p << 12 | u)
    if len(table) > _INDEX_LIMIT:
        raise ValueError(f"too many distinct ids for one patient: {len(table)} > {_INDEX_LIMIT}")
    if state.visits and (state.visits[-1][0] >= _STAMP_LIMIT or state.visits[0][0] < 0):
        raise ValueError("visit time out of the codec's range")
    strings = bytearray()
    for s in table:
        raw = s.encode()
        if len(raw) > 255:
            raise ValueError(f"id longer than 255 bytes: {s[:40]!r}...")
        strings.append(len(raw))
        strings += raw
    tombstones = state.tombstones
    nflk = len(flk_indices)
    nv = len(state.visits)
    nt = len(tombstones)
    tomb_flat = [x for t in tombstones for x in t]
    try:
        return b"".join(
            (
                _HEADER.pack(CODEC_VERSION, len(table), nv, nt, unit_index, nflk),
                struct.pack(f"<{nflk}H", *flk_indices),
                strings,
                struct.pack(f"<{3 * nv}Q", *flat),
                struct.pack("<" + "QI" * nt, *tomb_flat),
            )
        )
    except struct.error as exc:  # e.g. a negative or > 64-bit seq, > 65 535 visits
        raise ValueError(f"state out of the codec's range: {exc}") from exc


def decode_state(data: bytes) -> PatientState:
    """The state encoded by :func:`encode_state`; ``ValueError`` if malformed."""
    try:
        version, ns, nv, nt, unit_index, nflk = _HEADER.unpack_from(data, 0)
        if version != CODEC_VERSION:
            raise ValueError(f"unknown continuity state codec version {version}")
        offset = _HEADER.size
        flk_indices = struct.unpack_from(f"<{nflk}H", data, offset)
        offset += 2 * nflk
        strings: list[str] = []
        for _ in range(ns):
            length = data[offset]
            end = offset + 1 + length
            if end > len(data):
                raise ValueError("truncated id table")
            strings.append(data[offset + 1 : end].decode())
            offset = end
        flat = struct.unpack_from(f"<{3 * nv}Q", data, offset)
        offset += 24 * nv
        tomb_flat = struct.unpack_from("<" + "QI" * nt, data, offset)
        offset += 12 * nt
        if offset != len(data):
            raise ValueError(f"{len(data) - offset} trailing bytes")
        visits = tuple(
            _new_tuple(  # = StoredVisit(...) without its Python-level __new__ (on the hot path)
                StoredVisit,
                (
                    packed >> 26,
                    seq,
                    digest,
                    strings[packed >> 12 & 0xFFF],
                    strings[packed & 0xFFF],
                    packed >> 24 & 3,
                ),
            )
            for digest, seq, packed in zip(flat[0::3], flat[1::3], flat[2::3])
        )
        tombstones = tuple(Tombstone(d, day) for d, day in zip(tomb_flat[0::2], tomb_flat[1::2]))
        return PatientState(
            None if unit_index == _NO_UNIT else strings[unit_index],
            tuple(strings[i] for i in flk_indices),
            visits,
            tombstones,
        )
    except (struct.error, IndexError, UnicodeDecodeError) as exc:
        raise ValueError(f"malformed continuity state: {exc}") from exc
