"""``peertube``: mediarunner's fleet as a PeerTube remote runner — ``register``, ``ls``,
``unregister``, ``serve``. Registrations (instance URL, runner token, job types, concurrency,
priority class) live in the database; runner tokens are never printed."""

from __future__ import annotations

import logging
import signal
from typing import Annotated, Any

import typer
from rich.table import Table

from mediarunner.cli import ui
from mediarunner.config.redact import install_log_redaction, secret_values
from mediarunner.connectors.peertube import SUPPORTED_JOB_TYPES, PeerTubeError, RunnerAPI
from mediarunner.connectors.peertube.protocol import TokenFilter
from mediarunner.connectors.peertube.serve import Connector, check_staging
from mediarunner.connectors.peertube.versions import ServerProfile, parse_version, runner_version
from mediarunner.errors import MediarunnerError
from mediarunner.models import peertube as records
from mediarunner.models.base import utcnow
from mediarunner.models.db import transaction

peertube_app = typer.Typer(help="Serve PeerTube instances as their remote runner.", no_args_is_help=True)


def _db() -> str:
    return ui.settings().database_url


@peertube_app.command("register")
def register(url: Annotated[str, typer.Option(help="the PeerTube instance, e.g. https://peertube.example.org")],
             registration_token: Annotated[str, typer.Option(
                 envvar="MEDIARUNNER_PEERTUBE_REGISTRATION_TOKEN",
                 help="PeerTube admin > Runners > Registration tokens (ptrrt-...)")],
             name: Annotated[str, typer.Option(help="the runner name shown on PeerTube (unique there)")],
             concurrency: Annotated[int, typer.Option(min=1, max=256, help="PeerTube jobs at once")] = 2,
             job_type: Annotated[list[str] | None, typer.Option(
                 "--job-type", help=f"accept only these (repeat); default: {', '.join(SUPPORTED_JOB_TYPES)}")] = None,
             priority_class: Annotated[str, typer.Option(help="priority class of the mediarunner jobs")] = "default",
             description: Annotated[str | None, typer.Option(help="shown on PeerTube")] = None) -> None:
    """Exchange a PeerTube registration token for a runner token and store the instance."""
    ui.writable()
    url = url.rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ui.fail("--url must be an http:// or https:// URL")
    if not records.NAME.match(name):
        raise ui.fail("--name: letters, digits, '.', '_' or '-' (up to 100), starting with a letter or digit")
    types = tuple(dict.fromkeys(job_type or SUPPORTED_JOB_TYPES))
    unknown = [t for t in types if t not in SUPPORTED_JOB_TYPES]
    if unknown:
        raise ui.fail(f"unsupported job type(s) {unknown}; supported: {', '.join(SUPPORTED_JOB_TYPES)}")
    if priority_class not in ui.settings().priority_classes:
        known = sorted(ui.settings().priority_classes)
        raise ui.fail(f"unknown priority class {priority_class!r}; configured: {known}")
    if transaction(lambda s: records.get_instance(s, name), url=_db()) is not None:
        raise ui.fail(f"an instance named {name!r} is registered already: unregister it first or pick another --name")
    api = RunnerAPI(url)
    try:
        profile = ServerProfile(parse_version(api.server_version()))
        runner_id, token = api.register(registration_token, name, description or "mediarunner fleet",
                                        version=runner_version() if profile.takes_runner_version else None)
    except PeerTubeError as exc:
        raise ui.fail(f"registration refused: {exc}") from None
    finally:
        api.close()
    transaction(lambda s: records.add_instance(s, name=name, url=url, runner_token=token, runner_id=runner_id,
                                               job_types=types, concurrency=concurrency,
                                               priority_class=priority_class, now=utcnow()), url=_db())
    ui.console.print(f"registered on {url} as runner [bold]{name}[/bold]; `mediarunner peertube serve` takes its jobs")


@peertube_app.command("ls")
def ls() -> None:
    """The registered PeerTube instances (never their runner tokens)."""
    table = Table("name", "url", "state", "job types", "concurrency", "priority class", "runner token")
    for inst in transaction(records.list_instances, url=_db()):
        state = inst.state if not inst.state_reason else f"{inst.state}: {inst.state_reason}"
        table.add_row(inst.name, inst.url, state, ", ".join(inst.job_types), str(inst.concurrency),
                      inst.priority_class, "***")
    ui.console.print(table)


@peertube_app.command("unregister")
def unregister(name: Annotated[str, typer.Argument(help="the instance's name (see `peertube ls`)")]) -> None:
    """Unregister from PeerTube (its unregister call) and forget the instance."""
    ui.writable()
    inst = transaction(lambda s: records.get_instance(s, name), url=_db())
    if inst is None:
        raise ui.fail(f"no PeerTube instance named {name!r}")
    api = RunnerAPI(inst.url, inst.runner_token)
    note = ""
    try:
        api.unregister()
    except PeerTubeError as exc:
        note = f" (PeerTube: {exc.detail}; forgotten here anyway)"
    finally:
        api.close()
    transaction(lambda s: records.remove_instance(s, name, utcnow()), url=_db())
    ui.console.print(f"unregistered runner {name} from {inst.url}{note}")


def serve() -> None:
    """Take the registered PeerTube instances' jobs until stopped (SIGTERM/SIGINT abort running ones:
    PeerTube offers them again)."""
    settings = ui.settings()
    try:
        check_staging(settings)  # before anything else: a misconfiguration is one line, exit 2
    except MediarunnerError as exc:
        raise ui.fail(str(exc)) from None
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    tokens = {i.runner_token for i in transaction(records.list_instances, url=settings.database_url)}
    install_log_redaction(secret_values(settings) | tokens)
    for handler in logging.getLogger().handlers:
        handler.addFilter(TokenFilter())  # job tokens too, whatever logs them
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per update
    connector = Connector(settings, ui.client())

    def stop(signum: int, _frame: Any) -> None:
        connector.shutdown(f"mediarunner connector stopped ({signal.Signals(signum).name})")

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    connector.serve()
    ui.console.print("PeerTube connector stopped")


peertube_app.command("serve")(serve)
