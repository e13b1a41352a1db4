"""A private broker with SASL (PLAIN over SASL_PLAINTEXT on loopback) and the KRaft StandardAuthorizer,
every principal of `flk kafka acls` a user of it, the registry's topics created and the derived ACLs
applied by its super user. For the least-privilege tests (tests/integration/platform/test_kafka_acls_enforced.py,
tests/e2e/test_main_job_under_acls.py)."""
from __future__ import annotations

import secrets
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from flk.events.acls import AclBinding, apply_acls
from flk.events.admin import ensure_topics
from flk.events.connection import KafkaConnection
from tools.infra.kafka import Kafka
from tools.infra.settings import InfraSettings
from tools.kafka_acls import derived_acls


@dataclass
class AclBroker:
    bootstrap: str
    prefix: str
    admin: KafkaConnection  # the super user
    principals: dict[str, KafkaConnection]  # name ("listing", "ehr", ...) -> its own connection
    rules: list[AclBinding]
    kafka: Kafka

    def connection(self, name: str) -> KafkaConnection:
        return self.principals[name]


def start_acl_broker(port: int, controller_port: int, prefix: str) -> AclBroker:
    """Start it (the caller stops it with `stop_acl_broker`); the ACLs are applied by `prepare`."""
    names = sorted({rule.principal.removeprefix("User:") for rule in derived_acls(prefix)})
    passwords = {name: secrets.token_urlsafe(12) for name in names}
    state = Path(tempfile.mkdtemp(prefix="flk-acl-kafka-"))
    settings = InfraSettings(state_dir=state, kafka_port=port, kafka_controller_port=controller_port,
                             kafka_acls=True, kafka_sasl_users=passwords,
                             kafka_admin_password=secrets.token_urlsafe(12), kafka_heap="384m",
                             kafka_start_timeout_s=90)
    kafka = Kafka(settings)
    kafka.up()
    return AclBroker(f"127.0.0.1:{port}", prefix, kafka.admin_connection(),
                     {n: KafkaConnection("SASL_PLAINTEXT", "PLAIN", n, p) for n, p in passwords.items()},
                     derived_acls(prefix), kafka)


async def prepare(broker: AclBroker) -> None:
    """The operator's part: the registry's topics, then the ACLs (both as the super user)."""
    await ensure_topics(broker.bootstrap, prefix=broker.prefix, connection=broker.admin)
    await apply_acls(broker.bootstrap, broker.rules, broker.admin)


def stop_acl_broker(broker: AclBroker) -> None:
    broker.kafka.down()
    shutil.rmtree(broker.kafka.s.state_dir, ignore_errors=True)
