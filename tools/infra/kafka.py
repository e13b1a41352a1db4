"""Apache Kafka in KRaft mode from Maven Central jars: fetch once, format, run, wait."""
from __future__ import annotations

import asyncio
import hashlib
import shutil
import subprocess
import time
from pathlib import Path

from tools.infra.process import InfraError, ManagedProcess, port_open
from tools.infra.settings import InfraSettings

POM_TEMPLATE = """<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>se.flk.local</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <!-- first, so it wins over the slf4j 1.7 API another dependency brings: with 1.7 the log4j2
         binding below is not found and the broker logs nothing at all -->
    <dependency>
      <groupId>org.slf4j</groupId>
      <artifactId>slf4j-api</artifactId>
      <version>{slf4j}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_{scala}</artifactId>
      <version>{kafka}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j2-impl</artifactId>
      <version>{log4j}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-core</artifactId>
      <version>{log4j}</version>
    </dependency>
  </dependencies>
</project>
"""

LOG4J2 = """status = warn
appender.console.type = Console
appender.console.name = console
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.console.ref = console
logger.kafka.name = kafka
logger.kafka.level = warn
logger.apache.name = org.apache.kafka
logger.apache.level = warn
logger.started.name = kafka.server.KafkaRaftServer
logger.started.level = info
"""


class Kafka:
    name = "kafka"

    def __init__(self, settings: InfraSettings) -> None:
        self.s = settings
        self.process = ManagedProcess(self.name, settings.state_dir)
        self.dir = settings.state_dir / "kafka"

    # --- jars -------------------------------------------------------------------------
    @property
    def runtime_dir(self) -> Path:
        return self.s.cache_dir / f"kafka_{self.s.kafka_scala_version}-{self.s.kafka_version}"

    @property
    def libs(self) -> Path:
        return self.runtime_dir / "libs"

    def pom(self) -> str:
        return POM_TEMPLATE.format(scala=self.s.kafka_scala_version, kafka=self.s.kafka_version,
                                   log4j=self.s.log4j_version, slf4j=self.s.slf4j_version)

    def ensure_jars(self) -> bool:
        """Download the broker's jars once (again when the dependency list changed). True when it downloaded."""
        marker = self.runtime_dir / ".complete"
        fingerprint = hashlib.sha256(self.pom().encode()).hexdigest()[:16]
        if marker.exists() and fingerprint in marker.read_text():
            return False
        if self.libs.exists():
            shutil.rmtree(self.libs)
        require_tool("java", "a Java 17+ runtime (Debian: apt-get install openjdk-17-jre-headless)")
        require_tool("mvn", "Apache Maven to fetch the Kafka jars (Debian: apt-get install maven)")
        self.runtime_dir.mkdir(parents=True, exist_ok=True)
        (self.runtime_dir / "pom.xml").write_text(self.pom())
        result = subprocess.run(
            ["mvn", "-q", "-B", "dependency:copy-dependencies", f"-DoutputDirectory={self.libs}",
             "-DincludeScope=runtime"],
            cwd=self.runtime_dir, capture_output=True, text=True,
        )
        if result.returncode != 0:
            tail = (result.stdout + result.stderr).strip().splitlines()[-5:]
            raise InfraError("could not fetch the Kafka jars with Maven: " + " | ".join(tail))
        marker.write_text(f"{self.s.kafka_version} {fingerprint}\n")
        return True

    # --- configuration ------------------------------------------------------------------
    @property
    def properties_file(self) -> Path:
        return self.dir / "server.properties"

    @property
    def data_dir(self) -> Path:
        return self.dir / "data"

    def write_config(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        s = self.s
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{s.kafka_host}:{s.kafka_controller_port}",
            "listeners": f"PLAINTEXT://{s.kafka_host}:{s.kafka_port},CONTROLLER://{s.kafka_host}:{s.kafka_controller_port}",
            "advertised.listeners": f"PLAINTEXT://{s.kafka_host}:{s.kafka_port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.data_dir),
            "num.partitions": "6",
            "default.replication.factor": "1",
            "min.insync.replicas": "1",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "6",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            # topics come from the registry (`flk topics create`); a typo must not create one
            "auto.create.topics.enable": "false",
            "delete.topic.enable": "true",
            "log.retention.hours": "-1",
            "log.segment.bytes": str(64 * 1024 * 1024),
        }
        if s.kafka_sasl_ssl_port is not None:
            props.update(sasl_ssl_listener(s))
        if s.kafka_acls:
            props.update(acl_listeners(s))
        self.properties_file.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        (self.dir / "log4j2.properties").write_text(LOG4J2)

    def admin_connection(self):
        """How a client reaches this broker as its super user (plaintext unless ``kafka_acls``)."""
        from flk.events.connection import PLAINTEXT, KafkaConnection

        if not self.s.kafka_acls:
            return PLAINTEXT
        return KafkaConnection("SASL_PLAINTEXT", "PLAIN", self.s.kafka_admin_user,
                               self.s.kafka_admin_password.get_secret_value())

    def java_argv(self, main_class: str, *args: str) -> list[str]:
        return [
            "java", f"-Xmx{self.s.kafka_heap}", "-Xms128m", "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.dir / 'log4j2.properties'}",
            "-cp", f"{self.libs}/*", main_class, *args,
        ]

    def format_storage(self) -> bool:
        if (self.data_dir / "meta.properties").exists():
            return False
        result = subprocess.run(
            self.java_argv("kafka.tools.StorageTool", "format", "-t", self.s.kafka_cluster_id,
                           "-c", str(self.properties_file), "--ignore-formatted"),
            capture_output=True, text=True,
        )
        if result.returncode != 0:
            raise InfraError("kafka storage format failed: " + (result.stdout + result.stderr).strip()[-400:])
        return True

    # --- lifecycle ----------------------------------------------------------------------
    def up(self) -> str:
        if self.process.pid() is not None:  # perhaps still starting (another `up` started it)
            wait_for_kafka(self.s.kafka_bootstrap, self.s.kafka_start_timeout_s, self.process,
                           max_s=self.s.kafka_start_max_s, options=self.admin_connection().client_options())
            return f"kafka already running on {self.s.kafka_bootstrap}"
        if port_open(self.s.kafka_host, self.s.kafka_port):
            raise InfraError(
                f"port {self.s.kafka_port} is taken by a process flk did not start; "
                "set FLK_INFRA_KAFKA_PORT or stop that process"
            )
        downloaded = self.ensure_jars()
        self.write_config()
        self.format_storage()
        self.process.start(self.java_argv("kafka.Kafka", str(self.properties_file)), cwd=self.dir)
        started = time.monotonic()
        try:
            wait_for_kafka(self.s.kafka_bootstrap, self.s.kafka_start_timeout_s, self.process,
                           max_s=self.s.kafka_start_max_s, options=self.admin_connection().client_options())
        except InfraError:
            self.process.stop()
            raise
        note = " (jars downloaded)" if downloaded else ""
        return f"kafka {self.s.kafka_version} up on {self.s.kafka_bootstrap} in {time.monotonic() - started:.1f}s{note}"

    def down(self) -> str:
        return "kafka stopped" if self.process.stop() else "kafka was not running (started by flk)"

    def status(self) -> str:
        pid = self.process.pid()
        if pid is None:
            return "kafka: stopped"
        ok = port_open(self.s.kafka_host, self.s.kafka_port)
        return f"kafka: running (pid {pid}) on {self.s.kafka_bootstrap}{'' if ok else ', port not answering'}"


