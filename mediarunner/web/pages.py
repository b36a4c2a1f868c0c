"""The admin's pages (GET) and the login/logout forms."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request, Response
from fastapi.responses import HTMLResponse

from mediarunner.models.enums import JobState, JobType
from mediarunner.web import session, views
from mediarunner.web.render import render
from mediarunner.web.session import PATH, Viewer

router = APIRouter(prefix=PATH, include_in_schema=False)
Who = Annotated[Viewer, Depends(session.viewer)]
Text = Annotated[str | None, Query(max_length=64, pattern=r"^[A-Za-z0-9_.@-]*$")]
E = TypeVar("E", bound=Enum)


def _enum(kind: type[E], value: str | None) -> E | None:
    if not value:
        return None
    try:
        return kind(value)
    except ValueError:
        raise HTTPException(422, f"unknown {kind.__name__}: {value[:40]!r}") from None


def page(request: Request, who: Viewer, name: str, **context: Any) -> HTMLResponse:
    return render(request, name, {"who": who, **context})


@router.get("/login")
def login_form(request: Request, next: Annotated[str | None, Query(max_length=300)] = None,
               error: str | None = None) -> Response:
    token = session.login_csrf(request)
    response = render(request, "login.html", {"who": None, "csrf": token, "next": session.safe_next(next),
                                              "error": error}, status=401 if error else 200)
    session.set_login_csrf(request, response, token)
    return response


@router.post("/login")
def login(request: Request, api_key: Annotated[str, Form(max_length=200)] = "",
          csrf: Annotated[str, Form(max_length=100)] = "", next: Annotated[str, Form(max_length=300)] = "") -> Response:
    expected = request.cookies.get(session.LOGIN_CSRF_COOKIE, "")
    if not expected or not session.hmac.compare_digest(expected.encode(), csrf.encode()):
        return login_form(request, next, error="The form expired: please try again.")
    if not api_key.strip() or session.keys(request).verify(api_key.strip()) is None:
        return login_form(request, next, error="Unknown or revoked API key.")
    return session.log_in(request, api_key.strip(), session.safe_next(next))


@router.post("/logout")
def logout(request: Request, who: Who, csrf: Annotated[str, Form(max_length=100)] = "") -> Response:
    session.check_csrf(request, who, csrf)
    return session.log_out()


@router.get("/")
def dashboard(request: Request, who: Who) -> HTMLResponse:
    return page(request, who, "dashboard.html", **views.dashboard(request))


@router.get("/runners")
def runners(request: Request, who: Who) -> HTMLResponse:
    return page(request, who, "runners.html", **views.runners(request))


@router.get("/runners/{name}")
def runner(request: Request, who: Who, name: str) -> HTMLResponse:
    detail = views.fleet(request).runner_detail(name[:200], events=20)
    return page(request, who, "runner.html", x=detail, r=detail.runner, now=views.utcnow())


@router.get("/jobs")
def jobs(request: Request, who: Who, state: Text = None, type: Text = None, priority_class: Text = None,
         queue: Text = None, age: Text = None, cursor: Annotated[str | None, Query(max_length=300)] = None,
         ) -> HTMLResponse:
    f = views.JobFilter(_enum(JobState, state), _enum(JobType, type), priority_class or None, queue or None,
                        age or None)
    items, next_cursor = f.page(request, cursor=cursor)
    return page(request, who, "jobs.html", jobs=items, next_cursor=next_cursor, f=f, states=list(JobState),
                types=list(JobType), ages=list(views.AGES), now=views.utcnow())


@router.get("/jobs/{job_id}")
def job(request: Request, who: Who, job_id: str) -> HTMLResponse:
    return page(request, who, "job.html", **views.job(request, job_id))


@router.get("/activity")
def activity(request: Request, who: Who) -> HTMLResponse:
    return page(request, who, "activity.html", **views.activity(request))


@router.get("/tokens")
def tokens(request: Request, who: Who) -> HTMLResponse:
    return page(request, who, "tokens.html", tokens=views.fleet(request).list_tokens(),
                keys=session.keys(request).list(), now=views.utcnow())


def storage_hints(request: Request) -> dict[str, Any]:
    """The configured locations and the hosts credentials exist for (no credential shown)."""
    st = request.app.state.settings
    return {"locations": st.admin_storage_locations,
            "hosts": [*(f"sftp://{h}/" for h in st.sftp_credentials), *(f"ftp://{h}/" for h in st.ftp_credentials)],
            "s3_endpoint": st.s3_endpoint_url or ("AWS" if st.s3_access_key_id else None)}


@router.get("/storage")
def storage(request: Request, who: Who) -> HTMLResponse:
    return page(request, who, "storage.html", results=None, tested=None, **storage_hints(request))
