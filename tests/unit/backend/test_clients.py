"""backend.clients: the one place Kafka and Cassandra client security is built."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from pydantic import SecretStr

from backend.clients import (
    SPARK_HOSTNAME_CHECKING_FACTORY,
    ClientConfigError,
    kafka_config,
    kafka_protocol,
    kafka_security,
    librdkafka_config,
    spark_cassandra_options,
    spark_kafka_options,
)
from backend.settings import CassandraSettings, KafkaSettings, TlsSettings
from backend.storage.cassandra import cassandra_security


def _ca(tmp_path: Path) -> Path:
    """A self-signed CA certificate made here (cryptography ships with the stack)."""
    from datetime import UTC, datetime, timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=1))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    path = tmp_path / "ca.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def test_local_broker_needs_no_security_options() -> None:
    cfg = KafkaSettings(bootstrap="a:1, b:2")
    assert kafka_protocol(cfg) == "PLAINTEXT"
    assert kafka_security(cfg) == {}
    assert kafka_config(cfg, acks="all") == {"bootstrap_servers": ["a:1", "b:2"],
                                             "acks": "all"}
    assert spark_kafka_options(cfg) == {"kafka.bootstrap.servers": "a:1, b:2"}


def test_scram_over_tls(tmp_path: Path) -> None:
    cfg = KafkaSettings(sasl_mechanism="scram-sha-512", username="icu-web",
                        password=SecretStr('p"w\\d'), tls=TlsSettings(ca_file=_ca(tmp_path)))
    sec = kafka_security(cfg)
    assert sec["security_protocol"] == "SASL_SSL"
    assert sec["sasl_mechanism"] == "SCRAM-SHA-512"
    assert sec["sasl_plain_username"] == "icu-web" and sec["sasl_plain_password"] == 'p"w\\d'
    ctx = sec["ssl_context"]
    assert isinstance(ctx, ssl.SSLContext) and ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    spark = spark_kafka_options(cfg)
    assert spark["kafka.security.protocol"] == "SASL_SSL"
    assert spark["kafka.ssl.truststore.type"] == "PEM"
    # the password is quoted for the JAAS line, so it cannot end the string early
    assert 'password="p\\"w\\\\d";' in spark["kafka.sasl.jaas.config"]
    assert "ScramLoginModule" in spark["kafka.sasl.jaas.config"]


@pytest.mark.parametrize("cfg, message", [
    (KafkaSettings(sasl_mechanism="GSSAPI", username="u", password=SecretStr("p")),
     "mechanism"),
    (KafkaSettings(sasl_mechanism="PLAIN", username="u"), "PASSWORD"),
])
def test_bad_kafka_settings_are_refused_with_the_reason(cfg: KafkaSettings,
                                                        message: str) -> None:
    with pytest.raises(ClientConfigError, match=message):
        kafka_security(cfg)


def test_cassandra_password_and_tls(tmp_path: Path) -> None:
    assert cassandra_security(CassandraSettings()) == {}
    out = cassandra_security(CassandraSettings(
        username="icu_web", password=SecretStr("pw"),
        tls=TlsSettings(ca_file=_ca(tmp_path), check_hostname=False)))
    assert out["auth_provider"].username == "icu_web"
    assert isinstance(out["ssl_context"], ssl.SSLContext)
    assert not out["ssl_context"].check_hostname
    with pytest.raises(ClientConfigError, match="both"):
        cassandra_security(CassandraSettings(username="only-a-name"))


def test_spark_cassandra_connector_gets_credentials_and_a_java_trust_store(
        tmp_path: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import pkcs12

    assert spark_cassandra_options(CassandraSettings(), tmp_path) == {}
    ca = _ca(tmp_path)
    out = spark_cassandra_options(CassandraSettings(
        username="icu_stream", password=SecretStr("s3cret"), tls=TlsSettings(ca_file=ca)),
        tmp_path / "tls")
    assert out["spark.cassandra.auth.username"] == "icu_stream"
    assert out["spark.cassandra.auth.password"] == "s3cret"
    assert out["spark.cassandra.connection.ssl.enabled"] == "true"
    suites = out["spark.cassandra.connection.ssl.enabledAlgorithms"].split(",")
    assert suites and not [s for s in suites if s.startswith("TLS_RSA_")]  # forward secrecy
    store = Path(out["spark.cassandra.connection.ssl.trustStore.path"])
    loaded = pkcs12.load_pkcs12(store.read_bytes(),
                                out["spark.cassandra.connection.ssl.trustStore.password"]
                                .encode())
    assert [c.certificate for c in loaded.additional_certs] == [
        x509.load_pem_x509_certificate(ca.read_bytes())]
    assert loaded.key is None  # public certificates only
    # the connector's host name check is off unless our connection factory is used
    assert out["spark.cassandra.connection.factory"] == SPARK_HOSTNAME_CHECKING_FACTORY
    unchecked = spark_cassandra_options(CassandraSettings(
        tls=TlsSettings(ca_file=ca, check_hostname=False)), tmp_path / "tls")
    assert "spark.cassandra.connection.factory" not in unchecked
    # the same CA gives the same file; the stream job's executors read it by path
    again = spark_cassandra_options(CassandraSettings(tls=TlsSettings(ca_file=ca)),
                                    tmp_path / "tls")
    assert again["spark.cassandra.connection.ssl.trustStore.path"] == str(store)
    with pytest.raises(ClientConfigError, match="both"):
        spark_cassandra_options(CassandraSettings(password=SecretStr("x")), tmp_path)


def test_spark_kafka_client_certificate_needs_key_and_chain_in_one_file(
        tmp_path: Path) -> None:
    ca = _ca(tmp_path)
    tls = TlsSettings(ca_file=ca, cert_file=tmp_path / "c.pem", key_file=tmp_path / "k.pem")
    with pytest.raises(ClientConfigError, match="one PEM file"):
        spark_kafka_options(KafkaSettings(tls=tls))
    one = TlsSettings(ca_file=ca, cert_file=tmp_path / "both.pem",
                      key_password=SecretStr("kp"))
    out = spark_kafka_options(KafkaSettings(tls=one))
    assert out["kafka.security.protocol"] == "SSL"
    assert out["kafka.ssl.keystore.location"] == str(tmp_path / "both.pem")
    assert out["kafka.ssl.key.password"] == "kp"


def test_librdkafka_gets_the_same_security(tmp_path: Path) -> None:
    assert librdkafka_config(KafkaSettings(bootstrap="a:1, b:2"), acks="all") == {
        "bootstrap.servers": "a:1,b:2", "acks": "all"}
    ca = _ca(tmp_path)
    cfg = KafkaSettings(sasl_mechanism="scram-sha-512", username="icu-stream",
                        password=SecretStr("pw"),
                        tls=TlsSettings(ca_file=ca, cert_file=ca, key_password=SecretStr("k"),
                                        check_hostname=False))
    assert librdkafka_config(cfg) == {
        "bootstrap.servers": cfg.bootstrap, "security.protocol": "sasl_ssl",
        "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "icu-stream",
        "sasl.password": "pw", "ssl.ca.location": str(ca),
        "ssl.certificate.location": str(ca), "ssl.key.location": str(ca),
        "ssl.key.password": "k", "ssl.endpoint.identification.algorithm": "none"}
    no_ca = librdkafka_config(KafkaSettings(tls=TlsSettings(enabled=True)))
    assert no_ca["security.protocol"] == "ssl"
    assert no_ca["ssl.ca.location"] == "probe"  # the system's CAs
    assert no_ca["ssl.endpoint.identification.algorithm"] == "https"
    with pytest.raises(ClientConfigError, match="ICU_KAFKA__PASSWORD"):
        librdkafka_config(KafkaSettings(sasl_mechanism="PLAIN", username="u"))
