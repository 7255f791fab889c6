"""Client configuration for Kafka (kafka-python) and Cassandra (cassandra-driver), built
from the settings in one place: security protocol, SASL mechanism and credentials, TLS
CA / client certificate. Every Kafka producer, consumer and admin client and every
Cassandra ``Cluster`` of the platform gets its security options from here, so turning on
authentication or TLS is a settings change, not a code change.

- Kafka: ``kafka_security(settings.kafka)`` is the keyword arguments kafka-python's
  ``KafkaProducer``/``KafkaConsumer``/``KafkaAdminClient`` take
  (``security_protocol``, ``sasl_*``, ``ssl_*``); ``kafka_config(settings.kafka, **kw)``
  adds ``bootstrap_servers`` and the caller's own options. For Spark's Kafka source and
  sink, ``spark_kafka_options`` gives the same as ``kafka.*`` options (JAAS config).
- Cassandra: ``backend.storage.cassandra.cassandra_security(settings.cassandra)`` is
  ``auth_provider`` and ``ssl_context`` for ``cassandra.cluster.Cluster`` (built from
  ``ssl_context`` here); ``spark_cassandra_options`` the same
  for the Spark Cassandra Connector (``spark.cassandra.auth.*``,
  ``spark.cassandra.connection.ssl.*``).

No password is ever logged: the dictionaries hold them, so do not print them.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import os
import secrets
import ssl
from pathlib import Path
from typing import Any

from backend.settings import CassandraSettings, KafkaSettings, Settings, TlsSettings

log = logging.getLogger(__name__)

SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
# TLS 1.3 and forward-secret TLS 1.2 suites, for JVM clients that take a list.
JVM_CIPHER_SUITES = (
    "TLS_AES_256_GCM_SHA384", "TLS_AES_128_GCM_SHA256", "TLS_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
)
# The Spark Cassandra Connector switches the driver's host name check off and has no
# setting for it; this connection factory (streaming/jvm/, built by
# streaming/connection_factory.py) is the connector's own with the check on.
SPARK_HOSTNAME_CHECKING_FACTORY = "icu.spark.HostnameCheckingConnectionFactory"


class ClientConfigError(ValueError):
    """The settings do not describe a usable client configuration."""


def ssl_context(tls: TlsSettings) -> ssl.SSLContext | None:
    """A client TLS context from ``tls`` (``None`` when TLS is off): the CA file when
    given (else the system's trust store), the client certificate when given, TLS 1.2+."""
    if not tls.on:
        return None
    ctx = ssl.create_default_context(cafile=str(tls.ca_file) if tls.ca_file else None)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = tls.check_hostname
    if tls.cert_file:
        password = tls.key_password.get_secret_value() if tls.key_password else None
        ctx.load_cert_chain(str(tls.cert_file), str(tls.key_file) if tls.key_file else None,
                            password)
    elif tls.key_file:
        raise ClientConfigError("a TLS key_file needs its cert_file")
    return ctx


def kafka_protocol(cfg: KafkaSettings) -> str:
    """``PLAINTEXT``, ``SSL``, ``SASL_PLAINTEXT`` or ``SASL_SSL``."""
    if cfg.sasl_mechanism:
        return "SASL_SSL" if cfg.tls.on else "SASL_PLAINTEXT"
    return "SSL" if cfg.tls.on else "PLAINTEXT"


def kafka_sasl(cfg: KafkaSettings) -> tuple[str, str, str]:
    """The SASL mechanism, user name and password of ``cfg`` (which names a mechanism)."""
    mechanism = (cfg.sasl_mechanism or "").upper()
    if mechanism not in SASL_MECHANISMS:
        raise ClientConfigError(f"Kafka SASL mechanism {cfg.sasl_mechanism!r}: one of "
                                f"{', '.join(SASL_MECHANISMS)}")
    if not cfg.username or cfg.password is None:
        raise ClientConfigError("Kafka SASL needs ICU_KAFKA__USERNAME and "
                                "ICU_KAFKA__PASSWORD")
    return mechanism, cfg.username, cfg.password.get_secret_value()


def kafka_security(cfg: KafkaSettings) -> dict[str, Any]:
    """kafka-python keyword arguments for authentication and TLS (empty for the
    unauthenticated local broker)."""
    out: dict[str, Any] = {}
    protocol = kafka_protocol(cfg)
    if protocol == "PLAINTEXT":
        return out
    out["security_protocol"] = protocol
    if cfg.sasl_mechanism:
        mechanism, username, password = kafka_sasl(cfg)
        out.update(sasl_mechanism=mechanism, sasl_plain_username=username,
                   sasl_plain_password=password)
    if cfg.tls.on:
        # kafka-python builds its own context from these; passing ssl_context as well
        # keeps one definition of the TLS policy (minimum version, hostname check).
        out["ssl_context"] = ssl_context(cfg.tls)
        out["ssl_check_hostname"] = cfg.tls.check_hostname
    return out


def kafka_config(cfg: KafkaSettings, **options: Any) -> dict[str, Any]:
    """``bootstrap_servers`` + :func:`kafka_security` + the caller's ``options``."""
    return {"bootstrap_servers": _bootstrap(cfg), **kafka_security(cfg), **options}


def _bootstrap(cfg: KafkaSettings) -> list[str]:
    return [b.strip() for b in cfg.bootstrap.split(",") if b.strip()]


def librdkafka_config(cfg: KafkaSettings, **options: Any) -> dict[str, Any]:
    """The same bootstrap, authentication and TLS as librdkafka properties
    (confluent-kafka's ``Producer``/``Consumer``), plus the caller's ``options``: for the
    stream job's transactional publisher, where kafka-python's producer costs ~14x the
    CPU per message (docs/benchmarks.md)."""
    out: dict[str, Any] = {"bootstrap.servers": ",".join(_bootstrap(cfg))}
    protocol = kafka_protocol(cfg)
    if protocol != "PLAINTEXT":
        out["security.protocol"] = protocol.lower()
    if cfg.sasl_mechanism:
        mechanism, username, password = kafka_sasl(cfg)
        out.update({"sasl.mechanism": mechanism, "sasl.username": username,
                    "sasl.password": password})
    tls = cfg.tls
    if tls.on:
        # librdkafka links its own OpenSSL: "probe" finds the system's CA store
        out["ssl.ca.location"] = str(tls.ca_file) if tls.ca_file else "probe"
        if tls.cert_file:
            out["ssl.certificate.location"] = str(tls.cert_file)
            out["ssl.key.location"] = str(tls.key_file or tls.cert_file)
            if tls.key_password is not None:
                out["ssl.key.password"] = tls.key_password.get_secret_value()
        elif tls.key_file:
            raise ClientConfigError("a TLS key_file needs its cert_file")
        out["ssl.endpoint.identification.algorithm"] = "https" if tls.check_hostname else "none"
    return {**out, **options}


def _jaas_quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def spark_kafka_options(cfg: KafkaSettings) -> dict[str, str]:
    """The same security as Spark Kafka source/sink options (``kafka.`` prefixed).

    TLS for the JVM client takes PEM files directly (Kafka >= 2.7:
    ``ssl.truststore.type=PEM``)."""
    out = {"kafka.bootstrap.servers": cfg.bootstrap}
    protocol = kafka_protocol(cfg)
    if protocol == "PLAINTEXT":
        return out
    out["kafka.security.protocol"] = protocol
    if cfg.sasl_mechanism:
        mechanism, username, password = kafka_sasl(cfg)
        module = ("org.apache.kafka.common.security.plain.PlainLoginModule"
                  if mechanism == "PLAIN"
                  else "org.apache.kafka.common.security.scram.ScramLoginModule")
        out["kafka.sasl.mechanism"] = mechanism
        out["kafka.sasl.jaas.config"] = (
            f'{module} required username="{_jaas_quote(username)}" '
            f'password="{_jaas_quote(password)}";')
    if cfg.tls.on:
        if cfg.tls.ca_file:
            out["kafka.ssl.truststore.type"] = "PEM"
            out["kafka.ssl.truststore.location"] = str(cfg.tls.ca_file)
        if cfg.tls.cert_file:
            # The JVM client reads a PEM keystore from one file: key and certificate chain.
            if cfg.tls.key_file and cfg.tls.key_file != cfg.tls.cert_file:
                raise ClientConfigError("the Spark Kafka client needs the private key and its "
                                        "certificate in one PEM file (ICU_KAFKA__TLS__CERT_FILE)")
            out["kafka.ssl.keystore.type"] = "PEM"
            out["kafka.ssl.keystore.location"] = str(cfg.tls.cert_file)
            if cfg.tls.key_password is not None:
                out["kafka.ssl.key.password"] = cfg.tls.key_password.get_secret_value()
        if not cfg.tls.check_hostname:
            out["kafka.ssl.endpoint.identification.algorithm"] = ""
    return out


def java_truststore(ca_file: Path, directory: Path) -> tuple[Path, str]:
    """A PKCS#12 trust store (for JVM clients that take no PEM, such as the Spark Cassandra
    Connector) holding the certificates of ``ca_file``, written once per content under
    ``directory``. Its password only protects integrity: a trust store holds public
    certificates, nothing secret."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import BestAvailableEncryption, pkcs12

    pem = Path(ca_file).read_bytes()
    try:
        certs = x509.load_pem_x509_certificates(pem)
    except ValueError as exc:
        raise ClientConfigError(f"{ca_file}: not a PEM certificate file ({exc})") from None
    password = "icu-truststore"
    path = Path(directory) / f"truststore-{hashlib.sha256(pem).hexdigest()[:16]}.p12"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        data = pkcs12.serialize_java_truststore(
            [pkcs12.PKCS12Certificate(c, f"ca{i}".encode()) for i, c in enumerate(certs)],
            BestAvailableEncryption(password.encode()))
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
    return path, password


def _java_keystore(tls: TlsSettings, directory: Path) -> tuple[Path, str]:
    """The client certificate and key of ``tls`` as a PKCS#12 key store (owner-only file,
    random password, written for this process)."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import (
        BestAvailableEncryption,
        load_pem_private_key,
        pkcs12,
    )

    assert tls.cert_file is not None
    chain = x509.load_pem_x509_certificates(Path(tls.cert_file).read_bytes())
    key_pem = Path(tls.key_file or tls.cert_file).read_bytes()
    password = tls.key_password.get_secret_value().encode() if tls.key_password else None
    key = load_pem_private_key(key_pem, password)
    store_password = secrets.token_urlsafe(24)
    data = pkcs12.serialize_key_and_certificates(
        b"client", key, chain[0], chain[1:] or None,  # type: ignore[arg-type]
        BestAvailableEncryption(store_password.encode()))
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"keystore-{os.getpid()}.p12"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    return path, store_password


