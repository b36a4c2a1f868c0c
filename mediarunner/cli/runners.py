"""``runners``: list, inspect, steer and ping the fleet (through ``FleetService``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, TypeVar

import typer
from rich.table import Table

from mediarunner.cli import ui
from mediarunner.cli.overview import show_events
from mediarunner.fleet import FleetError, FleetService, Runner, RunnerDetail, RunnerNotFound, RunnerStatus
from mediarunner.models.base import utcnow

T = TypeVar("T")
runners_app = typer.Typer(help="The runner fleet: list, inspect and steer workers.", no_args_is_help=True)


def _call(fn: Callable[[FleetService], T]) -> T:
    """Run one service call; a refusal (demo mode, unknown or ambiguous name) exits with code 2."""
    try:
        return fn(ui.fleet())
    except RunnerNotFound as exc:
        raise ui.fail(f"{exc} (see `mediarunner runners ls --all`)") from None
    except FleetError as exc:
        raise ui.fail(exc) from None


def _status(r: Runner) -> str:
    return "unregistered" if r.unregistered_at else f"[{ui.STATUS_STYLE[r.status]}]{r.status}[/]"


@runners_app.command("ls")
def runners_ls(all: Annotated[bool, typer.Option("--all", help="include unregistered runners")] = False) -> None:
    """Runners with status, health, load, disk and job counters."""
    now = utcnow()
    table = Table("runner", "status", "health", "queues", "prio", "jobs", "max", "load", "free disk", "heartbeat",
                  "completed", "failed", "version")
    for r in ui.fleet().list_runners(include_unregistered=all):
        d = r.diagnostics
        load = f"{d['load_1m']:.2f}/{d.get('cpu_count', '?')}" if "load_1m" in d else ""
        disk = f"{d['disk_free_mb'] / 1024:.1f} GB" if "disk_free_mb" in d else ""
        table.add_row(r.hostname, _status(r), f"[{ui.HEALTH_STYLE[r.health]}]{r.health}[/]", ",".join(r.queues),
                      str(r.priority) + (f" w{r.weight}" if r.weight else ""), str(r.jobs_running),
                      str(r.desired_concurrency or r.concurrency), load, disk,
                      ui.ago(r.heartbeat_age(now)), str(r.jobs_completed), str(r.jobs_failed), r.version)
    ui.console.print(table)


def _detail_rows(x: RunnerDetail) -> list[tuple[str, str]]:
    r, d, now = x.runner, x.runner.diagnostics, utcnow()
    reasons = f" ({'; '.join(r.health_reasons)})" if r.health_reasons else ""
    return [
        ("runner", r.hostname), ("status", _status(r)),
        ("health", f"[{ui.HEALTH_STYLE[r.health]}]{r.health}[/]" + reasons),
        ("queues", ",".join(r.queues)),
        ("concurrency", f"{r.concurrency} (operator max: {r.desired_concurrency or 'not set'})"),
        ("jobs", f"{r.jobs_running} running, {r.jobs_completed} completed, {r.jobs_failed} failed"),
        ("heartbeat", f"{ui.when(r.last_heartbeat_at)} ({ui.ago(r.heartbeat_age(now))})"),
        ("registered", f"{ui.when(r.registered_at)}" + (f" with token {r.token_id}" if r.token_id else "")),
        ("version", f"mediarunner {r.version}, celery {x.celery_version or '?'}, python {x.python_version or '?'}"),
        ("ffmpeg", x.ffmpeg_version or f"[red]{x.ffmpeg_error or 'unknown'}[/red]"),
        ("encoders", ", ".join(x.notable_encoders)),
        ("hwaccels", ", ".join(x.hwaccels) or "none"),
        ("gpus", "; ".join(f"{g.name} ({g.memory_total_mb} MB)" for g in x.gpus) or "none"),
        ("whisper", f"engines: {', '.join(x.whisper_engines) or 'none'}; "
                    f"models: {', '.join(x.whisper_models) or 'none'}"),
        ("load", f"{d.get('load_1m', '?')} {d.get('load_5m', '?')} {d.get('load_15m', '?')} "
                 f"on {d.get('cpu_count', '?')} CPU(s)"),
        ("disk", f"{d.get('disk_free_mb', '?')} MB free of {d.get('disk_total_mb', '?')} MB (scratch)"),
        ("memory", f"{d.get('mem_available_mb', '?')} MB available of {d.get('mem_total_mb', '?')} MB"),
        *((f"gpu {g.index}", f"{g.utilization_percent}% busy, {g.memory_used_mb}/{g.memory_total_mb} MB")
          for g in x.gpu_usage),
    ]


@runners_app.command("show")
def runners_show(name: str) -> None:
    """Everything about one runner: capabilities, diagnostics, health reasons, recent activity."""
    detail = _call(lambda f: f.runner_detail(name))
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    for k, v in _detail_rows(detail):
        grid.add_row(k, v)
    ui.console.print(grid)
    show_events(list(detail.events))


def _steer(name: str, status: RunnerStatus) -> None:
    res = _call(lambda f: f.set_status(name, status))
    what = {RunnerStatus.MAINTENANCE: "in maintenance: running jobs finish, no new ones",
            RunnerStatus.DISABLED: "disabled: takes no jobs", RunnerStatus.ENABLED: "enabled: consuming"}[status]
    ui.console.print(f"{res.hostname} {what}" + ("" if res.changed else " (already)"))
    if not res.acknowledged:
        ui.console.print("[yellow]the worker did not answer; it will apply this on its next heartbeat[/yellow]")


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
    res = _call(lambda f: f.set_concurrency(name, concurrency))
    if "from" in res.replies:
        ui.console.print(f"{res.hostname}: pool {res.replies['from']} -> {concurrency}")
    elif res.replies:
        ui.console.print(f"{res.hostname}: pool already {concurrency}")
    else:
        ui.console.print(f"{res.hostname}: stored max {concurrency}; the worker did not answer and applies it "
                         "at start-up")


@runners_app.command("unregister")
def runners_unregister(name: str) -> None:
    """Let one runner leave cleanly: it takes no more jobs and its running jobs go back to pending
    (no failure counted) until it starts again. `tokens revoke` does this for every runner of a token."""
    hostname, released = _call(lambda f: f.unregister_runner(name))
    ui.console.print(f"{hostname} unregistered; {len(released)} running job(s) back to pending")


@runners_app.command("rm")
def runners_rm(name: str) -> None:
    """Remove a stopped (offline) or unregistered runner from the fleet list."""
    hostname = _call(lambda f: f.remove_runner(name))
    ui.console.print(f"{hostname} removed")


@runners_app.command("set-priority")
def runners_set_priority(name: str, priority: Annotated[int, typer.Argument(min=-1000, max=1000)],
                         weight: Annotated[int | None, typer.Option(min=1, max=10_000, help=(
                             "share for weighted balancing (default: the concurrency)"))] = None) -> None:
    """Scheduling priority: jobs go to idle runners of the lowest priority first; among equals the
    RUNNER_BALANCING method decides (least_loaded, round_robin, priority, weighted)."""
    res = _call(lambda f: f.set_priority(name, priority, weight=weight))
    extra = f", weight {weight}" if weight is not None else ""
    ui.console.print(f"{res.hostname}: priority {priority}{extra}" + ("" if res.changed else " (unchanged)"))


@runners_app.command("ping")
def runners_ping(names: Annotated[list[str] | None, typer.Argument(help="runners (default: all not offline)")] = None,
                 timeout: float = 2.0) -> None:
    """Test connection: a round trip through the broker to each worker, with latency."""
    results = _call(lambda f: f.ping(names, timeout=timeout))
    table = Table("runner", "reply", "latency")
    for p in results:
        table.add_row(p.hostname, "[green]pong[/green]" if p.ok else "[red]no reply[/red]",
                      f"{p.latency_ms:.1f} ms" if p.latency_ms is not None else "")
    ui.console.print(table)
    if any(not p.ok for p in results):
        raise typer.Exit(1)
