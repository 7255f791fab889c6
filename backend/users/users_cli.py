"""``icu users``: manage the web app's users from the command line.

Passwords are never taken from the command line (they would end up in the shell history
and in ``ps``): they are prompted for, or read from standard input with
``--password-stdin`` (first line), e.g. from a secrets manager.

A user's e-mail address and wards decide which alert e-mail they receive (the alert
manager mails the users of the notified role covering the alert's ward): ``--email`` and
``--ward`` (repeatable; none = every ward) on ``create``, and ``set-contact`` to change
them later. A bad address is refused with the validator's reason.
"""

from __future__ import annotations

import getpass
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import click

from backend.auth_policy import Role
from backend.settings import get_settings
from backend.storage.cassandra import Session


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


def _warn_unknown_wards(session: Session, wards: frozenset[str]) -> None:
    from backend.storage import census
    from backend.users import unknown_wards_note

    note = unknown_wards_note(wards, census.wards(session)) if wards else ""
    if note:
        click.echo(f"warning: {note}", err=True)


@click.group()
def cli() -> None:
    """Users of the web app (stored in Cassandra)."""


@cli.command("create")
@click.argument("username")
@click.option("--role", required=True, type=click.Choice([r.value for r in Role]))
@click.option("--display-name", default=None, help="name shown in the app (default: username)")
@click.option("--password-stdin", is_flag=True,
              help="read the password from the first line of standard input")
@click.option("--email", default=None, help="address for alert e-mail (optional)")
@click.option("--ward", "wards", multiple=True,
              help="a ward the user covers (repeatable; none: every ward)")
def create_cmd(username: str, role: str, display_name: str | None, password_stdin: bool,
               email: str | None, wards: tuple[str, ...]) -> None:
    """Create USERNAME with ROLE; the password is prompted for (or read from stdin)."""
    from backend.users import (
        UserError,
        create_user,
        normalize_email,
        parse_wards,
        password_problems,
    )

    local_domains = get_settings().smtp.local_domains
    try:  # before asking for a password: a typo in the address fails at once
        normalize_email(email, local_domains)
        parse_wards(wards)
    except UserError as e:
        raise click.ClickException(str(e)) from None
    password = _read_password(password_stdin)
    problems = password_problems(password, username)
    if problems:
        raise click.ClickException(" ".join(problems))
    with _db() as session:
        try:
            user = create_user(session, username, password, role, display_name,
                               actor=_actor(), via="cli", email=email, wards=wards,
                               local_domains=local_domains)
        except UserError as e:
            raise click.ClickException(str(e)) from None
        _warn_unknown_wards(session, user.wards)
    click.echo(f"created {user.username} ({user.role.value})")


@cli.command("set-contact")
@click.argument("username")
@click.option("--email", default=None, help="new address for alert e-mail")
@click.option("--no-email", is_flag=True, help="remove the address (no individual e-mail)")
@click.option("--ward", "wards", multiple=True,
              help="replace the wards with these (repeatable)")
@click.option("--all-wards", is_flag=True, help="remove the wards: the user covers every ward")
def set_contact_cmd(username: str, email: str | None, no_email: bool, wards: tuple[str, ...],
                    all_wards: bool) -> None:
    """Change USERNAME's e-mail address and/or wards; what is not given stays."""
    from backend.users import KEEP, UserError, contact_detail, update_contact

    if email is not None and no_email:
        raise click.UsageError("--email and --no-email exclude each other")
    if wards and all_wards:
        raise click.UsageError("--ward and --all-wards exclude each other")
    new_email = None if no_email else (email if email is not None else KEEP)
    new_wards = () if all_wards else (wards or KEEP)
    if new_email is KEEP and new_wards is KEEP:
        raise click.UsageError("give --email/--no-email and/or --ward/--all-wards")
    with _db() as session:
        try:
            user = update_contact(session, username, email=new_email, wards=new_wards,
                                  local_domains=get_settings().smtp.local_domains,
                                  actor=_actor(), via="cli")
        except UserError as e:
            raise click.ClickException(str(e)) from None
        _warn_unknown_wards(session, user.wards)
    click.echo(f"{user.username}: {contact_detail(user.email, user.wards)}")


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
    """Forget USERNAME's failed sign-ins (lifts a lockout); audited."""
    from backend.users import UserError, unlock_user

    with _db() as session:
        try:
            was = unlock_user(session, username, get_settings(), actor=_actor(), via="cli")
        except UserError as e:
            raise click.ClickException(str(e)) from None
    click.echo(f"unlocked {username}" + ("" if was else " (it was not locked)"))


@cli.command("list")
def list_cmd() -> None:
    """List users: name, role, state, display name, e-mail, wards."""
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
        contact = f"  <{u.email or '-'}> wards: {', '.join(sorted(u.wards)) or 'all'}"
        click.echo(f"{u.username:<{width}}  {u.role.value:<13} {state:<9} {u.display_name}{demo}"
                   f"{contact}")
