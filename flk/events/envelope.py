"""CloudEvents 1.0 envelope in Kafka **binary mode**, used by every producer and consumer.

The event data is the Kafka value (JSON, validated against its schema); the CloudEvents
attributes travel as ``ce_*`` headers; the Kafka key is the registry's key field of the
data (the pseudonymous patient key on patient topics). This module adds the registry, the
contracts and clear errors to the `cloudevents` SDK's Kafka binding.

**Fast path.** The SDK builds and validates a ``CloudEvent`` object per message and uses the
stdlib ``json``; that was a third of a stream worker's time. So the usual message is read and
written directly: the ``ce_*`` headers as bytes, the data with ``orjson``. The fast path only
takes what it can decide exactly as the SDK would (the headers this module writes, UTC or
±HH:MM times, ``application/json``, data that orjson reads or writes without loss); anything
else goes through the SDK, so results and error reasons are the SDK's in every case. A
property test (tests/unit/platform/test_envelope_fast_path.py) keeps the two in agreement.
The one visible difference: values are orjson's compact UTF-8 JSON, not the stdlib's
``", "``-separated ASCII-escaped JSON (the same JSON value; any JSON reader, the SDK
included, reads both).
"""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from hashlib import sha1
from typing import Any, Iterable

import orjson
from dateutil import tz as _tz
from cloudevents.core.bindings import kafka as ce_kafka
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from flk.events.contracts import (
    CLOUDEVENTS_TYPE_PREFIX,
    SCHEMA_BASE,
    ContractViolation,
    cloudevents_type,
    contracts,
    event_type_of,
)
from flk.events.registry import registry
from flk.events.typed import TYPED_EVENTS, typed_decode
from flk.events.usual import USUAL_HEADERS, USUAL_TIME

#: namespace of ids derived from natural keys (uuid5), so a replay yields the same ids
FLK_NAMESPACE = uuid.UUID("6f1c1d2e-8a4b-5c3d-9e0f-f1a5b0c0d001")
_FORMAT = JSONFormat()


class EnvelopeError(ValueError):
    """The Kafka message is not a well-formed flk CloudEvent (reason in the message)."""


@dataclass(frozen=True)
class Envelope:
    id: str
    event_type: str  # 'visit.recorded.v1'
    source: str
    time: datetime | None
    key: str
    data: dict[str, Any]


@dataclass(frozen=True)
class OutgoingRecord:
    topic: str
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]
    event_id: str


def derived_id(*parts: object) -> str:
    """A stable id from natural-key parts (uuid5)."""
    return uuid5_text("\x1f".join(str(p) for p in parts))


_NAMESPACE_BYTES = FLK_NAMESPACE.bytes


#: a uuid's variant digit (RFC 4122: 10xx) for each hex digit of the hash in its place
_VARIANT_DIGIT = {d: "89ab"[int(d, 16) & 3] for d in "0123456789abcdef"}


def uuid5_text(name: str) -> str:
    """``str(uuid.uuid5(FLK_NAMESPACE, name))`` without building UUID objects (tested equal): the SHA-1's
    first 32 hex digits, the version digit 5 and the variant digit in their places."""
    h = sha1(_NAMESPACE_BYTES + name.encode("utf-8")).hexdigest()
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{_VARIANT_DIGIT[h[16]]}{h[17:20]}-{h[20:32]}"


#: ``json.dumps(data, sort_keys=True, ensure_ascii=False)``'s encoder, made once (json.dumps makes one per call
#: when given options: a third of its time for an event's data)
_canonical_json = json.JSONEncoder(sort_keys=True, ensure_ascii=False).encode


def make_record(
    event_type: str,
    data: dict[str, Any],
    *,
    source: str,
    event_id: str | None = None,
    time: datetime | None = None,
) -> OutgoingRecord:
    """Validate `data` and wrap it for its registry topic.

    The event id defaults to a uuid5 of the type and the canonical data, so publishing the
    same fact twice gives the same id and consumers' inboxes drop the second.
    """
    value = _typed_value(event_type, data)
    if value is None:
        contracts().validate(event_type, data)
    spec = registry().topic_for(event_type)
    key = data.get(spec.key)
    if not isinstance(key, str) or not key:
        raise ContractViolation(f"{event_type}: the key field {spec.key!r} is missing")
    if event_id is None:
        event_id = derived_id(event_type, _canonical_json(data))
    return _wrap(event_type, spec.name, key, data, source, event_id, time or datetime.now(timezone.utc), value)


