"""Long-running processes: ``worker``, ``beat``, ``flower``, ``metrics`` and the ``demo``."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer
from prometheus_client import write_to_textfile

from mediarunner.cli import ui
from mediarunner.cli.jobs import follow, show_job
from mediarunner.config import Settings
from mediarunner.metrics import registry_for, serve
from mediarunner.models import migrate, runners
from mediarunner.models.base import utcnow
from mediarunner.models.db import transaction
from mediarunner.models.enums import JobState
from mediarunner.workers.clock import SCHEDULER_WORKER_ARGS  # (clock does not import the app)

ROLE_ENV = "MEDIARUNNER_WORKER_ROLE"  # read by mediarunner.workers.app (not imported here: it loads every task)


def _celery(*args: str) -> list[str]:
    return [sys.executable, "-m", "celery", "-A", "mediarunner.workers.app", *args]


def runner_name(settings: Settings, name: str | None) -> str | None:
    """``--name``, else ``MEDIARUNNER_WORKER_NAME``; a ``{n}`` in it becomes the lowest free ordinal
    (claimed in the database), so a recreated container gets its predecessor's name back."""
    template = name or settings.worker_name
    if not template or "{n}" not in template:
        return template
    now = utcnow()
    live_since = now - timedelta(seconds=settings.runner_offline_after_seconds)
    ttl = settings.worker_register_timeout_seconds + settings.runner_offline_after_seconds
    holder = f"{socket.gethostname()}:{os.getpid()}"
    return transaction(lambda s: runners.claim_name(s, template, holder, now, live_since=live_since, ttl=ttl),
                       retry_for=settings.worker_register_timeout_seconds)


def worker(queues: Annotated[str, typer.Option("--queues", "-Q")] = "cpu",
           concurrency: Annotated[int, typer.Option("--concurrency", "-c")] = 1,
           name: Annotated[str | None, typer.Option("--name", "-n", help="runner name; {n}: a stable ordinal")] = None,
           name_file: Annotated[Path | None, typer.Option(help="write the runner name here (for health checks)")]
           = None,
           loglevel: str = "INFO") -> None:
    """Run a worker (a thin wrapper over `celery worker`); settings and required secrets are checked first."""
    args = ["worker", "-Q", queues, "-c", str(concurrency), "--loglevel", loglevel, "-E"]
    node = runner_name(ui.settings(), name)
    if node:
        args += ["-n", node]
    if name_file is not None:
        name_file.write_text((node or f"celery@{socket.gethostname()}") + "\n")
    os.execv(sys.executable, _celery(*args))


def beat(loglevel: str = "INFO", schedule: Path = Path("var/celerybeat-schedule")) -> None:
    """Run the scheduler: one process, a worker for the `scheduler` queue with celery beat as its thread."""
    ui.settings()  # a bad setting or a missing required secret: one line, before Celery starts
    schedule.parent.mkdir(parents=True, exist_ok=True)
    os.execve(sys.executable, _celery("worker", *SCHEDULER_WORKER_ARGS, "-Q", "scheduler", "--loglevel", loglevel,
                                      "-n", "scheduler@%h", "--schedule", str(schedule)), _scheduler_env())


def _scheduler_env() -> dict[str, str]:
    """The scheduler worker loads only beat's tasks (``mediarunner.workers.app.modules_for``)."""
    return {**os.environ, ROLE_ENV: "scheduler"}


# ------------------------------------------------------------------------------ demo

def _make_clip(ffmpeg: str, clip: Path, seconds: float) -> None:
    ui.console.print(f"generating a {seconds:.0f} s 1280x720 test clip at {clip}")
    subprocess.run([ffmpeg, "-hide_banner", "-loglevel", "error", "-y",
                    "-f", "lavfi", "-i", f"testsrc2=size=1280x720:rate=25:duration={seconds}",
                    "-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}",
                    "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac",
                    str(clip)], check=True)


