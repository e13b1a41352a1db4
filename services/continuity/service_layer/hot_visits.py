"""The hot path for a patient's visits: applied to the encoded record without decoding it into objects.

The worker's usual batch gives each patient a visit or two (``visit.recorded.v1``). The reference way
decodes the record into a :class:`PatientRecord` (a tuple per visit, interned ids as strings), applies
:func:`~services.continuity.domain.patient.record_visit`, computes the indices from the strings and
encodes it all again — most of a worker's time went there. This module does the same on the
record's bytes as they are: the header, the coordinating FLK and the SÄBO periods are copied as bytes;
the visits stay ``(digest, seq, packed)`` integers; the indices are computed over the per-patient id
*numbers* (one number per distinct id, so the counts — and every index — are the same as over the ids:
:func:`_index_set_of_numbers` is :func:`~services.continuity.domain.indices.index_set` typed for the
compiled twin, tested equal to it); the id table is rebuilt in
the order ``encode_state`` builds it, so the bytes written are the reference's bytes. The usual batch — visits
alone, each in a second of its own, nothing left the window — does not even read the stored visits into
objects (``_visits_in_place``): only their packed fields, a new visit's digest looked up in the bytes, the
new visits spliced among the stored ones' bytes (``_spliced``).

It handles what it can decide exactly and says "not mine" (``None``) otherwise: another record or codec
version, a limit of the codec, a malformed record, any value a handler would fail on. The caller then
takes the reference way for that patient. The reference (``record_visit``, ``compute_indices``, the
codec) stays the definition: a property test runs both over generated histories and compares every
byte written, every event and every aggregate input (tests/unit/continuity/test_continuity_hot_path.py).
"""
from __future__ import annotations

import re
import struct
from bisect import bisect_right
from datetime import date
from typing import Any, Mapping, NamedTuple, Sequence

from services.continuity.adapters.state_codec import CODEC_VERSION, _HEADER as _STATE_HEAD
from services.continuity.domain.indices import IndexSet
from services.continuity.domain.patient import (
    COUNTS_FOR_DOCTOR, COUNTS_FOR_TOTAL, SECONDS_PER_DAY, PatientIndices, _bounds, counts_for, visit_digest,
    visit_stamp,
)
from services.continuity.domain.settings import ContinuitySettings, Scope, normalise_code

from .handlers import _EPOCH, _MICROSECOND, parse_time
from .record import _HEAD, _RES, EMPTY_RECORD, MAIN_CARE_ELSEWHERE, RECORD_VERSION, RUB45_BANDS, encode_record

#: the facts applied on the bytes too, beside the visits (any other event: the reference way); their
#: effects commute with the visits' (a listing unit, the FLKs and their coordinator, the RUB band)
LISTING_STARTED, FLK_ASSIGNED, RISK_ASSESSED = "listing.started.v1", "fast_lakarkontakt.assigned.v1", "risk.assessed.v1"
HOT_FACTS = frozenset((LISTING_STARTED, FLK_ASSIGNED, RISK_ASSESSED))
_NO_UNIT = 0xFFFF
_NO_RUB = 0xFF
_INDEX_LIMIT = 1 << 12
_STAMP_LIMIT = 1 << 38
_U64 = 1 << 64
_EMPTY = encode_record(EMPTY_RECORD)
_HEAD_SIZE = _HEAD.size
_STATE_HEAD_SIZE = _STATE_HEAD.size
_RES_SIZE = _RES.size
#: a UTC time with seconds: (its hour), its minutes, its seconds (the hour's validity: `_stamp` parses it)
_UTC_TIME = re.compile(r"([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}):([0-5][0-9]):([0-5][0-9])(?:\.[0-9]{1,6})?Z")
_HOURS_KEPT = 100_000  # about 11 years of hours
#: ``_made(IndexSet, (fields…))`` is ``IndexSet(fields…)`` without the Python-level ``__new__`` namedtuple
#: writes for each named tuple: half a construction's cost, four of them a patient
_made: Any = tuple.__new__


