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
    """aiosmtpd handler: one file per message in ``directory``, numbered on from the
    highest number already there (a restarted catcher never overwrites earlier mail)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.count = highest_number(directory)

    async def handle_DATA(self, server, session, envelope) -> str:
        msg = message_from_bytes(envelope.content, policy=policy.default)
        path = self._claim()
        path.write_bytes(envelope.content)
        log.info("mail %s for %s: %s", path.name, ", ".join(envelope.rcpt_tos), msg["Subject"])
        return "250 Message accepted for delivery"

    def _claim(self) -> Path:
        """The next free file name, created exclusively: another catcher writing to the
        same directory cannot take it too."""
        while True:
            self.count += 1
            path = self.directory / f"{self.count:06d}.eml"
            try:
                with path.open("xb"):
                    return path
            except FileExistsError:
                self.count = max(self.count, highest_number(self.directory))


def highest_number(directory: Path) -> int:
    """The highest ``NNNNNN.eml`` number in ``directory`` (0 when there is none)."""
    numbers = [int(p.stem) for p in directory.glob("*.eml") if p.stem.isdigit()]
    return max(numbers, default=0)


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
