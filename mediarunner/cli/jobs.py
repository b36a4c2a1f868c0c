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
from mediarunner.cli.submit_more import NotifyUrl, PriorityClass, QueueOpt
from mediarunner.config.redact import mask_url
from mediarunner.errors import JobNotFoundError, MediarunnerError
from mediarunner.models.enums import ACTIVE_STATES, RESTARTABLE_STATES, JobState, JobType
from mediarunner.models.schemas import Job

submit_app = typer.Typer(help="Submit jobs.", no_args_is_help=True)
jobs_app = typer.Typer(help="Inspect and steer jobs.", no_args_is_help=True)


@submit_app.command("transcode")
def submit_transcode(
    input: str, output: str,
    rendition: Annotated[list[str] | None, typer.Option("--rendition", "-r", help="rung name; repeat")] = None,
    format: Annotated[list[str] | None, typer.Option("--format", "-f", help="hls and/or mp4")] = None,
    priority: int = 0,
    video_codec: Annotated[list[str] | None, typer.Option(
        "--video-codec", "-c", help="h264, hevc, av1 or vp9: one ladder each; repeat (default h264)")] = None,
    storyboard: Annotated[bool, typer.Option("--storyboard", help="a sprite sheet + WebVTT thumbnails")] = False,
    thumbnails: Annotated[int, typer.Option(help="N preview images and a poster")] = 0,
    cover_image: Annotated[str | None, typer.Option(help="a still image: INPUT (audio) becomes a video")] = None,
    hardware: Annotated[str, typer.Option(help="auto, nvenc, qsv, vaapi or none (software)")] = "none",
    priority_class: PriorityClass = "default",
    notify_url: NotifyUrl = None,
    queue: QueueOpt = None,
    parts: Annotated[int | None, typer.Option(help="split each rung of a long video into N time parts "
                                              "(default: the planner decides, TRANSCODE_PLANNER)")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="show progress until done")] = False,
    timeout: float | None = None,
) -> None:
    """Transcode INPUT into an HLS + MP4 ladder under the directory OUTPUT."""
    try:
        job = ui.client(writes=True).submit_transcode(
            input, output, renditions=rendition or None, formats=tuple(format or ("hls", "mp4")), priority=priority,
            parts=parts, video_codecs=tuple(video_codec or ("h264",)), storyboard=storyboard, thumbnails=thumbnails,
            cover_image=cover_image, hardware=hardware, priority_class=priority_class, notify_url=notify_url,
            queue=queue)
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


LOG_LINES = 20  # of each job's log tail shown by `jobs show`


def show_job(job: Job) -> None:
    table = Table("job", "type", "state", "progress", "attempt", "failures", "aborts", "worker", "error",
                  title=f"job {job.id}")
    for j in job.family:
        indent = "  " if j.parent_id else ""
        table.add_row(indent + j.id[:8], j.type.value + (f" {j.payload.get('rendition', '')}"),
                      f"[{ui.STATE_STYLE[j.state]}]{j.state.value}[/]", f"{j.progress:.0f}%", str(j.attempt),
                      f"{j.failures}/{j.max_attempts}", str(j.aborts), j.worker or "", escape((j.error or "")[:80]))
    ui.console.print(table)
    for j in job.family:
        for a in j.artifacts:
            ui.console.print(f"  [green]{a.kind:13}[/green] {a.path} ({a.size:,} bytes)")
    if job.routing_reason:
        ui.console.print(f"  routed to [bold]{job.queue}[/bold]: {escape(job.routing_reason)}")
    for j in job.family:  # why a pending job waits (set by routing, when it knows)
        if j.waiting_reason and j.state is JobState.PENDING:
            ui.console.print(f"  [yellow]{j.id[:8]} {escape(j.waiting_reason)}[/yellow]")
    for j in job.family:
        if j.log_tail:
            lines = j.log_tail.splitlines()[-LOG_LINES:]
            ui.console.print(f"  log of {j.id[:8]} (last {len(lines)} line(s)):", highlight=False)
            ui.console.print("\n".join(f"    {escape(line)}" for line in lines), highlight=False, soft_wrap=True)


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


