"""The ``icu`` command. Each subcommand group lives in its own module and is imported
only when used, so ``icu services start`` does not pay for importing pyspark."""

from __future__ import annotations

import importlib

import click

# name -> "module:attribute" of a click command or group
SUBCOMMANDS: dict[str, str] = {
    "services": "ops.services:cli",
    "db": "backend.storage.cli:cli",
    "simulate": "devices.cli:cli",
    "stream": "streaming.cli:cli",
    "model": "backend.risk.cli:cli",
    "users": "backend.users.cli:cli",
    "web": "webapp.cli:cli",
    "demo": "ops.demo:cli",
    "waveforms": "devices.waveform_replay:cli",  # issue 5: ECG / pleth replay
    "alerts": "streaming.alert_manager:cli",  # issue 4: the alert manager
    "mail": "ops.mail_catcher:cli",  # issue 4: the development SMTP catcher
    "population": "streaming.population_cli:cli",
    "patient": "backend.privacy.cli:cli",  # erasure and pseudonymised research export
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(SUBCOMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = SUBCOMMANDS.get(name)
        if target is None:
            return None
        module, attr = target.split(":")
        return getattr(importlib.import_module(module), attr)


@click.group(cls=LazyGroup)
def main() -> None:
    """ICU monitoring platform."""


if __name__ == "__main__":
    main()