def _typed_value(event_type: str, data: Any) -> bytes | None:
    """``data``'s JSON if the typed decoder (flk.events.typed) accepts it and gives back the same data: then
    the schema accepts it too (the typed decoder's contract, property-tested), so it need not be checked
    again, and these are the bytes `_wrap_fast` would write. None: check it against the schema."""
    if event_type not in TYPED_EVENTS:
        return None
    try:
        value = orjson.dumps(data)
    except (TypeError, ValueError):
        return None
    return value if typed_decode(event_type, value) == data else None


def wrap_trusted_record(
    event_type: str,
    data: dict[str, Any],
    *,
    key: str,
    source: str,
    event_id: str,
    time: datetime | None = None,
) -> OutgoingRecord:
    """`make_record` without the per-event schema check, for a hot path's *own* output.

    Only for producers whose every output is checked against its schema by their tests
    (the continuity worker's ``indices_changed``); `key` must be the registry's key field
    of `data` and `event_id` is the caller's (stable) id.
    """
    spec = registry().topic_for(event_type)
    return _wrap(event_type, spec.name, key, data, source, event_id, time or datetime.now(timezone.utc))


class TrustedWriter:
    """`wrap_trusted_record` for one event type and source, for a hot path that writes thousands a batch:
    the constant headers are built once, the time is the caller's (one per batch), and the data is
    written with orjson without the fast path's read-back check — so only for data orjson writes
    without loss (str keys; str, int within 64 bits, finite float, bool, None, lists and dicts of them),
    as a stream worker's own computed output is. Same record as `wrap_trusted_record` (tested)."""

    def __init__(self, event_type: str, source: str) -> None:
        self.topic = registry().topic_for(event_type).name
        self._source = ("ce_source", source.encode())
        self._type = ("ce_type", (CLOUDEVENTS_TYPE_PREFIX + event_type).encode())
        self._content = ("content-type", b"application/json")
        self._schema = ("ce_dataschema", f"{SCHEMA_BASE}{event_type}.json".encode())
        self._spec = ("ce_specversion", b"1.0")

    @staticmethod
    def stamp(time: datetime) -> bytes:
        """The ``ce_time`` header of an aware time (as `_wrap_fast` writes it)."""
        text = time.isoformat()
        if text.endswith("+00:00"):
            text = text[:-6] + "Z"
        return text.encode()

    def record(self, key: str, data: dict[str, Any], event_id: str, stamp: bytes) -> OutgoingRecord:
        raw_key = key.encode()
        headers = [("ce_id", event_id.encode()), self._source, self._type, ("ce_time", stamp), self._content,
                   self._schema, ("ce_partitionkey", raw_key), self._spec]
        return OutgoingRecord(self.topic, raw_key, orjson.dumps(data), headers, event_id)


def _wrap(event_type: str, topic: str, key: str, data: dict[str, Any], source: str, event_id: str,
          time: datetime, value: bytes | None = None) -> OutgoingRecord:
    """``value``: ``data``'s JSON already written by orjson and known to give ``data`` back."""
    fast = _wrap_fast(event_type, key, data, source, event_id, time, value)
    headers, value = fast if fast is not None else _wrap_sdk(event_type, key, data, source, event_id, time)
    return OutgoingRecord(topic=topic, key=key.encode(), value=value, headers=headers, event_id=event_id)


def _wrap_sdk(event_type: str, key: str, data: Any, source: Any, event_id: Any,
              time: Any) -> tuple[list[tuple[str, bytes]], bytes]:
    """The reference: the CloudEvents SDK's Kafka binary mode."""
    event = CloudEvent(
        {
            "id": event_id,
            "source": source,
            "type": cloudevents_type(event_type),
            "time": time,
            "datacontenttype": "application/json",
            "dataschema": f"{SCHEMA_BASE}{event_type}.json",
            "partitionkey": key,
        },
        data,
    )
    message = ce_kafka.to_binary(event, _FORMAT)
    return list(message.headers.items()), message.value


def _wrap_fast(event_type: str, key: str, data: Any, source: Any, event_id: Any,
               time: Any, value: bytes | None = None) -> tuple[list[tuple[str, bytes]], bytes] | None:
    """The SDK's headers, written directly, and the data with orjson; None = not sure, use the SDK."""
    if not (type(source) is str and source and type(event_id) is str and event_id and type(key) is str
            and isinstance(time, datetime) and time.tzinfo is not None and time.utcoffset() is not None):
        return None
    if value is None:
        try:
            value = orjson.dumps(data)
            if orjson.loads(value) != data:  # NaN, tuples, datetimes, ...: not what the SDK would write
                return None
        except (TypeError, ValueError):  # non-str keys, ints beyond 64 bits, other types
            return None
    stamp = time.isoformat()
    if stamp.endswith("+00:00"):
        stamp = stamp[:-6] + "Z"
    headers = [
        ("ce_id", event_id.encode()),
        ("ce_source", source.encode()),
        ("ce_type", (CLOUDEVENTS_TYPE_PREFIX + event_type).encode()),
        ("ce_time", stamp.encode()),
        ("content-type", b"application/json"),
        ("ce_dataschema", f"{SCHEMA_BASE}{event_type}.json".encode()),
        ("ce_partitionkey", key.encode()),
        ("ce_specversion", b"1.0"),
    ]
    return headers, value


