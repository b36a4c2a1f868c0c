"""The HTTP side of a remote runner: one method per call of ``/v1/runner/`` (httpx).

Errors: 401 -> :class:`CutOff` (stop: unregistered or the registration token was revoked);
409 on a job call -> ``StaleAttemptError`` (drop the work); 4xx -> ``PermanentError``; network
errors and 5xx -> ``TransientError`` after a few quick retries. ``429`` (the server's rate limit for
this runner token): the call waits ``Retry-After`` and goes again.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

from mediarunner.errors import MediarunnerError, PermanentError, StaleAttemptError, TransientError

JOB_TOKEN = "Mediarunner-Job-Token"


class CutOff(MediarunnerError):
    """The server no longer knows this runner: it must stop."""


def _detail(r: httpx.Response) -> str:
    try:
        return str(r.json().get("detail") or r.text)[:500]
    except ValueError:
        return r.text[:500]


def check(r: httpx.Response) -> httpx.Response:
    if r.status_code < 300:
        return r
    detail = _detail(r)
    if r.status_code == 401:
        raise CutOff(detail)
    if r.status_code == 409:
        raise StaleAttemptError(detail)
    if r.status_code >= 500 or r.status_code == 429:
        raise TransientError(f"HTTP {r.status_code}: {detail}")
    raise PermanentError(f"HTTP {r.status_code}: {detail}")


SLOW_DOWN_TRIES = 20  # 429 answers waited out (Retry-After) before the call fails as transient


def retry_after(r: httpx.Response) -> float:
    """The seconds a 429 asks to wait (``Retry-After``, at most 30; 1 when absent or odd)."""
    try:
        return min(30.0, max(0.0, float(r.headers.get("retry-after", "1"))))
    except ValueError:
        return 1.0


_retrying = retry(retry=retry_if_exception_type((httpx.TransportError, TransientError)), reraise=True,
                  stop=stop_after_attempt(4), wait=wait_exponential(multiplier=0.2, max=3))


class RunnerApi:
    def __init__(self, url: str, runner_token: str | None = None, *, timeout: float = 60.0) -> None:
        headers = {"Authorization": f"Bearer {runner_token}"} if runner_token else {}
        self.http = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    @_retrying
    def call(self, method: str, path: str, *, job_token: str | None = None, **kw: Any) -> Any:
        headers = {JOB_TOKEN: job_token} if job_token else {}
        for _ in range(SLOW_DOWN_TRIES):
            try:
                r = self.http.request(method, f"/v1/runner{path}", headers=headers, **kw)
            except httpx.TransportError as exc:
                raise TransientError(f"cannot reach the API: {type(exc).__name__}: {exc}") from exc
            if r.status_code != 429:
                break
            time.sleep(retry_after(r))  # the server's rate limit for this runner token: slow down
        return check(r).json()

    def register(self, registration_token: str, name: str) -> dict[str, Any]:
        return self.call("POST", "/register", json={"registration_token": registration_token, "name": name})

    def unregister(self) -> dict[str, Any]:
        return self.call("POST", "/unregister")

    def me(self) -> dict[str, Any]:
        return self.call("GET", "/me")

    def request_jobs(self, job_types: list[str], timeout: float, *, capabilities: dict[str, Any] | None = None,
                     concurrency: int | None = None) -> list[dict[str, Any]]:
        """Offers (a long poll); ``capabilities`` and ``concurrency``, when given, are advertised first."""
        body: dict[str, Any] = {"job_types": job_types, "timeout": timeout}
        if capabilities is not None:
            body["capabilities"] = capabilities
        if concurrency is not None:
            body["concurrency"] = concurrency
        return self.call("POST", "/jobs/request", json=body, timeout=timeout + 30)["jobs"]

    def accept(self, job_id: str, attempt: int) -> dict[str, Any]:
        return self.call("POST", f"/jobs/{job_id}/accept", json={"attempt": attempt})

    def job(self, method: str, job_id: str, action: str, job_token: str, **kw: Any) -> Any:
        return self.call(method, f"/jobs/{job_id}/{action}", job_token=job_token, **kw)
