"""``icu mail catcher``: a development SMTP server (aiosmtpd) that keeps every message it
receives as a ``.eml`` file and logs its subject, for the demo. Never for production."""

from __future__ import annotations

import logging
import signal
import threading
from email import message_from_bytes, policy
from pathlib import Path

import click

from backend.settings import get_settings

log = logging.getLogger(__name__)


class SaveHandler:
    """aiosmtpd handler: one file per message in ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.count = 0

    async def handle_DATA(self, server, session, envelope) -> str:
        self.count += 1
        msg = message_from_bytes(envelope.content, policy=policy.default)
        path = self.directory / f"{self.count:06d}.eml"
        path.write_bytes(envelope.content)
        log.info("mail %d for %s: %s", self.count, ", ".join(envelope.rcpt_tos), msg["Subject"])
        return "250 Message accepted for delivery"


@click.group()
def cli() -> None:
    """Development mail tools."""


@cli.command("catcher")
@click.option("--host", default=None, help="default: the SMTP host of the settings")
@click.option("--port", type=int, default=None, help="default: the SMTP port of the settings")
@click.option("--dir", "directory", type=click.Path(path_type=Path), default=None,
              help="where to keep the messages (default: <cache_dir>/mail)")
def catcher(host: str | None, port: int | None, directory: Path | None) -> None:
    """Receive mail on the configured SMTP port and keep it (demo)."""
    from aiosmtpd.controller import Controller

    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = get_settings()
    directory = directory or settings.cache_dir / "mail"
    controller = Controller(SaveHandler(directory), hostname=host or settings.smtp.host,
                            port=port or settings.smtp.port)
    controller.start()
    click.echo(f"mail catcher on {controller.hostname}:{controller.port}, keeping mail in "
               f"{directory}")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    controller.stop()
