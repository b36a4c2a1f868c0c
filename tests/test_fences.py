"""A superseded attempt never publishes or deletes (issue 13, item 9): strict fences in
``tasks.io``, part cleanup by the attempt that completed the rendition, beat's sweep of parts
that cancelled or failed families left behind."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mediarunner.errors import JobCancelled, StaleAttemptError
from mediarunner.models import transitions as t
from mediarunner.models.base import utcnow
from mediarunner.models.db import transaction
from mediarunner.models.enums import JobState, JobType
from mediarunner.models.queries import get_job
from mediarunner.models.transitions import NewJob
from mediarunner.scheduler import ticks
from mediarunner.tasks import io, runtime, transcode
from mediarunner.tasks.context import JobContext
from tests import rows as fixtures
from tests.support import RedisServer, Stack, make_clip, make_stack
from tests.test_scheduler_ticks import settings, tx

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


@pytest.fixture
def local(tmp_path: Path, sqlite_url: str) -> Iterator[Stack]:
    with make_stack(tmp_path, sqlite_url, "redis://127.0.0.1:9/0", MEDIARUNNER_HEARTBEAT_SECONDS="30",
                    MEDIARUNNER_CANCEL_POLL_SECONDS="30") as st:
        yield st


def running_ctx(st: Stack) -> JobContext:
    """A claimed noop job's context, as inside ``heartbeating`` (the thread has found nothing yet)."""
    job_id, = transaction(lambda s: fixtures.create_jobs(s, [NewJob(JobType.NOOP, "cpu", {})], utcnow()))
    transaction(lambda s: fixtures.claim(s, job_id, 1, "w", None, utcnow()))
    job = transaction(lambda s: get_job(s, job_id))
    ctx = JobContext(job=job, parent=None, settings=st.settings(), worker="w", scratch_path=st.tmp / "scratch" / "x")
    ctx._pulsing = True
    return ctx


@pytest.mark.parametrize("how", ["superseded", "cancelled"])
def test_no_publish_or_remove_after_the_attempt_ended(local: Stack, how: str) -> None:
    ctx = running_ctx(local)
    out = local.tmp / "outputs" / "o"
    io.publish_text(ctx, "kept", str(out), "keep.txt")  # still ours: allowed
    if how == "superseded":
        transaction(lambda s: t.requeue(s, ctx.job.id, 1, "worker lost", None, utcnow(), event="job_failed_over"))
    else:
        transaction(lambda s: t.cancel(s, ctx.job.id, utcnow()))
    error = StaleAttemptError if how == "superseded" else JobCancelled
    src = ctx.scratch / "a.txt"
    src.write_text("late")
    with pytest.raises(error):
        io.publish_output(ctx, src, str(out), "a.txt")
    with pytest.raises(error):
        io.publish_text(ctx, "late", str(out), "master.m3u8")
    with pytest.raises(error):
        io.remove_output(ctx, str(out), "keep.txt")
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    assert ctx.should_cancel()


def test_a_superseded_joiner_leaves_the_parts_to_the_live_attempt(
        tmp_path: Path, pg_url: str, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """The last part joins the parts; beat fails it over mid-join while it keeps running: it must
    neither publish nor delete ``.parts/``, and the new attempt joins them and then removes them."""
    src = make_clip(tmp_path / "in.mp4", seconds=4.0, size="426x240")
    env = dict(MEDIARUNNER_TRANSCODE_PART_MIN_SECONDS="1", MEDIARUNNER_HLS_SEGMENT_SECONDS="1",
               MEDIARUNNER_HEARTBEAT_SECONDS="30", MEDIARUNNER_CANCEL_POLL_SECONDS="30")
    with make_stack(tmp_path, pg_url, redis_server.url, **env) as st:
        client, s = st.client(), st.settings()
        out = st.tmp / "outputs" / "split"
        root = client.submit_transcode(str(src), str(out), renditions=["240p"], parts=2)
        run = dict(worker="w", task_id=None, settings=s)
        assert runtime.execute(transcode.run_transcode, root.id, 1, **run) == "completed"
        parts = sorted((j for j in client.get(root.id).children if j.type is JobType.TRANSCODE_RENDITION),
                       key=lambda j: j.payload["part"])
        assert len(parts) == 2 and all(j.state is JobState.PENDING for j in parts)
        assert runtime.execute(transcode.run_rendition, parts[0].id, 1, **run) == "completed"
        joiner = parts[1]
        original = transcode.publish_rendition

        def failed_over_meanwhile(ctx: JobContext, *a: object, **kw: object) -> object:
            transaction(lambda x: t.requeue(x, joiner.id, 1, "worker lost", None, utcnow(), event="job_failed_over"))
            return original(ctx, *a, **kw)  # type: ignore[arg-type]

        monkeypatch.setattr(transcode, "publish_rendition", failed_over_meanwhile)
        assert runtime.execute(transcode.run_rendition, joiner.id, 1, **run) == "superseded"
        assert sorted(p.name for p in (out / ".parts" / "240p").iterdir()) == [
            "audio.m4a", "part_000.mp4", "part_001.mp4"]
        assert not (out / "240p.mp4").exists() and not (out / "hls").exists()
        monkeypatch.setattr(transcode, "publish_rendition", original)
        assert runtime.execute(transcode.run_rendition, joiner.id, 2, **run) == "completed"
        done = client.get(joiner.id)
        assert done.state is JobState.COMPLETED and done.result and done.result["joined"] == 2
        assert (out / "240p.mp4").is_file() and (out / "master.m3u8").is_file()
        assert not (out / ".parts" / "240p").exists()


def split_family(url: str, output: str = "/out/v") -> list[str]:
    jobs = [NewJob(JobType.TRANSCODE, "cpu", {"input": "/in.mp4", "output": output})]
    jobs += [NewJob(JobType.TRANSCODE_RENDITION, "cpu", {"input": "/in.mp4", "output": output, "rendition": r,
                                                          "part": i, "parts": 2}, parent=0)
             for r in ("720p", "480p") for i in range(2)]
    return transaction(lambda s: fixtures.create_jobs(s, jobs, T0), url=url)


def test_beat_sweeps_parts_left_by_ended_families_after_a_grace_period(db_url: str) -> None:
    s = settings(parts_grace_seconds=3600)
    removed: list[tuple[str, str]] = []

    def sweep(now: datetime) -> list[str]:
        return tx(db_url, ticks.sweep_parts, now, s, lambda o, rel: removed.append((o, rel)))

    cancelled = split_family(db_url, "/out/cancelled")
    tx(db_url, t.cancel, cancelled[0], T0)
    live = split_family(db_url, "/out/live")
    tx(db_url, fixtures.claim, live[0], 1, "w", None, T0)
    tx(db_url, t.complete, live[0], 1, {}, T0)  # its parts are pending: nothing to sweep there
    tx(db_url, t.cancel, live[1], T0)  # one part cancelled, its sibling still pending
    assert sweep(T0 + timedelta(seconds=3599)) == []
    later = T0 + timedelta(seconds=3601)
    assert sorted(sweep(later)) == ["/out/cancelled/.parts/480p", "/out/cancelled/.parts/720p"]
    assert sorted(removed) == [("/out/cancelled", ".parts/480p"), ("/out/cancelled", ".parts/720p")]
    assert sweep(later + timedelta(days=1)) == []  # once