def spark_cassandra_options(cfg: CassandraSettings, tls_dir: Path) -> dict[str, str]:
    """The Spark Cassandra Connector's authentication and TLS options
    (``spark.cassandra.auth.*``, ``spark.cassandra.connection.ssl.*``). The connector
    takes Java key stores, so the PEM files of the settings are converted into
    ``tls_dir``."""
    out: dict[str, str] = {}
    if cfg.username or cfg.password is not None:
        if not cfg.username or cfg.password is None:
            raise ClientConfigError("Cassandra authentication needs both "
                                    "ICU_CASSANDRA__USERNAME and ICU_CASSANDRA__PASSWORD")
        out["spark.cassandra.auth.username"] = cfg.username
        out["spark.cassandra.auth.password"] = cfg.password.get_secret_value()
    if cfg.tls.on:
        out["spark.cassandra.connection.ssl.enabled"] = "true"
        # The connector's default is two TLS_RSA suites (no forward secrecy, refused by
        # current JVMs and impossible with an EC certificate).
        out["spark.cassandra.connection.ssl.enabledAlgorithms"] = ",".join(JVM_CIPHER_SUITES)
        if cfg.tls.check_hostname:
            out["spark.cassandra.connection.factory"] = SPARK_HOSTNAME_CHECKING_FACTORY
        if cfg.tls.ca_file:
            path, password = java_truststore(cfg.tls.ca_file, tls_dir)
            out["spark.cassandra.connection.ssl.trustStore.path"] = str(path)
            out["spark.cassandra.connection.ssl.trustStore.password"] = password
            out["spark.cassandra.connection.ssl.trustStore.type"] = "PKCS12"
        if cfg.tls.cert_file:
            path, password = _java_keystore(cfg.tls, tls_dir)
            out["spark.cassandra.connection.ssl.clientAuth.enabled"] = "true"
            out["spark.cassandra.connection.ssl.keyStore.path"] = str(path)
            out["spark.cassandra.connection.ssl.keyStore.password"] = password
            out["spark.cassandra.connection.ssl.keyStore.type"] = "PKCS12"
    return out