def sasl_ssl_listener(s: InfraSettings) -> dict[str, str]:
    """Broker properties for an extra SASL_SSL listener with PLAIN users (to prove the clients'
    TLS + SASL wiring against a real broker; the PLAINTEXT listener stays for the rest)."""
    if not s.kafka_sasl_users or s.kafka_ssl_keystore_pem is None:
        raise InfraError("a SASL_SSL listener needs kafka_sasl_users and kafka_ssl_keystore_pem")
    listener = f"SASL_SSL://{s.kafka_host}:{s.kafka_sasl_ssl_port}"
    users = " ".join(f'user_{name}="{password}"' for name, password in s.kafka_sasl_users.items())
    return {
        "listeners": f"PLAINTEXT://{s.kafka_host}:{s.kafka_port},{listener},"
                     f"CONTROLLER://{s.kafka_host}:{s.kafka_controller_port}",
        "advertised.listeners": f"PLAINTEXT://{s.kafka_host}:{s.kafka_port},{listener}",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL",
        "sasl.enabled.mechanisms": "PLAIN",
        "listener.name.sasl_ssl.plain.sasl.jaas.config":
            f"org.apache.kafka.common.security.plain.PlainLoginModule required {users};",
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(s.kafka_ssl_keystore_pem),
    }


def acl_listeners(s: InfraSettings) -> dict[str, str]:
    """Broker properties for least privilege: every listener (the clients' on ``kafka_port`` and the
    controller's) takes SASL PLAIN over plaintext on loopback, the KRaft ``StandardAuthorizer``
    decides, and only the admin (also the broker's own identity) is a super user. A principal
    without an ACL for a resource is refused (``allow.everyone.if.no.acl.found=false``)."""
    if s.kafka_sasl_ssl_port is not None:
        raise InfraError("kafka_acls and the extra SASL_SSL listener are not combined; choose one")
    admin, password = s.kafka_admin_user, s.kafka_admin_password.get_secret_value()
    users = {**s.kafka_sasl_users, admin: password}
    for name, secret in users.items():
        if not name or any(c in name for c in ' "=;\\'):
            raise InfraError(f"Kafka user name {name!r} cannot go into a JAAS configuration")
        if any(c in secret for c in '"\\'):
            raise InfraError(f"the Kafka password of {name} cannot contain a quote or a backslash (JAAS)")
    accepted = " ".join(f'user_{name}="{secret}"' for name, secret in users.items())
    jaas = (f'org.apache.kafka.common.security.plain.PlainLoginModule required username="{admin}" '
            f'password="{password}" {accepted};')
    return {
        "listeners": f"SASL_PLAINTEXT://{s.kafka_host}:{s.kafka_port},CONTROLLER://{s.kafka_host}:{s.kafka_controller_port}",
        "advertised.listeners": f"SASL_PLAINTEXT://{s.kafka_host}:{s.kafka_port}",
        "inter.broker.listener.name": "SASL_PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:SASL_PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT",
        "sasl.enabled.mechanisms": "PLAIN",
        "sasl.mechanism.inter.broker.protocol": "PLAIN",
        "sasl.mechanism.controller.protocol": "PLAIN",
        "listener.name.sasl_plaintext.plain.sasl.jaas.config": jaas,
        "listener.name.controller.plain.sasl.jaas.config": jaas,
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": f"User:{admin}",
        "allow.everyone.if.no.acl.found": "false",
    }


