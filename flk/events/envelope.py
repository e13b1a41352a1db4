"""CloudEvents 1.0 envelope in Kafka **binary mode**, used by every producer and consumer.

The event data is the Kafka value (JSON, validated against its schema); the CloudEvents
attributes travel as ``ce_*`` headers; the Kafka key is the registry's key field of the
data (the pseudonymous patient key on patient topics). Conversion is the `cloudevents`
SDK's Kafka binding; this module adds the registry, the contracts and clear errors.
"""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterable

from cloudevents.core.bindings import kafka as ce_kafka
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from flk.events.contracts import SCHEMA_BASE, ContractViolation, cloudevents_type, contracts, event_type_of
from flk.events.registry import registry

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
    return str(uuid.uuid5(FLK_NAMESPACE, "\x1f".join(str(p) for p in parts)))


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
    contracts().validate(event_type, data)
    spec = registry().topic_for(event_type)
    key = data.get(spec.key)
    if not isinstance(key, str) or not key:
        raise ContractViolation(f"{event_type}: the key field {spec.key!r} is missing")
    if event_id is None:
        event_id = derived_id(event_type, json.dumps(data, sort_keys=True, ensure_ascii=False))
    event = CloudEvent(
        {
            "id": event_id,
            "source": source,
            "type": cloudevents_type(event_type),
            "time": time or datetime.now(timezone.utc),
            "datacontenttype": "application/json",
            "dataschema": f"{SCHEMA_BASE}{event_type}.json",
            "partitionkey": key,
        },
        data,
    )
    message = ce_kafka.to_binary(event, _FORMAT)
    return OutgoingRecord(
        topic=spec.name,
        key=key.encode(),
        value=message.value,
        headers=list(message.headers.items()),
        event_id=event_id,
    )


def read_record(
    topic: str,
    key: bytes | None,
    value: bytes | None,
    headers: Iterable[tuple[str, bytes]],
) -> Envelope:
    """Decode and validate one consumed message; raise EnvelopeError/ContractViolation with a reason."""
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
    spec = registry().topic(topic)
    if event_type not in spec.events:
        raise EnvelopeError(f"event type {event_type} does not belong on topic {topic}")
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
    if not isinstance(data, dict):
        raise ContractViolation(f"{event_type}: data must be a JSON object")
    contracts().validate(event_type, data)
    key_text = key.decode("utf-8", errors="replace")
    if data.get(spec.key) != key_text:
        raise EnvelopeError(f"message key does not match data.{spec.key}")
    time = event.get_time()
    return Envelope(
        id=event.get_id(),
        event_type=event_type,
        source=event.get_source(),
        time=time,
        key=key_text,
        data=data,
    )


def _position(exc: Exception) -> str:
    pos = getattr(exc, "pos", None)
    return f"error at byte {pos}" if pos is not None else type(exc).__name__