def describe(kafka: KafkaSettings, cassandra: CassandraSettings) -> dict[str, str]:
    """What the clients will use, without secrets (start-up logs, ``icu config``)."""
    return {
        "kafka": kafka_protocol(kafka) + (f" {kafka.sasl_mechanism} as {kafka.username}"
                                          if kafka.sasl_mechanism else ""),
        "cassandra": ("TLS" if cassandra.tls.on else "plaintext")
        + (f", user {cassandra.username}" if cassandra.username else ", no authentication"),
    }


def _loopback(host: str) -> bool:
    host = host.strip().strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def insecure_services(settings: Settings, *, smtp: bool = False) -> list[str]:
    """What is unauthenticated or unencrypted among the servers ``settings`` reach
    (Kafka, Cassandra, and with ``smtp`` the mail relay), each with the settings that fix
    it; empty when everything has credentials and TLS."""
    problems = []
    k, c = settings.kafka, settings.cassandra
    if not k.sasl_mechanism or not k.username or k.password is None:
        problems.append("Kafka without authentication (ICU_KAFKA__SASL_MECHANISM, "
                        "ICU_KAFKA__USERNAME, ICU_KAFKA__PASSWORD)")
    if not k.tls.on:
        problems.append("Kafka without TLS (ICU_KAFKA__TLS__CA_FILE or ICU_KAFKA__TLS__ENABLED)")
    elif not k.tls.check_hostname:
        problems.append("Kafka TLS without the server name check "
                        "(ICU_KAFKA__TLS__CHECK_HOSTNAME=false)")
    if not c.username or c.password is None:
        problems.append("Cassandra without authentication (ICU_CASSANDRA__USERNAME, "
                        "ICU_CASSANDRA__PASSWORD)")
    if not c.tls.on:
        problems.append("Cassandra without TLS (ICU_CASSANDRA__TLS__CA_FILE or "
                        "ICU_CASSANDRA__TLS__ENABLED)")
    elif not c.tls.check_hostname:
        problems.append("Cassandra TLS without the server name check "
                        "(ICU_CASSANDRA__TLS__CHECK_HOSTNAME=false)")
    if smtp and not (settings.smtp.tls or settings.smtp.starttls):
        problems.append("SMTP without TLS (ICU_SMTP__TLS or ICU_SMTP__STARTTLS)")
    return problems


