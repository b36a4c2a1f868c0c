"""``video_codecs`` through the HTTP API and the CLI (``--video-codec``): one ladder per codec,
an unknown codec refused as a problem (API) or one error line (CLI), nothing written."""

from __future__ import annotations

from typer.testing import CliRunner

from tests.api.conftest import Api


def test_video_codecs_through_api_and_cli(api: Api) -> None:
    from mediarunner.cli import app

    r = api.http.post("/v1/jobs/transcode", headers=api.h(), json={
        "input": api.input, "output": api.outputs + "/c", "renditions": ["360p", "240p"],
        "video_codecs": ["h264", "av1"]})
    assert r.status_code == 201, r.text
    kids = sorted(c["payload"]["rendition"] for c in r.json()["children"])
    assert kids == ["240p", "240p_av1", "360p_av1"]
    before = len(api.http.get("/v1/jobs?limit=500", headers=api.h()).json()["items"])
    bad = api.http.post("/v1/jobs/transcode", headers=api.h(), json={
        "input": api.input, "output": api.outputs + "/bad", "video_codecs": ["h266"]})
    assert bad.status_code in (400, 422) and bad.headers["content-type"].startswith("application/problem+json")
    assert "h266" in bad.text or "video_codecs" in bad.text

    run = CliRunner().invoke
    ok = run(app, ["submit", "transcode", api.input, api.outputs + "/cli", "-r", "240p", "--video-codec", "vp9",
                   "--video-codec", "hevc"])
    assert ok.exit_code == 0 and "(1 child job(s))" in ok.output, ok.output
    refused = run(app, ["submit", "transcode", api.input, api.outputs + "/cli2", "--video-codec", "mpeg2"])
    assert refused.exit_code == 2 and "video_codecs" in refused.output, refused.output
    assert len(api.http.get("/v1/jobs?limit=500", headers=api.h()).json()["items"]) == before + 2
