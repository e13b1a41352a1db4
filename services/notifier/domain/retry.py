"""Retry decisions for alert delivery (SMTP and Teams webhook): pure, no I/O, no sleeping.

* :func:`classify` says whether a failed attempt is worth retrying (HTTP status, SMTP reply
  code, or the exception raised by the client).
* :func:`next_attempt_delay` is exponential backoff with jitter (``base * 2**(attempt-1)``,
  capped), where a server's ``Retry-After`` (delta-seconds or HTTP-date, RFC 9110 §10.2.3)
  takes precedence.
* :func:`plan_retry` combines both with :class:`RetryPolicy.max_attempts`.

Randomness is injected (``rand``: a callable returning a float in ``[0, 1)``) so tests are
deterministic.
"""

from __future__ import annotations

import random as _random
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from enum import StrEnum
from typing import Callable

__all__ = [
    "Disposition",
    "RetryPlan",
    "RetryPolicy",
    "classify",
    "classify_http_status",
    "classify_smtp_reply",
    "next_attempt_delay",
    "parse_retry_after",
    "plan_retry",
]

DEFAULT_BASE = timedelta(seconds=2)
DEFAULT_CAP = timedelta(minutes=10)


class Disposition(StrEnum):
    SUCCEEDED = "succeeded"
    RETRY = "retry"
    GIVE_UP = "give_up"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """``max_attempts`` counts every attempt, the first included. With the defaults (10
    attempts, base 2 s, cap 10 min) the nine waits are 2, 4, ... 512 s before jitter, so a
    delivery is given up after about 8.5–17 minutes of retrying."""

    max_attempts: int = 10
    base: timedelta = DEFAULT_BASE
    cap: timedelta = DEFAULT_CAP
    max_retry_after: timedelta = timedelta(hours=1)
    """A ``Retry-After`` longer than this is not waited for: the delivery gives up (and is
    dead-lettered by the caller) rather than hold a worker for hours."""

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        if self.base <= timedelta(0) or self.cap < self.base:
            raise ValueError("need 0 < base <= cap")


# ---- classification -------------------------------------------------------------------------

_RETRY_HTTP = frozenset({408, 425, 429})
_PERMANENT_5XX = frozenset({501, 505, 506, 508, 510, 511})
_TRANSIENT_EXCEPTION_NAMES = frozenset(
    {
        # httpx (not imported: the domain stays free of I/O libraries)
        "TransportError",
        "TimeoutException",
        "NetworkError",
        "RemoteProtocolError",
        # aiosmtplib / smtplib
        "SMTPServerDisconnected",
        "SMTPConnectError",
        "SMTPConnectTimeoutError",
        "SMTPReadTimeoutError",
        "SMTPTimeoutError",
    }
)


def classify_http_status(status: int) -> Disposition:
    if 200 <= status < 300:
        return Disposition.SUCCEEDED
    if status in _RETRY_HTTP or (500 <= status < 600 and status not in _PERMANENT_5XX):
        return Disposition.RETRY
    return Disposition.GIVE_UP


def classify_smtp_reply(code: int) -> Disposition:
    """RFC 5321: 2yz done, 4yz transient (retry), 5yz permanent (give up)."""
    if 200 <= code < 400:
        return Disposition.SUCCEEDED
    if 400 <= code < 500:
        return Disposition.RETRY
    return Disposition.GIVE_UP


def classify(outcome: int | BaseException) -> Disposition:
    """An HTTP status code, or the exception of a failed attempt -> retry or give up.

    Retried: 408, 425, 429 and 5xx (except 501/505/506/508/510/511, which do not heal by
    waiting); connection errors and timeouts; SMTP 4yz replies (``code`` attribute, as on
    smtplib/aiosmtplib ``SMTPResponseException``; recipients refused only if every refusal
    is 4yz). Everything else gives up: other 4xx, 3xx, SMTP 5yz, programming errors.
    """
    if isinstance(outcome, bool):
        raise TypeError("outcome must be a status code or an exception")
    if isinstance(outcome, int):
        return classify_http_status(outcome)
    response = getattr(outcome, "response", None)  # e.g. httpx.HTTPStatusError
    status = getattr(response, "status_code", None)
    if isinstance(status, int) and not isinstance(status, bool):
        disposition = classify_http_status(status)
        return Disposition.GIVE_UP if disposition is Disposition.SUCCEEDED else disposition
    code = getattr(outcome, "code", None) or getattr(outcome, "smtp_code", None)
    if isinstance(code, int) and not isinstance(code, bool):
        disposition = classify_smtp_reply(code)
        return Disposition.GIVE_UP if disposition is Disposition.SUCCEEDED else disposition
    recipients = getattr(outcome, "recipients", None)
    if isinstance(recipients, (list, tuple)) and recipients:
        codes = [getattr(r, "code", None) for r in recipients]
        if all(isinstance(c, int) and 400 <= c < 500 for c in codes):
            return Disposition.RETRY
        return Disposition.GIVE_UP
    if isinstance(outcome, (ConnectionError, TimeoutError)):
        return Disposition.RETRY
    if any(cls.__name__ in _TRANSIENT_EXCEPTION_NAMES for cls in type(outcome).__mro__):
        return Disposition.RETRY
    if isinstance(outcome, OSError):  # socket-level failures (host unreachable, reset, ...)
        return Disposition.RETRY
    return Disposition.GIVE_UP


