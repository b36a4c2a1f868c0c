"""The ``mediarunner`` command (typer + rich): one module per command group.

* :mod:`~mediarunner.cli.db`: ``db upgrade|downgrade``, ``purge``;
* :mod:`~mediarunner.cli.jobs`: ``submit``, ``jobs`` (through ``Client``);
* :mod:`~mediarunner.cli.processes`: ``worker``, ``beat``, ``demo``, ``flower``, ``metrics``;
* :mod:`~mediarunner.cli.tokens`, :mod:`~mediarunner.cli.runners`, :mod:`~mediarunner.cli.overview`:
  ``tokens``, ``runners``, ``logs``, ``stats``, ``settings`` (through ``FleetService``);
* :mod:`~mediarunner.cli.api`: ``api`` (the HTTP API server), ``api-keys``;
* :mod:`~mediarunner.cli.ui`: the console, colours and formatting they share.
"""

from __future__ import annotations

import typer

from mediarunner.cli import api, db, jobs, overview, processes, runners, submit_more, tokens

app = typer.Typer(help="Distributed media processing on Celery.", no_args_is_help=True)
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
app.command("api")(api.api)
app.add_typer(api.api_keys_app, name="api-keys")


def main() -> None:
    app()


__all__ = ["app", "main"]
