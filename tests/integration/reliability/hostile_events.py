"""Hostile input for the consumers: valid-looking events from the JSON Schemas (hypothesis-jsonschema)
mixed with garbage, each labelled with whether a consumer must process it or dead-letter it.

Pure (no I/O): `generate(n, topics, seed)` gives the same messages for the same arguments.

Valid events: hypothesis-jsonschema draws a small pool of examples per event type (derandomized,
so reproducible), and every valid message is a field-wise recombination of pool examples,
re-validated against the contract (hypothesis-jsonschema costs ~30 ms per example; recombination
gives thousands of distinct valid events for the price of a few hundred). The pool already holds
odd but valid values: years 0001–9999, offsets like -14:25, non-Latin strings.
"""
from __future__ import annotations

import copy
import json
import random
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache

from flk.events.contracts import ContractViolation, contracts
from flk.events.envelope import make_record
from flk.events.registry import registry

GOOD_KINDS = ("valid", "duplicate", "future_dated", "unknown_unit_wellformed")
BAD_KINDS = (
    "truncated_json", "not_json_bytes", "huge_payload", "wrong_field_type", "missing_required_field",
    "extra_field", "personnummer_as_patient_key", "samordningsnummer_as_patient_key",
    "unknown_unit_malformed", "no_cloudevents_headers", "event_type_of_another_topic", "unknown_event_type",
    "key_not_matching_data", "no_key", "null_value", "json_array_value", "wrong_specversion",
)
#: personnummer-looking values (valid Luhn, 10- and 12-digit forms) and a samordningsnummer
PERSONNUMMER_LIKE = ("19121212-1212", "191212121212", "121212-1212", "201212121212")
SAMORDNINGSNUMMER_LIKE = ("19121272-1219", "121272-1219")
HUGE_BYTES = 600_000


@dataclass(frozen=True)
class Message:
    topic: str  # registry name (no prefix)
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    kind: str
    event_type: str | None = None
    event_id: str | None = None

    @property
    def good(self) -> bool:
        return self.kind in GOOD_KINDS


def _inline_refs(node, shared):
    """hypothesis-jsonschema cannot follow remote $refs: inline the shared definitions."""
    if isinstance(node, dict):
        if "$ref" in node:
            uri, _, pointer = node["$ref"].partition("#")
            target = shared[f"https://schemas.flk.se/events/{uri}"]
            for part in pointer.strip("/").split("/"):
                target = target[part]
            return _inline_refs(target, shared)
        return {k: _inline_refs(v, shared) for k, v in node.items()
                if k not in ("$id", "$schema", "x-cloudevents-type")}
    if isinstance(node, list):
        return [_inline_refs(v, shared) for v in node]
    return node