def _index_set_of_numbers(ids: list[int], flk: Sequence[int], min_visits: int, size: int) -> IndexSet:
    """:func:`~services.continuity.domain.indices.index_set` over id numbers below ``size`` (the table's),
    typed for the compiled twin: the counts in a list, not a dict. The same integer counts, so the same
    floating-point results (tested equal to ``index_set`` over generated sequences)."""
    n = len(ids)
    if n == 0:
        return _made(IndexSet, (0, None, None, None, None, None, None, min_visits <= 0))
    counts = [0] * size
    same = 0
    previous = -1
    for p in ids:
        counts[p] += 1
        if p == previous:
            same += 1
        previous = p
    sum_sq = 0
    top = 0
    m = 0
    for c in counts:
        if c:
            sum_sq += c * c
            m += 1
            if c > top:
                top = c
    k: float | None = None
    if flk:
        with_flk = 0
        for f in set(flk):
            with_flk += counts[f]
        k = with_flk / n
    c_o_c: float | None = None
    s: float | None = None
    if n >= 2:
        c_o_c = (sum_sq - n) / (n * (n - 1))
        s = same / (n - 1)
    return _made(IndexSet, (n, c_o_c, top / n, s, sum_sq / (n * n), (1 - m / (n + 0.1)) / (1 - 1 / (n + 0.1)), k,
                            n >= min_visits))


def _order(stored: tuple[int, int, int]) -> tuple[int, int, int]:
    """A stored ``(digest, seq, packed)`` visit's place: (stamp, seq, digest), the reference's order."""
    return stored[2] >> 26, stored[1], stored[0]


_LOW_NIBBLE = bytes(b & 0x0F for b in range(256))


def _ids_in_table(raw: bytes, start: int, nv: int, ns: int, packs: tuple[int, ...]) -> bool:
    """Whether every stored visit's practitioner and unit numbers are below ``ns`` (the id table's size).
    For a table of at most 16 ids (the usual patient) on the packed fields' first three bytes as byte
    columns, in C: the unit's number is byte 0 plus byte 1's low nibble, the practitioner's byte 1's high
    nibble plus byte 2."""
    if ns <= 16:
        end = start + 24 * nv
        b0, b1, b2 = raw[start + 16:end:24], raw[start + 17:end:24], raw[start + 18:end:24]
        return (max(b0) < ns and max(b1) < ns << 4 and max(b2) == 0
                and b1.translate(_LOW_NIBBLE).count(0) == nv)
    return not any(x >> 12 & 0xFFF >= ns or x & 0xFFF >= ns for x in packs)


_VISIT = struct.Struct("<QQQ")  # a stored visit: digest, seq, packed
_PACKS_CACHED = 256
_packs_structs: dict[int, struct.Struct] = {}


def _packs_of(raw: bytes, start: int, nv: int) -> tuple[int, ...]:
    """The ``nv`` stored visits' packed fields (the third of each visit's three numbers), without reading the
    digests and sequence numbers into objects."""
    if nv > _PACKS_CACHED:
        return struct.unpack_from(f"<{3 * nv}Q", raw, start)[2::3]
    layout = _packs_structs.get(nv)
    if layout is None:
        layout = _packs_structs[nv] = struct.Struct("<" + "16xQ" * nv)
    return layout.unpack_from(raw, start)


def _has_digest(raw: bytes, digest: int, start: int, count: int, stride: int) -> bool:
    """Whether one of the ``count`` entries of ``stride`` bytes from ``start`` (stored visits: 24, tombstones:
    12) begins with ``digest`` (little-endian, as written): a search in the bytes, not a set of numbers."""
    needle = digest.to_bytes(8, "little")
    end = start + stride * count
    at = raw.find(needle, start, end)
    while at >= 0:
        if (at - start) % stride == 0:
            return True
        at = raw.find(needle, at + 1, end)
    return False


def _first_at_or_after(packs: Sequence[int], stamp: int) -> int:
    """The first stored visit (in stamp order) whose stamp is ``stamp`` or later: where a visit at ``stamp``
    goes when no stored visit has its stamp."""
    lo, hi = 0, len(packs)
    while lo < hi:
        mid = (lo + hi) >> 1
        if packs[mid] >> 26 < stamp:
            lo = mid + 1
        else:
            hi = mid
    return lo


def _number(table: dict[bytes, int], ids: list[bytes], name: bytes) -> int:
    """``name``'s number in the patient's id table (``table``: id -> number, ``ids``: by number), a new one
    at the end for an id not in it yet."""
    number = table.get(name)
    if number is None:
        number = table[name] = len(ids)
        ids.append(name)
    return number


class HotResult(NamedTuple):
    value: bytes | None  #: the record to write; None = unchanged
    unit: str | None
    indices: PatientIndices
    fingerprint: int
    emit: bool  #: the indices (or unit) differ from the last emitted ones
    doctor_key: str | None
    sabo_cohort: bool
    rub45: bool