# ---- delays ------------------------------------------------------------------------------


def parse_retry_after(header: str | None, now: datetime) -> timedelta | None:
    """``Retry-After`` as a delay from ``now``; None when absent or unparseable.

    Both forms are accepted: delta-seconds (``"120"``) and an HTTP-date
    (``"Wed, 21 Oct 2015 07:28:00 GMT"``, also the obsolete RFC 850 and asctime forms).
    A date in the past means "now" (zero delay).
    """
    if header is None:
        return None
    value = header.strip()
    if not value:
        return None
    if value.isdigit():
        return timedelta(seconds=int(value))
    when = _parse_http_date(value)
    if when is None:
        return None
    return max(timedelta(0), when - now)


def _parse_http_date(value: str) -> datetime | None:
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        when = None
    if when is None:
        for fmt in ("%A, %d-%b-%y %H:%M:%S GMT", "%a %b %d %H:%M:%S %Y"):
            try:
                when = datetime.strptime(" ".join(value.split()), fmt)
                break
            except ValueError:
                continue
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)  # HTTP-dates are always GMT
    return when


def next_attempt_delay(
    attempt: int,
    retry_after_header: str | None,
    now: datetime,
    *,
    base: timedelta = DEFAULT_BASE,
    cap: timedelta = DEFAULT_CAP,
    rand: Callable[[], float] = _random.random,
) -> timedelta:
    """The wait before the next attempt, after failed attempt number ``attempt`` (1-based).

    With a valid ``Retry-After`` the server's delay is used as is (it may exceed ``cap``; see
    :attr:`RetryPolicy.max_retry_after`). Otherwise "equal jitter": with
    ``d = min(cap, base * 2**(attempt-1))`` the delay is uniform in ``[d/2, d)``, so retries
    from many units spread out but never come sooner than half the backoff.
    """
    if attempt < 1:
        raise ValueError("attempt is 1-based")
    retry_after = parse_retry_after(retry_after_header, now)
    if retry_after is not None:
        return retry_after
    exponent = min(attempt - 1, 32)  # 2**32 * base is far beyond any cap
    backoff = min(cap, base * (2**exponent))
    r = rand()
    if not 0.0 <= r < 1.0:
        raise ValueError("rand() must return a float in [0, 1)")
    return backoff / 2 + backoff / 2 * r


@dataclass(frozen=True, slots=True)
class RetryPlan:
    disposition: Disposition
    delay: timedelta | None = None
    """When ``disposition`` is RETRY: wait this long."""
    reason: str = ""


def plan_retry(
    attempt: int,
    outcome: int | BaseException,
    retry_after_header: str | None,
    now: datetime,
    policy: RetryPolicy = RetryPolicy(),
    rand: Callable[[], float] = _random.random,
) -> RetryPlan:
    """What to do after attempt number ``attempt`` (1-based) ended with ``outcome``."""
    disposition = classify(outcome)
    if disposition is not Disposition.RETRY:
        return RetryPlan(disposition, reason="succeeded" if disposition is Disposition.SUCCEEDED else "permanent")
    if attempt >= policy.max_attempts:
        return RetryPlan(Disposition.GIVE_UP, reason="max_attempts")
    delay = next_attempt_delay(
        attempt, retry_after_header, now, base=policy.base, cap=policy.cap, rand=rand
    )
    if delay > policy.max_retry_after:
        return RetryPlan(Disposition.GIVE_UP, reason="retry_after_too_long")
    return RetryPlan(Disposition.RETRY, delay=delay, reason="transient")
