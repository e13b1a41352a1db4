"""The topic registry (`schemas/topics.yaml`), the one place topic names come from.

Code names a topic by the event type it carries (`topic_for("visit.recorded.v1")`): every
event type lives in exactly one topic, so no topic-name literal is needed anywhere else.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from importlib import resources

import yaml

DLQ_SUFFIX = ".dlq"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    key: str  # the field of the event data that is the Kafka message key
    writer: str  # the one service or external system that produces to it
    events: tuple[str, ...]  # event types, "<name>.v<version>"
    partitions: int
    retention_ms: int
    dlq_retention_ms: int = -1  # of the dead-letter topic
    #: "delete" (an event log) or "compact" (a table's changelog: the latest record per key)
    cleanup_policy: str = "delete"
    #: the table a changelog topic backs (``cleanup_policy: compact``); its writer is the only reader
    #: too. A changelog carries state records, not events, and has no dead-letter twin.
    changelog_of: str | None = None

    @property
    def dlq(self) -> str:
        return self.name + DLQ_SUFFIX

    @property
    def is_patient_topic(self) -> bool:
        return self.key == "patient_key"

    @property
    def is_changelog(self) -> bool:
        return self.changelog_of is not None

    @property
    def names(self) -> tuple[str, ...]:
        """The topic and its dead-letter twin (a changelog has none)."""
        return (self.name,) if self.is_changelog else (self.name, self.dlq)


@dataclass(frozen=True)
class TopicRegistry:
    topics: tuple[TopicSpec, ...]
    patient_partitions: int

    def __post_init__(self) -> None:
        seen: dict[str, str] = {}
        for spec in self.topics:
            for event_type in spec.events:
                if event_type in seen:
                    raise ValueError(f"event type {event_type} is in both {seen[event_type]} and {spec.name}")
                seen[event_type] = spec.name
            if spec.is_patient_topic and spec.partitions != self.patient_partitions:
                raise ValueError(f"patient topic {spec.name} must have {self.patient_partitions} partitions")
            if spec.cleanup_policy not in ("delete", "compact"):
                raise ValueError(f"topic {spec.name}: cleanup_policy must be delete or compact")
            if spec.is_changelog and (spec.events or spec.cleanup_policy != "compact"):
                raise ValueError(f"changelog topic {spec.name} must be compacted and carry no event types")
        # lookups by name and by event type are on every event's path: index them once
        by_name: dict[str, TopicSpec] = {}
        for spec in self.topics:
            by_name.setdefault(spec.name, spec)
        object.__setattr__(self, "_by_name", by_name)
        object.__setattr__(self, "_by_event", {t: spec for spec in reversed(self.topics) for t in spec.events})

    def topic(self, name: str) -> TopicSpec:
        try:
            return self._by_name[name]
        except (KeyError, TypeError):
            raise KeyError(f"no topic {name!r} in the registry") from None

    def topic_for(self, event_type: str) -> TopicSpec:
        try:
            return self._by_event[event_type]
        except (KeyError, TypeError):
            raise KeyError(f"no topic carries event type {event_type!r}") from None

    def topics_carrying(self, event_types: Iterable[str]) -> tuple[str, ...]:
        """The names of the topics that carry these event types (what a consumer of them subscribes to), sorted."""
        return tuple(sorted({self.topic_for(t).name for t in event_types}))

    def changelog(self, writer: str, table: str) -> TopicSpec:
        """The changelog topic of ``writer``'s table ``table``."""
        for spec in self.topics:
            if spec.writer == writer and spec.changelog_of == table:
                return spec
        raise KeyError(f"no changelog topic for {writer}'s table {table!r} in the registry")

    def written_by(self, writer: str) -> tuple[TopicSpec, ...]:
        return tuple(spec for spec in self.topics if spec.writer == writer)

    @property
    def event_types(self) -> tuple[str, ...]:
        return tuple(t for spec in self.topics for t in spec.events)


def parse_registry(document: dict) -> TopicRegistry:
    patient_partitions = int(document["patient_partitions"])
    dlq_retention_ms = int(document.get("dlq_retention_ms", -1))
    specs = []
    for entry in document["topics"]:
        key = entry["key"]
        specs.append(TopicSpec(
            name=entry["name"],
            key=key,
            writer=entry["writer"],
            events=tuple(entry["events"]),
            partitions=int(entry.get("partitions", patient_partitions)),
            retention_ms=int(entry.get("retention_ms", -1)),
            dlq_retention_ms=int(entry.get("dlq_retention_ms", dlq_retention_ms)),
            cleanup_policy=str(entry.get("cleanup_policy", "delete")),
            changelog_of=entry.get("changelog_of"),
        ))
    return TopicRegistry(tuple(specs), patient_partitions)


@cache
def registry() -> TopicRegistry:
    text = (resources.files("schemas") / "topics.yaml").read_text(encoding="utf-8")
    return parse_registry(yaml.safe_load(text))
