"""Fleet commands: ``tokens``, ``runners``, ``logs``, ``stats``, ``flower``, ``metrics``, ``settings``.

Registered on the main ``mediarunner`` app by :func:`register`. No command prints a secret,
except ``tokens create`` printing the new token once (or writing it to ``--output``). With
``MEDIARUNNER_DEMO_MODE=true`` every command that changes something refuses to run.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from mediarunner.config import Settings, get_settings
from mediarunner.config.redact import MASK, mask_urls_in, settings_view
from mediarunner.models.enums import Health, RunnerStatus

tokens_app = typer.Typer(help="Runner registration tokens.", no_args_is_help=True)
runners_app = typer.Typer(help="The runner fleet: list, inspect and steer workers.", no_args_is_help=True)
console = Console()
REPLY_TIMEOUT = 2.0  # seconds to wait for a worker's remote-control answer

HEALTH_STYLE = {Health.HEALTHY: "green", Health.WARNING: "yellow", Health.OFFLINE: "red"}
STATUS_STYLE = {RunnerStatus.ENABLED: "green", RunnerStatus.MAINTENANCE: "yellow", RunnerStatus.DISABLED: "dim"}
EVENT_STYLE = {  # activity log colours: green good, red bad, yellow retried, cyan work, magenta operator
    "job_completed": "green", "runner_registered": "green", "heartbeat_restored": "green",
    "job_failed": "red", "job_timeout": "red", "heartbeat_lost": "red", "token_revoked": "red",
    "runner_unregistered": "red", "job_retried": "yellow", "job_failed_over": "yellow",
    "job_assigned": "cyan", "job_submitted": "blue", "status_changed": "magenta",
    "concurrency_changed": "magenta", "token_created": "magenta", "runner_stopped": "dim",
    "job_cancelled": "magenta", "job_restarted": "blue",
}


def _settings() -> Settings:
    return get_settings()


def _celery() -> Any:
    # A fresh app from the current settings (the module-level one froze them at import).
    from mediarunner.workers.app import create_app

    return create_app(_settings())


def _fail(message: str, code: int = 2) -> typer.Exit:
    console.print(f"[red]error:[/red] {message}")
    return typer.Exit(code)


def _writable() -> None:
    if _settings().demo_mode:
        raise _fail("demo mode (MEDIARUNNER_DEMO_MODE) is read-only: this command would change the fleet")


def _when(dt: datetime | None) -> str:
    return "" if dt is None else f"{dt:%Y-%m-%d %H:%M:%S}"


def _ago(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    if seconds < 120:
        return f"{seconds:.0f}s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m ago"
    return f"{seconds / 3600:.1f}h ago"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}s"


# ------------------------------------------------------------------------------ tokens

@tokens_app.command("create")
def tokens_create(name: Annotated[str, typer.Argument(help="a label, e.g. the site or machine group")],
                  output: Annotated[Path | None, typer.Option(help="write the token to this file (mode 600) "
                                                                       "instead of printing it")] = None) -> None:
    """Create a registration token; workers present it as MEDIARUNNER_WORKER_TOKEN."""
    from mediarunner.models import tokens
    from mediarunner.models.base import utcnow
    from mediarunner.models.db import transaction

    _writable()
    token_id, secret = transaction(lambda s: tokens.create_token(s, name, utcnow()))
    if output is not None:
        fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secret + "\n")
        console.print(f"created token [bold]{token_id}[/bold] ({name}); written to {output}")
        return
    console.print(f"created token [bold]{token_id}[/bold] ({name}). It is shown only this once:")
    typer.echo(secret)


@tokens_app.command("ls")
def tokens_ls() -> None:
    """List tokens (never their secrets)."""
    from mediarunner.models import tokens
    from mediarunner.models.db import transaction

    table = Table("id", "name", "created", "last used", "runners", "state")
    for t in transaction(tokens.list_tokens):
        state = f"[red]revoked {_when(t.revoked_at)}[/red]" if t.revoked_at else "[green]active[/green]"
        table.add_row(t.id, t.name, _when(t.created_at), _when(t.last_used_at), str(t.runners), state)
    console.print(table)


@tokens_app.command("revoke")
def tokens_revoke(token_id: str) -> None:
    """Revoke a token: its runners stop consuming at once and their running jobs fail over."""
    from mediarunner.scheduler.steering import revoke_token

    _writable()
    hosts = revoke_token(_celery(), token_id, timeout=REPLY_TIMEOUT)
    if hosts is None:
        raise _fail(f"no active token {token_id!r} (see `mediarunner tokens ls`)")
    console.print(f"revoked token [bold]{token_id}[/bold]; unregistered {len(hosts)} runner(s)"
                  + (": " + ", ".join(hosts) if hosts else ""))


# ------------------------------------------------------------------------------ runners

def _runners(include_unregistered: bool = False) -> list[Any]:
    from mediarunner.models.base import utcnow
    from mediarunner.models.db import transaction
    from mediarunner.models.fleet_queries import list_runners
    from mediarunner.models.health import HealthThresholds

    thresholds = HealthThresholds.from_settings(_settings())
    return transaction(lambda s: list_runners(s, utcnow(), thresholds, include_unregistered=include_unregistered))


def _matches(name: str, names: list[str]) -> list[str]:
    """Full name (``cpu1@host``), else the name part (``cpu1``), else a prefix."""
    if name in names:
        return [name]
    exact_part = [n for n in names if n.split("@", 1)[0] == name]
    return exact_part or [n for n in names if n.startswith(name)]


def _resolve(name: str, *, include_unregistered: bool = False) -> str:
    matches = _matches(name, [r.hostname for r in _runners(include_unregistered)])
    if len(matches) == 1:
        return matches[0]
    raise _fail(f"{name!r} is ambiguous: {', '.join(matches)}" if matches
                else f"no runner {name!r} (see `mediarunner runners ls --all`)")


@runners_app.command("ls")
def runners_ls(all: Annotated[bool, typer.Option("--all", help="include unregistered runners")] = False) -> None:
    """Runners with status, health, load, disk and job counters."""
    from mediarunner.models.base import utcnow

    now = utcnow()
    table = Table("runner", "status", "health", "queues", "jobs", "max", "load", "free disk", "heartbeat",
                  "completed", "failed", "version")
    for r in _runners(all):
        d = r.diagnostics
        load = f"{d['load_1m']:.2f}/{d.get('cpu_count', '?')}" if "load_1m" in d else ""
        disk = f"{d['disk_free_mb'] / 1024:.1f} GB" if "disk_free_mb" in d else ""
        status = "unregistered" if r.unregistered_at else f"[{STATUS_STYLE[r.status]}]{r.status}[/]"
        table.add_row(r.hostname, status, f"[{HEALTH_STYLE[r.health]}]{r.health}[/]", ",".join(r.queues),
                      str(r.jobs_running), str(r.desired_concurrency or r.concurrency), load, disk,
                      _ago(r.heartbeat_age(now)), str(r.jobs_completed), str(r.jobs_failed), r.version)
    console.print(table)


@runners_app.command("show")
def runners_show(name: str) -> None:
    """Everything about one runner: capabilities, diagnostics, health reasons, recent activity."""
    from mediarunner.models.base import utcnow
    from mediarunner.workers.diagnostics import NOTABLE_ENCODERS

    hostname = _resolve(name, include_unregistered=True)
    now = utcnow()
    r = next(x for x in _runners(True) if x.hostname == hostname)
    caps, d = r.capabilities, r.diagnostics
    ff = caps.get("ffmpeg", {})
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    rows: list[tuple[str, str]] = [
        ("runner", r.hostname),
        ("status", "unregistered" if r.unregistered_at else f"[{STATUS_STYLE[r.status]}]{r.status}[/]"),
        ("health", f"[{HEALTH_STYLE[r.health]}]{r.health}[/]" + (f" ({'; '.join(r.health_reasons)})"
                                                                  if r.health_reasons else "")),
        ("queues", ",".join(r.queues)),
        ("concurrency", f"{r.concurrency} (operator max: {r.desired_concurrency or 'not set'})"),
        ("jobs", f"{r.jobs_running} running, {r.jobs_completed} completed, {r.jobs_failed} failed"),
        ("heartbeat", f"{_when(r.last_heartbeat_at)} ({_ago(r.heartbeat_age(now))})"),
        ("registered", f"{_when(r.registered_at)}" + (f" with token {r.token_id}" if r.token_id else "")),
        ("version", f"mediarunner {r.version}, celery {caps.get('celery', '?')}, python {caps.get('python', '?')}"),
        ("ffmpeg", ff.get("version") or f"[red]{ff.get('error', 'unknown')}[/red]"),
        ("encoders", ", ".join(e for e in ff.get("encoders", []) if NOTABLE_ENCODERS.match(e))),
        ("hwaccels", ", ".join(ff.get("hwaccels", [])) or "none"),
        ("gpus", "; ".join(f"{g.get('name')} ({g.get('memory_total_mb')} MB)" for g in caps.get("gpus", []))
         or "none"),
        ("whisper", f"engines: {', '.join(caps.get('whisper', {}).get('engines', [])) or 'none'}; "
                    f"models: {', '.join(caps.get('whisper', {}).get('models', [])) or 'none'}"),
        ("load", f"{d.get('load_1m', '?')} {d.get('load_5m', '?')} {d.get('load_15m', '?')} "
                 f"on {d.get('cpu_count', '?')} CPU(s)"),
        ("disk", f"{d.get('disk_free_mb', '?')} MB free of {d.get('disk_total_mb', '?')} MB (scratch)"),
        ("memory", f"{d.get('mem_available_mb', '?')} MB available of {d.get('mem_total_mb', '?')} MB"),
    ]
    for g in d.get("gpus", []):
        rows.append((f"gpu {g.get('index')}", f"{g.get('utilization_percent')}% busy, "
                                              f"{g.get('memory_used_mb')}/{g.get('memory_total_mb')} MB"))
    for k, v in rows:
        grid.add_row(k, v)
    console.print(grid)
    show_events(runner=hostname, limit=10)


def _steer(name: str, status: RunnerStatus) -> None:
    from mediarunner.scheduler.steering import set_status

    _writable()
    hostname = _resolve(name)
    res = set_status(_celery(), hostname, status, timeout=REPLY_TIMEOUT)
    what = {RunnerStatus.MAINTENANCE: "in maintenance: running jobs finish, no new ones",
            RunnerStatus.DISABLED: "disabled: takes no jobs", RunnerStatus.ENABLED: "enabled: consuming"}[status]
    console.print(f"{hostname} {what}" + ("" if res.changed else " (already)"))
    if not res.acknowledged:
        console.print("[yellow]the worker did not answer; it will apply this on its next heartbeat[/yellow]")


@runners_app.command("maintenance")
def runners_maintenance(name: str) -> None:
    """Stop taking new jobs and finish the current ones (remote control cancel_consumer)."""
    _steer(name, RunnerStatus.MAINTENANCE)


@runners_app.command("enable")
def runners_enable(name: str) -> None:
    """Take jobs again (remote control add_consumer)."""
    _steer(name, RunnerStatus.ENABLED)


@runners_app.command("disable")
def runners_disable(name: str) -> None:
    """Take the runner out of the fleet until enabled (running jobs finish)."""
    _steer(name, RunnerStatus.DISABLED)


@runners_app.command("set-concurrency")
def runners_set_concurrency(name: str, concurrency: Annotated[int, typer.Argument(min=1, max=256)]) -> None:
    """Max concurrent jobs: resizes the live pool (pool_grow / pool_shrink) and survives restarts."""
    from mediarunner.scheduler.steering import set_concurrency

    _writable()
    hostname = _resolve(name)
    res = set_concurrency(_celery(), hostname, concurrency, timeout=REPLY_TIMEOUT)
    if "from" in res.replies:
        console.print(f"{hostname}: pool {res.replies['from']} -> {concurrency}")
    elif res.replies:
        console.print(f"{hostname}: pool already {concurrency}")
    else:
        console.print(f"{hostname}: stored max {concurrency}; the worker did not answer and applies it at start-up")


@runners_app.command("ping")
def runners_ping(names: Annotated[list[str] | None, typer.Argument(help="runners (default: all not offline)")] = None,
                 timeout: float = 2.0) -> None:
    """Test connection: a round trip through the broker to each worker, with latency."""
    from mediarunner.scheduler.steering import ping

    hostnames = ([_resolve(n) for n in names] if names
                 else [r.hostname for r in _runners() if r.health is not Health.OFFLINE])
    results = ping(_celery(), hostnames, timeout=timeout)
    table = Table("runner", "reply", "latency")
    for p in results:
        table.add_row(p.hostname, "[green]pong[/green]" if p.ok else "[red]no reply[/red]",
                      f"{p.latency_ms:.1f} ms" if p.latency_ms is not None else "")
    console.print(table)
    if any(not p.ok for p in results):
        raise typer.Exit(1)


# ------------------------------------------------------------------------------ activity log

def show_events(*, runner: str | None = None, kind: str | None = None, job: str | None = None,
                limit: int = 50) -> None:
    from mediarunner.models.db import transaction
    from mediarunner.models.queries import recent_events

    events = transaction(lambda s: [(e.at, e.kind, e.runner, e.job_id, e.message) for e in
                                    recent_events(s, limit=limit, runner=runner, kind=kind, job_id=job)])
    table = Table("time", "event", "runner", "job", "message")
    for at, k, r, j, msg in events:
        style = EVENT_STYLE.get(k, "white")
        table.add_row(_when(at), Text(k, style=style), r or "", (j or "")[:8], Text(mask_urls_in(msg)))
    console.print(table)


def logs(runner: Annotated[str | None, typer.Option(help="only this runner")] = None,
         type: Annotated[str | None, typer.Option("--type", help="only this event kind, e.g. job_failed")] = None,
         job: Annotated[str | None, typer.Option(help="only this job id")] = None,
         limit: Annotated[int, typer.Option("-n", "--limit")] = 50) -> None:
    """The activity log (newest last), colour-coded by event kind."""
    if runner:  # a name not in the registry (any more) is used as given: its history is still logged
        matches = _matches(runner, [r.hostname for r in _runners(True)])
        runner = matches[0] if len(matches) == 1 else runner
    show_events(runner=runner, kind=type, job=job, limit=limit)


# ------------------------------------------------------------------------------ stats

def stats(as_json: Annotated[bool, typer.Option("--json", help="machine-readable")] = False) -> None:
    """Dashboard statistics, computed in one SQL statement."""
    from mediarunner.models.base import utcnow
    from mediarunner.models.db import transaction
    from mediarunner.models.stats import fleet_stats

    s = _settings()
    st = transaction(lambda session: fleet_stats(session, utcnow(), s.runner_offline_after_seconds))
    if as_json:
        typer.echo(json.dumps(asdict(st)))
        return
    grid = Table.grid(padding=(0, 3))
    for _ in range(4):
        grid.add_column()
    grid.add_row(f"runners online [bold]{st.runners_online}/{st.runners_total}[/bold]",
                 f"pending [bold yellow]{st.jobs_pending}[/]", f"running [bold cyan]{st.jobs_running}[/]",
                 f"throughput [bold]{st.throughput_last_hour}[/bold]/h")
    grid.add_row(f"completed today [bold green]{st.completed_today}[/]", f"failed today [bold red]{st.failed_today}[/]",
                 f"avg wait [bold]{_seconds(st.avg_wait_seconds)}[/bold]",
                 f"avg processing [bold]{_seconds(st.avg_processing_seconds)}[/bold]")
    console.print(grid)


# ------------------------------------------------------------------------------ Flower, metrics, settings

def flower_command(settings: Settings, port: int, address: str, *,
                   auth: bool = True) -> tuple[list[str], dict[str, str]]:
    """argv and extra environment. Basic auth travels in the environment (FLOWER_BASIC_AUTH), never in
    argv, where `ps` and container inspection would show it."""
    argv = [sys.executable, "-m", "celery", "-A", "mediarunner.workers.app", "flower", f"--port={port}",
            f"--address={address}"]
    env: dict[str, str] = {}
    if auth:
        if settings.flower_basic_auth is None or not settings.flower_basic_auth.get_secret_value():
            raise ValueError("Flower needs basic auth: set MEDIARUNNER_FLOWER_BASIC_AUTH=user:password "
                             "(or pass --no-auth behind an authenticating proxy)")
        env["FLOWER_BASIC_AUTH"] = settings.flower_basic_auth.get_secret_value()
    return argv, env


def flower(port: int = 5555, address: str = "0.0.0.0",
           no_auth: Annotated[bool, typer.Option("--no-auth", help="no basic auth (only behind a proxy)")] = False
           ) -> None:
    """Celery's Flower (tasks and workers) with basic auth. `mediarunner` itself shows jobs and runners."""
    try:
        argv, env = flower_command(_settings(), port, address, auth=not no_auth)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    os.execve(sys.executable, argv, {**os.environ, **env})


