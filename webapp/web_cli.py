"""``icu web``: run the web app with a production WSGI server (waitress)."""

from __future__ import annotations

import logging

import click

from backend.settings import get_settings


@click.group()
def cli() -> None:
    """The Dash web app."""


@cli.command("run")
@click.option("--host", default=None, help="listen address (default: ICU_WEB__HOST)")
@click.option("--port", default=None, type=int, help="listen port (default: ICU_WEB__PORT)")
@click.option("--threads", default=8, show_default=True, help="waitress worker threads")
@click.option("--wait", default=60.0, show_default=True, help="seconds to wait for Cassandra")
@click.option("--demo-users", is_flag=True,
              help="demo mode only: create/reset one user per role with new random "
                   "passwords and print them (``icu demo`` does this itself)")
def run_cmd(host: str | None, port: int | None, threads: int, wait: float,
            demo_users: bool) -> None:
    """Serve the web app on ICU_WEB__HOST:ICU_WEB__PORT."""
    import waitress

    from backend.storage.cassandra import connect
    from webapp.app import ConfigurationError, check_transport, create_app

    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = get_settings()
    web = settings.web.model_copy(update={k: v for k, v in
                                          (("host", host), ("port", port)) if v is not None})
    settings = settings.model_copy(update={"web": web})
    try:
        check_transport(settings)  # before anything else: no insecure start at all
    except ConfigurationError as e:
        raise click.ClickException(str(e)) from None

    db = connect(settings.cassandra, wait_seconds=wait)
    if demo_users:
        from backend.users import ensure_demo_users

        if not settings.demo_mode:
            raise click.ClickException("--demo-users needs ICU_DEMO_MODE=true")
        click.echo("Demo logins (new passwords each start; demo mode only):")
        for username, password, role in ensure_demo_users(db, settings):
            click.echo(f"  {role:<13} {username:<15} {password}")
    try:
        app = create_app(settings, db=db)
    except ConfigurationError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"web app listening on http://{web.host}:{web.port}")
    # Proxy headers reach the app only when proxies are trusted (ProxyFix decides how
    # many hops); otherwise waitress drops them so no client can claim an address.
    waitress.serve(app.server, host=web.host, port=web.port, threads=threads,
                   ident="icu-monitor",
                   clear_untrusted_proxy_headers=web.trusted_proxies == 0,
                   max_request_body_size=web.max_request_bytes)
