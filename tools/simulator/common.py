"""What every part of the simulated area shares: the emitted record, time stamps and small draws."""
from __future__ import annotations

import math
import random
from datetime import date
from hashlib import blake2b
from operator import itemgetter
from statistics import NormalDist
from typing import Any, NamedTuple

from stdnum import luhn

from tools.simulator.model import (
    DOCTOR,
)


def main_care_in_residence(key: str, elsewhere_share: float) -> bool:
    """Whether a SÄBO resident gets their main health care in the residence (the G3 qualifier): a fixed
    property of the person, drawn from a hash of their key so that it consumes no random numbers (the
    rest of the simulated stream is the same as without it) and every fact of the residence agrees."""
    draw = int.from_bytes(blake2b(key.encode(), digest_size=8, person=b"sabo-main-care").digest(), "little")
    return draw / 2 ** 64 >= elsewhere_share

SIM_PREFIX = "sim."
EPOCH = date(1970, 1, 1).toordinal()
DAY = 86_400
NURSE = "nurse"  # staff category: distriktssköterska and sjuksköterska
CATEGORIES = ("doctor", NURSE, "fysioterapeut", "psykolog", "kurator")
EXTRACT_VIOLATIONS = ("locum_as_flk", "duplicate_listing", "unknown_unit", "invalid_personnummer")
_NORMAL = NormalDist()
_AT = itemgetter(2)


class Emitted(NamedTuple):
    event_type: str
    data: dict[str, Any]
    at: int  # simulation clock, seconds since the Unix epoch (UTC)


def is_contract_event(event_type: str) -> bool:
    return not event_type.startswith(SIM_PREFIX)


# --------------------------------------------------------------------------- time helpers

_ISO_DATES: dict[int, str] = {}


def iso_date(day: int) -> str:
    text = _ISO_DATES.get(day)
    if text is None:
        text = _ISO_DATES[day] = date.fromordinal(day).isoformat()
    return text


def iso_time(at: int) -> str:
    day, secs = divmod(at, DAY)
    return f"{iso_date(day + EPOCH)}T{secs // 3600:02d}:{secs % 3600 // 60:02d}:{secs % 60:02d}Z"


def ts(day: int, secs: int = 0) -> int:
    return (day - EPOCH) * DAY + secs


def personnummer12(birth: date, birth_number: int) -> str:
    body = f"{birth:%Y%m%d}{birth_number:03d}"
    return body + luhn.calc_check_digit(body[2:])  # over YYMMDDNNN


def rub_transitions(shares: tuple[float, ...], drift: float) -> tuple[list[float], list[float]]:
    """Per band, the probability of one step up and of one step down at an ACG run.

    A Metropolis birth-death chain: a step to a neighbouring band is proposed with ``drift`` and
    accepted with ``min(1, π(to) / π(from))``, so ``π = shares`` satisfies detailed balance and is
    the chain's stationary distribution: the bands' shares do not drift over time.
    """
    n = len(shares)
    up = [drift * min(1.0, shares[i + 1] / shares[i]) if i + 1 < n and shares[i] > 0 else 0.0 for i in range(n)]
    down = [drift * min(1.0, shares[i - 1] / shares[i]) if i > 0 and shares[i] > 0 else 0.0 for i in range(n)]
    return up, down


def _poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam > 30:  # normal approximation: never hit by people, only by area-level counts
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def _category(profession: str) -> str:
    if profession == DOCTOR:
        return "doctor"
    if profession in ("distriktssköterska", "sjuksköterska"):
        return NURSE
    return profession
