"""``evidence web``: the web application alone (``serve`` starts it beside the watcher and the
workers, through :class:`WebServer`). Both make the first admin account when there is none and
show its one-time password once."""

from __future__ import annotations

import os
import threading
import time

import click

from pipeline.settings import Settings, load_settings


def web_url(host: str, port: int) -> str:
    """The address a person types: an IPv6 host in brackets; a wildcard host shown as it is."""
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


class WebServer:
    """The web application served by uvicorn on a thread of this process; :meth:`start` returns
    once it listens, :meth:`stop` lets open requests finish."""

    def __init__(self, settings: Settings, host: str, port: int) -> None:
        import uvicorn

        from pipeline.web.app import create_web_app

        self.host, self.port = host, port
        config = uvicorn.Config(
            create_web_app(settings),
            host=host,
            port=port,
            log_config=None,  # records go to this process's log (a file unless --verbose)
            lifespan="off",
            server_header=False,
            proxy_headers=False,  # the client address is the peer's, never a header's claim
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="web", daemon=True)

    def start(self, timeout: float = 30) -> str:
        """Start serving; the address it listens on. :class:`click.ClickException` when it cannot
        listen (the address is taken, or not this machine's)."""
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                where = web_url(self.host, self.port).removeprefix("http://").rstrip("/")
                raise click.ClickException(f"the web application could not listen on {where} (see the log)")
            time.sleep(0.05)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return web_url(self.host, port)

    def stop(self, timeout: float = 15) -> None:
        self.server.should_exit = True
        if self.thread.is_alive():
            self.thread.join(timeout)


def announce_first_admin(settings: Settings) -> None:
    """Make the first admin account when no enabled admin exists, and show its one-time password
    on the console (once: the next start finds the admin)."""
    from pipeline.accounts.users import ensure_first_admin
    from pipeline.catalog.db import session_scope
    from pipeline.errors import ConflictError
    from pipeline.runtime import open_catalog
    from pipeline.stage import TOOL

    try:
        with session_scope(open_catalog(settings)) as session:
            password = ensure_first_admin(session, tool=TOOL)
    except ConflictError as exc:
        click.echo(f"warning: {exc}", err=True)
        return
    if password:
        click.echo(f"first login: admin / {password} (change it at first login)", err=True)


@click.command()
@click.option("--bind", metavar="HOST:PORT", help="Where to listen (default: setting web_bind).")
@click.option("--verbose", is_flag=True, help="Log to the console too, not only to the log file.")
def web(bind: str | None, verbose: bool) -> None:
    """Run the web application (pages and /api/v1) until Ctrl+C or SIGTERM."""
    from pydantic import ValidationError

    from pipeline.cli.inputs import read_settings
    from pipeline.cli.running import _log_to_file, _stop_on_signals, guard_data_modes
    from pipeline.runtime import open_catalog

    settings = read_settings()
    if bind is not None:
        try:
            settings = load_settings(web_bind=bind)
        except ValidationError as exc:
            raise click.BadParameter(f"{bind!r} is not HOST:PORT", param_hint="--bind") from exc
    address = settings.web_address
    if address is None:
        raise click.UsageError("no address to listen on: set web_bind (EVIDENCE_WEB_BIND) or give --bind HOST:PORT")
    settings.ensure_dirs()
    open_catalog(settings)
    guard_data_modes(settings)
    log = _log_to_file(settings, "web", os.environ.get("EVIDENCE_LOG_LEVEL", "INFO"), console=verbose)
    announce_first_admin(settings)
    stop = threading.Event()
    _stop_on_signals(stop)
    server = WebServer(settings, *address)
    url = server.start()
    click.echo(f"web application: log {log}; stop with Ctrl+C or SIGTERM", err=True)
    click.echo(f"web: {url}", err=True)
    try:
        while not stop.wait(1) and server.thread.is_alive():
            pass
    finally:
        server.stop()
