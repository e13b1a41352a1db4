"""The schemas' string patterns and formats (schemas/events/common.v1.json), checked after typed decoding.

msgspec's own pattern check calls the regex engine for every field, which cost more than the rest of
the decoding; so the typed decoders (``flk.events.typed``) check the patterns here, the ids through
bounded caches of those already seen. Each function is exactly its schema's pattern (``fullmatch``: no
trailing newline, stricter than the schema's ``$``-anchored search, never more lenient) and, for dates and
times, the contracts' ``date``/``date-time`` format. A module of its own so that it can have a compiled
twin (``flk.native``): a few calls per event, by the hundred thousand.
"""
from __future__ import annotations

import re
from datetime import date, datetime

_PATIENT_KEY = re.compile("pk1_[a-z2-7]{26}")
_HSA_ID = re.compile("SE[0-9]{10}-[0-9A-Za-z]{1,31}")
_DATE_TIME = re.compile("[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\\.[0-9]+)?(?:Z|[+-][0-9]{2}:[0-9]{2})")
_UUID = re.compile("[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_DATE = re.compile("[0-9]{4}-[0-9]{2}-[0-9]{2}")
_TWO_DIGITS = re.compile("[0-9]{2}")
_FOUR_DIGITS = re.compile("[0-9]{4}")

#: the patient keys and HSA-ids found to match their patterns (forgotten all at once when full)
_patient_keys: set[str] = set()
_hsa_ids: set[str] = set()
PATIENT_KEYS_KEPT = 200_000
HSA_IDS_KEPT = 50_000


def _seen_matching(text: str, seen: set[str], pattern: re.Pattern[str], kept: int) -> bool:
    """Whether ``text`` matches ``pattern``, remembering up to ``kept`` texts that did (then forgetting all)."""
    if text in seen:
        return True
    if pattern.fullmatch(text) is None:
        return False
    if len(seen) >= kept:
        seen.clear()
    seen.add(text)
    return True


def patient_key_ok(text: str) -> bool:
    return _seen_matching(text, _patient_keys, _PATIENT_KEY, PATIENT_KEYS_KEPT)


def hsa_id_ok(text: str) -> bool:
    return _seen_matching(text, _hsa_ids, _HSA_ID, HSA_IDS_KEPT)


def date_time_shape_ok(text: str) -> bool:
    """``_DATE_TIME.fullmatch(text) is not None``, read character by character (the regex engine's call cost
    more than the rest of the check; the property test in tests/unit/platform/test_typed_decoding.py holds
    the two equal)."""
    n = len(text)
    if n < 20:
        return False
    for i in range(19):  # YYYY-MM-DDTHH:MM:SS
        c = ord(text[i])
        if i == 4 or i == 7:
            if c != 45:  # -
                return False
        elif i == 10:
            if c != 84:  # T
                return False
        elif i == 13 or i == 16:
            if c != 58:  # :
                return False
        elif c < 48 or c > 57:
            return False
    i = 19
    c = ord(text[i])
    if c == 46:  # a fraction: one digit or more
        i += 1
        while i < n and 48 <= ord(text[i]) <= 57:
            i += 1
        if i == 20 or i == n:
            return False
        c = ord(text[i])
    if c == 90:  # Z
        return i + 1 == n
    if (c != 43 and c != 45) or i + 6 != n or ord(text[i + 3]) != 58:  # [+-]HH:MM
        return False
    for j in (i + 1, i + 2, i + 4, i + 5):
        c = ord(text[j])
        if c < 48 or c > 57:
            return False
    return True


def date_time_ok(text: str) -> bool:
    """The schema's date_time pattern and the contracts' date-time format (a valid time with an offset)."""
    if not date_time_shape_ok(text):
        return False
    try:
        return datetime.fromisoformat(text).tzinfo is not None
    except ValueError:
        return False


def date_ok(text: str) -> bool:
    """The schema's date pattern and the contracts' date format (a valid date)."""
    if _DATE.fullmatch(text) is None:
        return False
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def uuid_ok(text: str) -> bool:
    return _UUID.fullmatch(text) is not None


def two_digits_ok(text: str) -> bool:
    return _TWO_DIGITS.fullmatch(text) is not None


def four_digits_ok(text: str) -> bool:
    return _FOUR_DIGITS.fullmatch(text) is not None


def patient_keys_ok(keys: list[str]) -> bool:
    """An array of patient keys: each one's pattern, none twice (``uniqueItems``)."""
    for key in keys:
        if not patient_key_ok(key):
            return False
    return len(set(keys)) == len(keys)
