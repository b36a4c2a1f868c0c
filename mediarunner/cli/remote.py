"""``runner``: a remote (HTTP) runner on this machine — ``register``, ``serve``, ``unregister``,
``ls-registered``. It needs only the API's URL and a registration token: no database, broker or
storage settings. Each registration is a file of mode 0600 (see ``mediarunner.runner.config``)."""

from __future__ import annotations

import logging
import signal
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from mediarunner.cli import ui
from mediarunner.models.enums import JobType
from mediarunner.runner import config
from mediarunner.runner.api import CutOff, RunnerApi
from mediarunner.runner.serve import REMOTE_TYPES, Runner

runner_app = typer.Typer(help="A remote runner on this machine (jobs over the HTTP API).", no_args_is_help=True)
NameOpt = Annotated[str | None, typer.Option("--name", help="which registration (several may live here)")]
ConfigOpt = Annotated[Path | None, typer.Option("--config", help="the registration file (default: by --name under "
                                                                 "$MEDIARUNNER_RUNNER_HOME)")]


@runner_app.command("register")
def register(url: Annotated[str, typer.Option(help="the API's base URL, e.g. https://media.example.org")],
             registration_token: Annotated[str, typer.Option(envvar="MEDIARUNNER_REGISTRATION_TOKEN",
                                                             help="from `mediarunner tokens create`")],
             name: Annotated[str, typer.Option(help="this runner's name")],
             config_path: ConfigOpt = None) -> None:
    """Exchange a registration token for a runner token, kept in a file of mode 0600."""
    path = config.path_for(name, config_path)
    if path.exists():
        raise ui.fail(f"a runner is already registered in {path}: unregister it first or pick another --name")
    api = RunnerApi(url)
    try:
        got = api.register(registration_token, name)
    except CutOff as exc:
        raise ui.fail(f"registration refused: {exc}") from None
    finally:
        api.close()
    config.save(path, config.Registration(url=url, id=got["id"], name=got["name"], runner_token=got["runner_token"]))
    ui.console.print(f"registered runner [bold]{got['hostname']}[/bold] at {url}; its token is in {path} (mode 600)")


@runner_app.command("unregister")
def unregister(name: NameOpt = None, config_path: ConfigOpt = None) -> None:
    """Unregister (running jobs go back to pending) and delete the registration file."""
    path = config.path_for(name, config_path)
    reg = config.load(path)
    api = RunnerApi(reg.url, reg.runner_token)
    try:
        got = api.unregister()
        note = f"; {len(got['aborted_jobs'])} running job(s) given back" if got["aborted_jobs"] else ""
    except CutOff:
        note = " (the server had already cut it off)"
    finally:
        api.close()
    path.unlink()
    ui.console.print(f"unregistered runner {reg.name}{note}; removed {path}")


@runner_app.command("ls-registered")
def ls_registered() -> None:
    """The runners registered on this machine (never their tokens)."""
    table = Table("name", "id", "url", "file")
    for path in config.registered():
        try:
            reg = config.load(path)
        except Exception as exc:
            table.add_row(path.stem, "", f"[red]{exc}[/red]", str(path))
            continue
        table.add_row(reg.name, reg.id, reg.url, str(path))
    ui.console.print(table)


@runner_app.command("serve")
def serve(name: NameOpt = None, config_path: ConfigOpt = None,
          concurrency: Annotated[int, typer.Option(min=1, max=64, help="jobs at once")] = 1,
          job_type: Annotated[list[JobType] | None, typer.Option(
              "--job-type", help="take only these job types (repeat); default: all but live")] = None,
          poll_seconds: Annotated[float, typer.Option(min=1, max=60, help="long-poll length")] = 20.0) -> None:
    """Run jobs until stopped (SIGTERM/SIGINT give running jobs back) or cut off by the server."""
    reg = config.load(config.path_for(name, config_path))
    if job_type and JobType.LIVE in job_type:
        raise ui.fail("live jobs run on Celery workers only")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    runner = Runner(reg, ui.settings(), concurrency=concurrency, job_types=tuple(job_type or REMOTE_TYPES),
                    poll_seconds=poll_seconds)

    def stop(signum: int, _frame: Any) -> None:
        runner.shutdown(f"runner stopped ({signal.Signals(signum).name})")

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    reason = runner.serve()
    if reason is not None:
        raise ui.fail(f"the server cut this runner off: {reason}", code=3)
    ui.console.print(f"runner {reg.name} stopped")
