"""``icu users``: manage the web app's users from the command line.

Passwords are never taken from the command line (they would end up in the shell history
and in ``ps``): they are prompted for, or read from standard input with
``--password-stdin`` (first line), e.g. from a secrets manager.
"""

from __future__ import annotations

import getpass
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import click
from cassandra.cluster import Session

from backend.auth_policy import Role
from backend.settings import get_settings


def _actor() -> str:
    try:
        return f"os:{getpass.getuser()}"
    except Exception:  # no passwd entry (containers)
        return "os:unknown"


@contextmanager
def _db() -> Iterator[Session]:
    from backend.storage.cassandra import connect

    session = connect(get_settings().cassandra, wait_seconds=10)
    try:
        yield session
    finally:
        session.cluster.shutdown()


def _read_password(from_stdin: bool) -> str:
    if from_stdin or not sys.stdin.isatty():
        line = sys.stdin.readline()
        return line.rstrip("\r\n")
    return click.prompt("Password", hide_input=True, confirmation_prompt=True)


@click.group()
def cli() -> None:
    """Users of the web app (stored in Cassandra)."""


@cli.command("create")
@click.argument("username")
@click.option("--role", required=True, type=click.Choice([r.value for r in Role]))
@click.option("--display-name", default=None, help="name shown in the app (default: username)")
@click.option("--password-stdin", is_flag=True,
              help="read the password from the first line of standard input")
def create_cmd(username: str, role: str, display_name: str | None, password_stdin: bool) -> None:
    """Create USERNAME with ROLE; the password is prompted for (or read from stdin)."""
    from backend.users import UserError, create_user, password_problems

    password = _read_password(password_stdin)
    problems = password_problems(password, username)
    if problems:
        raise click.ClickException(" ".join(problems))
    with _db() as session:
        try:
            user = create_user(session, username, password, role, display_name,
                               actor=_actor(), via="cli")
        except UserError as e:
            raise click.ClickException(str(e)) from None
    click.echo(f"created {user.username} ({user.role.value})")


@cli.command("disable")
@click.argument("username")
def disable_cmd(username: str) -> None:
    """Disable USERNAME: sign-in refused, open sessions end at their next request."""
    from backend.users import UserError, disable_user

    with _db() as session:
        try:
            disable_user(session, username, actor=_actor(), via="cli")
        except UserError as e:
            raise click.ClickException(str(e)) from None
    click.echo(f"disabled {username}")


@cli.command("enable")
@click.argument("username")
def enable_cmd(username: str) -> None:
    """Enable a disabled USERNAME again."""
    from backend.users import UserError, enable_user

    with _db() as session:
        try:
            enable_user(session, username, actor=_actor(), via="cli")
        except UserError as e:
            raise click.ClickException(str(e)) from None
    click.echo(f"enabled {username}")


@cli.command("set-password")
@click.argument("username")
@click.option("--password-stdin", is_flag=True,
              help="read the password from the first line of standard input")
def set_password_cmd(username: str, password_stdin: bool) -> None:
    """Set USERNAME's password (prompted, or read from stdin); also lifts a lockout."""
    from backend.users import UserError, set_password

    password = _read_password(password_stdin)
    with _db() as session:
        try:
            set_password(session, username, password, actor=_actor(), via="cli")
        except UserError as e:
            raise click.ClickException(str(e)) from None
    click.echo(f"password of {username} changed")


@cli.command("unlock")
@click.argument("username")
def unlock_cmd(username: str) -> None:
    """Forget USERNAME's failed sign-ins (lifts a lockout)."""
    from backend.users import normalize_username, reset_failures

    with _db() as session:
        reset_failures(session, normalize_username(username))
    click.echo(f"unlocked {username}")


@cli.command("list")
def list_cmd() -> None:
    """List users: name, role, state, display name."""
    from backend.users import list_users

    with _db() as session:
        users = list_users(session)
    if not users:
        click.echo("no users")
        return
    width = max(len(u.username) for u in users)
    for u in users:
        state = "disabled" if u.disabled else "active"
        demo = " (demo)" if u.is_demo else ""
        click.echo(f"{u.username:<{width}}  {u.role.value:<13} {state:<9} {u.display_name}{demo}")
