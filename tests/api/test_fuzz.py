"""Property-based fuzz of every route in the OpenAPI document (schemathesis strategies, in process
against the ASGI app, with a key holding every scope): valid and invalid inputs alike never get a
5xx, and every error is a problem document. Bounded: a few examples per operation and mode keep
the run well under a minute."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from tests.api.conftest import Api

EXAMPLES = 25  # per operation and generation mode


def _check(api: Api, case: Any) -> None:
    if case.path.endswith("/stream"):  # a stream of a live job never ends: aim at an unknown one
        case.path_parameters = {**(case.path_parameters or {}), "job_id": "unknown"}
    # Admin changes aim at no one: the PostgreSQL database is the session's, with other tests' runners
    # (a runner name matches by prefix) and keys; creating tokens and keys with fuzzed bodies is harmless.
    if case.method != "GET" and "{name}" in case.path:
        case.path_parameters = {**(case.path_parameters or {}), "name": "fuzz-nobody"}
    response = case.call(headers=api.h("admin"))
    where = (case.method, case.formatted_path, case.query, str(case.body)[:300])
    assert response.status_code < 500, (where, response.text[:500])
    if response.status_code >= 400:
        ctype = response.headers.get("content-type")
        ctype = ctype[0] if isinstance(ctype, list) else ctype  # schemathesis keeps every value
        assert ctype == "application/problem+json", (where, response.text[:300])
    # Without a valid key: refused (a body FastAPI cannot parse is refused before the key is looked at).
    if case.path != "/healthz":
        assert 400 <= case.call(headers={"Authorization": "Bearer mrk_wrong"}).status_code < 500, where


# The fuzz is about the HTTP layer: it runs on PostgreSQL, the production database (the
# database matrix is for the end-to-end, ordering and fault tests).
@pytest.mark.parametrize("backend", ["pg_api"])
def test_no_input_gives_a_server_error(backend: str, request: pytest.FixtureRequest) -> None:
    api: Api = request.getfixturevalue(backend)
    schema = schemathesis.openapi.from_asgi("/openapi.json", api.http.app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 14
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                      suppress_health_check=list(HealthCheck))
            def run(case: Any) -> None:
                _check(api, case)

            try:
                run()
            except Unsatisfiable:  # nothing to make invalid (e.g. /healthz has no parameters)
                assert mode is GenerationMode.NEGATIVE, operation.label
