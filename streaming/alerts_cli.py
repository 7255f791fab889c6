"""``icu alerts``: run the alert manager process (``streaming/alert_manager.py``)."""

from __future__ import annotations

import logging
import signal
import threading

import click

from backend.settings import get_settings
from streaming.alert_manager import run


@click.group()
def cli() -> None:
    """Alert lifecycle services."""


@cli.command("manager")
def manager_cmd() -> None:
    """Run the alert manager (escalation, silences, auto-resolve, e-mail)."""
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from backend.clients import ClientConfigError, require_secure_services

    settings = get_settings()
    try:
        require_secure_services(settings, "the alert manager", smtp=True)
    except ClientConfigError as exc:
        raise click.ClickException(str(exc)) from None
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    run(settings, stop)
