"""P2 — ids only, made structural.

Every command and event class of the listing domain is declared with :func:`ids_only`
instead of a bare ``@dataclass``. The decorator makes the class a frozen, slotted
dataclass and refuses — at import time, with ``TypeError`` — any field that could carry
a name, an address or other free text about a person:

* a field name containing a forbidden word (``name``, ``namn``, ``address``, ...);
* a field type outside the allow-list (ids as ``str``, dates, bools, ints, ``Decimal``,
  Enums, frozensets/tuples of those, and ``None``);
* a ``str`` field whose name does not say it is an identifier (``*_key``, ``*_id``,
  ``*_hsa_id``, ``*_keys``) or one of the few vetted code fields below.

So an event about a person with skyddad folkbokföring cannot leak a name or an address:
there is nowhere to put one.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from datetime import date
from decimal import Decimal

# Words that must never appear in a field name of a command or event: anywhere in the name ...
FORBIDDEN_SUBSTRINGS: frozenset[str] = frozenset(
    {"name", "namn", "address", "adress", "personnummer", "phone", "telefon", "email", "epost", "postnummer"}
)
# ... or as a whole ``_``-separated part of it (short words that occur inside harmless words,
# e.g. "city" in "capacity").
FORBIDDEN_TOKENS: frozenset[str] = frozenset(
    {"street", "gata", "postal", "zip", "city", "ort", "ssn", "text", "note", "comment", "free", "description"}
)

# String fields allowed although their name is not an id: short codes from closed vocabularies.
VETTED_CODE_FIELDS: frozenset[str] = frozenset({"profession", "decided_under", "residency_exception"})

_T = typing.TypeVar("_T")
_ID_SUFFIXES = ("_key", "_keys", "_id", "_ids", "_hsa_id")
_SCALARS: tuple[type, ...] = (str, date, bool, int, Decimal, type(None))


def _allowed_type(tp: object) -> bool:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return all(_allowed_type(arg) for arg in typing.get_args(tp))
    if origin in (frozenset, tuple):
        return all(arg is Ellipsis or _allowed_type(arg) for arg in typing.get_args(tp))
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return True
    return tp in _SCALARS


def _mentions_str(tp: object) -> bool:
    if tp is str:
        return True
    return any(_mentions_str(arg) for arg in typing.get_args(tp))


def check_ids_only(cls: type) -> None:
    """Raise TypeError when a dataclass has a field that could carry personal free text."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        lowered = f.name.lower()
        bad_word = next((w for w in FORBIDDEN_SUBSTRINGS if w in lowered), None) or next(
            (t for t in lowered.split("_") if t in FORBIDDEN_TOKENS), None
        )
        if bad_word is not None:
            raise TypeError(f"{cls.__name__}.{f.name}: field names must not contain {bad_word!r} (P2)")
        tp = hints[f.name]
        if not _allowed_type(tp):
            raise TypeError(f"{cls.__name__}.{f.name}: type {tp!r} is not allowed in an ids-only record (P2)")
        if _mentions_str(tp) and not (lowered.endswith(_ID_SUFFIXES) or lowered in VETTED_CODE_FIELDS):
            raise TypeError(
                f"{cls.__name__}.{f.name}: a str field must be an identifier (*_key, *_id, *_hsa_id) (P2)"
            )


def ids_only(cls: type[_T]) -> type[_T]:
    """Declare a frozen, slotted dataclass that can only hold ids, codes, dates and numbers."""
    made = dataclasses.dataclass(frozen=True, slots=True, kw_only=True)(cls)
    check_ids_only(made)
    return made
