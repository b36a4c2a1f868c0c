"""``logs`` (the activity log), ``stats`` (the dashboard numbers), ``settings`` and ``check``."""

from __future__ import annotations

import base64
import json
from dataclasses import asdict
from typing import Annotated

import httpx
import typer
from kombu import Connection
from rich.table import Table
from rich.text import Text
from sqlalchemy import select

from mediarunner.cli import ui
from mediarunner.config.redact import MASK, settings_view
from mediarunner.config.sources import setting_sources
from mediarunner.fleet import ActivityEvent
from mediarunner.models.db import transaction
from mediarunner.models.tables import JobRow


def show_events(events: list[ActivityEvent]) -> None:
    table = Table("time", "event", "runner", "job", "message")
    for e in events:
        table.add_row(ui.when(e.at), Text(e.kind, style=ui.EVENT_STYLE.get(e.kind, "white")), e.runner or "",
                      (e.job_id or "")[:8], Text(e.message))
    ui.console.print(table)


def logs(runner: Annotated[str | None, typer.Option(help="only this runner")] = None,
         type: Annotated[str | None, typer.Option("--type", help="only this event kind, e.g. job_failed")] = None,
         job: Annotated[str | None, typer.Option(help="only this job (its id or a unique prefix)")] = None,
         limit: Annotated[int, typer.Option("-n", "--limit")] = 50) -> None:
    """The activity log (newest last), colour-coded by event kind."""
    show_events(ui.fleet().events(runner=runner, kind=type, job=ui.job_id(job) if job else None, limit=limit))


def stats(as_json: Annotated[bool, typer.Option("--json", help="machine-readable")] = False) -> None:
    """Dashboard statistics (the web admin's eight cards among them), read in one transaction."""
    d = ui.fleet().dashboard()
    st = d.stats
    if as_json:
        typer.echo(json.dumps({**asdict(st), **d.cards()}))  # the web admin's eight cards included
        return
    grid = Table.grid(padding=(0, 3))
    for _ in range(4):
        grid.add_column()
    grid.add_row(f"runners online [bold]{st.runners_online}/{st.runners_total}[/bold]",
                 f"pending [bold yellow]{st.jobs_pending}[/]", f"running [bold cyan]{st.jobs_running}[/]",
                 f"throughput [bold]{st.throughput_last_hour}[/bold]/h")
    grid.add_row(f"completed today [bold green]{st.completed_today}[/]",
                 f"failed today [bold red]{st.failed_today}[/]",
                 f"avg wait [bold]{ui.seconds(st.avg_wait_seconds)}[/bold]",
                 f"avg processing [bold]{ui.seconds(st.avg_processing_seconds)}[/bold]")
    grid.add_row(f"servers [bold]{d.total_servers}[/bold] enabled [bold]{d.enabled}[/bold]",
                 f"healthy [bold green]{d.healthy}[/]", f"offline [bold red]{d.offline}[/]",
                 f"load [bold]{d.current_load}[/bold]")
    ui.console.print(grid)


def settings_cmd() -> None:
    """Effective settings, secrets masked (safe to show in a demo), and where each came from
    (env, .env, a secret file, or the default)."""
    table = Table("setting", "value", "from")
    sources = setting_sources(type(ui.settings()))
    for name, value in settings_view(ui.settings()).items():
        table.add_row(f"MEDIARUNNER_{name.upper()}", Text(value, style="dim" if value == MASK else ""),
                      Text(sources.get(name, "default"), style="dim"))
    ui.console.print(table)


def check(database: Annotated[bool, typer.Option(help="connect to the database (and see it migrated)")] = True,
          broker: Annotated[bool, typer.Option(help="connect to the broker")] = True,
          url: Annotated[str | None, typer.Option(help="also GET this local URL (basic auth: METRICS_BASIC_AUTH)")]
          = None) -> None:
    """Readiness (the image's HEALTHCHECK): settings valid with every required secret, the database
    reachable and migrated, the broker reachable, a served URL answering. One line and exit 2 if not."""
    settings = ui.settings()
    if database:
        transaction(lambda s: s.execute(select(JobRow.id).limit(1)).all(), retry_for=2.0)
    if broker:
        with Connection(settings.broker_url, connect_timeout=3) as conn:
            conn.ensure_connection(max_retries=1)
    if url is not None:
        auth = settings.metrics_basic_auth.get_secret_value() if settings.metrics_basic_auth else ""
        headers = {"Authorization": "Basic " + base64.b64encode(auth.encode()).decode()} if auth else {}
        try:
            httpx.get(url, headers=headers, timeout=5).raise_for_status()
        except httpx.HTTPError as exc:
            raise ui.fail(f"{url}: {exc}") from None
    typer.echo("ok")
