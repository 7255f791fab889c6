"""``icu mail catcher``: the development SMTP server of the demo (``ops/mail_catcher.py``
keeps each message)."""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path

import click

from backend.settings import get_settings
from ops.mail_catcher import SaveHandler


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
