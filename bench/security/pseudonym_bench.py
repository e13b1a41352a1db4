"""Pseudonymising person numbers: python-stdnum (the reference) against the fast path, in one run.

    python bench/security/pseudonym_bench.py                 # 200 000 distinct numbers, 3 rounds
    python bench/security/pseudonym_bench.py --numbers 1000000 --rounds 5

Writes distinct valid personnummer (births 1900-2025, every tenth a samordningsnummer) in four
written forms (YYYYMMDDNNNC, YYYYMMDD-NNNC, YYMMDD-NNNC, YYMMDDNNNC), then times per number, in
CPU seconds of this process (the best of the rounds, each side alternating with the other):

- parsing: `parse_person_id_stdnum` against `parse_person_id`, per form;
- the key: `patient_key`'s former code (`hmac.new` + `base64.b32encode`) against `patient_keyer`;
- both together, as `PatientKeys` does for each distinct personnummer of an extract.

and checks that both sides give the same PersonIds and keys. Prints µs per number, the ratio, the
projection to 10 M persons, and the load average.
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import os
import random
import sys
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from stdnum import luhn  # noqa: E402

from flk.security.pseudonym import PersonId, parse_person_id, parse_person_id_stdnum, patient_keyer  # noqa: E402

KEY = b"bench-pseudonym-key-0123456789abcdef"
FORMS = {
    "YYYYMMDDNNNC": lambda t: t,
    "YYYYMMDD-NNNC": lambda t: f"{t[:8]}-{t[8:]}",
    "YYMMDD-NNNC": lambda t: f"{t[2:8]}-{t[8:]}",
    "YYMMDDNNNC": lambda t: t[2:],
}


def numbers(count: int, seed: int) -> list[str]:
    """``count`` distinct 12-digit numbers; every tenth a samordningsnummer (day + 60)."""
    rng = random.Random(seed)
    first, days = date(1900, 1, 1).toordinal(), (date(2025, 12, 31) - date(1900, 1, 1)).days
    seen: set[str] = set()
    while len(seen) < count:
        born = date.fromordinal(first + rng.randrange(days))
        day = born.day + (60 if len(seen) % 10 == 9 else 0)
        nine = f"{born.year % 100:02d}{born.month:02d}{day:02d}{rng.randrange(1000):03d}"
        seen.add(f"{born.year // 100}{nine}{luhn.calc_check_digit(nine)}")
    return sorted(seen, key=lambda _: rng.random())


def old_patient_key(person: PersonId, key: bytes) -> str:
    """`patient_key` before the fast path (the definition in the module's docstring)."""
    digest = hmac.new(key, f"{person.kind}:{person.value}".encode(), hashlib.sha256).digest()[:16]
    return "pk1_" + base64.b32encode(digest).decode().rstrip("=").lower()


def cpu(fn, items) -> tuple[float, list]:
    started = time.process_time()
    out = [fn(x) for x in items]
    return time.process_time() - started, out


def best_of(rounds: int, fn, items) -> tuple[float, list]:
    best, out = float("inf"), []
    for _ in range(rounds):
        took, out = cpu(fn, items)
        best = min(best, took)
    return best, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--numbers", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    twelve = numbers(args.numbers, args.seed)
    n = len(twelve)
    print(f"{n} distinct numbers, best of {args.rounds} rounds, CPU seconds of one process; "
          f"load average before: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
    print(f"{'step':<34}{'stdnum µs':>11}{'fast µs':>10}{'ratio':>8}")

    def row(name: str, ref_s: float, fast_s: float) -> None:
        print(f"{name:<34}{ref_s / n * 1e6:>11.2f}{fast_s / n * 1e6:>10.2f}{ref_s / fast_s:>7.1f}×")

    persons: list[PersonId] = []
    for form, write in FORMS.items():
        texts = [write(t) for t in twelve]
        ref_s = fast_s = float("inf")
        for _ in range(args.rounds):  # alternate, so load changes hit both sides alike
            took, reference = cpu(parse_person_id_stdnum, texts)
            ref_s = min(ref_s, took)
            took, fast = cpu(parse_person_id, texts)
            fast_s = min(fast_s, took)
        assert fast == reference, f"the fast path differs from stdnum on the {form} form"
        row(f"parse {form}", ref_s, fast_s)
        if form == "YYYYMMDD-NNNC":
            persons = fast

    key_of = patient_keyer(KEY)
    old_s, old_keys = best_of(args.rounds, lambda p: old_patient_key(p, KEY), persons)
    new_s, new_keys = best_of(args.rounds, key_of, persons)
    assert old_keys == new_keys, "patient_keyer differs from the HMAC + base32 definition"
    row("patient key", old_s, new_s)

    texts = [FORMS["YYYYMMDD-NNNC"](t) for t in twelve]
    old_s, old_both = best_of(args.rounds, lambda t: old_patient_key(parse_person_id_stdnum(t), KEY), texts)
    new_s, new_both = best_of(args.rounds, lambda t: key_of(parse_person_id(t)), texts)
    assert old_both == new_both
    row("parse + key (YYYYMMDD-NNNC)", old_s, new_s)
    print(f"10 M distinct persons, parse + key: {old_s / n * 1e7:.0f} CPU-s before, {new_s / n * 1e7:.0f} CPU-s "
          f"after; load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