class HotVisits:
    """Applies ``visit.recorded.v1`` events to encoded records (one instance per settings)."""

    def __init__(self, settings: ContinuitySettings) -> None:
        self.settings = settings
        self._flags: dict[str, int] = {}
        self._contact: dict[str, bool] = {}
        self._hours: dict[str, int] = {}  # "YYYY-MM-DDTHH" (UTC) -> its first second's stamp (`_stamp`)
        self._listing_scope = settings.scope is Scope.LISTING_UNIT

    def _counts(self, profession: str) -> int:
        flags = self._flags.get(profession)
        if flags is None:
            flags = self._flags[profession] = counts_for(profession, self.settings)
        return flags

    def _stamp(self, text: str) -> int:
        """``visit_stamp(parse_time(text))``. A UTC time (``…Z``, the usual form) is its UTC hour's stamp,
        kept once per hour, plus its minutes and seconds: the local zone's offset is the same all hour
        (checked for each hour, at its first and last second; another hour takes the reference way).

        The usual form, ``YYYY-MM-DDTHH:MM:SSZ`` in an hour already kept, is read by slicing: a kept hour
        was matched by `_UTC_TIME` when it was kept, and the minutes and seconds are read from their digits
        where it would accept them ("00" … "59"; anything else: the regular expression decides)."""
        if len(text) == 20 and text[19] == "Z" and text[13] == ":" and text[16] == ":":
            start = self._hours.get(text[:13])
            if start is not None:
                m10, m1, s10, s1 = ord(text[14]) - 48, ord(text[15]) - 48, ord(text[17]) - 48, ord(text[18]) - 48
                if 0 <= m10 <= 5 and 0 <= m1 <= 9 and 0 <= s10 <= 5 and 0 <= s1 <= 9:
                    return start + (10 * m10 + m1) * 60 + 10 * s10 + s1
        match = _UTC_TIME.fullmatch(text)
        if match is None:
            return visit_stamp(parse_time(text))
        hour = match[1]
        start = self._hours.get(hour)
        if start is None:
            start = visit_stamp(parse_time(hour + ":00:00Z"))
            if visit_stamp(parse_time(hour + ":59:59Z")) - start != 3599:  # the zone's offset changes within it
                return visit_stamp(parse_time(text))
            if len(self._hours) >= _HOURS_KEPT:
                self._hours.clear()
            self._hours[hour] = start
        return start + int(match[2]) * 60 + int(match[3])

    def _contact_counts(self, contact_type: str) -> bool:
        ok = self._contact.get(contact_type)
        if ok is None:
            ok = self._contact[contact_type] = normalise_code(contact_type) in self.settings.contact_types
        return ok

    def _counted(self, data: dict[str, Any], lo: int) -> tuple[int, int]:
        """A visit's (counts_for flags, stamp); flags 0: it counts for no index or is dated on or before the
        window's first day ``lo`` (an ordinal), so it is not kept."""
        flags = self._counts(data["profession"])
        if not flags:
            return 0, 0
        contact_type = data.get("contact_type")
        if contact_type and not self._contact_counts(contact_type):
            return 0, 0
        stamp = self._stamp(data["occurred_at"])
        if stamp // SECONDS_PER_DAY <= lo:
            return 0, 0
        return flags, stamp

    def apply(self, raw: bytes | None, visits: list[tuple[dict[str, Any], int]], as_of: date,
              families: Mapping[str, str], fingerprint_of,
              facts: Sequence[tuple[str, dict[str, Any]]] = ()) -> HotResult | None:
        """The patient's record after ``visits`` ((data, offset) in offset order) and ``facts`` ((event type,
        data) in offset order, of the ``HOT_FACTS`` types), or None: not mine."""
        try:
            return self._apply(raw, visits, as_of, families, fingerprint_of, facts=facts)
        except (struct.error, IndexError, KeyError, TypeError, ValueError, UnicodeDecodeError, OverflowError):
            return None  # the reference way decides (and dead-letters or refuses with its reason)

    def refresh(self, raw: bytes, as_of: date, families: Mapping[str, str], fingerprint_of) -> HotResult | None:
        """A stored patient brought to ``as_of`` (the reference: ``advance``, ``prune_residences``, then the
        indices): what left the window pruned on the bytes — visits, tombstones, SÄBO periods that ended —
        and the record rewritten as ``encode_record`` writes it; with nothing to prune, the stored bytes stay
        but for a new fingerprint. None: the reference way."""
        try:
            return self._apply(raw, (), as_of, families, fingerprint_of, refresh=True)
        except (struct.error, IndexError, KeyError, TypeError, ValueError, UnicodeDecodeError, OverflowError):
            return None

    def _apply(self, raw, visits, as_of, families, fingerprint_of, refresh=False, facts=()) -> HotResult | None:
        new = raw is None
        if new:
            raw = _EMPTY
        if raw[0] != RECORD_VERSION:
            return None
        _, old_fp, nres, ncoord, rub, assessed_at = _HEAD.unpack_from(raw, 0)
        offset = _HEAD_SIZE + ncoord
        coord = raw[_HEAD_SIZE:offset]
        res_end = offset + nres * _RES_SIZE
        residences = raw[offset:res_end]
        version, ns, nv, nt, unit_index, nflk = _STATE_HEAD.unpack_from(raw, res_end)
        if version != CODEC_VERSION or (rub != _NO_RUB and rub > 5):
            return None
        offset = res_end + _STATE_HEAD_SIZE
        flk = struct.unpack_from(f"<{nflk}H", raw, offset)
        offset += 2 * nflk
        strings: list[bytes] = []
        for _ in range(ns):
            end = offset + 1 + raw[offset]
            if end > len(raw):
                return None
            strings.append(raw[offset + 1:end])
            offset = end
        table_end = offset
        visits_end = table_end + 24 * nv
        if visits_end + 12 * nt != len(raw):
            return None
        if (unit_index != _NO_UNIT and unit_index >= ns) or (flk and max(flk) >= ns) or len(set(strings)) != ns:
            return None
        # (digest, seq, packed) with packed = stamp << 26 | counts_for << 24 | practitioner << 12 | unit
        packs = _packs_of(raw, table_end, nv)
        if packs and ns < 0x1000 and not _ids_in_table(raw, table_end, nv, ns, packs):
            return None
        if visits and not facts and not refresh:
            taken, result = self._visits_in_place(raw, new, old_fp, nres, ncoord, rub, assessed_at, res_end, ns, nv,
                                                  nt, unit_index, flk, strings, table_end, packs, visits, as_of,
                                                  families, fingerprint_of)
            if taken:
                return result
        flat = struct.unpack_from(f"<{3 * nv}Q", raw, table_end)
        tomb_flat = struct.unpack_from("<" + "QI" * nt, raw, visits_end)
        stored = list(zip(flat[0::3], flat[1::3], packs))
        tombs = list(zip(tomb_flat[0::2], tomb_flat[1::2]))
        table = None
        digests = None  # the stored visits' and tombstones' digests (a set; rebuilt after a prune)
        pruned = False
        appended: list[int] = []  # the new visits' (digest, seq, packed), flat, when each went after the last
        inserted = False  # a new visit went before a stored one

        settings = self.settings
        lo, hi = _bounds(as_of, settings.window_months)
        lo_stamp = (lo + 1) * SECONDS_PER_DAY
        changed = False
        relisted = False  # the unit, the FLKs or the coordinator changed: the id table is rebuilt
        for event_type, data in facts:
            if event_type == LISTING_STARTED:  # `_listing_started`: the unit (the FLKs stay)
                u_raw = data["care_unit_id"].encode()
                if unit_index != _NO_UNIT and strings[unit_index] == u_raw:
                    continue
                if table is None:
                    table = {s: i for i, s in enumerate(strings)}
                unit_index = _number(table, strings, u_raw)
                relisted = changed = True
            elif event_type == FLK_ASSIGNED:  # `_flk_assigned`: a doctor's list adds its doctor
                practitioner = data.get("practitioner_id")
                if data["list_kind"] != "doctor" or not practitioner:
                    continue  # a fictive list counts as lacking an FLK (F3)
                p_raw = practitioner.encode()
                names = sorted({strings[i] for i in flk} | {p_raw})  # (UTF-8 bytes sort as their strings)
                new_coord = p_raw if data.get("coordinating") or not coord else coord
                if len(names) == len(flk) and new_coord == coord:
                    continue
                if table is None:
                    table = {s: i for i, s in enumerate(strings)}
                _number(table, strings, p_raw)
                flk = tuple(table[name] for name in names)
                coord = new_coord
                relisted = changed = True
            elif event_type == RISK_ASSESSED:  # `_risk_assessed`: the latest assessment's band
                band = data["rub"]
                if type(band) is not int or not 0 <= band <= 5:
                    return None  # the reference refuses it
                at = (parse_time(data["computed_at"]) - _EPOCH) // _MICROSECOND
                if rub != _NO_RUB and at <= assessed_at:
                    continue
                rub, assessed_at = band, at
                changed = True
            else:
                return None
        if len(strings) > _INDEX_LIMIT or len(coord) > 255:
            return None
        if refresh and lo:
            # what `advance` and `prune_residences` drop: visits and tombstones dated on or before the
            # window's start (the visits are in stamp order), SÄBO periods that ended by then
            if stored and stored[0][2] >> 26 < lo_stamp:
                stored = [v for v in stored if v[2] >> 26 >= lo_stamp]
                pruned = changed = True
            if tombs and any(t[1] <= lo for t in tombs):
                tombs = [t for t in tombs if t[1] > lo]
                pruned = changed = True
            if nres:
                kept = [r for r in _RES.iter_unpack(residences) if r[2] == 0 or r[2] > lo]
                if len(kept) != nres:
                    nres = len(kept)
                    residences = b"".join(_RES.pack(*r) for r in kept)
                    pruned = changed = True
        for data, seq in visits:
            flags, stamp = self._counted(data, lo)
            if not flags:
                continue
            digest = visit_digest(data["visit_id"])
            if digests is None:  # (the same test as `record_visit`'s: a known visit id or a tombstone)
                if pruned:
                    digests = {v[0] for v in stored}.union([t[0] for t in tombs])
                else:
                    digests = set(flat[0::3]).union(tomb_flat[0::2])
            if digest in digests:
                continue
            if table is None:
                table = {s: i for i, s in enumerate(strings)}
            if not 0 <= seq < _U64 or stamp < 0 or stamp >= _STAMP_LIMIT:
                return None
            # prune what left the window (as record_visit does when it adds a visit)
            if stored and stored[0][2] >> 26 < lo_stamp:
                stored = [v for v in stored if v[2] >> 26 >= lo_stamp]
                pruned, digests = True, None
            if tombs and any(t[1] <= lo for t in tombs):
                tombs = [t for t in tombs if t[1] > lo]
                pruned, digests = True, None
            p = _number(table, strings, data["practitioner_id"].encode())
            u = _number(table, strings, data["care_unit_id"].encode())
            if len(strings) > _INDEX_LIMIT:
                return None
            entry = (digest, seq, stamp << 26 | flags << 24 | p << 12 | u)
            # in (stamp, seq, digest) order — the reference's tuple order, digests being distinct; placed as
            # `record_visit` places it (appended after the last, else bisect_right)
            place = (stamp, seq, digest)
            if stored and _order(stored[-1]) > place:
                stored.insert(bisect_right(stored, place, key=_order), entry)
                inserted = True
            else:
                stored.append(entry)
                appended += entry
            if digests is not None:
                digests.add(digest)
            changed = True

        hi_stamp = (hi + 1) * SECONDS_PER_DAY
        unit, indices = self._indices([v[2] for v in stored], strings, unit_index, flk, as_of, lo_stamp, hi_stamp,
                                      families)
        fp = fingerprint_of(unit, indices)
        emit = fp != old_fp

        value = None
        if new or changed or emit:
            if not (pruned or inserted or relisted) and unit_index in (0, _NO_UNIT):
                # the stored record's id table is in `encode_state`'s order already (written by it or by
                # `_encode`): visits appended after the last keep it, with their new ids at its end
                value = self._append(raw, res_end, nres, ncoord, rub, assessed_at, fp if emit else old_fp,
                                     unit_index, nflk, ns, nv, nt, table_end, strings, appended)
            else:
                value = self._encode(raw, coord, residences, nres, rub, assessed_at, fp if emit else old_fp,
                                     unit_index, flk, strings, stored, tombs)
            if value is None:
                return None
        return _result(value, unit, indices, fp, emit, flk, coord, strings, residences, nres, rub, as_of)

    def _visits_in_place(self, raw, new, old_fp, nres, ncoord, rub, assessed_at, res_end, ns, nv, nt, unit_index,
                         flk, strings, table_end, packs, visits, as_of, families,
                         fingerprint_of) -> tuple[bool, HotResult | None]:
        """`_apply` for visits alone (no facts, no refresh) in the usual case, on the stored bytes: (True, what
        `_apply` gives), or (False, None) for `_apply`'s general way. The usual case: every visit in its own
        second (stored and new: their order is their stamps', no sequence number or digest decides it), and
        nothing to prune (no stored visit or tombstone has left the window). The stored visits are not read
        into objects: their packed fields are (the indices and the id order), a new visit's digest is looked
        up in the bytes, and the record is written from the stored bytes with the new visits spliced in — and
        the packed fields renumbered when the id table's order (`encode_state`'s) changes."""
        lo, hi = _bounds(as_of, self.settings.window_months)
        lo_stamp = (lo + 1) * SECONDS_PER_DAY
        previous = -1
        for packed in packs:
            stamp = packed >> 26
            if stamp <= previous:
                return False, None  # two stored visits in one second: (stamp, seq, digest) orders them
            previous = stamp
        if packs and packs[0] >> 26 < lo_stamp:
            return False, None  # a stored visit left the window: pruned when a visit is added
        visits_end = table_end + 24 * nv
        if nt:
            tomb_flat = struct.unpack_from("<" + "QI" * nt, raw, visits_end)
            for day in tomb_flat[1::2]:
                if day <= lo:
                    return False, None  # a tombstone left the window: likewise
        ids = strings
        table: dict[bytes, int] | None = None
        added: list[tuple[int, int, int, int]] = []  # the new visits: (stamp, seq, digest, packed)
        for data, seq in visits:  # (as `_apply` takes them, in the same order, refusing what it refuses)
            flags, stamp = self._counted(data, lo)
            if not flags:
                continue
            digest = visit_digest(data["visit_id"])
            if (_has_digest(raw, digest, table_end, nv, 24) or (nt and _has_digest(raw, digest, visits_end, nt, 12))
                    or any(a[2] == digest for a in added)):
                continue
            if not 0 <= seq < _U64 or stamp < 0 or stamp >= _STAMP_LIMIT:
                return True, None
            if table is None:
                table = {s: i for i, s in enumerate(strings)}
                ids = strings.copy()  # (`_apply`'s general way takes `strings` as they were)
            p = _number(table, ids, data["practitioner_id"].encode())
            u = _number(table, ids, data["care_unit_id"].encode())
            if len(ids) > _INDEX_LIMIT:
                return True, None
            added.append((stamp, seq, digest, stamp << 26 | flags << 24 | p << 12 | u))
        merged: Sequence[int] = packs
        places: list[int] = []  # where each new visit (in stamp order) goes among the stored ones
        if added:
            added.sort()
            last = -1
            for a in added:
                stamp = a[0]
                at = _first_at_or_after(packs, stamp)
                if stamp == last or (at < nv and packs[at] >> 26 == stamp):
                    return False, None  # two visits in one second
                places.append(at)
                last = stamp
            merged_list: list[int] = []
            start = 0
            for a, at in zip(added, places):
                merged_list.extend(packs[start:at])
                merged_list.append(a[3])
                start = at
            merged_list.extend(packs[start:])
            merged = merged_list
        unit, indices = self._indices(merged, ids, unit_index, flk, as_of, lo_stamp, (hi + 1) * SECONDS_PER_DAY,
                                      families)
        fp = fingerprint_of(unit, indices)
        emit = fp != old_fp
        value = None
        if new or added or emit:
            value = _spliced(raw, res_end, nres, ncoord, rub, assessed_at, fp if emit else old_fp, unit_index, flk,
                             ns, nv, nt, table_end, ids, added, places, merged)
            if value is None:
                return True, None
        coord = raw[_HEAD_SIZE:_HEAD_SIZE + ncoord]
        residences = raw[_HEAD_SIZE + ncoord:res_end]
        return True, _result(value, unit, indices, fp, emit, flk, coord, ids, residences, nres, rub, as_of)

    def _indices(self, packs: Sequence[int], strings: list[bytes], unit_index: int, flk: Sequence[int], as_of: date,
                 lo_stamp: int, hi_stamp: int, families: Mapping[str, str]) -> tuple[str | None, PatientIndices]:
        """The patient's listing unit and indices over the id numbers of the visits' packed fields (a bijection
        with the ids: the same counts, the same indices)."""
        if not b"".join(strings).isascii():  # (ASCII ids are UTF-8; HSA-ids are ASCII)
            for s in strings:
                s.decode()  # a malformed id: the reference refuses the record (and so do we)
        unit = None if unit_index == _NO_UNIT else strings[unit_index].decode()
        counted_unit = None  # unit number -> whether its visits count (scope listing-unit)
        only_unit = -1  # without filials: the listing unit's number (ids are unique in the table)
        if self._listing_scope and unit is not None:
            if families:
                main = families.get(unit, unit)
                counted_unit = {}
                for packed in packs:
                    u = packed & 0xFFF
                    if u not in counted_unit:
                        name = strings[u].decode()
                        counted_unit[u] = name == main or families.get(name) == main
            else:
                only_unit = unit_index
        doctor: list[int] = []
        total: list[int] = []
        for packed in packs:
            stamp = packed >> 26
            if stamp < lo_stamp or stamp >= hi_stamp:
                continue
            if only_unit >= 0:
                if packed & 0xFFF != only_unit:
                    continue
            elif counted_unit is not None and not counted_unit[packed & 0xFFF]:
                continue
            p = packed >> 12 & 0xFFF
            if packed & (COUNTS_FOR_DOCTOR << 24):
                doctor.append(p)
            if packed & (COUNTS_FOR_TOTAL << 24):
                total.append(p)
        min_visits = self.settings.min_visits
        size = len(strings)
        return unit, _made(PatientIndices, (as_of, _index_set_of_numbers(doctor, flk, min_visits, size),
                                             _index_set_of_numbers(total, flk, min_visits, size)))

    @staticmethod
    def _append(raw, res_end, nres, ncoord, rub, assessed_at, fp, unit_index, nflk, ns, nv, nt, table_end,
                strings, appended) -> bytes | None:
        """`_encode` when no visit was pruned or placed before a stored one: the stored bytes with the new
        ids and visits appended (the same bytes, without renumbering every visit)."""
        added = len(appended) // 3
        nv_new = nv + added
        if nv_new > 0xFFFF:
            return None
        table = _id_table(strings[ns:])
        if table is None:
            return None
        visits_end = table_end + 24 * nv
        return b"".join((
            _HEAD.pack(RECORD_VERSION, fp, nres, ncoord, rub, assessed_at),
            raw[_HEAD_SIZE:res_end],  # the coordinating FLK, the SÄBO periods
            _STATE_HEAD.pack(CODEC_VERSION, len(strings), nv_new, nt, unit_index, nflk),
            raw[res_end + _STATE_HEAD_SIZE:table_end],  # the FLKs, the stored ids
            table,
            raw[table_end:visits_end],
            struct.pack(f"<{3 * added}Q", *appended),
            raw[visits_end:],  # the tombstones
        ))

    @staticmethod
    def _encode(raw, coord, residences, nres, rub, assessed_at, fp, unit_index, flk, strings, stored,
                tombs) -> bytes | None:
        """The record as ``encode_record`` writes it: the id table in ``encode_state``'s order."""
        remap: dict[int, int] = {}
        if unit_index != _NO_UNIT:
            remap[unit_index] = 0
        new_flk = [remap.setdefault(i, len(remap)) for i in flk]
        flat: list[int] = []
        append = flat.append
        setdefault = remap.setdefault
        for digest, seq, packed in stored:
            p = setdefault(packed >> 12 & 0xFFF, len(remap))
            u = setdefault(packed & 0xFFF, len(remap))
            append(digest)
            append(seq)
            append(packed >> 24 << 24 | p << 12 | u)
        if len(remap) > _INDEX_LIMIT:
            return None
        table = _id_table([strings[old] for old in remap])
        if table is None:
            return None
        nv = len(stored)
        nt = len(tombs)
        if nv > 0xFFFF or nt > 0xFFFF:
            return None
        return b"".join((
            _HEAD.pack(RECORD_VERSION, fp, nres, len(coord), rub, assessed_at), coord, residences,
            _STATE_HEAD.pack(CODEC_VERSION, len(remap), nv, nt, 0 if unit_index != _NO_UNIT else _NO_UNIT,
                             len(new_flk)),
            struct.pack(f"<{len(new_flk)}H", *new_flk),
            table,
            struct.pack(f"<{3 * nv}Q", *flat),
            struct.pack("<" + "QI" * nt, *[x for t in tombs for x in t]),
        ))


