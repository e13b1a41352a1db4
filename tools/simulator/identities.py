"""Synthetic identities for the simulated region: a name and a personnummer from Skatteverket's
published test series, so that a demo shows staff who their patients are without a real person's
number anywhere.

* **Numbers**: only Skatteverket's *testpersonnummer* (open data, "Testpersonnummer", published by
  Skatteverket on dataportal.se; numbers that are registered as test identities and never given to
  a real person). The list shipped in ``data/skatteverket_testpersonnummer.txt.gz`` is that
  publication's 18 627 numbers for births 1890–2014 (the copy in rOpenGov/sweidnumbr,
  ``data-raw/test_pin_skatteverket.csv``, 2015). By era, their birth numbers are mostly 980–989
  (births 1890–1919, about one a day), scattered (1920–1989, about 35 a year, fewer in the 1970s) and
  238–239 (1990–2014, about two a day). Nothing here computes a number: each one is taken from the list and
  checked with python-stdnum (date and Luhn digit) when the list is read.
* **Which number**: the free test number whose birth date is nearest the simulated person's (the
  same date where the list has one), each number given out once. Where the series is thin (births
  1968–1978) the shown birth date can be years off the simulated one; the person's events keep the
  simulated birth date. When the list is used up (the ``region`` preset has ~280 000 people) the
  rest get no identity (the worklist says so).
* **Names**: Faker's ``sv_SE`` first names (by the number's sex digit) and surnames, drawn from a
  hash of the patient key, so a replay gives the same names.

The patient key is derived from the simulator's own internal number (``generate.personnummer12``),
not from the shown test number: the demo never derives a key from a shown number. Only the
simulated population register's edge (the main job) writes these into the vault.
"""
from __future__ import annotations

import gzip
import hashlib
from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from functools import cache
from importlib import resources

from flk.security.pseudonym import PersonId

TEST_NUMBERS_FILE = "skatteverket_testpersonnummer.txt.gz"
#: the source of the shipped list (documented in docs/simulator.md)
TEST_NUMBERS_SOURCE = ("Skatteverket, Testpersonnummer (open data, dataportal.se), as of 2015: "
                       "18 627 numbers, births 1890–2014")


@dataclass(frozen=True)
class SyntheticIdentity:
    person: PersonId
    name: str

    def __repr__(self) -> str:  # as PersonId: never print the number (nor, by habit, the name)
        return "SyntheticIdentity(<redacted>)"

    __str__ = __repr__


@cache
def published_test_personnummer() -> tuple[str, ...]:
    """Skatteverket's published test personnummer (12 digits), each validated with python-stdnum."""
    from stdnum.se import personnummer

    raw = (resources.files("tools.simulator") / "data" / TEST_NUMBERS_FILE).read_bytes()
    numbers = tuple(line.strip() for line in gzip.decompress(raw).decode("ascii").splitlines() if line.strip())
    invalid = [n for n in numbers if len(n) != 12 or not personnummer.is_valid(n)]
    if invalid:
        raise ValueError(f"{len(invalid)} entries of {TEST_NUMBERS_FILE} are not valid personnummer")
    return numbers


def _seed(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


@cache
def _faker():
    from faker import Faker

    return Faker("sv_SE")


def person_name(seed_text: str, male: bool) -> str:
    """A Swedish first name (by sex) and surname, the same for the same seed text."""
    fake = _faker()
    fake.seed_instance(_seed(seed_text))
    first = fake.first_name_male() if male else fake.first_name_female()
    return f"{first} {fake.last_name()}"


def practitioner_name(practitioner_id: str) -> str:
    """A simulated practitioner's name (the roster's), the same for the same HSA-id."""
    return person_name(f"practitioner|{practitioner_id}", male=_seed(practitioner_id) % 2 == 1)


def _find(parent: list[int], i: int) -> int:
    root = i
    while parent[root] != root:
        root = parent[root]
    while parent[i] != root:
        parent[i], i = root, parent[i]
    return root


class SyntheticIdentities:
    """Hands out each published test number once, nearest the person's birth date; the same patient
    key always gets the same identity. Not thread-safe (one per replay)."""

    def __init__(self, numbers: Iterable[str] | None = None) -> None:
        pool = sorted(set(numbers if numbers is not None else published_test_personnummer()))
        self._numbers = pool
        self._ordinals = [date(int(n[:4]), int(n[4:6]), int(n[6:8])).toordinal() for n in pool]
        n = len(pool)
        self._right = list(range(n + 1))  # _find(_right, i): the first free index >= i (n: none)
        self._left = list(range(n + 1))  # _find(_left, i + 1) - 1: the last free index <= i (-1: none)
        self._given: dict[str, SyntheticIdentity] = {}

    @property
    def left(self) -> int:
        """How many numbers are still free."""
        return len(self._numbers) - len(self._given)

    def _nearest_free(self, ordinal: int) -> int | None:
        i = bisect_left(self._ordinals, ordinal)
        right = _find(self._right, min(i, len(self._numbers)))
        left = _find(self._left, i) - 1  # the last free index <= i - 1
        candidates = [j for j in (left, right) if 0 <= j < len(self._numbers)]
        if not candidates:
            return None
        return min(candidates, key=lambda j: (abs(self._ordinals[j] - ordinal), j))

    def given(self, patient_key: str) -> SyntheticIdentity | None:
        """The key's identity if one was given out, without giving one."""
        return self._given.get(patient_key)

    def identity_for(self, patient_key: str, birth_date: date) -> SyntheticIdentity | None:
        """The key's identity (given out now if new); None once every test number is taken."""
        if (known := self._given.get(patient_key)) is not None:
            return known
        j = self._nearest_free(birth_date.toordinal())
        if j is None:
            return None
        self._right[j] = j + 1
        self._left[j + 1] = j
        number = self._numbers[j]
        male = int(number[10]) % 2 == 1  # the birth number's last digit: odd for men
        identity = SyntheticIdentity(PersonId("personnummer", number), person_name(f"person|{patient_key}", male))
        self._given[patient_key] = identity
        return identity
