"""``submit`` and ``jobs``: submit work, follow it, inspect and steer jobs (through ``Client``)."""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from mediarunner.cli import ui
from mediarunner.config.redact import mask_url
from mediarunner.errors import JobNotFoundError, MediarunnerError
from mediarunner.models.enums import JobState, JobType
from mediarunner.models.schemas import Job

submit_app = typer.Typer(help="Submit jobs.", no_args_is_help=True)
jobs_app = typer.Typer(help="Inspect and steer jobs.", no_args_is_help=True)


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
        job = ui.client().submit_transcode(input, output, renditions=rendition or None,
                                           formats=tuple(format or ("hls", "mp4")), priority=priority, parts=parts)
    except MediarunnerError as exc:
        raise ui.fail(exc) from None
    ui.console.print(f"submitted [bold]{job.id}[/bold] ({len(job.children)} child job(s))")
    if wait:
        job = follow(job.id, timeout)
        show_job(job)
        raise typer.Exit(0 if job.state is JobState.COMPLETED and all(
            j.state is JobState.COMPLETED for j in job.family) else 1)


def _update_bars(bars: Progress, rows: dict[str, TaskID], job: Job) -> None:
    for j in job.family:
        label = j.type.value + (f" {j.payload.get('rendition')}" if j.payload.get("rendition") else "")
        if j.id not in rows:
            rows[j.id] = bars.add_task(label, total=100, state="")
        bars.update(rows[j.id], completed=j.progress,
                    state=j.state.value + (f" ({j.stage.value})" if j.stage and not j.done else ""))


def follow(job_id: str, timeout: float | None = None) -> Job:
    """Live progress bars for a job family until every member is terminal."""
    client = ui.client()
    deadline = None if timeout is None else time.monotonic() + timeout
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>5.1f}%"),
                  TextColumn("{task.fields[state]}"), TimeElapsedColumn(), console=ui.console) as bars:
        rows: dict[str, TaskID] = {}
        while True:
            job = client.get(job_id)
            _update_bars(bars, rows, job)
            if job.done:
                return job
            if deadline is not None and time.monotonic() > deadline:
                raise ui.fail(TimeoutError(f"job {job_id} not finished after {timeout}s"))
            time.sleep(0.25)


JsonFlag = Annotated[bool, typer.Option("--json", help="print JSON (as the HTTP API shows it)")]


def print_json(doc: Any) -> None:
    """JSON on standard output as it is (no rich markup or wrapping)."""
    typer.echo(json.dumps(doc, indent=2))


@jobs_app.command("ls")
def jobs_ls(state: Annotated[JobState | None, typer.Option()] = None,
            type: Annotated[JobType | None, typer.Option()] = None,
            limit: Annotated[int, typer.Option("-n", "--limit")] = 50, as_json: JsonFlag = False) -> None:
    """List jobs, newest first (--json: the items of the API's GET /v1/jobs, as a list)."""
    jobs = ui.client().list(state=state, type=type, limit=limit)
    if as_json:
        from mediarunner.models.webhooks import job_document

        print_json([job_document(j) for j in jobs])
        return
    table = Table("id", "type", "state", "stage", "progress", "queue", "rank", "attempt", "worker", "created")
    for j in jobs:
        table.add_row(j.id, j.type.value, f"[{ui.STATE_STYLE[j.state]}]{j.state.value}[/]",
                      j.stage.value if j.stage else "", f"{j.progress:.0f}%", j.queue,
                      str(j.rank or ""), str(j.attempt), j.worker or "", f"{j.created_at:%Y-%m-%d %H:%M:%S}")
    ui.console.print(table)


def show_job(job: Job) -> None:
    table = Table("job", "type", "state", "progress", "attempt", "worker", "error", title=f"job {job.id}")
    for j in job.family:
        indent = "  " if j.parent_id else ""
        table.add_row(indent + j.id[:8], j.type.value + (f" {j.payload.get('rendition', '')}"),
                      f"[{ui.STATE_STYLE[j.state]}]{j.state.value}[/]", f"{j.progress:.0f}%",
                      f"{j.attempt}/{j.max_attempts}", j.worker or "", (j.error or "")[:80])
    ui.console.print(table)
    for j in job.family:
        for a in j.artifacts:
            ui.console.print(f"  [green]{a.kind:13}[/green] {a.path} ({a.size:,} bytes)")
    if job.routing_reason:
        ui.console.print(f"  routed to [bold]{job.queue}[/bold]: {job.routing_reason}")
    for j in job.family:  # capability routing: why a pending job is not taken (beat writes it)
        if j.waiting_reason and j.state is JobState.PENDING:
            ui.console.print(f"  [yellow]{j.id[:8]} {j.waiting_reason}[/yellow]")


@jobs_app.command("show")
def jobs_show(job_id: str, as_json: JsonFlag = False) -> None:
    """A job with its children, artifacts, errors and webhook delivery (JOB_ID: the id or a unique
    prefix of it); --json: the same JSON as the API's GET /v1/jobs/{id}."""
    from mediarunner.api.jobs import job_json

    client = ui.client()
    try:
        job = client.get(ui.job_id(job_id))
    except JobNotFoundError as exc:
        raise ui.fail(exc) from None
    doc = job_json(job, client.settings.database_url)
    if as_json:
        print_json(doc)
        return
    show_job(job)
    show_webhook(doc["webhook"])


def show_webhook(hook: dict[str, Any] | None) -> None:
    """The family's webhook delivery, when it has one (the ``webhook`` of the API's job JSON)."""
    if hook is None:
        return
    url = escape(mask_url(hook["url"]))
    line = f"  webhook [bold]{escape(hook['state'])}[/bold] -> {url} ({hook['attempts']} attempt(s)"
    if hook["last_status"] is not None:
        line += f", last status {hook['last_status']}"
    lines = [line + ")"]
    if hook["last_error"]:
        lines.append(f"    last error: {escape(hook['last_error'])}")
    if hook["delivered_at"]:
        lines.append(f"    delivered at {hook['delivered_at']}")
    elif hook["next_attempt_at"]:
        lines.append(f"    next attempt at {hook['next_attempt_at']}")
    ui.console.print("\n".join(lines), highlight=False, soft_wrap=True)


@jobs_app.command("cancel")
def jobs_cancel(job_id: str) -> None:
    """Cancel a job and its unfinished children (running ffmpeg is killed)."""
    try:
        job = ui.client().cancel(job_id)
    except JobNotFoundError as exc:
        raise ui.fail(exc) from None
    ui.console.print(f"{job.id}: {job.state.value}")


@jobs_app.command("restart")
def jobs_restart(job_id: str) -> None:
    """Run a failed, timed-out or cancelled job again (with its unfinished children)."""
    try:
        job = ui.client().restart(job_id)
    except MediarunnerError as exc:
        raise ui.fail(exc) from None
    ui.console.print(f"{job.id}: {job.state.value} (attempt {job.attempt})")