def _id_table(names: list[bytes]) -> bytes | None:
    """The id table's bytes for ``names`` in order (each after its length), or None: an id too long for it."""
    table = bytearray()
    for name in names:
        if len(name) > 255:
            return None
        table.append(len(name))
        table += name
    return bytes(table)


def _result(value: bytes | None, unit: str | None, indices: PatientIndices, fp: int, emit: bool, flk: Sequence[int],
            coord: bytes, strings: list[bytes], residences: bytes, nres: int, rub: int, as_of: date) -> HotResult:
    """The result with what the aggregates need (PatientRecord.doctor_key, .sabo_cohort_on, .rub45)."""
    doctor_key = None
    if flk:
        doctor_key = coord.decode() if coord and any(strings[i] == coord for i in flk) else strings[flk[0]].decode()
    day = as_of.toordinal()
    sabo = False
    for j in range(nres):
        _, r_lo, r_hi, main_care = _RES.unpack_from(residences, j * _RES_SIZE)
        if r_lo <= day and (r_hi == 0 or day <= r_hi) and main_care != MAIN_CARE_ELSEWHERE:
            sabo = True
            break
    rub_band = None if rub == _NO_RUB else rub
    return _made(HotResult, (value, unit, indices, fp, emit, doctor_key, sabo, rub_band in RUB45_BANDS))


