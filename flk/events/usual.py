"""The usual message, read in one pass: a filter in front of the envelope's full read (``envelope.py``).

Almost every message a stream worker reads is one this code base wrote: the eight CloudEvents headers
`envelope._wrap_fast` writes, ASCII, a UTC or ±HH:MM time, and data of a type with a typed decoder
(``flk.events.typed``). :func:`read_usual` takes such a message and gives what the envelope's full read
(`envelope._read_checked`) would give for it — the same fields, the same data — after the same checks.
For anything else (another header, a check that fails, a type without a typed decoder) it says "not
sure" (None), and the caller reads the message the full way, which gives the result or the reason.
So it can only ever be faster, never different: a property test draws valid and garbled messages and
checks that whatever this accepts, the full read accepts with the same result
(tests/unit/platform/test_envelope_usual_read.py).

It is a module of its own so that it can have a compiled twin (``flk.native``, mypyc): its checks are
a few dozen dictionary look-ups and comparisons per message, Python's per-bytecode cost.
"""
from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from flk.events.contracts import CLOUDEVENTS_TYPE_PREFIX
from flk.events.registry import registry
from flk.events.typed import typed_decode, TYPED_EVENTS

#: the headers a usual message has (`envelope._wrap_fast` writes all eight; ce_time, ce_dataschema,
#: ce_partitionkey and content-type may be absent)
USUAL_HEADERS = frozenset({"ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time", "ce_dataschema",
                           "ce_partitionkey", "content-type"})
USUAL_TIME = re.compile(rb"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?(Z|[+-][0-9]{2}:[0-5][0-9])")
_JSON = b"application/json"
_SPEC_VERSION = b"1.0"

#: (topic, the ce_type header) -> (event type, the topic's key field), for the typed types on their topics
_types: dict[tuple[str, bytes], tuple[str, str]] = {}


def _typed_on_topic(topic: str, ce_type: bytes) -> tuple[str, str] | None:
    """(event type, key field) when ``ce_type`` names a typed event type that belongs on ``topic``."""
    found = _types.get((topic, ce_type))
    if found is not None:
        return found
    if not ce_type.startswith(CLOUDEVENTS_TYPE_PREFIX.encode()):
        return None
    try:
        event_type = ce_type[len(CLOUDEVENTS_TYPE_PREFIX):].decode("ascii")
        spec = registry().topic(topic)
    except (UnicodeDecodeError, KeyError):
        return None
    if event_type not in spec.events or event_type not in TYPED_EVENTS:
        return None
    if len(_types) < 1024:
        _types[(topic, ce_type)] = (event_type, spec.key)
    return event_type, spec.key


def usual_time_shape_ok(raw: bytes) -> bool:
    """``USUAL_TIME.fullmatch(raw) is not None``, read byte by byte (the regex engine's call cost more than the
    rest of the check; tests/unit/platform/test_envelope_usual_read.py holds the two equal)."""
    n = len(raw)
    if n < 20:
        return False
    for i in range(19):  # YYYY-MM-DDTHH:MM:SS
        c = raw[i]
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
    c = raw[i]
    if c == 46:  # a fraction: one to six digits
        i += 1
        while i < n and 48 <= raw[i] <= 57:
            i += 1
        if i == 20 or i > 26 or i == n:
            return False
        c = raw[i]
    if c == 90:  # Z
        return i + 1 == n
    if (c != 43 and c != 45) or i + 6 != n or raw[i + 3] != 58:  # [+-]HH:MM, the minutes 00-59
        return False
    return (48 <= raw[i + 1] <= 57 and 48 <= raw[i + 2] <= 57 and 48 <= raw[i + 4] <= 53
            and 48 <= raw[i + 5] <= 57)


#: the bit of each usual header (a header given twice: not a usual message)
_SPEC_VERSION_BIT, _ID_BIT, _SOURCE_BIT, _TYPE_BIT, _TIME_BIT, _SCHEMA_BIT, _KEY_BIT, _CONTENT_BIT = (
    1, 2, 4, 8, 16, 32, 64, 128)


def read_usual(topic: Any, key: Any, value: Any, headers: Any) -> tuple[str, str, str, bytes, str, Any] | None:
    """(id, event type, source, the ce_time header, key, data) of a usual message, checked as the full read
    checks it (the time's text only: the caller builds the time object if it needs one); None: not a
    usual message, read it the full way."""
    if ((type(headers) is not tuple and type(headers) is not list) or type(topic) is not str
            or type(key) is not bytes or type(value) is not bytes or not key):  # (aiokafka's headers: a tuple)
        return None
    # the headers, each checked as it comes (no map of them: a message's headers are new strings each time,
    # and hashing them cost more than comparing them with the eight names)
    seen = 0
    event_id = source = ce_type = raw_time = b""
    for header in headers:
        if type(header) is not tuple or len(header) != 2:
            return None
        name = header[0]
        raw = header[1]
        if type(name) is not str or type(raw) is not bytes or not raw.isascii():
            return None
        text: str = name
        bit = 0
        if text == "ce_id":
            bit = _ID_BIT
            event_id = raw
        elif text == "ce_time":
            bit = _TIME_BIT
            raw_time = raw
        elif text == "ce_partitionkey":
            bit = _KEY_BIT
        elif text == "ce_type":
            bit = _TYPE_BIT
            ce_type = raw
        elif text == "ce_source":
            bit = _SOURCE_BIT
            source = raw
        elif text == "ce_specversion":
            if raw != _SPEC_VERSION:
                return None
            bit = _SPEC_VERSION_BIT
        elif text == "ce_dataschema":
            if not raw:
                return None
            bit = _SCHEMA_BIT
        elif text == "content-type":
            if raw != _JSON:
                return None
            bit = _CONTENT_BIT
        else:
            return None
        if seen & bit:
            return None
        seen |= bit
    if (not seen & _SPEC_VERSION_BIT or not seen & _TYPE_BIT or not seen & _TIME_BIT or not event_id
            or not source):
        return None
    typed = _typed_on_topic(topic, ce_type)
    if typed is None:
        return None
    if not key.isascii():
        return None
    if not usual_time_shape_ok(raw_time):
        return None
    try:
        datetime.fromisoformat(raw_time.decode("ascii"))
    except ValueError:
        return None
    data = typed_decode(typed[0], value)
    if data is None:
        return None
    key_text = key.decode("ascii")
    if data.get(typed[1]) != key_text:
        return None
    return event_id.decode("ascii"), typed[0], source.decode("ascii"), raw_time, key_text, data
