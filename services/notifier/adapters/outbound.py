"""Domain events and delivery outcomes -> the event data we publish (validated by the contracts)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from flk.events.contracts import contracts
from flk.events.envelope import derived_id
from services.notifier.domain.care_gaps import CareGapOpened, CareGapResolved, GapEvent

CARE_GAP_OPENED = "care_gap.opened.v1"
CARE_GAP_RESOLVED = "care_gap.resolved.v1"
ALERT_DELIVERED = "alert.delivered.v1"


@dataclass(frozen=True)
class OutboxEvent:
    event_id: str  # deterministic: a replay gives the same id, so duplicates are detectable
    event_type: str
    data: dict[str, Any]
    event_time: datetime


def _ts(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def gap_event(event: GapEvent) -> OutboxEvent:
    if isinstance(event, CareGapOpened):
        data = {
            "gap_id": str(event.gap_id),
            "patient_key": event.patient_key,
            "care_unit_id": event.unit_id,
            "cause": event.cause.value,
            "rub": event.rub,
            "sabo": event.sabo,
            "opened_at": _ts(event.opened_at),
            "kind": event.kind.value,
        }
        result = OutboxEvent(derived_id(CARE_GAP_OPENED, event.gap_id), CARE_GAP_OPENED, data, event.opened_at)
    elif isinstance(event, CareGapResolved):
        data = {
            "gap_id": str(event.gap_id),
            "patient_key": event.patient_key,
            "care_unit_id": event.unit_id,
            "resolution": event.resolution.value,
            "resolved_at": _ts(event.resolved_at),
            "kind": event.kind.value,
        }
        result = OutboxEvent(derived_id(CARE_GAP_RESOLVED, event.gap_id), CARE_GAP_RESOLVED, data, event.resolved_at)
    else:  # pragma: no cover
        raise TypeError(type(event).__name__)
    contracts().validate(result.event_type, result.data)
    return result


def alert_delivered_event(alert_id: str, unit_id: str, channel: str, kind: str, gap_count: int,
                          attempts: int, delivered_at: datetime) -> OutboxEvent:
    data = {
        "alert_id": alert_id,
        "care_unit_id": unit_id,
        "channel": channel,
        "kind": _WIRE_KIND[kind],
        "gap_count": gap_count,
        "attempts": attempts,
        "delivered_at": _ts(delivered_at),
    }
    contracts().validate(ALERT_DELIVERED, data)
    return OutboxEvent(derived_id(ALERT_DELIVERED, alert_id, channel), ALERT_DELIVERED, data, delivered_at)


#: domain AlertKind value -> the contract's kind
_WIRE_KIND = {"new_gaps": "immediate", "daily_digest": "digest", "escalation": "escalation"}
