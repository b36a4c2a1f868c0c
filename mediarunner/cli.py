"""``mediarunner`` command line (typer + rich)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from mediarunner.cli_fleet import register as register_fleet_commands
from mediarunner.errors import JobNotFoundError, MediarunnerError
from mediarunner.models.enums import JobState, JobType
from mediarunner.models.schemas import Job

app = typer.Typer(help="Distributed media processing on Celery.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
submit_app = typer.Typer(help="Submit jobs.", no_args_is_help=True)
jobs_app = typer.Typer(help="Inspect and steer jobs.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(submit_app, name="submit")
app.add_typer(jobs_app, name="jobs")
console = Console()

STATE_STYLE = {
    JobState.PENDING: "yellow", JobState.WAITING_FOR_PARENT: "dim", JobState.RUNNING: "cyan",
    JobState.COMPLETED: "green", JobState.FAILED: "red", JobState.CANCELLED: "magenta",
    JobState.PARENT_FAILED: "red", JobState.PARENT_CANCELLED: "magenta", JobState.TIMEOUT: "red",
}


def _client():  # type: ignore[no-untyped-def]
    from mediarunner.client import Client

    return Client()


def _fail(exc: Exception) -> typer.Exit:
    console.print(f"[red]error:[/red] {exc}")
    return typer.Exit(2)


# ------------------------------------------------------------------------------ db

@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Create or migrate the schema (MEDIARUNNER_DATABASE_URL)."""
    from mediarunner.models.migrate import upgrade

    upgrade(revision=revision)
    console.print("[green]database is at[/green]", revision)


@db_app.command("downgrade")
def db_downgrade(revision: str = typer.Argument(..., help="target revision, e.g. base")) -> None:
    from mediarunner.models.migrate import downgrade

    downgrade(revision=revision)


# ------------------------------------------------------------------------------ submit

@submit_app.command("transcode")
def submit_transcode(
    input: str, output: str,
    rendition: Annotated[list[str] | None, typer.Option("--rendition", "-r", help="rung name; repeat")] = None,
    format: Annotated[list[str] | None, typer.Option("--format", "-f", help="hls and/or mp4")] = None,
    priority: int = 0,
    parts: Annotated[int | None, typer.Option(help="split each rung of a long video into N time parts "
                                              "(default: the TRANSCODE_PARTS setting)")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="show progress until done")] = False,
    timeout: float | None = None,
) -> None:
    """Transcode INPUT into an HLS + MP4 ladder under the directory OUTPUT."""
    try:
        job = _client().submit_transcode(input, output, renditions=rendition or None,
                                         formats=tuple(format or ("hls", "mp4")), priority=priority, parts=parts)
    except MediarunnerError as exc:
        raise _fail(exc) from None
    console.print(f"submitted [bold]{job.id}[/bold] ({len(job.children)} child job(s))")
    if wait:
        job = follow(job.id, timeout)
        show_job(job)
        raise typer.Exit(0 if job.state is JobState.COMPLETED and all(
            j.state is JobState.COMPLETED for j in job.family) else 1)


def follow(job_id: str, timeout: float | None = None) -> Job:
    """Live progress bars for a job family until every member is terminal."""
    client = _client()
    deadline = None if timeout is None else time.monotonic() + timeout
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>5.1f}%"),
                  TextColumn("{task.fields[state]}"), TimeElapsedColumn(), console=console) as bars:
        rows: dict[str, TaskID] = {}
        while True:
            job = client.get(job_id)
            for j in job.family:
                label = j.type.value + (f" {j.payload.get('rendition')}" if j.payload.get("rendition") else "")
                if j.id not in rows:
                    rows[j.id] = bars.add_task(label, total=100, state="")
                bars.update(rows[j.id], completed=j.progress,
                            state=j.state.value + (f" ({j.stage.value})" if j.stage and not j.done else ""))
            if job.done:
                return job
            if deadline is not None and time.monotonic() > deadline:
                raise _fail(TimeoutError(f"job {job_id} not finished after {timeout}s"))
            time.sleep(0.25)


