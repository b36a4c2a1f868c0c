"""``db`` (schema migrations) and ``purge`` (old job families)."""

from __future__ import annotations

from typing import Annotated

import typer

from mediarunner.cli import ui
from mediarunner.models import migrate
from mediarunner.models.base import utcnow
from mediarunner.models.db import transaction
from mediarunner.scheduler.ticks import purge as purge_batch

db_app = typer.Typer(help="Database schema.", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Create or migrate the schema (MEDIARUNNER_DATABASE_URL)."""
    migrate.upgrade(revision=revision)
    ui.console.print("[green]database is at[/green]", revision)


@db_app.command("downgrade")
def db_downgrade(revision: str = typer.Argument(..., help="target revision, e.g. base"),
                 yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask for confirmation")] = False
                 ) -> None:
    """Migrate the schema down to REVISION (``base`` drops every table: all jobs are lost)."""
    if not yes and not typer.confirm(f"downgrade the database to {revision}? Tables and their rows may be "
                                     "dropped", default=False):
        raise ui.fail("not confirmed; nothing changed (pass --yes to skip the question)")
    migrate.downgrade(revision=revision)
    ui.console.print("[green]database is at[/green]", revision)


def _families(n: int) -> str:
    return f"famil{'y' if n == 1 else 'ies'}"


def purge(dry_run: Annotated[bool, typer.Option("--dry-run")] = False) -> None:
    """Delete completed job families older than MEDIARUNNER_PURGE_AFTER_DAYS."""
    settings = ui.settings()
    if settings.purge_after_days <= 0:
        ui.console.print("purging is disabled (purge_after_days <= 0)")
        return
    if dry_run:
        roots = transaction(lambda s: purge_batch(s, utcnow(), settings, dry_run=True))
        ui.console.print(f"would purge {len(roots)} job {_families(len(roots))}"
                         f"{' (first batch)' if len(roots) == settings.purge_batch_size else ''}")
        for r in roots[:20]:
            ui.console.print(f"  {r}")
        return
    ui.writable()
    total = 0
    while batch := transaction(lambda s: purge_batch(s, utcnow(), settings)):
        total += len(batch)
        if len(batch) < settings.purge_batch_size:
            break
    ui.console.print(f"purged {total} job {_families(total)}")