def require_tool(tool: str, what: str) -> None:
    if shutil.which(tool) is None:
        raise InfraError(f"'{tool}' not found on PATH: flk needs {what}")


def wait_for_kafka(bootstrap: str, timeout_s: float, process: ManagedProcess | None = None,
                   max_s: float | None = None, options: dict | None = None) -> None:
    """Return once the broker answers a metadata request; raise InfraError on timeout or crash.

    With the broker's own ``process``, ``timeout_s`` counts from its last sign of life: a broker
    that keeps writing its log is loading partitions (thousands take minutes) and is waited for,
    up to ``max_s`` in all. A silent one fails after ``timeout_s``, with the end of its log.
    """
    started = time.monotonic()
    deadline = started + timeout_s
    hard_deadline = started + (max_s if max_s is not None else timeout_s)
    log_size = _log_size(process)
    last_error = "no answer"
    while time.monotonic() < deadline:
        if process is not None:
            if process.pid() is None:
                raise InfraError(f"kafka exited during start-up; log: {process.log_file}\n{process.log_tail()}")
            size = _log_size(process)
            if size != log_size:  # still loading: wait on, within the hard limit
                log_size = size
                deadline = max(deadline, min(time.monotonic() + timeout_s, hard_deadline))
        host, _, port = bootstrap.rpartition(":")
        if not port_open(host, int(port)):
            time.sleep(0.3)
            continue
        try:
            asyncio.run(_metadata_once(bootstrap, options or {}))
            return
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready yet"
            last_error = f"{type(exc).__name__}: {exc}"
        time.sleep(0.5)
    waited = time.monotonic() - started
    message = f"kafka on {bootstrap} did not answer metadata requests within {waited:.0f}s ({last_error})"
    if process is not None:
        message += (f"; log: {process.log_file}\n{process.log_tail()}\n"
                    "(a broker holding many partitions starts slowly: `flk infra prune` deletes the topics "
                    "that tests, benchmarks and --fresh runs left behind)")
    raise InfraError(message)


def _log_size(process: ManagedProcess | None) -> int:
    if process is None:
        return 0
    try:
        return process.log_file.stat().st_size
    except FileNotFoundError:
        return 0


async def _metadata_once(bootstrap: str, options: dict) -> None:
    from aiokafka import AIOKafkaClient

    client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=3000, **options)
    try:
        await asyncio.wait_for(client.bootstrap(), timeout=5)
        await asyncio.wait_for(client.fetch_all_metadata(), timeout=5)
    finally:
        await client.close()
