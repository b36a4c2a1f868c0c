"""``tokens``: runner registration tokens (through ``FleetService``).

No command prints a secret, except ``tokens create`` printing the new token once (or writing it
to ``--output``). With ``MEDIARUNNER_DEMO_MODE=true`` the service refuses every change.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from mediarunner.cli import ui
from mediarunner.fleet import FleetError, TokenNotFound

tokens_app = typer.Typer(help="Runner registration tokens.", no_args_is_help=True)


def _open_secret_file(path: Path) -> int:
    """The token file, opened (mode 600) before the token exists: a path that cannot be written
    must not leave an active token whose secret nobody ever saw."""
    try:
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    except OSError as exc:
        raise ui.fail(f"cannot write the token to {path}: {exc.strerror}; no token was created") from None


def _write_secret(fd: int, secret: str) -> None:
    with os.fdopen(fd, "w") as f:
        f.write(secret + "\n")


@tokens_app.command("create")
def tokens_create(name: Annotated[str, typer.Argument(help="a label, e.g. the site or machine group")],
                  output: Annotated[Path | None, typer.Option(help="write the token to this file (mode 600) "
                                                                       "instead of printing it")] = None) -> None:
    """Create a registration token; workers present it as MEDIARUNNER_WORKER_TOKEN."""
    fd = _open_secret_file(output) if output is not None else None
    try:
        token = ui.fleet().create_token(name)
    except BaseException:  # refused (demo mode, database): no token, no file
        if fd is not None and output is not None:
            os.close(fd)
            output.unlink(missing_ok=True)
        raise
    if fd is not None:
        _write_secret(fd, token.secret)
        ui.console.print(f"created token [bold]{token.id}[/bold] ({name}); written to {output}")
        return
    ui.console.print(f"created token [bold]{token.id}[/bold] ({name}). It is shown only this once:")
    typer.echo(token.secret)


@tokens_app.command("ls")
def tokens_ls() -> None:
    """List tokens (never their secrets)."""
    table = Table("id", "name", "created", "last used", "runners", "state")
    for t in ui.fleet().list_tokens():
        state = f"[red]revoked {ui.when(t.revoked_at)}[/red]" if t.revoked_at else "[green]active[/green]"
        table.add_row(t.id, t.name, ui.when(t.created_at), ui.when(t.last_used_at), str(t.runners), state)
    ui.console.print(table)


@tokens_app.command("revoke")
def tokens_revoke(token_id: str) -> None:
    """Revoke a token: its runners stop consuming at once and their running jobs fail over."""
    try:
        hosts = ui.fleet().revoke_token(token_id)
    except TokenNotFound as exc:
        raise ui.fail(f"{exc} (see `mediarunner tokens ls`)") from None
    except FleetError as exc:
        raise ui.fail(exc) from None
    ui.console.print(f"revoked token [bold]{token_id}[/bold]; unregistered {len(hosts)} runner(s)"
                     + (": " + ", ".join(hosts) if hosts else ""))
