"""Specification of delivery retries: backoff, Retry-After, classification."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.notifier.domain.retry import (
    Disposition,
    RetryPolicy,
    classify,
    classify_smtp_reply,
    next_attempt_delay,
    parse_retry_after,
    plan_retry,
)

pytestmark = pytest.mark.unit

NOW = datetime(2015, 10, 21, 7, 27, 0, tzinfo=timezone.utc)
S = timedelta(seconds=1)


def low():
    return 0.0


def high():
    return 0.999999


@pytest.mark.parametrize(("attempt", "full"), [(1, 2), (2, 4), (3, 8), (6, 64), (9, 512), (10, 600), (50, 600)])
def test_backoff_doubles_from_base_2s_and_is_capped_at_10_minutes(attempt, full):
    assert next_attempt_delay(attempt, None, NOW, rand=low) == full * S / 2
    assert full * S / 2 <= next_attempt_delay(attempt, None, NOW, rand=high) < full * S


@given(st.integers(1, 1000), st.floats(0.0, 1.0, exclude_max=True))
def test_backoff_is_never_below_half_nor_above_the_cap(attempt, r):
    delay = next_attempt_delay(attempt, None, NOW, rand=lambda: r)
    full = min(timedelta(minutes=10), 2 * S * 2 ** min(attempt - 1, 32))
    assert full / 2 <= delay <= full


def test_retry_after_delta_seconds_is_honoured():
    assert next_attempt_delay(1, "120", NOW, rand=low) == 120 * S
    assert next_attempt_delay(1, " 0 ", NOW, rand=low) == timedelta(0)


@pytest.mark.parametrize(
    "header",
    ["Wed, 21 Oct 2015 07:28:00 GMT", "Wednesday, 21-Oct-15 07:28:00 GMT", "Wed Oct 21 07:28:00 2015"],
)
def test_retry_after_http_date_is_honoured(header):
    # IMF-fixdate, and the obsolete RFC 850 and asctime forms (RFC 9110 §5.6.7)
    assert next_attempt_delay(3, header, NOW, rand=high) == 60 * S


def test_retry_after_in_the_past_means_retry_now():
    assert parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", NOW) == timedelta(0)


@pytest.mark.parametrize("header", [None, "", "soon", "-5", "1.5"])
def test_invalid_or_missing_retry_after_falls_back_to_backoff(header):
    assert next_attempt_delay(2, header, NOW, rand=low) == 2 * S


def test_attempts_are_counted_from_one_and_rand_must_be_a_unit_float():
    with pytest.raises(ValueError):
        next_attempt_delay(0, None, NOW)
    with pytest.raises(ValueError):
        next_attempt_delay(1, None, NOW, rand=lambda: 1.0)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (200, Disposition.SUCCEEDED),
        (202, Disposition.SUCCEEDED),
        (408, Disposition.RETRY),
        (425, Disposition.RETRY),
        (429, Disposition.RETRY),
        (500, Disposition.RETRY),
        (502, Disposition.RETRY),
        (503, Disposition.RETRY),
        (504, Disposition.RETRY),
        (501, Disposition.GIVE_UP),
        (301, Disposition.GIVE_UP),
        (400, Disposition.GIVE_UP),
        (401, Disposition.GIVE_UP),
        (403, Disposition.GIVE_UP),
        (404, Disposition.GIVE_UP),
        (413, Disposition.GIVE_UP),
    ],
)
def test_http_status_is_classified(status, expected):
    assert classify(status) is expected


class TransportError(Exception):
    """Stands in for httpx.TransportError (matched by class name, httpx is not imported)."""


class ConnectTimeout(TransportError):
    pass


class SMTPResponseException(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(code, message)
        self.code = code


class Refused:
    def __init__(self, code: int) -> None:
        self.code = code


class SMTPRecipientsRefused(Exception):
    def __init__(self, recipients) -> None:
        super().__init__(recipients)
        self.recipients = recipients


class _Response:
    def __init__(self, status_code: int) -> None:
        self.status_code = status_code


class HTTPStatusError(Exception):
    def __init__(self, status_code: int) -> None:
        super().__init__(status_code)
        self.response = _Response(status_code)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (ConnectionRefusedError(), Disposition.RETRY),
        (ConnectionResetError(), Disposition.RETRY),
        (TimeoutError(), Disposition.RETRY),
        (OSError("network unreachable"), Disposition.RETRY),
        (ConnectTimeout("connect timed out"), Disposition.RETRY),
        (SMTPResponseException(421, "service not available"), Disposition.RETRY),
        (SMTPResponseException(451, "try again later"), Disposition.RETRY),
        (SMTPResponseException(550, "mailbox unavailable"), Disposition.GIVE_UP),
        (SMTPResponseException(535, "authentication failed"), Disposition.GIVE_UP),
        (SMTPRecipientsRefused([Refused(450), Refused(452)]), Disposition.RETRY),
        (SMTPRecipientsRefused([Refused(450), Refused(550)]), Disposition.GIVE_UP),
        (HTTPStatusError(503), Disposition.RETRY),
        (HTTPStatusError(400), Disposition.GIVE_UP),
        (ValueError("bug"), Disposition.GIVE_UP),
    ],
)
def test_failures_are_classified(error, expected):
    assert classify(error) is expected


@pytest.mark.parametrize(
    ("code", "expected"),
    [(250, Disposition.SUCCEEDED), (421, Disposition.RETRY), (554, Disposition.GIVE_UP)],
)
def test_smtp_reply_codes_are_classified(code, expected):
    assert classify_smtp_reply(code) is expected


def test_plan_retry_retries_transient_failures_until_max_attempts():
    policy = RetryPolicy(max_attempts=3)
    first = plan_retry(1, 503, None, NOW, policy, rand=low)
    assert (first.disposition, first.delay) == (Disposition.RETRY, 1 * S)
    assert plan_retry(2, 503, "7", NOW, policy, rand=low).delay == 7 * S
    last = plan_retry(3, 503, None, NOW, policy, rand=low)
    assert (last.disposition, last.reason) == (Disposition.GIVE_UP, "max_attempts")


def test_plan_retry_gives_up_at_once_on_permanent_failure_and_reports_success():
    assert plan_retry(1, 404, None, NOW).disposition is Disposition.GIVE_UP
    assert plan_retry(1, 202, None, NOW).disposition is Disposition.SUCCEEDED


def test_plan_retry_gives_up_when_retry_after_is_longer_than_allowed():
    plan = plan_retry(1, 429, "86400", NOW, RetryPolicy(max_retry_after=timedelta(hours=1)))
    assert (plan.disposition, plan.reason) == (Disposition.GIVE_UP, "retry_after_too_long")


def test_retry_after_longer_than_the_backoff_cap_is_still_honoured():
    assert plan_retry(1, 429, "900", NOW).delay == 900 * S
