"""The Jinja2 environment (autoescaped; package templates) and its filters, demo-mode masking included."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, select_autoescape

from mediarunner.config.redact import MASK, mask_urls_in
from mediarunner.models.base import utcnow
from mediarunner.web import charts

env = Environment(loader=PackageLoader("mediarunner.web", "templates"), autoescape=select_autoescape(),
                  trim_blocks=True, lstrip_blocks=True)


def ago(when: datetime | None, now: datetime | None = None) -> str:
    """``just now`` (under a minute: live regions then change only when something happened),
    ``5m ago``, ``3h ago``, ``2d ago``; ``never`` for None."""
    if when is None:
        return "never"
    seconds = max(0, int(((now or utcnow()) - when).total_seconds()))
    if seconds < 60:
        return "just now"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return "just now"


def host(name: str | None, demo: bool) -> str:
    """A runner's ``worker@host``; in demo mode the host part is masked."""
    if not name:
        return "—"
    if demo and "@" in name:
        return f"{name.split('@', 1)[0]}@{MASK}"
    return name


def runner_ref(name: str, demo: bool) -> str:
    """How links name a runner: in demo mode its name part (``cpu1``), which the fleet service
    resolves when unique, so no hostname reaches the page."""
    return name.split("@", 1)[0] if demo else name


def text(value: Any, demo: bool = False) -> str:
    """Free text (messages, errors, paths): URLs' credentials and secret parameters always masked;
    in demo mode every URL's host too."""
    masked = mask_urls_in(str(value)) if value is not None else ""
    if demo:
        masked = re.sub(r"(\b[a-z][a-z0-9+.\-]*://)[^/\s'\"<>]+", rf"\1{MASK}", masked, flags=re.IGNORECASE)
        masked = re.sub(r"\b([\w.-]+)@[\w.-]+", rf"\1@{MASK}", masked)  # worker@host
    return masked


env.filters.update(ago=ago, host=host, masked=text, ref=runner_ref)
env.globals.update(sparkline=charts.sparkline, bars=charts.bars)


def render_fragment(name: str, context: dict[str, Any]) -> str:
    return env.get_template(name).render(**context)


def render(request: Request, name: str, context: dict[str, Any], status: int = 200) -> HTMLResponse:
    settings = request.app.state.settings
    ctx = {"request": request, "demo": settings.demo_mode, "path": request.url.path, **context}
    return HTMLResponse(render_fragment(name, ctx), status_code=status)
