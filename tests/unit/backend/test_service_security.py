"""Production settings refuse servers without credentials and TLS (demo mode exempt):
backend.clients.require_secure_services, and the commands that call it."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from click.testing import CliRunner
from pydantic import SecretStr

from backend.clients import ClientConfigError, insecure_services, require_secure_services
from backend.settings import (
    CassandraSettings,
    KafkaSettings,
    Settings,
    SmtpSettings,
    TlsSettings,
    get_settings,
)


def _secure(tmp_path: Path, **update: object) -> Settings:
    ca = tmp_path / "ca.pem"
    ca.write_text("unused: the check reads settings, not files\n")
    tls = TlsSettings(ca_file=ca)
    return Settings(
        kafka=KafkaSettings(bootstrap="kafka.hospital.example:9093",
                            sasl_mechanism="SCRAM-SHA-512", username="icu_stream",
                            password=SecretStr("k"), tls=tls),
        cassandra=CassandraSettings(hosts=["db1.hospital.example"], username="icu_stream",
                                    password=SecretStr("c"), tls=tls),
        smtp=SmtpSettings(host="mail.hospital.example", starttls=True),
    ).model_copy(update=update)


def test_credentials_and_tls_everywhere_start(tmp_path: Path) -> None:
    settings = _secure(tmp_path)
    assert insecure_services(settings, smtp=True) == []
    require_secure_services(settings, "the stream job", smtp=True)


@pytest.mark.parametrize("group, field, value, named", [
    ("kafka", "sasl_mechanism", None, "Kafka without authentication"),
    ("kafka", "password", None, "Kafka without authentication"),
    ("kafka", "tls", TlsSettings(), "Kafka without TLS"),
    ("cassandra", "username", None, "Cassandra without authentication"),
    ("cassandra", "password", None, "Cassandra without authentication"),
    ("cassandra", "tls", TlsSettings(), "Cassandra without TLS"),
    ("smtp", "starttls", False, "SMTP without TLS"),
])
def test_each_missing_control_is_refused_by_name(tmp_path: Path, group: str, field: str,
                                                 value: object, named: str) -> None:
    base = _secure(tmp_path)
    settings = base.model_copy(update={
        group: getattr(base, group).model_copy(update={field: value})})
    with pytest.raises(ClientConfigError, match=f"refusing to start the alert manager.*{named}"):
        require_secure_services(settings, "the alert manager", smtp=True)


def test_unchecked_server_names_are_refused(tmp_path: Path) -> None:
    base = _secure(tmp_path)
    unchecked = base.kafka.tls.model_copy(update={"check_hostname": False})
    settings = base.model_copy(update={"kafka": base.kafka.model_copy(update={"tls": unchecked})})
    with pytest.raises(ClientConfigError, match="server name check"):
        require_secure_services(settings, "the web app")


def test_demo_mode_starts_with_a_loud_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="backend.clients"):
        require_secure_services(Settings(demo_mode=True), "the web app")
    assert "DEMO MODE, NO SECURITY" in caplog.text and "Kafka without TLS" in caplog.text


def test_the_developer_exception_is_for_loopback_only(
        caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="backend.clients"):
        require_secure_services(Settings(allow_insecure_services=True), "the stream job")
    assert "INSECURE" in caplog.text
    remote = Settings(allow_insecure_services=True,
                      cassandra=CassandraSettings(hosts=["127.0.0.1", "10.1.2.3"]))
    with pytest.raises(ClientConfigError, match=r"10\.1\.2\.3"):
        require_secure_services(remote, "the stream job")
    mail = Settings(allow_insecure_services=True, smtp=SmtpSettings(host="mail.example"))
    require_secure_services(mail, "the web app")  # the web app sends no mail
    with pytest.raises(ClientConfigError, match=r"mail\.example"):
        require_secure_services(mail, "the alert manager", smtp=True)


def test_web_app_refuses_insecure_servers_before_anything_else() -> None:
    from webapp.app import ConfigurationError, check_transport

    settings = Settings(web={"allow_insecure_http": True})
    with pytest.raises(ConfigurationError, match=r"refusing to start the web app.*Kafka"):
        check_transport(settings)
    check_transport(settings.model_copy(update={"allow_insecure_services": True}))


@pytest.mark.parametrize("module, args, component", [
    ("streaming.stream_cli", ["run"], "the stream job"),
    ("streaming.stream_cli", ["risk"], "the stream job"),
    ("streaming.stream_cli", ["persist"], "the stream job"),
    ("streaming.stream_cli", ["waveforms"], "the stream job"),
    ("streaming.alerts_cli", ["manager"], "the alert manager"),
])
def test_commands_refuse_production_settings_without_security(
        monkeypatch: pytest.MonkeyPatch, module: str, args: list[str],
        component: str) -> None:
    import importlib

    for name in ("ICU_DEMO_MODE", "ICU_ALLOW_INSECURE_SERVICES"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(importlib.import_module(module).cli, args)
    finally:
        get_settings.cache_clear()
    assert result.exit_code != 0
    assert f"refusing to start {component}" in result.output
    assert "Cassandra without authentication" in result.output
