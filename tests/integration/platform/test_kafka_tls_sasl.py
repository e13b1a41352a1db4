"""TLS + SASL to the broker, as a managed cluster wants it: a private broker with a SASL_SSL
listener (PLAIN users, a certificate from a test CA); the platform's producer, consumer, admin and
lag clients reach it with the connection the settings build (FLK_KAFKA_SECURITY_PROTOCOL, ...)."""
from __future__ import annotations

import datetime as dt
import ipaddress
import shutil
import tempfile
from pathlib import Path

import pytest
from aiokafka.errors import KafkaConnectionError
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from flk.events.admin import ensure_topics
from flk.events.connection import KafkaConnection
from flk.events.envelope import make_record
from flk.events.lag import consumer_lag
from flk.events.producer import new_producer, publish
from tools.infra.kafka import Kafka
from tools.infra.settings import InfraSettings
from flk.settings import PlatformSettings
from tests.e2e.conftest import free_port
from tests.support.builders import a_visit
from tests.support.kafka import run_consumer_until

USER, PASSWORD = "flk-continuity", "a-test-password-0123"


def _certificates(folder: Path) -> tuple[Path, Path]:
    """A test CA and a server certificate for 127.0.0.1: (CA PEM, server key + chain PEM)."""
    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "flk test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
          .not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    ca_file, keystore = folder / "ca.pem", folder / "broker.pem"
    ca_file.write_bytes(ca.public_bytes(pem))
    keystore.write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
                         + cert.public_bytes(pem) + ca.public_bytes(pem))
    return ca_file, keystore


@pytest.fixture(scope="module")
def secured_broker():
    """(SASL_SSL bootstrap, CA file) of a private broker; stopped afterwards."""
    state = Path(tempfile.mkdtemp(prefix="flk-tls-kafka-"))
    ca_file, keystore = _certificates(state)
    port = free_port()
    settings = InfraSettings(state_dir=state, kafka_port=free_port(), kafka_controller_port=free_port(),
                             kafka_sasl_ssl_port=port, kafka_sasl_users={USER: PASSWORD},
                             kafka_ssl_keystore_pem=keystore, kafka_heap="384m", kafka_start_timeout_s=60)
    kafka = Kafka(settings)
    kafka.up()
    try:
        yield f"127.0.0.1:{port}", ca_file
    finally:
        kafka.down()
        shutil.rmtree(state, ignore_errors=True)


async def test_the_platform_clients_publish_and_consume_over_tls_with_sasl(secured_broker, monkeypatch):
    bootstrap, ca_file = secured_broker
    for name, value in {"FLK_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "FLK_KAFKA_SASL_MECHANISM": "PLAIN",
                        "FLK_KAFKA_SASL_USERNAME": USER, "FLK_KAFKA_SASL_PASSWORD": PASSWORD,
                        "FLK_KAFKA_SSL_CAFILE": str(ca_file), "FLK_KAFKA_BOOTSTRAP": bootstrap}.items():
        monkeypatch.setenv(name, value)
    connection = PlatformSettings().kafka_connection()
    prefix = "tls."
    await ensure_topics(bootstrap, prefix=prefix, connection=connection)
    producer = new_producer(bootstrap, "tls-test", connection)
    await producer.start()
    try:
        record = make_record("visit.recorded.v1", a_visit(), source="urn:test")
        await publish(producer, record, prefix)
        received = await run_consumer_until(bootstrap, prefix, ("ehr.visits.v1",), producer,
                                            lambda got: len(got) >= 1, connection=connection)
    finally:
        await producer.stop()
    assert [e.id for e in received] == [record.event_id]
    lags = await consumer_lag(bootstrap, [f"{prefix}test"], connection=connection)
    assert lags[0].partitions > 0 and lags[0].lag == 0


async def test_a_wrong_password_is_refused_and_the_log_says_why(secured_broker, caplog):
    bootstrap, ca_file = secured_broker
    wrong = KafkaConnection("SASL_SSL", "PLAIN", USER, "not-the-password", ssl_cafile=str(ca_file))
    with pytest.raises(KafkaConnectionError):
        await new_producer(bootstrap, "tls-test", wrong).start()
    assert "SaslAuthenticationFailed" in caplog.text


async def test_a_broker_certificate_from_an_unknown_ca_is_refused(secured_broker, tmp_path, caplog):
    bootstrap, _ = secured_broker
    other_ca, _ = _certificates(tmp_path)
    untrusting = KafkaConnection("SASL_SSL", "PLAIN", USER, PASSWORD, ssl_cafile=str(other_ca))
    with pytest.raises(KafkaConnectionError):
        await new_producer(bootstrap, "tls-test", untrusting).start()
    assert "CERTIFICATE_VERIFY_FAILED" in caplog.text
