"""How every flk Kafka client reaches its cluster: plaintext on loopback (the local broker of
`flk infra up`), TLS and/or SASL for a managed one. One value (`KafkaConnection`), built from the
platform settings (``FLK_KAFKA_SECURITY_PROTOCOL``, ``FLK_KAFKA_SASL_*``, ``FLK_KAFKA_SSL_*``),
handed to producers, consumers and admin clients alike."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


@dataclass(frozen=True)
class KafkaConnection:
    protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism = "PLAIN"
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    ssl_cafile: str | None = None  # None: the system's trusted CAs
    ssl_certfile: str | None = None  # client certificate (mutual TLS), with ssl_keyfile
    ssl_keyfile: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.uses_sasl and not (self.sasl_username and self.sasl_password):
            raise ValueError(f"Kafka security protocol {self.protocol} needs FLK_KAFKA_SASL_USERNAME "
                             "and FLK_KAFKA_SASL_PASSWORD")
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ValueError("FLK_KAFKA_SSL_CERTFILE and FLK_KAFKA_SSL_KEYFILE go together (mutual TLS)")
        if not self.uses_tls and (self.ssl_cafile or self.ssl_certfile):
            raise ValueError(f"TLS files are set but the Kafka security protocol is {self.protocol}")

    @property
    def uses_sasl(self) -> bool:
        return self.protocol.startswith("SASL_")

    @property
    def uses_tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for AIOKafkaProducer / AIOKafkaConsumer / AIOKafkaAdminClient."""
        options: dict[str, Any] = {"security_protocol": self.protocol}
        if self.uses_tls:
            from aiokafka.helpers import create_ssl_context

            options["ssl_context"] = create_ssl_context(cafile=self.ssl_cafile, certfile=self.ssl_certfile,
                                                        keyfile=self.ssl_keyfile)
        if self.uses_sasl:
            options.update(sasl_mechanism=self.sasl_mechanism, sasl_plain_username=self.sasl_username,
                           sasl_plain_password=self.sasl_password)
        return options


PLAINTEXT = KafkaConnection()
