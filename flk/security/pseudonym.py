"""Person ids and the pseudonymous patient key.

- Personnummer are validated with python-stdnum (`stdnum.se.personnummer`): format, date and
  the Luhn check digit; 10-digit forms with '-' or '+' (100 years or older) are accepted.
- Samordningsnummer (day + 60) are rejected by stdnum's personnummer module, so they are
  checked with stdnum's Luhn and a real date after subtracting 60 from the day.
- Reservnummer follow regional formats and are never Luhn-checked: a region configures the
  pattern; they are only accepted where a pattern is given.
- python-stdnum is the definition (`parse_person_id_stdnum`), but it costs ~20–30 µs a number at
  a load of 2–3 (~100 µs and more under heavy load), which a national extract (~10 M persons)
  pays once per person. The common written forms (12 ASCII digits, 10 digits, and either with
  '-' or '+' before the last four) take an exact fast path (string slices, a Luhn table,
  `datetime.date`) that gives the same PersonId or the same InvalidPersonId; anything else —
  other separators, non-ASCII digits, years before 1000 — goes through stdnum.
  tests/unit/platform/test_person_id_fast_path.py proves the equality.

The patient key is ``pk1_`` + base32 of the first 128 bits of HMAC-SHA256(key, 12-digit id).
The key (``FLK_PSEUDONYM_KEY``) lives in the deployment's secret store, never in Kafka or
the database; without it a key cannot be linked back to a person. Re-identification goes
only through the encrypted vault (`flk.security.vault`).
"""
from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import date
from typing import Callable, Literal

from stdnum import luhn
from stdnum.exceptions import ValidationError
from stdnum.se import personnummer as stdnum_personnummer

IdKind = Literal["personnummer", "samordningsnummer", "reservnummer"]
PATIENT_KEY_PATTERN = re.compile(r"^pk1_[a-z2-7]{26}$")


class InvalidPersonId(ValueError):
    """Not a valid personnummer, samordningsnummer or configured reservnummer (no value echoed)."""


@dataclass(frozen=True)
class PersonId:
    kind: IdKind
    value: str  # 12 digits for personnummer/samordningsnummer; the regional form for reservnummer

    def __repr__(self) -> str:  # never print the number itself
        return f"PersonId(kind={self.kind!r}, value=<redacted>)"

    __str__ = __repr__


def parse_person_id(raw: str, reservnummer_pattern: str | None = None, today: date | None = None) -> PersonId:
    """The person id in ``raw``, or InvalidPersonId; exactly what `parse_person_id_stdnum` returns.

    ``today`` sets the century of a 10-digit samordningsnummer; a 10-digit personnummer's century
    follows python-stdnum, which always uses the real date.
    """
    text = (raw or "").strip()
    if reservnummer_pattern and re.fullmatch(reservnummer_pattern, text):
        return PersonId("reservnummer", text)
    compact = text.replace(" ", "")
    person = _fast_person_id(compact, today)
    return person if person is not None else _stdnum_person_id(compact, today)


def parse_person_id_stdnum(raw: str, reservnummer_pattern: str | None = None, today: date | None = None) -> PersonId:
    """The reference: every number through python-stdnum (the definition of a valid personnummer)."""
    text = (raw or "").strip()
    if reservnummer_pattern and re.fullmatch(reservnummer_pattern, text):
        return PersonId("reservnummer", text)
    return _stdnum_person_id(text.replace(" ", ""), today)


def _stdnum_person_id(compact: str, today: date | None) -> PersonId:
    try:
        number = stdnum_personnummer.validate(compact)
        birth = stdnum_personnummer.get_birth_date(number)
        return PersonId("personnummer", f"{birth:%Y%m%d}{number[-4:]}")
    except ValidationError:
        pass
    samordning = _samordningsnummer(compact, today)
    if samordning is not None:
        return PersonId("samordningsnummer", samordning)
    raise InvalidPersonId("not a valid personnummer or samordningsnummer")


# Luhn over the 10 digits YYMMDDNNNC: from the left, every even position is doubled (digit sum of
# 2d) and every odd one taken as is, so a two-character slice "ab" contributes doubled(a) + b.
_DOUBLED = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)
_LUHN_PAIR = {f"{a}{b}": _DOUBLED[a] + b for a in range(10) for b in range(10)}
_TWO_DIGITS = {f"{n:02d}": n for n in range(100)}  # int() of a 2-character slice, without parsing


