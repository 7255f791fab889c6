"""The ``icu`` command. Each subcommand group lives in its own module and is imported
only when used, so ``icu services start`` does not pay for importing pyspark."""

from __future__ import annotations

import importlib

import click

# name -> "module:attribute" of a click command or group. `icu NAME` is the ``cli`` of a
# module named NAME_cli.py in the package that owns it.
SUBCOMMANDS: dict[str, str] = {
    "services": "ops.services_cli:cli",
    "db": "backend.storage.db_cli:cli",
    "simulate": "devices.simulate_cli:cli",
    "stream": "streaming.stream_cli:cli",
    "model": "backend.risk.model_cli:cli",
    "users": "backend.users.users_cli:cli",
    "web": "webapp.web_cli:cli",
    "demo": "ops.demo_cli:cli",
    "waveforms": "devices.waveforms_cli:cli",  # ECG / pleth replay
    "alerts": "streaming.alerts_cli:cli",  # the alert manager
    "mail": "ops.mail_cli:cli",  # the development SMTP catcher
    "population": "streaming.population_cli:cli",
    "patient": "ops.patient_cli:cli",  # erasure and pseudonymised research export
}


# More commands of a group, from a package its owner may not import (backend imports
# nothing of ops): `icu db backup|restore` run Cassandra's own tools.
EXTENSIONS: dict[str, tuple[str, ...]] = {
    "db": ("ops.backup_cli:cli",),
}


def _load(target: str) -> click.Command:
    module, attr = target.split(":")
    return getattr(importlib.import_module(module), attr)


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(SUBCOMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = SUBCOMMANDS.get(name)
        if target is None:
            return None
        command = _load(target)
        if name not in EXTENSIONS:
            return command
        sources = [command, *(_load(t) for t in EXTENSIONS[name])]
        return click.CommandCollection(name=name, sources=sources,  # type: ignore[arg-type]
                                       help=command.help)


@click.group(cls=LazyGroup)
def main() -> None:
    """ICU monitoring platform."""


if __name__ == "__main__":
    main()
