"""Person ids and the pseudonymous patient key.

- Personnummer are validated with python-stdnum (`stdnum.se.personnummer`): format, date and
  the Luhn check digit; 10-digit forms with '-' or '+' (100 years or older) are accepted.
- Samordningsnummer (day + 60) are rejected by stdnum's personnummer module, so they are
  checked with stdnum's Luhn and a real date after subtracting 60 from the day.
- Reservnummer follow regional formats and are never Luhn-checked: a region configures the
  pattern; they are only accepted where a pattern is given.

The patient key is ``pk1_`` + base32 of the first 128 bits of HMAC-SHA256(key, 12-digit id).
The key (``FLK_PSEUDONYM_KEY``) lives in the deployment's secret store, never in Kafka or
the database; without it a key cannot be linked back to a person. Re-identification goes
only through the encrypted vault (`flk.security.vault`).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import date
from typing import Literal

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
    text = (raw or "").strip()
    if reservnummer_pattern and re.fullmatch(reservnummer_pattern, text):
        return PersonId("reservnummer", text)
    compact = text.replace(" ", "")
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
    digest = hmac.new(key, f"{person.kind}:{person.value}".encode(), hashlib.sha256).digest()[:16]
    return "pk1_" + base64.b32encode(digest).decode().rstrip("=").lower()


def is_patient_key(value: str) -> bool:
    return bool(PATIENT_KEY_PATTERN.match(value))