def _fast_person_id(compact: str, today: date | None) -> PersonId | None:
    """The PersonId for the common written forms; raises InvalidPersonId where stdnum and the
    samordningsnummer rule both refuse; None (stdnum decides) for any other form and for years
    before 1000 (whose personnummer value comes from strftime's %Y, not padded on glibc)."""
    size = len(compact)
    plus = False
    if size == 12 or size == 10:
        digits = compact
    elif size == 13:
        separator = compact[8]
        if separator != "-" and separator != "+":
            return None
        digits = compact[:8] + compact[9:]
    elif size == 11:
        separator = compact[6]
        if separator != "-" and separator != "+":
            return None
        plus = separator == "+"
        digits = compact[:6] + compact[7:]
    else:
        return None
    if not (digits.isascii() and digits.isdigit()):
        return None
    tail = digits[-10:]
    two, pair = _TWO_DIGITS, _LUHN_PAIR
    month = two[tail[2:4]]
    day = two[tail[4:6]]
    luhn_ok = (pair[tail[0:2]] + pair[tail[2:4]] + pair[tail[4:6]] + pair[tail[6:8]] + pair[tail[8:10]]) % 10 == 0
    if day <= 31:  # a personnummer or nothing (a samordningsnummer's day is 61-91)
        if not luhn_ok:
            raise InvalidPersonId("not a valid personnummer or samordningsnummer")
        # stdnum's get_birth_date takes the century of a 10-digit form from the real date
        year = two[digits[:2]] * 100 + two[tail[:2]] if size >= 12 else _year_of(tail, plus, date.today())
        try:
            date(year, month, day)
        except ValueError:
            raise InvalidPersonId("not a valid personnummer or samordningsnummer") from None
        if year < 1000:
            return None
        return PersonId("personnummer", f"{year}{tail[2:]}")
    if 61 <= day <= 91 and luhn_ok:
        year = two[digits[:2]] * 100 + two[tail[:2]] if size >= 12 else _year_of(tail, plus, today or date.today())
        try:
            date(year, month, day - 60)
        except ValueError:
            raise InvalidPersonId("not a valid personnummer or samordningsnummer") from None
        return PersonId("samordningsnummer", f"{year:04d}{tail[2:]}")
    raise InvalidPersonId("not a valid personnummer or samordningsnummer")


def _year_of(tail: str, plus: bool, today: date) -> int:
    """The birth year of a 10-digit form: the latest year ending in YY not after today's year, a
    century earlier with '+' (100 years or older) — stdnum's and `_samordningsnummer`'s rule."""
    century = today.year // 100
    yy = _TWO_DIGITS[tail[:2]]
    if yy > today.year % 100:
        century -= 1
    if plus:
        century -= 1
    return century * 100 + yy


def _samordningsnummer(compact: str, today: date | None) -> str | None:
    """12-digit samordningsnummer, or None. The day is the birth day + 60."""
    digits = compact.replace("-", "").replace("+", "")
    if not digits.isdigit() or len(digits) not in (10, 12):
        return None
    tail = digits[-10:]
    day = int(tail[4:6])
    if not 61 <= day <= 91:
        return None
    try:
        luhn.validate(tail)
    except ValidationError:
        return None
    if len(digits) == 12:
        year = int(digits[:4])
    else:
        today = today or date.today()
        century = today.year // 100
        if int(tail[:2]) > today.year % 100:
            century -= 1
        if "+" in compact:
            century -= 1
        year = century * 100 + int(tail[:2])
    try:
        date(year, int(tail[2:4]), day - 60)
    except ValueError:
        return None
    return f"{year:04d}{tail[2:]}"


def patient_key(person: PersonId, key: bytes) -> str:
    digest = hmac.new(key, f"{person.kind}:{person.value}".encode(), hashlib.sha256).digest()
    return _pk1(digest)


def patient_keyer(key: bytes) -> Callable[[PersonId], str]:
    """`patient_key` with ``key`` bound, for many persons: each key copies one pre-keyed HMAC
    instead of keying a new one (the same keys, ~1 µs less each)."""
    keyed = hmac.new(key, digestmod=hashlib.sha256)

    def key_of(person: PersonId) -> str:
        mac = keyed.copy()
        mac.update(f"{person.kind}:{person.value}".encode())
        return _pk1(mac.digest())

    return key_of


# base32 (RFC 4648, lower case) of 128 bits is 26 characters, the last one holding 3 bits and two
# zero bits: shift the 128-bit number left by 2 and write it ten bits (two characters) at a time.
# `base64.b32encode` does the same in Python byte by byte at ~4 µs a key; this takes ~1.5 µs.
_B32 = "abcdefghijklmnopqrstuvwxyz234567"
_B32_PAIR = tuple(_B32[i >> 5] + _B32[i & 31] for i in range(1024))


def _pk1(digest: bytes) -> str:
    """``pk1_`` + base32 of the first 128 bits of ``digest``, lower case, unpadded."""
    n = int.from_bytes(digest[:16], "big") << 2
    p = _B32_PAIR
    return ("pk1_" + p[n >> 120] + p[(n >> 110) & 1023] + p[(n >> 100) & 1023] + p[(n >> 90) & 1023]
            + p[(n >> 80) & 1023] + p[(n >> 70) & 1023] + p[(n >> 60) & 1023] + p[(n >> 50) & 1023]
            + p[(n >> 40) & 1023] + p[(n >> 30) & 1023] + p[(n >> 20) & 1023] + p[(n >> 10) & 1023]
            + p[n & 1023])


def is_patient_key(value: str) -> bool:
    return bool(PATIENT_KEY_PATTERN.match(value))
