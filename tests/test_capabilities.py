"""Capability-aware routing: a job that needs a Whisper model (a GPU, an encoder) is claimed only
by a worker that has it; while no online worker has it, it waits with a reason; a capable
worker arriving runs it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mediarunner.config import Settings
from mediarunner.models import runners
from mediarunner.models import transitions as t
from mediarunner.models.capabilities import Needs, Skills, waiting_reason
from mediarunner.models.db import transaction
from mediarunner.models.enums import JobState, JobType
from mediarunner.models.ordering import RankOrder
from mediarunner.models.queries import get_job, recent_events
from mediarunner.models.transitions import NewJob
from mediarunner.scheduler import placement
from tests import rows
from tests.support import Stack, wait_for

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
LARGE = Needs(model="large-v3")


def test_skills_say_what_is_missing() -> None:
    tiny = Skills(models=("tiny.en",), encoders=("libx264",))
    assert tiny.missing(LARGE) == "whisper model large-v3"
    assert tiny.missing(Needs(gpu=True)) == "a GPU" and tiny.missing(Needs(encoder="h264_nvenc")) == \
        "encoder h264_nvenc"
    assert Skills(gpu=True, models=("large-v3",)).missing(Needs(gpu=True, model="large-v3")) is None
    assert Skills.from_tokens(Skills(gpu=True, models=("a", "b"), encoders=("x",)).tokens()) == \
        Skills(gpu=True, models=("a", "b"), encoders=("x",))
    caps = {"gpus": [{"index": 0}], "ffmpeg": {"encoders": ["libx264"]}, "whisper": {"models": ["large-v3"]}}
    assert Skills.from_capabilities(caps) == Skills(gpu=True, models=("large-v3",), encoders=("libx264",))
    assert waiting_reason(LARGE, [tiny]) == "waiting: no online worker has whisper model large-v3"
    assert waiting_reason(LARGE, []) == "waiting: no online worker has whisper model large-v3"
    assert waiting_reason(LARGE, [tiny, Skills(models=("large-v3",))]) is None
    assert waiting_reason(Needs(), []) is None  # no needs: any worker will do


def test_a_worker_never_claims_what_it_cannot_run_and_the_reason_shows(db_url: str) -> None:
    order = RankOrder.from_settings(Settings())
    needy, plain = NewJob(JobType.NOOP, "cpu", {}, need_model="large-v3"), NewJob(JobType.NOOP, "cpu", {})
    transaction(lambda s: rows.create_jobs(s, [needy], T0), url=db_url)
    transaction(lambda s: rows.create_jobs(s, [plain], T0 + timedelta(seconds=1)), url=db_url)
    tiny = Skills(models=("tiny.en",))
    got = transaction(lambda s: t.claim_next(s, "cpu", "tiny@h", None, T0, order=order, skills=tiny), url=db_url)
    assert got is not None and got[0].id == plain.id  # the better-ranked job is not its to run
    assert transaction(lambda s: t.claim_next(s, "cpu", "tiny@h", None, T0, order=order, skills=tiny),
                       url=db_url) is None
    settings = Settings(runner_offline_after_seconds=30)
    register = runners.RunnerInfo("tiny@h", ("cpu",), 1, capabilities={"whisper": {"models": ["tiny.en"]}})
    transaction(lambda s: runners.register(s, register, None, T0), url=db_url)
    assert transaction(lambda s: placement.explain_waiting(s, T0, settings), url=db_url) == {
        needy.id: "waiting: no online worker has whisper model large-v3"}
    assert transaction(lambda s: get_job(s, needy.id), url=db_url).waiting_reason.startswith("waiting: no online")
    big = runners.RunnerInfo("big@h", ("cpu",), 1, capabilities={"whisper": {"models": ["large-v3"]}})
    transaction(lambda s: runners.register(s, big, None, T0), url=db_url)
    assert transaction(lambda s: placement.explain_waiting(s, T0, settings), url=db_url) == {needy.id: None}
    large = Skills(models=("large-v3",))
    got = transaction(lambda s: t.claim_next(s, "cpu", "big@h", None, T0, order=order, skills=large), url=db_url)
    assert got is not None and got[0].id == needy.id and got[1]  # reason cleared: its message is owed


def _model_dir(root: Path, name: str) -> Path:
    d = root / name
    d.mkdir(parents=True)
    (d / "model.bin").write_bytes(b"\0")
    (d / "config.json").write_text("{}")
    return root


def test_only_a_worker_with_the_model_runs_the_job(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    fast = {"MEDIARUNNER_RUNNER_HEARTBEAT_SECONDS": "0.5", "MEDIARUNNER_BEAT_INTERVAL_SECONDS": "0.5",
            "MEDIARUNNER_RUNNER_DECLINE_RETRY_SECONDS": "0.1"}
    plain = stack.inproc_worker("plain", extra_env=fast)
    stack.worker("sched", queues="scheduler", beat=True, extra_env=fast)
    client = stack.client()
    needy = client.submit_noop(needs={"model": "large-v3"})
    other = client.submit_noop()
    assert client.wait(other.id, timeout=30).worker == plain.hostname  # the plain worker is alive and busy
    waiting = wait_for(lambda: (j := client.get(needy.id)).waiting_reason and j, 30, what="the waiting reason")
    assert waiting.state is JobState.PENDING
    assert waiting.waiting_reason == "waiting: no online worker has whisper model large-v3"
    models = _model_dir(stack.tmp / "models", "large-v3")
    capable = stack.worker("capable", extra_env={**fast, "MEDIARUNNER_WHISPER_MODEL_DIR": str(models)})
    done = client.wait(needy.id, timeout=60)
    assert done.state is JobState.COMPLETED and done.worker == capable.hostname
    assigned = transaction(lambda s: recent_events(s, job_id=needy.id, kind="job_assigned"))
    assert [e.runner for e in assigned] == [capable.hostname]  # never claimed by the plain worker