@cache
def example_pool(event_type: str, size: int = 6) -> tuple[dict, ...]:
    """Schema-valid examples drawn by hypothesis-jsonschema (derandomized: the same every run)."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis_jsonschema import from_schema

    c = contracts()
    found: list[dict] = []

    @settings(max_examples=size, database=None, derandomize=True, phases=[Phase.generate], deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(from_schema(_inline_refs(c.schema(event_type), c.shared)))
    def collect(example: dict) -> None:
        found.append(example)

    collect()
    return tuple(found)


def _recombine(event_type: str, rng: random.Random) -> dict:
    """A valid event: each field from a random pool example (retried until the contract accepts it)."""
    pool = example_pool(event_type)
    for _ in range(20):
        base = copy.deepcopy(rng.choice(pool))
        for field in list(base):
            donor = rng.choice(pool)
            if field in donor:
                base[field] = copy.deepcopy(donor[field])
        for field, value in rng.choice(pool).items():  # optional fields the base lacked
            base.setdefault(field, copy.deepcopy(value)) if rng.random() < 0.3 else None
        _ordered_periods(base)
        try:
            contracts().validate(event_type, base)
            return base
        except ContractViolation:
            continue
    return copy.deepcopy(rng.choice(pool))


#: (from, to) date fields that form a period: a valid event never ends before it starts (the schemas
#: cannot say so; the notifier refuses such a period, see docs/reliability.md, "What the tests found")
PERIODS = (("sabo_from", "sabo_to"),)


def _ordered_periods(data: dict) -> None:
    for lo, hi in PERIODS:
        if isinstance(data.get(lo), str) and isinstance(data.get(hi), str) and data[hi] < data[lo]:
            data[lo], data[hi] = data[hi], data[lo]


def _with_future_dates(data: dict) -> dict:
    out = dict(data)
    for field, value in data.items():
        if isinstance(value, str) and len(value) >= 10 and value[4:5] == "-" and value[7:8] == "-" \
                and value[:4].isdigit():
            out[field] = "2031" + value[4:]
    return out


def _with_unit(data: dict, unit: str) -> dict | None:
    if "care_unit_id" not in data:
        return None
    return {**data, "care_unit_id": unit}


def _record(event_type: str, data: dict) -> Message | None:
    try:
        r = make_record(event_type, data, source="urn:test:hostile")
    except ContractViolation:
        return None
    return Message(r.topic, r.key, r.value, tuple(r.headers), "valid", event_type, r.event_id)


def _replace_header(headers: Iterable[tuple[str, bytes]], name: str, value: bytes) -> tuple:
    return tuple((k, value if k == name else v) for k, v in headers)


def _bad(kind: str, good: Message, rng: random.Random, other_type: str) -> Message:
    data = json.loads(good.value)
    key, value, headers = good.key, good.value, good.headers
    if kind == "truncated_json":
        value = value[: max(1, rng.randrange(1, len(value)))]
    elif kind == "not_json_bytes":
        value = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200))) + b"\xff\xfe"
    elif kind == "huge_payload":
        value = json.dumps({**data, "padding": "x" * HUGE_BYTES}).encode()
    elif kind == "wrong_field_type":
        field = rng.choice(sorted(data))
        data[field] = rng.choice([12345, ["list"], {"nested": True}, True, 3.5]) if isinstance(data[field], str) \
            else "not-the-right-type"
        value = json.dumps(data).encode()
    elif kind == "missing_required_field":
        required = [f for f in contracts().schema(good.event_type)["required"]
                    if f != registry().topic_for(good.event_type).key]
        data.pop(rng.choice(required))
        value = json.dumps(data).encode()
    elif kind == "extra_field":
        value = json.dumps({**data, "surprise_field": "hej"}).encode()
    elif kind in ("personnummer_as_patient_key", "samordningsnummer_as_patient_key"):
        pnr = rng.choice(PERSONNUMMER_LIKE if kind.startswith("personnummer") else SAMORDNINGSNUMMER_LIKE)
        data["patient_key"] = pnr
        key, value = pnr.encode(), json.dumps(data).encode()
    elif kind == "unknown_unit_malformed":
        data["care_unit_id"] = rng.choice(["VC-OKAND", "SE123-", "", "SE2321000016-" + "x" * 60])
        value = json.dumps(data).encode()
    elif kind == "no_cloudevents_headers":
        headers = tuple((k, v) for k, v in headers if not k.startswith("ce_"))
    elif kind == "event_type_of_another_topic":
        headers = _replace_header(headers, "ce_type", f"se.flk.{other_type}".encode())
    elif kind == "unknown_event_type":
        headers = _replace_header(headers, "ce_type", b"se.flk.no_such_event.v1")
    elif kind == "key_not_matching_data":
        key = b"pk1_" + bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz234567") for _ in range(26))
    elif kind == "no_key":
        key = None
    elif kind == "null_value":
        value = None
    elif kind == "json_array_value":
        value = json.dumps([data]).encode()
    elif kind == "wrong_specversion":
        headers = _replace_header(headers, "ce_specversion", b"0.3")
    else:  # pragma: no cover
        raise ValueError(kind)
    return Message(good.topic, key, value, headers, kind, good.event_type, good.event_id)


def _accepted(m: Message) -> bool:
    """The platform's own verdict (what every consumer applies): the label must agree with it."""
    from flk.events.envelope import EnvelopeError, read_record

    try:
        read_record(m.topic, m.key, m.value, m.headers)
    except (EnvelopeError, ContractViolation):
        return False
    return True


def _bad_kinds_for(event_type: str) -> list[str]:
    kinds = list(BAD_KINDS)
    if "care_unit_id" not in contracts().schema(event_type)["properties"]:
        kinds.remove("unknown_unit_malformed")
    return kinds


def generate(n: int, topics: Iterable[str], seed: int = 20261123, bad_share: float = 0.4,
             huge_max: int = 10) -> list[Message]:
    """`n` messages for the registry topics `topics`: ~`bad_share` garbage, the rest valid-looking."""
    rng = random.Random(seed)
    reg = registry()
    types = [(t, e) for t in sorted(set(topics)) for e in reg.topic(t).events]
    all_types = reg.event_types
    messages: list[Message] = []
    goods: list[Message] = []
    huge = 0
    while len(messages) < n:
        topic, event_type = rng.choice(types)
        data = _recombine(event_type, rng)
        if rng.random() < bad_share:
            kind = rng.choice(_bad_kinds_for(event_type))
            if kind == "huge_payload":
                if huge >= huge_max:
                    continue
                huge += 1
            base = _record(event_type, data)
            if base is None:
                continue
            other = rng.choice([e for e in all_types if e not in reg.topic(topic).events])
            bad = _bad(kind, base, rng, other)
            if _accepted(bad):  # e.g. a "wrong type" the schema happens to allow: not garbage after all
                continue
            messages.append(bad)
            continue
        roll = rng.random()
        if roll < 0.05 and goods:
            dup = rng.choice(goods)
            messages.append(Message(dup.topic, dup.key, dup.value, dup.headers, "duplicate", dup.event_type,
                                    dup.event_id))
            continue
        kind = "valid"
        if roll < 0.10:
            data, kind = _with_future_dates(data), "future_dated"
            _ordered_periods(data)
        elif roll < 0.15 and (changed := _with_unit(data, f"SE2321000016-OKAND{rng.randrange(10**6)}")):
            data, kind = changed, "unknown_unit_wellformed"
        m = _record(event_type, data)
        if m is None:
            continue
        m = Message(m.topic, m.key, m.value, m.headers, kind, m.event_type, m.event_id)
        if not _accepted(m):
            continue
        goods.append(m)
        messages.append(m)
    return messages
