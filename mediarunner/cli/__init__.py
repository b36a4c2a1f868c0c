"""The ``mediarunner`` command (typer + rich): one module per command group.

* :mod:`~mediarunner.cli.db`: ``db upgrade|downgrade``, ``purge``;
* :mod:`~mediarunner.cli.jobs`: ``submit``, ``jobs`` (through ``Client``);
* :mod:`~mediarunner.cli.processes`: ``worker``, ``beat``, ``demo``, ``flower``, ``metrics``;
* :mod:`~mediarunner.cli.tokens`, :mod:`~mediarunner.cli.runners`, :mod:`~mediarunner.cli.overview`:
  ``tokens``, ``runners``, ``logs``, ``stats``, ``settings`` (through ``FleetService``);
* :mod:`~mediarunner.cli.api`: ``api`` (the HTTP API server), ``api-keys``;
* :mod:`~mediarunner.cli.remote`: ``runner`` (a remote runner over the HTTP API);
* :mod:`~mediarunner.cli.ui`: the console, colours and formatting they share.

Errors: every command runs inside :class:`ErrorHandlingGroup`, the one place that turns the errors an
operator can cause (a bad setting, an unreachable or unmigrated database, a refused request) into one
line on stderr and exit code 2 (:func:`mediarunner.cli.errors.explain`), never a traceback.
"""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperGroup

from mediarunner.cli import api, db, jobs, overview, peertube, processes, remote, runners, submit_more, tokens
from mediarunner.cli.errors import explain


class ErrorHandlingGroup(TyperGroup):
    """The root command group: known errors of any subcommand become one line and exit code 2."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as exc:
            line = explain(exc)  # None for typer's own exits and usage errors, and for bugs
            if line is None:
                raise
            typer.echo(f"error: {line}", err=True)
            raise typer.Exit(2) from None


app = typer.Typer(help="Distributed media processing on Celery.", no_args_is_help=True, cls=ErrorHandlingGroup)
app.add_typer(db.db_app, name="db")
app.callback()(submit_more.main_options)
submit_more.register(jobs.submit_app)
app.add_typer(jobs.submit_app, name="submit")
app.add_typer(jobs.jobs_app, name="jobs")
app.command()(processes.worker)
app.command()(processes.beat)
app.command()(db.purge)
app.command()(processes.demo)
app.add_typer(tokens.tokens_app, name="tokens")
app.add_typer(runners.runners_app, name="runners")
app.command("logs")(overview.logs)
app.command("stats")(overview.stats)
app.command("flower")(processes.flower)
app.command("metrics")(processes.metrics)
app.command("settings")(overview.settings_cmd)
app.command("check")(overview.check)
app.command("api")(api.api)
app.add_typer(api.api_keys_app, name="api-keys")
app.add_typer(remote.runner_app, name="runner")
app.add_typer(peertube.peertube_app, name="peertube")


def main() -> None:
    app()


__all__ = ["app", "main"]