def require_secure_services(settings: Settings, component: str, *,
                            smtp: bool = False) -> None:
    """Refuse to start ``component`` outside demo mode while any server it reaches lacks
    credentials or TLS (:func:`insecure_services`). ``allow_insecure_services`` (a
    developer's machine, the tests) is accepted only when every server is on loopback;
    demo mode and that exception start with a loud warning."""
    problems = insecure_services(settings, smtp=smtp)
    if not problems:
        return
    if settings.demo_mode:
        log.warning("DEMO MODE, NO SECURITY: %s runs with %s. Never use demo mode with "
                    "patient data.", component, "; ".join(problems))
        return
    if settings.allow_insecure_services:
        hosts = [b.rsplit(":", 1)[0] for b in settings.kafka.bootstrap.split(",") if b.strip()]
        hosts += list(settings.cassandra.hosts)
        if smtp:
            hosts.append(settings.smtp.host)
        remote = [h for h in hosts if not _loopback(h)]
        if remote:
            raise ClientConfigError(
                f"ICU_ALLOW_INSECURE_SERVICES is only for servers on loopback (127.0.0.1); "
                f"{', '.join(sorted(set(remote)))} is not")
        log.warning("INSECURE: %s runs with %s (ICU_ALLOW_INSECURE_SERVICES, loopback "
                    "only); never use this for a deployment", component, "; ".join(problems))
        return
    raise ClientConfigError(
        f"refusing to start {component} outside demo mode: " + "; ".join(problems)
        + ". A hospital deployment needs credentials and TLS for every server "
        "(docs/security.md); `icu services secure start` runs secured local servers; "
        "ICU_DEMO_MODE=true is for demo machines without patient data.")
