"""``submit transcription|studio|live`` beside ``submit transcode`` (through ``Client``), and
``mediarunner --version``. Registered on ``jobs.submit_app`` by ``mediarunner.cli``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from mediarunner.cli import ui
from mediarunner.errors import MediarunnerError
from mediarunner.models.schemas import Job

PriorityClass = Annotated[str, typer.Option("--priority-class", help="a configured priority class")]
Renditions = Annotated[list[str] | None, typer.Option("--rendition", "-r", help="rung name; repeat")]
NotifyUrl = Annotated[str | None, typer.Option("--notify-url", help="POSTed a signed webhook when the job is done "
                                               "(needs MEDIARUNNER_WEBHOOK_SECRET)")]
QueueOpt = Annotated[str | None, typer.Option("--queue", "-q", help="one of JOB_QUEUES (e.g. a remote runners' "
                                              "queue); default: by job type")]


def _submitted(job: Job) -> None:
    ui.console.print(f"submitted [bold]{job.id}[/bold] ({len(job.family) - 1} descendant job(s))")


def submit_transcription(input: str, output: str, language: Annotated[str | None, typer.Option()] = None,
                         model: Annotated[str | None, typer.Option()] = None,
                         format: Annotated[list[str] | None, typer.Option("--format", "-f", help="vtt, srt, json")]
                         = None, device: str = "auto", priority: int = 0, priority_class: PriorityClass = "default",
                         notify_url: NotifyUrl = None, queue: QueueOpt = None) -> None:
    """Transcribe INPUT's speech into subtitles under the directory OUTPUT."""
    try:
        _submitted(ui.client(writes=True).submit_transcription(
            input, output, language=language, model=model, formats=tuple(format or ("vtt", "srt", "json")),
            device=device, priority=priority, priority_class=priority_class, notify_url=notify_url, queue=queue))
    except MediarunnerError as exc:
        raise ui.fail(exc) from None


def submit_studio(input: str, output: str,
                  operations: Annotated[Path, typer.Option(help="a JSON file: a list of operations")],
                  transcode: bool = False, rendition: Renditions = None, priority: int = 0,
                  priority_class: PriorityClass = "default", notify_url: NotifyUrl = None,
                  queue: QueueOpt = None) -> None:
    """Apply studio OPERATIONS to INPUT, publishing OUTPUT/studio.mp4 (and a ladder with --transcode)."""
    try:
        ops = json.loads(operations.read_text())
    except (OSError, ValueError) as exc:
        raise ui.fail(f"cannot read operations from {operations}: {exc}") from None
    try:
        _submitted(ui.client(writes=True).submit_studio(
            input, output, ops, transcode=transcode, renditions=rendition or None, priority=priority,
            priority_class=priority_class, notify_url=notify_url, queue=queue))
    except MediarunnerError as exc:
        raise ui.fail(exc) from None


def submit_live(input_url: str, output: str, rendition: Renditions = None,
                listen: Annotated[bool, typer.Option(help="receive an RTMP publish on INPUT_URL")] = False,
                audio: bool = True, priority: int = 0, priority_class: PriorityClass = "default",
                notify_url: NotifyUrl = None) -> None:
    """Transcode the live INPUT_URL into a live HLS ladder under OUTPUT until it ends or is cancelled."""
    try:
        _submitted(ui.client(writes=True).submit_live(
            input_url, output, renditions=rendition or None, listen=listen, audio=audio, priority=priority,
            priority_class=priority_class, notify_url=notify_url))
    except MediarunnerError as exc:
        raise ui.fail(exc) from None


def register(submit_app: typer.Typer) -> None:
    submit_app.command("transcription")(submit_transcription)
    submit_app.command("studio")(submit_studio)
    submit_app.command("live")(submit_live)


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"mediarunner {version('mediarunner')}")
        except PackageNotFoundError:
            typer.echo("mediarunner (not installed)")
        raise typer.Exit()


def main_options(version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                                       help="print the version and exit")] = False) -> None:
    pass