def metrics(port: Annotated[int, typer.Option(help="serve /metrics on this port")] = 9808,
            address: str = "0.0.0.0",
            textfile: Annotated[Path | None, typer.Option(help="write the metrics to this file once and exit "
                                                               "(node_exporter textfile collector)")] = None) -> None:
    """Prometheus metrics for jobs and runners, read from the database on each scrape."""
    from prometheus_client import start_http_server, write_to_textfile

    from mediarunner.metrics import registry_for

    registry = registry_for(_settings())
    if textfile is not None:
        write_to_textfile(str(textfile), registry)
        console.print(f"wrote {textfile}")
        return
    start_http_server(port, address, registry=registry)
    console.print(f"serving Prometheus metrics on http://{address}:{port}/metrics")
    threading.Event().wait()


def settings_cmd() -> None:
    """Effective settings, secrets masked (safe to show in a demo)."""
    table = Table("setting", "value")
    for name, value in settings_view(_settings()).items():
        table.add_row(f"MEDIARUNNER_{name.upper()}", Text(value, style="dim" if value == MASK else ""))
    console.print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(tokens_app, name="tokens")
    app.add_typer(runners_app, name="runners")
    app.command("logs")(logs)
    app.command("stats")(stats)
    app.command("flower")(flower)
    app.command("metrics")(metrics)
    app.command("settings")(settings_cmd)