# ------------------------------------------------------------------------------ jobs

@jobs_app.command("ls")
def jobs_ls(state: Annotated[JobState | None, typer.Option()] = None,
            type: Annotated[JobType | None, typer.Option()] = None,
            limit: Annotated[int, typer.Option("-n", "--limit")] = 50) -> None:
    """List jobs, newest first."""
    table = Table("id", "type", "state", "stage", "progress", "queue", "rank", "attempt", "worker", "created")
    for j in _client().list(state=state, type=type, limit=limit):
        table.add_row(j.id, j.type.value, f"[{STATE_STYLE[j.state]}]{j.state.value}[/]",
                      j.stage.value if j.stage else "", f"{j.progress:.0f}%", j.queue,
                      str(j.rank or ""), str(j.attempt), j.worker or "", f"{j.created_at:%Y-%m-%d %H:%M:%S}")
    console.print(table)


def show_job(job: Job) -> None:
    table = Table("job", "type", "state", "progress", "attempt", "worker", "error", title=f"job {job.id}")
    for j in job.family:
        indent = "  " if j.parent_id else ""
        table.add_row(indent + j.id[:8], j.type.value + (f" {j.payload.get('rendition', '')}"),
                      f"[{STATE_STYLE[j.state]}]{j.state.value}[/]", f"{j.progress:.0f}%",
                      f"{j.attempt}/{j.max_attempts}", j.worker or "", (j.error or "")[:80])
    console.print(table)
    for j in job.family:
        for a in j.artifacts:
            console.print(f"  [green]{a.kind:13}[/green] {a.path} ({a.size:,} bytes)")
    if job.routing_reason:
        console.print(f"  routed to [bold]{job.queue}[/bold]: {job.routing_reason}")


@jobs_app.command("show")
def jobs_show(job_id: str) -> None:
    """A job with its children, artifacts and errors."""
    try:
        show_job(_client().get(job_id))
    except JobNotFoundError as exc:
        raise _fail(exc) from None


@jobs_app.command("cancel")
def jobs_cancel(job_id: str) -> None:
    """Cancel a job and its unfinished children (running ffmpeg is killed)."""
    try:
        job = _client().cancel(job_id)
    except JobNotFoundError as exc:
        raise _fail(exc) from None
    console.print(f"{job.id}: {job.state.value}")


@jobs_app.command("restart")
def jobs_restart(job_id: str) -> None:
    """Run a failed, timed-out or cancelled job again (with its unfinished children)."""
    try:
        job = _client().restart(job_id)
    except MediarunnerError as exc:
        raise _fail(exc) from None
    console.print(f"{job.id}: {job.state.value} (attempt {job.attempt})")


# ------------------------------------------------------------------------------ processes

def _celery(*args: str) -> list[str]:
    return [sys.executable, "-m", "celery", "-A", "mediarunner.workers.app", *args]


@app.command()
def worker(queues: Annotated[str, typer.Option("--queues", "-Q")] = "cpu",
           concurrency: Annotated[int, typer.Option("--concurrency", "-c")] = 1,
           name: Annotated[str | None, typer.Option("--name", "-n")] = None,
           loglevel: str = "INFO") -> None:
    """Run a worker (a thin wrapper over `celery worker`)."""
    args = ["worker", "-Q", queues, "-c", str(concurrency), "--loglevel", loglevel, "-E"]
    if name:
        args += ["-n", name]
    os.execv(sys.executable, _celery(*args))


@app.command()
def beat(loglevel: str = "INFO", schedule: Path = Path("var/celerybeat-schedule")) -> None:
    """Run the scheduler: celery beat plus a one-process worker for the `scheduler` queue."""
    schedule.parent.mkdir(parents=True, exist_ok=True)
    os.execv(sys.executable, _celery("worker", "-B", "-Q", "scheduler", "-c", "1", "--loglevel", loglevel,
                                     "-n", "scheduler@%h", "--schedule", str(schedule)))