def read_record(
    topic: str,
    key: bytes | None,
    value: bytes | None,
    headers: Iterable[tuple[str, bytes]],
) -> Envelope:
    """Decode and validate one consumed message; raise EnvelopeError/ContractViolation with a reason."""
    return Envelope(*_read_checked(topic, key, value, headers, fast=True, with_time=True))


def read_event(
    topic: str,
    key: bytes | None,
    value: bytes | None,
    headers: Iterable[tuple[str, bytes]],
) -> tuple[str, dict[str, Any]]:
    """`read_record`'s (event type, data) for a consumer that needs nothing else of the envelope (a stream
    worker's hot path): every check is the same, the same errors are raised, and the time is checked
    but not built as an object, nor is the envelope."""
    checked = _read_checked(topic, key, value, headers, fast=True, with_time=False)
    return checked[1], checked[5]


def _read(topic: str, key: bytes | None, value: bytes | None, headers: Iterable[tuple[str, bytes]],
          *, fast: bool) -> Envelope:
    """`read_record`; ``fast=False`` decodes with the SDK only (the reference the tests compare to)."""
    return Envelope(*_read_checked(topic, key, value, headers, fast=fast, with_time=True))


def _read_checked(topic: str, key: bytes | None, value: bytes | None, headers: Iterable[tuple[str, bytes]],
                  *, fast: bool, with_time: bool) -> tuple[str, str, str, "datetime | None", str, Any]:
    """The envelope's fields in its order (id, type, source, time, key, data), checked; the time is None
    unless ``with_time`` (a time the fast path reads is checked all the same)."""
    if fast:
        usual = usual_reader()(topic, key, value, headers)
        if usual is not None:
            event_id, event_type, source, raw_time, key_text, data = usual
            return event_id, event_type, source, _time_of(raw_time) if with_time else None, key_text, data
    if type(headers) is not list and type(headers) is not tuple:
        headers = list(headers)  # (read twice below at most)
    header_map = dict(headers)
    if not header_map.keys() <= _FAST_HEADERS:  # (the usual headers are lower case already)
        header_map = {name.lower(): raw for name, raw in headers}
    for required in ("ce_specversion", "ce_id", "ce_source", "ce_type"):
        if required not in header_map:
            raise EnvelopeError(f"missing CloudEvents header {required} (binary mode expected)")
    if header_map["ce_specversion"] != b"1.0":
        raise EnvelopeError(f"unsupported CloudEvents specversion {header_map['ce_specversion']!r}")
    if not key:
        raise EnvelopeError("message has no key")
    if value is None:
        raise EnvelopeError("message has no value")
    try:
        event_type = event_type_of(header_map["ce_type"].decode("utf-8"))
    except UnicodeDecodeError:
        raise EnvelopeError("ce_type header is not UTF-8") from None
    except AttributeError:  # a Kafka header without a value (null)
        raise EnvelopeError("ce_type header has no value") from None
    spec = registry().topic(topic)
    if event_type not in spec.events:
        raise EnvelopeError(f"event type {event_type} does not belong on topic {topic}")
    decoded = _fast(header_map, key, value, event_type, with_time) if fast else None
    if decoded is None:
        event_id, source, time, data = _decode_sdk(header_map, key, value)
        checked = False
    else:
        event_id, source, time, data, checked = decoded
    if not checked:
        if not isinstance(data, dict):
            raise ContractViolation(f"{event_type}: data must be a JSON object")
        contracts().validate(event_type, data)
    key_text = key.decode("utf-8", errors="replace")
    if data.get(spec.key) != key_text:
        raise EnvelopeError(f"message key does not match data.{spec.key}")
    return event_id, event_type, source, time, key_text, data


Decoded = tuple[str, str, "datetime | None", Any]  # id, source, time, data


