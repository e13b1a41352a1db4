"""How the services reach Kafka: the settings build one connection for every client."""
from __future__ import annotations

import ssl

import pytest

from flk.events.connection import PLAINTEXT, KafkaConnection
from flk.settings import PlatformSettings


def test_the_local_default_is_plaintext_with_nothing_else():
    assert PlatformSettings().kafka_connection() == PLAINTEXT
    assert PLAINTEXT.client_options() == {"security_protocol": "PLAINTEXT"}


def test_sasl_needs_a_username_and_a_password():
    with pytest.raises(ValueError, match="FLK_KAFKA_SASL_USERNAME and FLK_KAFKA_SASL_PASSWORD"):
        PlatformSettings(kafka_security_protocol="SASL_SSL", kafka_sasl_username="svc")


def test_sasl_over_tls_gives_the_clients_a_tls_context_and_the_credentials():
    options = KafkaConnection("SASL_SSL", "SCRAM-SHA-512", "svc", "pw").client_options()
    assert options["security_protocol"] == "SASL_SSL"
    assert isinstance(options["ssl_context"], ssl.SSLContext)
    assert options["ssl_context"].verify_mode == ssl.CERT_REQUIRED and options["ssl_context"].check_hostname
    assert (options["sasl_mechanism"], options["sasl_plain_username"], options["sasl_plain_password"]) == \
        ("SCRAM-SHA-512", "svc", "pw")


def test_the_password_is_not_in_the_connections_repr():
    assert "pw-secret" not in repr(KafkaConnection("SASL_PLAINTEXT", "PLAIN", "svc", "pw-secret"))


def test_a_client_certificate_needs_its_key_and_tls_files_need_tls():
    with pytest.raises(ValueError, match="go together"):
        KafkaConnection("SSL", ssl_certfile="/etc/flk/client.pem")
    with pytest.raises(ValueError, match="TLS files are set"):
        KafkaConnection("SASL_PLAINTEXT", "PLAIN", "svc", "pw", ssl_cafile="/etc/flk/ca.pem")


def test_the_settings_read_the_kafka_security_from_the_environment(monkeypatch):
    monkeypatch.setenv("FLK_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("FLK_KAFKA_SASL_MECHANISM", "SCRAM-SHA-256")
    monkeypatch.setenv("FLK_KAFKA_SASL_USERNAME", "flk-listing")
    monkeypatch.setenv("FLK_KAFKA_SASL_PASSWORD", "from-a-secret")
    connection = PlatformSettings().kafka_connection()
    assert connection == KafkaConnection("SASL_PLAINTEXT", "SCRAM-SHA-256", "flk-listing", "from-a-secret")