def _start_fleet(workdir: Path) -> list[subprocess.Popen[bytes]]:
    logs = workdir / "logs"
    logs.mkdir(exist_ok=True)
    procs: list[subprocess.Popen[bytes]] = []
    for name, args in (("cpu", ["worker", "-Q", "cpu", "-c", "2", "-n", "cpu@%h"]),
                       ("gpu", ["worker", "-Q", "gpu", "-c", "1", "-n", "gpu@%h"]),
                       ("beat", ["worker", *SCHEDULER_WORKER_ARGS, "-Q", "scheduler", "-n", "scheduler@%h",
                                 "--schedule", str(workdir / "beat-schedule")])):
        with (logs / f"{name}.log").open("wb") as f:
            procs.append(subprocess.Popen(_celery(*args, "--loglevel", "INFO"), stdout=f, stderr=subprocess.STDOUT,
                                          start_new_session=True, env=_scheduler_env() if name == "beat" else None))
    ui.console.print(f"started cpu and gpu workers and beat (logs in {logs})")
    return procs


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()


def _transcode_and_show(clip: Path, out: Path) -> None:
    job = ui.client().submit_transcode(str(clip), str(out), renditions=["720p", "480p", "360p"])
    ui.console.print(f"submitted transcode [bold]{job.id}[/bold]")
    job = follow(job.id, timeout=600)
    show_job(job)
    master = out / "master.m3u8"
    if master.exists():
        ui.console.print(f"\n[bold]{master}[/bold]\n{master.read_text()}")
    ok = all(j.state is JobState.COMPLETED for j in job.family)
    ui.console.print("[green]demo finished[/green]" if ok else "[red]demo failed[/red]")
    if not ok:
        raise typer.Exit(1)


def demo(workdir: Path = Path("var/demo"),
         spawn_workers: Annotated[bool, typer.Option(help="start a cpu and a gpu worker and beat")] = True,
         seconds: float = 10.0) -> None:
    """Generate a test clip, transcode it on real workers with live progress, list the outputs."""
    settings = ui.settings()
    workdir.mkdir(parents=True, exist_ok=True)
    migrate.upgrade()
    clip = workdir / "input.mp4"
    _make_clip(settings.ffmpeg_path, clip, seconds)
    out = Path(settings.output_roots[0]) / "demo"
    shutil.rmtree(out, ignore_errors=True)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        if spawn_workers:
            procs = _start_fleet(workdir)
        _transcode_and_show(clip, out)
    finally:
        _stop(procs)


# ------------------------------------------------------------------------------ Flower, metrics

def flower_command(settings: Settings, port: int, address: str, *,
                   auth: bool = True) -> tuple[list[str], dict[str, str]]:
    """argv and extra environment. Basic auth travels in the environment (FLOWER_BASIC_AUTH), never in
    argv, where `ps` and container inspection would show it."""
    argv = _celery("flower", f"--port={port}", f"--address={address}")
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
        argv, env = flower_command(ui.settings(), port, address, auth=not no_auth)
    except ValueError as exc:
        raise ui.fail(exc) from None
    os.execve(sys.executable, argv, {**os.environ, **env})


def metrics(port: Annotated[int, typer.Option(help="serve /metrics on this port")] = 9808,
            host: Annotated[str, typer.Option("--host", "--address",
                                              help="listen address (0.0.0.0: all; set basic auth)")] = "127.0.0.1",
            textfile: Annotated[Path | None, typer.Option(help="write the metrics to this file once and exit "
                                                               "(node_exporter textfile collector)")] = None) -> None:
    """Prometheus metrics for jobs and runners, read from the database on each scrape; basic auth with
    MEDIARUNNER_METRICS_BASIC_AUTH=user:password."""
    settings = ui.settings()
    registry = registry_for(settings)
    if textfile is not None:
        write_to_textfile(str(textfile), registry)
        ui.console.print(f"wrote {textfile}")
        return
    auth = settings.metrics_basic_auth
    serve(registry, host, port, auth)
    ui.console.print(f"serving Prometheus metrics on http://{host}:{port}/metrics"
                     + (" (basic auth)" if auth is not None else ""))
    threading.Event().wait()
