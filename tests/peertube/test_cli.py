"""``mediarunner peertube register | ls | unregister`` against the fake PeerTube."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from mediarunner import __version__
from mediarunner.cli import app
from mediarunner.models import peertube as records
from mediarunner.models.db import transaction
from tests.peertube.conftest import VERSIONS
from tests.peertube.fake import FakePeerTube
from tests.support import Stack

runner = CliRunner()


@pytest.mark.parametrize("peertube", VERSIONS, indirect=True)
def test_register_ls_unregister(stack: Stack, peertube: FakePeerTube) -> None:
    url = stack.settings().database_url
    bad = runner.invoke(app, ["peertube", "register", "--url", peertube.url, "--registration-token", "ptrrt-nope",
                              "--name", "fleet"])
    assert bad.exit_code == 2 and bad.output.strip().count("\n") == 0, bad.output
    assert "Registration token is invalid" in bad.output
    res = runner.invoke(app, ["peertube", "register", "--url", peertube.url + "/", "--registration-token",
                              peertube.registration_token, "--name", "fleet", "--concurrency", "3",
                              "--job-type", "vod-hls-transcoding", "--priority-class", "staff"])
    assert res.exit_code == 0, res.output
    inst = transaction(lambda s: records.get_instance(s, "fleet"), url=url)
    assert inst is not None and inst.url == peertube.url and inst.concurrency == 3
    assert inst.job_types == ("vod-hls-transcoding",) and inst.priority_class == "staff"
    assert inst.runner_token in peertube.runners and inst.runner_token not in repr(inst)
    assert peertube.register_bodies[-1]["name"] == "fleet"
    # the runner's version goes to the servers that take it (8.0+), as PeerTube's validator wants it
    assert (peertube.register_bodies[-1].get("version") == __version__) is (peertube.version != "6.3.3")

    again = runner.invoke(app, ["peertube", "register", "--url", peertube.url, "--registration-token",
                                peertube.registration_token, "--name", "fleet"])
    assert again.exit_code == 2 and "registered already" in again.output
    unsupported = runner.invoke(app, ["peertube", "register", "--url", peertube.url, "--registration-token",
                                      peertube.registration_token, "--name", "other", "--job-type",
                                      "vod-unknown-transcoding"])
    assert unsupported.exit_code == 2 and "unsupported job type" in unsupported.output

    ls = runner.invoke(app, ["peertube", "ls"], terminal_width=250)
    assert ls.exit_code == 0 and "fleet" in ls.output and "active" in ls.output and "***" in ls.output
    assert inst.runner_token not in ls.output

    out = runner.invoke(app, ["peertube", "unregister", "fleet"])
    assert out.exit_code == 0, out.output
    assert peertube.runners == {}  # PeerTube's unregister was called
    assert transaction(lambda s: records.get_instance(s, "fleet"), url=url) is None
    missing = runner.invoke(app, ["peertube", "unregister", "fleet"])
    assert missing.exit_code == 2 and "no PeerTube instance named" in missing.output


def test_peertube_tokens_are_masked_in_log_records() -> None:
    import logging

    from mediarunner.connectors.peertube.protocol import TokenFilter

    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "row %s", ("('ptrjt-a114fe3d-2ae8', 'ptrt-9f')",), None)
    assert TokenFilter().filter(record) and record.getMessage() == "row ('***', '***')"


def test_serve_refuses_a_staging_dir_workers_cannot_read(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    from mediarunner.config import get_settings

    monkeypatch.setenv("MEDIARUNNER_PEERTUBE_STAGING_DIR", "/var/tmp/not-a-root")
    get_settings.cache_clear()
    try:
        res = runner.invoke(app, ["peertube", "serve"])
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
    assert res.exit_code == 2 and "must lie inside one of INPUT_ROOTS" in res.output, res.output
