"""``api`` (serve the HTTP API with uvicorn) and ``api-keys`` (create, list, revoke its keys).

``api-keys create`` prints the new key alone on the last line of standard output, once; nothing
else ever prints a key (only a SHA-256 of its secret is stored).
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from mediarunner.cli import ui
from mediarunner.errors import MediarunnerError

api_keys_app = typer.Typer(help="HTTP API keys.", no_args_is_help=True)


def api(host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="TCP port")] = 8000,
        workers: Annotated[int, typer.Option(help="uvicorn worker processes")] = 1,
        log_level: str = "info") -> None:
    """Serve the HTTP API (OpenAPI at /openapi.json, docs at /docs, health at /healthz) and the web admin
    (/admin/)."""
    import uvicorn

    if workers > 1:
        uvicorn.run("mediarunner.web.app:create_app", factory=True, host=host, port=port, workers=workers,
                    log_level=log_level, proxy_headers=False)
        return
    from mediarunner.web import create_app  # the API with the web admin at /admin/

    uvicorn.run(create_app(ui.settings()), host=host, port=port, log_level=log_level, proxy_headers=False)


@api_keys_app.command("create")
def keys_create(name: Annotated[str, typer.Argument(help="a unique label, e.g. the platform")],
                scope: Annotated[list[str], typer.Option("--scope", "-s", help="read, submit or admin; repeat")]
                ) -> None:
    """Create an API key; it is printed once, alone on the last line."""
    from mediarunner.api.keys import ApiKeys

    try:
        info, key = ApiKeys(ui.settings()).create(name, scope)
    except MediarunnerError as exc:
        raise ui.fail(exc) from None
    ui.console.print(f"created API key [bold]{info.name}[/bold] ({', '.join(info.scopes)}). "
                     "It is shown only this once:")
    typer.echo(key)


@api_keys_app.command("ls")
def keys_ls() -> None:
    """List API keys (never their secrets)."""
    from mediarunner.api.keys import ApiKeys

    table = Table("name", "id", "scopes", "created", "last used", "state")
    for k in ApiKeys(ui.settings()).list():
        state = f"[red]revoked {ui.when(k.revoked_at)}[/red]" if k.revoked_at else "[green]active[/green]"
        table.add_row(k.name, k.id, ", ".join(k.scopes), ui.when(k.created_at), ui.when(k.last_used_at), state)
    ui.console.print(table)


@api_keys_app.command("revoke")
def keys_revoke(name: str) -> None:
    """Revoke an API key: requests with it get 401 at once."""
    from mediarunner.api.keys import ApiKeys

    if not ApiKeys(ui.settings()).revoke(name):
        raise ui.fail(f"no active API key {name!r} (see `mediarunner api-keys ls`)")
    ui.console.print(f"revoked API key [bold]{name}[/bold]")