def _spliced(raw: bytes, res_end: int, nres: int, ncoord: int, rub: int, assessed_at: int, fp: int, unit_index: int,
             flk: Sequence[int], ns: int, nv: int, nt: int, table_end: int, ids: list[bytes],
             added: list[tuple[int, int, int, int]], places: list[int], merged: Sequence[int]) -> bytes | None:
    """The record as ``encode_record`` writes it (`HotVisits._encode`'s bytes) from the stored one and the new
    visits (``added`` in stamp order, each before the stored visit ``places`` names; ``merged``: every
    visit's packed field in order): the stored visits' bytes copied between the new ones. The id table in
    ``encode_state``'s order (the listing unit, the FLKs, then each visit's practitioner and unit in visit
    order): when that is the stored table's order, with the new ids after it, nothing is renumbered;
    otherwise the table is rewritten and every visit's packed field renumbered in place."""
    size = len(ids)
    nv_new = nv + len(added)
    if nv_new > 0xFFFF:
        return None
    remap = [-1] * size  # id number -> its number in `encode_state`'s order
    n = 0
    if unit_index != _NO_UNIT:
        remap[unit_index] = 0
        n = 1
    for i in flk:
        if remap[i] < 0:
            remap[i] = n
            n += 1
    for packed in merged:
        p = packed >> 12 & 0xFFF
        if remap[p] < 0:
            remap[p] = n
            n += 1
        u = packed & 0xFFF
        if remap[u] < 0:
            remap[u] = n
            n += 1
    in_order = n == size
    if in_order:
        for i in range(size):
            if remap[i] != i:
                in_order = False
                break
    pieces: list[bytes] = []
    start = table_end
    for a, at in zip(added, places):
        pieces.append(raw[start:table_end + 24 * at])
        pieces.append(_VISIT.pack(a[2], a[1], a[3]))
        start = table_end + 24 * at
    visits_end = table_end + 24 * nv
    pieces.append(raw[start:visits_end])
    if in_order:
        table = _id_table(ids[ns:])
        if table is None:
            return None
        return b"".join((
            _HEAD.pack(RECORD_VERSION, fp, nres, ncoord, rub, assessed_at),
            raw[_HEAD_SIZE:res_end],  # the coordinating FLK, the SÄBO periods
            _STATE_HEAD.pack(CODEC_VERSION, size, nv_new, nt, unit_index, len(flk)),
            raw[res_end + _STATE_HEAD_SIZE:table_end],  # the FLKs, the stored ids
            table, b"".join(pieces),
            raw[visits_end:],  # the tombstones
        ))
    order = [0] * n
    for old in range(size):
        if remap[old] >= 0:
            order[remap[old]] = old
    table = _id_table([ids[old] for old in order])
    if table is None:
        return None
    visit_bytes = bytearray(b"".join(pieces))
    renumbered = struct.pack(f"<{nv_new}Q", *[packed >> 24 << 24 | remap[packed >> 12 & 0xFFF] << 12
                                               | remap[packed & 0xFFF] for packed in merged])
    for k in range(8):  # each visit's packed field: the third 8 bytes of its 24
        visit_bytes[16 + k::24] = renumbered[k::8]
    return b"".join((
        _HEAD.pack(RECORD_VERSION, fp, nres, ncoord, rub, assessed_at),
        raw[_HEAD_SIZE:res_end],
        _STATE_HEAD.pack(CODEC_VERSION, n, nv_new, nt, 0 if unit_index != _NO_UNIT else _NO_UNIT, len(flk)),
        struct.pack(f"<{len(flk)}H", *[remap[i] for i in flk]),
        table, visit_bytes,
        raw[visits_end:],
    ))
