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


def read_usual(topic: Any, key: Any, value: Any, headers: Any) -> tuple[str, str, str, bytes, str, Any] | None:
    """(id, event type, source, the ce_time header, key, data) of a usual message, checked as the full read
    checks it (the time's text only: the caller builds the time object if it needs one); None: not a
    usual message, read it the full way."""
    if ((type(headers) is not tuple and type(headers) is not list) or type(topic) is not str
            or type(key) is not bytes or type(value) is not bytes or not key):  # (aiokafka's headers: a tuple)
        return None
    header_map: dict[Any, Any] = {}
    for header in headers:
        if type(header) is not tuple or len(header) != 2:
            return None
        name = header[0]
        raw = header[1]
        if type(name) is not str or type(raw) is not bytes or name not in USUAL_HEADERS:
            return None
        header_map[name] = raw
    if header_map.get("ce_specversion") != _SPEC_VERSION:
        return None
    ce_type = header_map.get("ce_type")
    event_id = header_map.get("ce_id")
    source = header_map.get("ce_source")
    raw_time = header_map.get("ce_time")
    if ce_type is None or not event_id or not source or raw_time is None:
        return None
    content_type = header_map.get("content-type")
    if content_type is not None and content_type != _JSON:
        return None
    if not header_map.get("ce_dataschema", b"-"):
        return None
    typed = _typed_on_topic(topic, ce_type)
    if typed is None:
        return None
    if not b"".join(header_map.values()).isascii() or not key.isascii():
        return None
    if USUAL_TIME.fullmatch(raw_time) is None:
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
