"""The admin's actions (POST, admin scope, CSRF-checked, refused in demo mode), each one call of
``Client``, ``FleetService`` or ``ApiKeys``. Destructive ones (revoke, bulk restart) first answer
with a confirmation page whose form repeats the request with ``confirm=yes``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, HTTPException, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from mediarunner.api.jobs import checked_id
from mediarunner.models.enums import RESTARTABLE_STATES, JobState
from mediarunner.storage.probe import probe_location
from mediarunner.web import session, views
from mediarunner.web.pages import Text, _enum, storage_hints
from mediarunner.web.render import render
from mediarunner.web.session import PATH, Viewer

router = APIRouter(prefix=PATH, include_in_schema=False)
Who = Annotated[Viewer, Depends(session.viewer)]
Csrf = Annotated[str, Form(max_length=100)]
Confirm = Annotated[str, Form(max_length=3)]
BULK_MAX = 500  # jobs one bulk restart touches at most


def admin(request: Request, who: Viewer, csrf: str) -> Viewer:
    return session.acting(request, who, csrf)


def done(request: Request, who: Viewer, title: str, lines: list[str], back: str, **extra: Any) -> HTMLResponse:
    return render(request, "done.html", {"who": who, "title": title, "lines": lines, "back": back, **extra})


def confirm(request: Request, who: Viewer, question: str, fields: dict[str, str], back: str) -> HTMLResponse:
    return render(request, "confirm.html", {"who": who, "question": question, "action": request.url.path,
                                            "fields": fields, "back": back})


# ------------------------------------------------------------------------------ jobs

@router.post("/jobs/{job_id}/cancel")
def cancel(request: Request, who: Who, job_id: str, csrf: Csrf = "") -> Response:
    admin(request, who, csrf)
    views.client(request).cancel(checked_id(job_id))
    return RedirectResponse(f"{PATH}/jobs/{job_id}", status_code=303)


@router.post("/jobs/{job_id}/restart")
def restart(request: Request, who: Who, job_id: str, csrf: Csrf = "") -> Response:
    admin(request, who, csrf)
    views.client(request).restart(checked_id(job_id))
    return RedirectResponse(f"{PATH}/jobs/{job_id}", status_code=303)


@router.post("/jobs/restart")
def bulk_restart(request: Request, who: Who, csrf: Csrf = "", confirm_: Annotated[str, Form(alias="confirm")] = "",
                 state: Annotated[Text, Form()] = None, type: Annotated[Text, Form()] = None,
                 priority_class: Annotated[Text, Form()] = None, queue: Annotated[Text, Form()] = None,
                 age: Annotated[Text, Form()] = None) -> Response:
    """Restart every failed, timed-out or cancelled root job the filter matches (at most BULK_MAX)."""
    admin(request, who, csrf)
    st = _enum(JobState, state)
    if st is not None and st not in RESTARTABLE_STATES:
        raise HTTPException(422, f"{st.value} jobs cannot be restarted (only failed, timeout or cancelled)")
    filters = [views.JobFilter(s, _enum(views.JobType, type), priority_class or None, queue or None, age or None)
               for s in ([st] if st else sorted(RESTARTABLE_STATES))]
    matched = [j for f in filters for j in f.page(request, limit=BULK_MAX)[0] if j.parent_id is None]
    if confirm_ != "yes":
        fields = {k: v for k, v in filters[0].query().items() if k != "state"} | ({"state": st.value} if st else {})
        return confirm(request, who, f"Restart {len(matched)} job(s) matching this filter?", fields,
                       f"{PATH}/jobs")
    restarted = []
    for j in matched[:BULK_MAX]:
        views.client(request).restart(j.id)
        restarted.append(j.id)
    return done(request, who, "Bulk restart", [f"restarted {len(restarted)} job(s)", *restarted], f"{PATH}/jobs")


# ------------------------------------------------------------------------------ runners

def _steer_lines(result: Any) -> list[str]:
    return [f"{result.hostname}: {'changed' if result.changed else 'unchanged (already so)'}",
            "the worker acknowledged" if result.acknowledged else
            "no answer from the worker yet: it applies the stored setting at its next heartbeat"]


@router.post("/runners/{name}/status")
def runner_status(request: Request, who: Who, name: str, csrf: Csrf = "",
                  status: Annotated[str, Form(pattern=r"^(enabled|disabled|maintenance)$")] = "") -> Response:
    admin(request, who, csrf)
    fleet = views.fleet(request)
    call = {"enabled": fleet.enable, "disabled": fleet.disable, "maintenance": fleet.maintenance}[status]
    return done(request, who, f"Runner set to {status}", _steer_lines(call(name[:200])), f"{PATH}/runners")


@router.post("/runners/{name}/concurrency")
def runner_concurrency(request: Request, who: Who, name: str, csrf: Csrf = "",
                       concurrency: Annotated[int, Form(ge=1, le=256)] = 1) -> Response:
    admin(request, who, csrf)
    result = views.fleet(request).set_concurrency(name[:200], concurrency)
    return done(request, who, f"Concurrency set to {concurrency}", _steer_lines(result), f"{PATH}/runners")


@router.post("/runners/{name}/priority")
def runner_priority(request: Request, who: Who, name: str, csrf: Csrf = "",
                    priority: Annotated[int, Form(ge=-1000, le=1000)] = 0) -> Response:
    admin(request, who, csrf)
    result = views.fleet(request).set_priority(name[:200], priority)
    return done(request, who, f"Priority set to {priority}", _steer_lines(result), f"{PATH}/runners")


@router.post("/runners/{name}/ping")
def runner_ping(request: Request, who: Who, name: str, csrf: Csrf = "") -> Response:
    admin(request, who, csrf)
    lines = [f"{p.hostname}: " + (f"answered in {p.latency_ms:.0f} ms" if p.ok and p.latency_ms is not None
                                  else "answered" if p.ok else "no answer")
             for p in views.fleet(request).ping([name[:200]])]
    return done(request, who, "Test connection", lines, f"{PATH}/runners")


@router.post("/runners/{name}/remove")
def runner_remove(request: Request, who: Who, name: str, csrf: Csrf = "", confirm_: Annotated[
        str, Form(alias="confirm")] = "") -> Response:
    admin(request, who, csrf)
    if confirm_ != "yes":
        return confirm(request, who, f"Remove runner {name[:200]}? It is unregistered, its running jobs go back "
                       "to pending (nothing counted) and a live worker stops consuming until it "
                       "registers again.", {}, f"{PATH}/runners")
    fleet = views.fleet(request)
    queues = fleet.get_runner(name[:200]).queues
    _, released = fleet.unregister_runner(name[:200])
    return done(request, who, "Runner removed", [f"stopped consuming: {', '.join(queues) or 'no queues'}",
                                                 f"{len(released)} running job(s) back to pending"],
                f"{PATH}/runners")


# ------------------------------------------------------------------------------ tokens and keys

@router.post("/tokens/create")
def token_create(request: Request, who: Who, csrf: Csrf = "",
                 name: Annotated[str, Form(min_length=1, max_length=100)] = "") -> Response:
    admin(request, who, csrf)
    token = views.fleet(request).create_token(name)
    return done(request, who, "Registration token created",
                [f"token {token.id} ({token.name}): give the secret below to the workers as "
                 "MEDIARUNNER_WORKER_TOKEN; it is shown only this once"], f"{PATH}/tokens", secret=token.secret)


@router.post("/tokens/{token_id}/revoke")
def token_revoke(request: Request, who: Who, token_id: str, csrf: Csrf = "", confirm_: Annotated[
        str, Form(alias="confirm")] = "") -> Response:
    admin(request, who, csrf)
    if confirm_ != "yes":
        return confirm(request, who, f"Revoke registration token {token_id[:40]}? Its runners are unregistered "
                       "and their running jobs fail over.", {}, f"{PATH}/tokens")
    queues = views.fleet(request).revoke_token(token_id[:40])
    return done(request, who, "Token revoked", [f"stopped consuming: {', '.join(queues) or 'no queues'}"],
                f"{PATH}/tokens")


@router.post("/keys/create")
def key_create(request: Request, who: Who, csrf: Csrf = "",
               name: Annotated[str, Form(min_length=1, max_length=100)] = "",
               scope: Annotated[list[str] | None, Form()] = None) -> Response:
    admin(request, who, csrf)
    info, key = session.keys(request).create(name, scope or [])
    return done(request, who, "API key created", [f"key {info.name} ({', '.join(info.scopes)}): shown only "
                                                  "this once; send it as Authorization: Bearer KEY"],
                f"{PATH}/tokens", secret=key)


@router.post("/keys/{name}/revoke")
def key_revoke(request: Request, who: Who, name: str, csrf: Csrf = "", confirm_: Annotated[
        str, Form(alias="confirm")] = "") -> Response:
    admin(request, who, csrf)
    if confirm_ != "yes":
        return confirm(request, who, f"Revoke API key {name[:100]}? Its sessions end at once.", {},
                       f"{PATH}/tokens")
    if not session.keys(request).revoke(name[:100]):
        raise HTTPException(404, f"no active API key {name[:100]!r}")
    return done(request, who, "API key revoked", [name[:100]], f"{PATH}/tokens")


# ------------------------------------------------------------------------------ storage

@router.post("/storage/test")
def storage_test(request: Request, who: Who, csrf: Csrf = "",
                 location: Annotated[str, Form(min_length=1, max_length=500)] = "") -> Response:
    """List, write, read back and delete a probe object at ``location`` (it writes: admin only)."""
    admin(request, who, csrf)
    steps = probe_location(location.strip(), request.app.state.settings)
    return render(request, "storage.html", {"who": who, "results": steps, "tested": location.strip(),
                                            "ok": all(s.ok for s in steps), **storage_hints(request)})
