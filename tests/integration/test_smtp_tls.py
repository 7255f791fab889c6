"""Alert e-mail over TLS (implicit and STARTTLS) to a real SMTP server (aiosmtpd) with
certificates this test makes: delivered when the relay's CA is configured, refused when
the certificate is not from it."""

from __future__ import annotations

import ssl
from email.message import EmailMessage
from pathlib import Path

import pytest

from backend.alerting.email_outbox import smtp_send
from backend.settings import SmtpSettings
from harness.mailbox import free_port
from ops.secure_services import make_certificates


class _Relay:
    """Keeps each message with whether it arrived over TLS."""

    def __init__(self) -> None:
        self.received: list[tuple[bool, bytes]] = []

    async def handle_DATA(self, server, session, envelope) -> str:  # aiosmtpd handler
        # session.ssl: after STARTTLS; the transport's ssl_object: implicit TLS
        tls = session.ssl is not None or server.transport.get_extra_info("ssl_object") is not None
        self.received.append((tls, envelope.content))
        return "250 OK"


def _server_context(cert: Path, key: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(cert), str(key))
    return ctx


def _message(subject: str) -> EmailMessage:
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = "icu@localhost", "nurse@localhost", subject
    m.set_content("alert")
    return m


@pytest.mark.parametrize("mode", ["starttls", "tls"])
def test_alert_mail_goes_over_tls_to_the_configured_relay_only(tmp_path: Path,
                                                               mode: str) -> None:
    from aiosmtpd.controller import Controller

    ca, cert, key = make_certificates(tmp_path / "relay")
    other_ca, _, _ = make_certificates(tmp_path / "elsewhere")
    relay, port = _Relay(), free_port()
    if mode == "tls":
        controller = Controller(relay, hostname="127.0.0.1", port=port,
                                ssl_context=_server_context(cert, key))
    else:
        controller = Controller(relay, hostname="127.0.0.1", port=port,
                                tls_context=_server_context(cert, key), require_starttls=True)
    controller.start()
    try:
        cfg = SmtpSettings(host="127.0.0.1", port=port, ca_file=ca, timeout_seconds=10,
                           **{mode: True})
        smtp_send(cfg, _message("over tls"))
        assert [(tls, b"over tls" in body) for tls, body in relay.received] == [(True, True)]
        # a relay whose certificate the configured CA did not sign is refused
        with pytest.raises(ssl.SSLCertVerificationError):
            smtp_send(cfg.model_copy(update={"ca_file": other_ca}), _message("elsewhere"))
        # and with no CA configured, the system's trust store does not know this one
        with pytest.raises(ssl.SSLCertVerificationError):
            smtp_send(cfg.model_copy(update={"ca_file": None}), _message("system store"))
        assert len(relay.received) == 1
    finally:
        controller.stop()
