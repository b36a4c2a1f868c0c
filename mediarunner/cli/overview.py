"""``logs`` (the activity log), ``stats`` (the dashboard numbers) and ``settings``."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from mediarunner.cli import ui
from mediarunner.config.redact import MASK, settings_view
from mediarunner.fleet import ActivityEvent


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
    """Effective settings, secrets masked (safe to show in a demo)."""
    table = Table("setting", "value")
    for name, value in settings_view(ui.settings()).items():
        table.add_row(f"MEDIARUNNER_{name.upper()}", Text(value, style="dim" if value == MASK else ""))
    ui.console.print(table)
