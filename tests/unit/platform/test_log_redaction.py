"""Access log lines never carry a patient identifier, whatever path was requested."""
from __future__ import annotations

import logging

from flk.api import RedactPatientIdentifiers, redact_patient_identifiers
from tests.support.builders import a_patient_key


def _access_record(path: str) -> logging.LogRecord:
    # the shape of uvicorn's access log call: msg with %-args, the path an argument
    return logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
                             ("127.0.0.1:5000", "GET", path, "1.1", 200), None)


def test_a_patient_key_in_a_requested_path_is_redacted_in_the_access_log():
    key = a_patient_key(42)
    record = _access_record(f"/patients/{key}/history?x=1")
    assert RedactPatientIdentifiers().filter(record) is True
    line = record.getMessage()
    assert key not in line and "pk1_" not in line
    assert line == '127.0.0.1:5000 - "GET /patients/<redacted>/history?x=1 HTTP/1.1" 200'


def test_personnummer_and_samordningsnummer_in_every_written_form_are_redacted():
    for pnr in ("19121212-1212", "191212121212", "121212-1212", "121212+1212", "1212121212", "19121272-1219"):
        assert pnr not in redact_patient_identifiers(f"GET /patients/{pnr} HTTP/1.1")


def test_unit_ids_dates_and_ports_are_left_as_they_are():
    text = "GET /units/SE2321000016-VCA1/lists?on=2026-03-01 from 127.0.0.1:51234 200"
    assert redact_patient_identifiers(text) == text


def test_a_service_s_logs_never_carry_the_url_of_an_outgoing_request_such_as_a_teams_webhook():
    import httpx

    from flk.service import configure_logging

    secret = "sig=not-for-logs-4f1c"
    webhook = f"https://prod-01.westeurope.logic.azure.com/workflows/abc/triggers/manual/paths/invoke?{secret}"
    seen: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    root = logging.getLogger()
    handler = Collect(level=logging.DEBUG)
    before = {name: logging.getLogger(name).level for name in ("httpx", "httpcore", "")}
    root.addHandler(handler)
    root.setLevel(logging.INFO)  # a service's root logger (basicConfig leaves pytest's alone)
    try:
        configure_logging()
        with httpx.Client(transport=httpx.MockTransport(lambda request: httpx.Response(202))) as client:
            assert client.post(webhook, json={"text": "x"}).status_code == 202
    finally:
        root.removeHandler(handler)
        for name, level in before.items():
            logging.getLogger(name or None).setLevel(level)
    assert not any(secret in line for line in seen)