def _decode_sdk(header_map: dict[str, bytes], key: bytes, value: bytes) -> Decoded:
    """The reference: the CloudEvents SDK's Kafka binary mode, errors as reasons."""
    try:
        event = ce_kafka.from_binary(ce_kafka.KafkaMessage(header_map, key, value), _FORMAT)
    except (ValueError, UnicodeDecodeError) as exc:
        raise EnvelopeError(f"value is not valid JSON: {_position(exc)}") from None
    except Exception as exc:  # the SDK's attribute validation errors
        raise EnvelopeError(f"invalid CloudEvents attributes: {type(exc).__name__}") from None
    data = event.get_data()
    if isinstance(data, (bytes, str)):  # the SDK hands back what it could not parse
        try:
            json.loads(value)
        except ValueError as exc:
            raise EnvelopeError(f"value is not valid JSON: {_position(exc)}") from None
    return event.get_id(), event.get_source(), event.get_time(), data


#: the headers the fast path decides on its own (any other header: the SDK decides), and the times it reads
_FAST_HEADERS = USUAL_HEADERS
_FAST_TIME = USUAL_TIME
#: brackets beyond which the stdlib parser may hit the recursion limit where orjson does not
_FAST_MAX_BRACKETS = 256


def _decode_fast(header_map: dict[str, bytes], key: bytes, value: bytes) -> Decoded | None:
    """What the SDK would decode, for the usual message; None = not sure, ask the SDK.

    Called after `_read`'s own checks (required headers present, specversion 1.0, key and
    value present, a known type on its topic).
    """
    decoded = _fast(header_map, key, value, None)
    return None if decoded is None else decoded[:4]


def _fast(header_map: dict[str, bytes], key: bytes, value: bytes, event_type: str | None, with_time: bool = True
          ) -> tuple[str, str, datetime | None, Any, bool] | None:
    """`_decode_fast` + whether the data is already checked against its schema: a type that has a typed
    decoder (``flk.events.typed``) is decoded and checked in one pass (True); otherwise orjson (False).
    Without ``with_time`` the time is checked (parsed) but None is returned in its place."""
    if type(key) is not bytes or type(value) is not bytes:
        return None
    if not header_map.keys() <= _FAST_HEADERS:
        return None
    content_type = header_map.get("content-type")
    if content_type is not None and content_type != b"application/json":
        return None
    if not header_map.get("ce_dataschema", b"-") or not header_map["ce_id"] or not header_map["ce_source"]:
        return None
    try:
        if not b"".join(header_map.values()).isascii():  # (ASCII is UTF-8: the usual headers are ASCII)
            for raw in header_map.values():
                raw.decode("utf-8")
        key.decode("utf-8")
        event_id = header_map["ce_id"].decode("utf-8")
        source = header_map["ce_source"].decode("utf-8")
    except (UnicodeDecodeError, AttributeError, TypeError):  # not UTF-8, not bytes
        return None
    raw_time = header_map.get("ce_time")  # (without one, the SDK stamps the time of reading)
    if raw_time is None or _FAST_TIME.fullmatch(raw_time) is None:
        return None
    try:
        time = datetime.fromisoformat(raw_time.decode("ascii"))
    except ValueError:
        return None
    time = _as_sdk_time(time, raw_time) if with_time else None
    if event_type is not None:
        typed = typed_decode(event_type, value)
        if typed is not None:
            return event_id, source, time, typed, True
    if value.count(b"[") + value.count(b"{") > _FAST_MAX_BRACKETS:
        return None
    try:
        data = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    if type(data) is not dict:
        return None
    return event_id, source, time, data, False


def _as_sdk_time(time: datetime, raw_time: bytes) -> datetime:
    """A time read from a ce_time header (``datetime.fromisoformat``) with the tz objects the SDK's parser
    (dateutil) gives: the same instants and offsets."""
    if raw_time[-1] == 90:  # b"Z"
        return time.replace(tzinfo=_tz.UTC)
    offset = time.utcoffset()
    return time.replace(tzinfo=_tz.UTC if not offset else _tz.tzoffset(None, int(offset.total_seconds())))


def _time_of(raw_time: bytes) -> datetime:
    """The time of a ce_time header the usual read has checked."""
    return _as_sdk_time(datetime.fromisoformat(raw_time.decode("ascii")), raw_time)


_usual: Any = None


def usual_reader() -> Any:
    """``flk.events.usual.read_usual``: from its compiled twin where one is built from the current source
    (chosen at the first call: choosing reads the module's source). A batch worker may call it before
    `read_event` (None: call `read_event`), which it saves two calls per message."""
    global _usual
    if _usual is None:
        from flk.events import usual
        from flk.native import twin

        _usual = twin(usual).module.read_usual
    return _usual


def _position(exc: Exception) -> str:
    pos = getattr(exc, "pos", None)
    return f"error at byte {pos}" if pos is not None else type(exc).__name__
