"""PatientCareState <-> compact JSON (the ``state`` column of ``notifier.patient_care_state``).

Generic over the domain's frozen dataclasses, driven by their type hints, so a field added to
the domain is stored without touching this module. Compact: fields equal to their default are
left out (most patients have no SÄBO period, no decline, no gap).

Formats: 1 (no ``_format`` key) is the FLK-only state; 2 added the fast-vårdkontakt fields
(:data:`FORMAT_2_FIELDS`, all with defaults). A state is stored as format 2 (``"_format": 2``)
only when it holds one of them, so a patient without fast-vårdkontakt data is stored exactly as
before, and a format-1 state decodes unchanged. A state of a newer format than this code knows
is refused with a clear error rather than decoded wrongly.
"""
from __future__ import annotations

import dataclasses
import enum
import types
import typing
import uuid
from datetime import datetime
from functools import cache
from typing import Any

from services.notifier.domain.care_gaps import PatientCareState


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _encode(value: Any) -> Any:
    """The generic encoder, driven by the value's runtime type (the reference :func:`_encoder_for`'s
    compiled functions are tested against)."""
    if value is None or isinstance(value, (bool, int, float, str)) and not isinstance(value, enum.Enum):
        return value
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if dataclasses.is_dataclass(value):
        out: dict[str, Any] = {}
        for f in dataclasses.fields(value):
            v = getattr(value, f.name)
            if f.default is not dataclasses.MISSING and v == f.default:
                continue
            out[f.name] = _encode(v)
        return out
    if isinstance(value, frozenset):
        return sorted(_encode(v) for v in value)
    if isinstance(value, tuple):
        return [_encode(v) for v in value]
    raise TypeError(f"cannot encode {type(value).__name__}")


def _decode(tp: Any, raw: Any) -> Any:
    """The generic decoder, driven by the type hints (the reference for :func:`_decoder_for`)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if raw is None:
            return None
        if len(args) != 1:
            raise TypeError(f"ambiguous union {tp}")
        return _decode(args[0], raw)
    if origin is frozenset:
        (inner,) = typing.get_args(tp)
        return frozenset(_decode(inner, v) for v in raw)
    if origin is tuple:
        inner = typing.get_args(tp)[0]
        return tuple(_decode(inner, v) for v in raw)
    if tp is datetime:
        return datetime.fromisoformat(raw)
    if tp is uuid.UUID:
        return uuid.UUID(raw)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return tp(raw)
    if dataclasses.is_dataclass(tp):
        hints = _hints(tp)
        return tp(**{name: _decode(hints[name], v) for name, v in raw.items()})
    if tp in (bool, int, float, str):
        return raw
    raise TypeError(f"cannot decode {tp}")


# ---- compiled: the same mapping, resolved once per type (the notifier encodes and decodes a state
# per patient per consumed chunk; walking the type hints each time was a fifth of its CPU) ---------

def _identity(value: Any) -> Any:
    return value


def _iso(value: datetime) -> str:
    return value.isoformat()


def _enum_value(value: enum.Enum) -> Any:
    return value.value


@cache
def _encoder_for(tp: Any) -> typing.Callable[[Any], Any]:
    """A function encoding values of the type hint ``tp`` exactly as :func:`_encode` does."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) != 1:
            raise TypeError(f"ambiguous union {tp}")
        inner = _encoder_for(args[0])
        return lambda v: None if v is None else inner(v)
    if origin is frozenset:
        inner = _encoder_for(typing.get_args(tp)[0])
        return lambda v: sorted(inner(x) for x in v)
    if origin is tuple:
        inner = _encoder_for(typing.get_args(tp)[0])
        return lambda v: [inner(x) for x in v]
    if tp is datetime:
        return _iso
    if tp is uuid.UUID:
        return str
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return _enum_value
    if dataclasses.is_dataclass(tp):
        hints = _hints(tp)
        fields = [(f.name, f.default is not dataclasses.MISSING, f.default, _encoder_for(hints[f.name]))
                  for f in dataclasses.fields(tp)]

        def encode_dataclass(value: Any) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for name, has_default, default, encode in fields:
                v = getattr(value, name)
                if has_default and v == default:
                    continue
                out[name] = encode(v)
            return out

        return encode_dataclass
    if tp in (bool, int, float, str):
        return _identity
    raise TypeError(f"cannot encode {tp}")


@cache
def _decoder_for(tp: Any) -> typing.Callable[[Any], Any]:
    """A function decoding the JSON of the type hint ``tp`` exactly as :func:`_decode` does."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) != 1:
            raise TypeError(f"ambiguous union {tp}")
        inner = _decoder_for(args[0])
        return lambda raw: None if raw is None else inner(raw)
    if origin is frozenset:
        inner = _decoder_for(typing.get_args(tp)[0])
        return lambda raw: frozenset(inner(x) for x in raw)
    if origin is tuple:
        inner = _decoder_for(typing.get_args(tp)[0])
        return lambda raw: tuple(inner(x) for x in raw)
    if tp is datetime:
        return datetime.fromisoformat
    if tp is uuid.UUID:
        return uuid.UUID
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return tp
    if dataclasses.is_dataclass(tp):
        decoders = {name: _decoder_for(hint) for name, hint in _hints(tp).items()}

        def decode_dataclass(raw: dict[str, Any]) -> Any:
            return tp(**{name: decoders[name](v) for name, v in raw.items()})

        return decode_dataclass
    if tp in (bool, int, float, str):
        return _identity
    raise TypeError(f"cannot decode {tp}")


#: the newest state format this code writes and reads
STATE_FORMAT = 2
#: the PatientCareState fields that format 2 added (fast vårdkontakt)
FORMAT_2_FIELDS = frozenset({"fvk_appointments", "ended_fvk_ids", "last_fvk_ended_at", "open_fvk_gap", "last_fvk_gap"})
_FORMAT_KEY = "_format"


class UnknownStateFormat(ValueError):
    pass


def encode_state(state: PatientCareState) -> dict[str, Any]:
    out = _encoder_for(PatientCareState)(state)
    if FORMAT_2_FIELDS & out.keys():
        out[_FORMAT_KEY] = 2
    return out


def decode_state(raw: dict[str, Any]) -> PatientCareState:
    raw = dict(raw)
    fmt = raw.pop(_FORMAT_KEY, 1)
    if not isinstance(fmt, int) or fmt > STATE_FORMAT:
        raise UnknownStateFormat(f"care state format {fmt!r} is newer than this notifier ({STATE_FORMAT})")
    return _decoder_for(PatientCareState)(raw)