@app.command()
def purge(dry_run: Annotated[bool, typer.Option("--dry-run")] = False) -> None:
    """Delete completed job families older than MEDIARUNNER_PURGE_AFTER_DAYS."""
    from mediarunner.config import get_settings
    from mediarunner.models.base import utcnow
    from mediarunner.models.db import transaction
    from mediarunner.scheduler.ticks import purge as purge_batch

    settings = get_settings()
    if settings.purge_after_days <= 0:
        console.print("purging is disabled (purge_after_days <= 0)")
        return
    if dry_run:
        roots = transaction(lambda s: purge_batch(s, utcnow(), settings, dry_run=True))
        console.print(f"would purge {len(roots)} job famil{'y' if len(roots) == 1 else 'ies'}"
                      f"{' (first batch)' if len(roots) == settings.purge_batch_size else ''}")
        for r in roots[:20]:
            console.print(f"  {r}")
        return
    total = 0
    while batch := transaction(lambda s: purge_batch(s, utcnow(), settings)):
        total += len(batch)
        if len(batch) < settings.purge_batch_size:
            break
    console.print(f"purged {total} job famil{'y' if total == 1 else 'ies'}")


@app.command()
def demo(workdir: Path = Path("var/demo"),
         spawn_workers: Annotated[bool, typer.Option(help="start a cpu and a gpu worker and beat")] = True,
         seconds: float = 10.0) -> None:
    """Generate a test clip, transcode it on real workers with live progress, list the outputs."""
    from mediarunner.config import get_settings
    from mediarunner.models.migrate import upgrade

    settings = get_settings()
    workdir.mkdir(parents=True, exist_ok=True)
    upgrade()
    clip = workdir / "input.mp4"
    console.print(f"generating a {seconds:.0f} s 1280x720 test clip at {clip}")
    subprocess.run([settings.ffmpeg_path, "-hide_banner", "-loglevel", "error", "-y",
                    "-f", "lavfi", "-i", f"testsrc2=size=1280x720:rate=25:duration={seconds}",
                    "-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}",
                    "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac",
                    str(clip)], check=True)
    out = Path(settings.output_roots[0]) / "demo"
    shutil.rmtree(out, ignore_errors=True)
    procs: list[subprocess.Popen[bytes]] = []
    logs = workdir / "logs"
    logs.mkdir(exist_ok=True)
    try:
        if spawn_workers:
            for name, args in (("cpu", ["worker", "-Q", "cpu", "-c", "2", "-n", "cpu@%h"]),
                               ("gpu", ["worker", "-Q", "gpu", "-c", "1", "-n", "gpu@%h"]),
                               ("beat", ["worker", "-B", "-Q", "scheduler", "-c", "1", "-n", "scheduler@%h",
                                         "--schedule", str(workdir / "beat-schedule")])):
                with (logs / f"{name}.log").open("wb") as f:
                    procs.append(subprocess.Popen(_celery(*args, "--loglevel", "INFO"), stdout=f,
                                                  stderr=subprocess.STDOUT, start_new_session=True))
            console.print(f"started cpu and gpu workers and beat (logs in {logs})")
        job = _client().submit_transcode(str(clip), str(out), renditions=["720p", "480p", "360p"])
        console.print(f"submitted transcode [bold]{job.id}[/bold]")
        job = follow(job.id, timeout=600)
        show_job(job)
        master = out / "master.m3u8"
        if master.exists():
            console.print(f"\n[bold]{master}[/bold]\n{master.read_text()}")
        ok = all(j.state is JobState.COMPLETED for j in job.family)
        console.print("[green]demo finished[/green]" if ok else "[red]demo failed[/red]")
        if not ok:
            raise typer.Exit(1)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()


register_fleet_commands(app)  # tokens, runners, logs, stats, flower, metrics, settings


def main() -> None:
    app()


if __name__ == "__main__":
    main()