StatesOpt = Annotated[list[JobState] | None, typer.Option("--state", help="jobs in this state (repeat)")]
TypesOpt = Annotated[list[JobType] | None, typer.Option("--type", help="jobs of this type (repeat)")]
SinceOpt = Annotated[str | None, typer.Option("--since", help="whose state changed within: 30m, 2h, 1d")]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="only count the jobs the filter selects")]


def _bulk(action: str, allowed: frozenset[JobState], states: list[JobState] | None, types: list[JobType] | None,
          since: str | None, dry_run: bool) -> None:
    """Restart or cancel every job a filter selects (Esup-Pod's "restart selected tasks")."""
    if not (states or types or since):
        raise ui.fail(f"give a job id, or filters: `mediarunner jobs {action} --state ... --type ... --since 2h` "
                      "(--dry-run counts them)")
    chosen = set(states or allowed)
    if bad := sorted(s.value for s in chosen - allowed):
        raise ui.fail(f"cannot {action} {', '.join(bad)} jobs: only {', '.join(sorted(a.value for a in allowed))}")
    try:
        period = ui.duration(since) if since else None
    except ValueError as exc:
        raise ui.fail(exc) from None
    client = ui.client(writes=True)
    ids = client.select(states=chosen, types=types or (), since=period)
    what = ", ".join(filter(None, ["state " + "|".join(sorted(s.value for s in chosen)),
                                   "type " + "|".join(t.value for t in types) if types else "",
                                   f"changed within {since}" if since else ""]))
    if dry_run:
        ui.console.print(f"would {action} {len(ids)} job(s) ({what})", highlight=False)
        return
    done = client.restart_many(ids) if action == "restart" else client.cancel_many(ids)
    moved = f"; {len(ids) - len(done)} had moved on meanwhile" if len(done) < len(ids) else ""
    past = {"restart": "restarted", "cancel": "cancelled"}[action]
    ui.console.print(f"{past} {len(done)} job(s) ({what}){moved}", highlight=False)


@jobs_app.command("cancel")
def jobs_cancel(job_id: Annotated[str | None, typer.Argument(help="a job id (or use the filters)")] = None,
                state: StatesOpt = None, type: TypesOpt = None, since: SinceOpt = None,
                dry_run: DryRunOpt = False) -> None:
    """Cancel a job and its unfinished children (running ffmpeg is killed), or every active job the
    filters select (--dry-run: count them)."""
    if job_id is None:
        _bulk("cancel", ACTIVE_STATES, state, type, since, dry_run)
        return
    if state or type or since or dry_run:
        raise ui.fail("give a job id or filters (--state, --type, --since), not both")
    try:
        job = ui.client(writes=True).cancel(ui.job_id(job_id))
    except JobNotFoundError as exc:
        raise ui.fail(exc) from None
    ui.console.print(f"{job.id}: {job.state.value}")


@jobs_app.command("restart")
def jobs_restart(job_id: Annotated[str | None, typer.Argument(help="a job id (or use the filters)")] = None,
                 state: StatesOpt = None, type: TypesOpt = None, since: SinceOpt = None,
                 dry_run: DryRunOpt = False) -> None:
    """Run a failed, timed-out or cancelled job again (with its unfinished children), or every such job
    the filters select, e.g. `--state failed --type transcode --since 2h` (--dry-run: count them)."""
    if job_id is None:
        _bulk("restart", RESTARTABLE_STATES, state, type, since, dry_run)
        return
    if state or type or since or dry_run:
        raise ui.fail("give a job id or filters (--state, --type, --since), not both")
    try:
        job = ui.client(writes=True).restart(ui.job_id(job_id))
    except MediarunnerError as exc:
        raise ui.fail(exc) from None
    ui.console.print(f"{job.id}: {job.state.value} (attempt {job.attempt})")
