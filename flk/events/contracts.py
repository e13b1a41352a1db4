"""The event contracts: one JSON Schema (draft 2020-12) per event type and version.

`contracts().validate(event_type, data)` is the check every boundary runs. Validation uses
a compiled validator (fastjsonschema) for speed; `reference_validator()` gives the
`jsonschema` reference implementation, and a test keeps the two in agreement.
"""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any, Callable

SCHEMA_BASE = "https://schemas.flk.se/events/"
CLOUDEVENTS_TYPE_PREFIX = "se.flk."


class ContractViolation(ValueError):
    """The data does not satisfy its event type's schema (or the type is unknown)."""


def cloudevents_type(event_type: str) -> str:
    """'visit.recorded.v1' -> 'se.flk.visit.recorded.v1'."""
    return CLOUDEVENTS_TYPE_PREFIX + event_type


def event_type_of(ce_type: str) -> str:
    if not ce_type.startswith(CLOUDEVENTS_TYPE_PREFIX):
        raise ContractViolation(f"unknown event type {ce_type!r} (not se.flk.*)")
    return ce_type[len(CLOUDEVENTS_TYPE_PREFIX):]


@dataclass
class Contracts:
    schemas: dict[str, dict]  # event type -> schema
    shared: dict[str, dict]  # $id -> schema, for $ref resolution
    _compiled: dict[str, Callable[[Any], Any]] = field(default_factory=dict, repr=False)

    @property
    def event_types(self) -> tuple[str, ...]:
        return tuple(sorted(self.schemas))

    def schema(self, event_type: str) -> dict:
        try:
            return self.schemas[event_type]
        except KeyError:
            raise ContractViolation(f"unknown event type {event_type!r}") from None

    def validator(self, event_type: str) -> Callable[[Any], Any]:
        compiled = self._compiled.get(event_type)
        if compiled is None:
            import fastjsonschema

            store = self.shared
            # fastjsonschema rewrites $refs in the dicts it is given: hand it copies
            compiled = fastjsonschema.compile(
                copy.deepcopy(self.schema(event_type)),
                handlers={"https": lambda uri: copy.deepcopy(store[uri])},
                formats={"date": _is_date, "date-time": _is_date_time},
            )
            self._compiled[event_type] = compiled
        return compiled

    def validate(self, event_type: str, data: Any) -> None:
        import fastjsonschema

        try:
            self.validator(event_type)(data)
        except fastjsonschema.JsonSchemaValueException as exc:
            raise ContractViolation(f"{event_type}: {exc.message}") from None

    def reference_validator(self, event_type: str):
        """The jsonschema (reference implementation) validator for a type."""
        from jsonschema import Draft202012Validator, FormatChecker
        from referencing import Registry, Resource

        reg = Registry().with_resources(
            (uri, Resource.from_contents(schema)) for uri, schema in self.shared.items()
        )
        return Draft202012Validator(self.schema(event_type), registry=reg, format_checker=FormatChecker())


def _is_date(value: str) -> bool:
    from datetime import date

    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return len(value) == 10


def _is_date_time(value: str) -> bool:
    from datetime import datetime

    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return False
    return parsed.tzinfo is not None


def load_contracts() -> Contracts:
    folder = resources.files("schemas") / "events"
    schemas: dict[str, dict] = {}
    shared: dict[str, dict] = {}
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".json"):
            continue
        schema = json.loads(entry.read_text(encoding="utf-8"))
        shared[schema["$id"]] = schema
        ce_type = schema.get("x-cloudevents-type")
        if ce_type is not None:
            event_type = event_type_of(ce_type)
            if entry.name != f"{event_type}.json":
                raise ValueError(f"schema file {entry.name} does not match its type {ce_type}")
            schemas[event_type] = schema
    return Contracts(schemas, shared)


@cache
def contracts() -> Contracts:
    return load_contracts()
