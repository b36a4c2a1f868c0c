"""Remote (HTTP) runners: the real server (uvicorn on a free loopback port) and ``mediarunner runner``
as real subprocesses whose environment holds no database, broker or storage settings."""

from __future__ import annotations

import hashlib
import os
import stat
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import redis

from tests.api.remote_support import Remote, h, register
from tests.support import make_clip, wait_for


def test_runner_process_transcodes_without_database_or_broker(remote: Remote) -> None:
    stack = remote.stack
    clip = make_clip(stack.tmp / "in.mp4", seconds=2)
    out = stack.tmp / "outputs" / "talk"
    reg = remote.cli("register", "--url", remote.url, "--registration-token", remote.token, "--name", "box1")
    assert reg.returncode == 0, reg.stderr
    conf = remote.home / "box1.json"
    assert stat.S_IMODE(conf.stat().st_mode) == 0o600 and remote.token not in conf.read_text()
    assert "box1" in remote.cli("ls-registered").stdout
    client = stack.client()
    job = client.submit_transcode(str(clip), str(out), renditions=["360p", "240p"], queue=remote.queue)
    edit_out = stack.tmp / "outputs" / "edit"  # a studio edit (with a side input) and its ladder, chained
    edit = client.submit_studio(str(clip), str(edit_out), [{"op": "cut", "start": 0.5, "end": 1.5},
                                                           {"op": "intro", "url": str(clip)}],
                                transcode=True, renditions=["240p"], queue=remote.queue)
    proc = remote.serve("--name", "box1", "--concurrency", "2")
    try:
        done = wait_for(lambda: (j := client.get(job.id)).done and j, 120, what="the job to end on the runner")
        edited = wait_for(lambda: (j := client.get(edit.id)).done and j, 120, what="the edit to end on the runner")
    finally:
        proc.terminate()
        proc.wait(30)
    assert done.state == "completed", (done.error, [(c.state, c.error) for c in done.children], remote.log())
    assert all(j.state == "completed" and j.worker and "@remote-" in j.worker for j in done.family)
    assert {p.name for p in out.iterdir()} >= {"360p.mp4", "240p.mp4", "master.m3u8", "hls"}
    master = (out / "master.m3u8").read_text()
    assert "hls/360p/index.m3u8" in master and "hls/240p/index.m3u8" in master
    mp4 = next(a for a in done.children[0].artifacts if a.kind == "mp4")
    assert mp4.path.startswith(str(out)) and Path(mp4.path).stat().st_size == mp4.size
    assert [j.state for j in edited.family] == ["completed"] * len(edited.family) and len(edited.family) >= 2, \
        [(j.type, j.state, j.error) for j in edited.family]
    assert (edit_out / "studio.mp4").is_file() and (edit_out / "240p.mp4").is_file()
    assert not (remote.cwd / "var").exists(), "the runner opened a local database"
    unreg = remote.cli("unregister", "--name", "box1")
    assert unreg.returncode == 0, unreg.stderr
    assert not conf.exists()


def test_accept_is_exclusive_stale_tokens_get_409_and_abort_spends_no_failure(remote: Remote) -> None:
    a, b = register(remote, "a"), register(remote, "b")
    client = remote.stack.client()
    with httpx.Client(base_url=f"{remote.url}/v1/runner", timeout=30) as http:
        # a long poll answers as soon as a job is pending (not at the end of its timeout)
        box: dict[str, Any] = {}
        waiter = threading.Thread(target=lambda: box.update(r=http.post(
            "/jobs/request", json={"timeout": 15}, headers=h(a))))
        waiter.start()
        wait_for(lambda: remote.waiting_requests() > 0, 10, interval=0.02, what="the long poll to wait")
        job = client.submit_noop(duration=30, queue=remote.queue)
        t0 = time.monotonic()
        assert redis.Redis.from_url(remote.stack.env["MEDIARUNNER_BROKER_URL"]).llen(remote.queue) == 0  # unpublished
        waiter.join(20)
        assert time.monotonic() - t0 < 3 and [o["id"] for o in box["r"].json()["jobs"]] == [job.id]
        first = http.post(f"/jobs/{job.id}/accept", json={"attempt": 1}, headers=h(a))
        assert first.status_code == 200, first.text
        token = first.json()["job_token"]
        assert http.post(f"/jobs/{job.id}/accept", json={"attempt": 1}, headers=h(a)).status_code == 409
        assert http.post(f"/jobs/{job.id}/accept", json={"attempt": 1}, headers=h(b)).status_code == 409
        assert http.post(f"/jobs/{job.id}/update", json={"progress": 10}, headers=h(a, token)).status_code == 200
        # another runner cannot read or write this runner's job, even with its job token
        assert http.post(f"/jobs/{job.id}/update", json={"progress": 50}, headers=h(b, token)).status_code == 404
        assert http.get(f"/jobs/{job.id}/state", headers=h(b, token)).status_code == 404
        assert http.post(f"/jobs/{job.id}/abort", json={"reason": "shutdown"}, headers=h(a, token)).status_code == 200
        back = client.get(job.id)
        assert (back.state, back.attempt, back.failures) == ("pending", 2, 0)
        stale = http.post(f"/jobs/{job.id}/update", json={"progress": 20}, headers=h(a, token))
        assert stale.status_code == 409 and "stale" in stale.json()["detail"]
        assert http.post(f"/jobs/{job.id}/success", json={}, headers=h(a, token)).status_code == 409
        again = http.post(f"/jobs/{job.id}/accept", json={"attempt": 2}, headers=h(b))
        assert again.status_code == 200
        err = http.post(f"/jobs/{job.id}/error", json={"message": "boom", "kind": "transient"},
                        headers=h(b, again.json()["job_token"]))
        assert err.json() == {"outcome": "retrying"}
        assert (client.get(job.id).attempt, client.get(job.id).failures) == (3, 1)
        assert http.post("/jobs/request", json={"timeout": 0}, headers={"Authorization": "Bearer mrr_nope"}
                         ).status_code == 401


def test_revoking_the_registration_token_stops_the_runner_and_frees_its_job(remote: Remote) -> None:
    from mediarunner.fleet import FleetService

    assert remote.cli("register", "--url", remote.url, "--registration-token", remote.token,
                      "--name", "box2").returncode == 0
    client = remote.stack.client()
    job = client.submit_noop(duration=60, queue=remote.queue)
    proc = remote.serve("--name", "box2")
    try:
        wait_for(lambda: client.get(job.id).state == "running", 60, what="the runner to start the job")
        FleetService(remote.stack.settings()).revoke_token(remote.token_id)
        back = client.get(job.id)
        assert (back.state, back.attempt, back.failures) == ("pending", 2, 0)
        assert proc.wait(30) == 3
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "cut this runner off" in remote.log()
    assert client.get(job.id).state == "pending"


def test_upload_resumes_after_a_dropped_connection_and_publishes_once(remote: Remote) -> None:
    """A chunk whose answer is lost (the connection drops after the server stored it) is not sent
    twice: the runner asks how much arrived and goes on; the server checks SHA-256 and publishes."""
    from mediarunner.runner.api import RunnerApi
    from mediarunner.runner.lease import HttpLease

    runner = register(remote, "up")
    out = remote.stack.tmp / "outputs" / "result.bin"
    job = remote.stack.client().submit_noop(duration=30, output=str(out), queue=remote.queue)
    data = os.urandom(700_000)
    src = remote.stack.tmp / "result.bin"
    src.write_bytes(data)

    class Flaky(RunnerApi):
        puts = 0

        def call(self, method: str, path: str, **kw: Any) -> Any:
            got = super().call(method, path, **kw)
            if method == "PUT":
                Flaky.puts += 1
                if Flaky.puts == 3:
                    raise httpx.ReadError("connection dropped after the chunk was stored")
            return got

    api = Flaky(remote.url, runner["runner_token"])
    accepted = api.accept(job.id, 1)
    lease = HttpLease(api, job.id, accepted["job_token"], chunk_bytes=100_000)
    store = lease.open_store(str(out), remote.stack.settings(), "output", None)
    (published,) = store.publish(src)
    assert published.location == str(out) and published.local == src
    assert out.read_bytes() == data and Flaky.puts == 7  # 7 chunks, none sent twice
    assert not list((remote.stack.tmp / "scratch" / "remote-uploads").rglob("*.bin"))
    # the server refuses a file whose bytes do not match, a location the job does not name, a stale token
    with httpx.Client(base_url=f"{remote.url}/v1/runner/jobs/{job.id}", headers=h(runner, accepted["job_token"]),
                      timeout=30) as http:
        assert http.put("/uploads/abcdefgh12/x.bin", params={"offset": 0}, content=b"abc").json() == {"size": 3}
        assert http.put("/uploads/abcdefgh12/x.bin", params={"offset": 0}, content=b"abc").status_code == 409
        bad = http.post("/publish", json={"location": str(out), "upload_id": "abcdefgh12", "file": "x.bin",
                                          "sha256": {"x.bin": "0" * 64}})
        assert bad.status_code == 409 and "SHA-256" in bad.json()["detail"]
        other = http.post("/publish", json={"location": str(out.parent / "elsewhere"), "upload_id": "abcdefgh12",
                                            "file": "x.bin", "sha256": {"x.bin": "0" * 64}})
        assert other.status_code == 403
        assert http.put("/uploads/abcdefgh12/%2E%2E/x.bin", params={"offset": 0}, content=b"a").status_code == 422
        for rel in ("..", "../x", "a/../../b", "/etc", "a//b"):  # never outside the job's location
            assert http.post("/remove", json={"location": str(out), "rel": rel}).status_code == 422, rel
            assert http.get("/output", params={"location": str(out), "rel": rel}).status_code == 422, rel
        assert out.read_bytes() == data
        assert http.put("/uploads/leftover12/y.bin", params={"offset": 0}, content=b"partial").status_code == 200
        assert http.post("/abort", json={}).status_code == 200
        assert not (remote.stack.tmp / "scratch" / "remote-uploads" / f"{job.id}-1").exists()  # dropped with it
        assert http.get(f"/input?location={out}").status_code == 409
    assert remote.stack.client().get(job.id).failures == 0
    api.close()


def test_a_200_mb_result_interrupted_mid_way_resumes_and_publishes_once(remote: Remote) -> None:
    """The issue's size: a 200 MB result in the server's largest chunks, the connection dropped
    half-way (after the server stored a chunk), resumed from what arrived: every chunk sent once,
    the SHA-256 checked, the file published once, nothing left in the upload area."""
    from mediarunner.runner.api import RunnerApi
    from mediarunner.runner.lease import HttpLease

    runner = register(remote, "big")
    out = remote.stack.tmp / "outputs" / "big.bin"
    job = remote.stack.client().submit_noop(duration=120, output=str(out), queue=remote.queue)
    src = remote.stack.tmp / "big.bin"
    digest = hashlib.sha256()
    with src.open("wb") as f:
        for _ in range(200):
            block = os.urandom(1_000_000)
            digest.update(block)
            f.write(block)
    chunk = remote.stack.settings().api_max_body_bytes
    chunks = -(-src.stat().st_size // chunk)

    class DropsHalfWay(RunnerApi):
        puts = 0

        def call(self, method: str, path: str, **kw: Any) -> Any:
            got = super().call(method, path, **kw)
            if method == "PUT":
                DropsHalfWay.puts += 1
                if DropsHalfWay.puts == chunks // 2:
                    raise httpx.ReadError("connection dropped after the chunk was stored")
            return got

    api = DropsHalfWay(remote.url, runner["runner_token"])
    accepted = api.accept(job.id, 1)
    lease = HttpLease(api, job.id, accepted["job_token"], chunk_bytes=chunk)
    store = lease.open_store(str(out), remote.stack.settings(), "output", None)
    (published,) = store.publish(src)
    assert published.location == str(out)
    assert DropsHalfWay.puts == chunks  # none sent twice
    with out.open("rb") as f:
        assert hashlib.file_digest(f, "sha256").hexdigest() == digest.hexdigest()
    assert not list((remote.stack.tmp / "scratch" / "remote-uploads").rglob("*.bin"))
    api.close()


def test_killed_runner_job_fails_over_and_completes_on_another_runner(remote: Remote) -> None:
    from mediarunner.models.base import utcnow
    from mediarunner.models.db import transaction
    from mediarunner.runner import config
    from mediarunner.scheduler.ticks import fail_over

    for name in ("k1", "k2"):
        got = register(remote, name)
        config.save(remote.home / f"{name}.json", config.Registration(remote.url, got["id"], name, got["runner_token"]))
    client = remote.stack.client()
    out = remote.stack.tmp / "outputs" / "noop.txt"
    job = client.submit_noop(duration=3, output=str(out), queue=remote.queue)
    first = remote.serve("--name", "k1")
    try:
        wait_for(lambda: client.get(job.id).state == "running", 60, what="runner k1 to start the job")
    finally:
        first.kill()  # SIGKILL: no abort, no goodbye
        first.wait(10)
    second = remote.serve("--name", "k2")
    try:
        settings = remote.stack.settings().model_copy(update={"failover_after_seconds": 1.0})
        wait_for(lambda: job.id in transaction(lambda s: fail_over(s, utcnow(), settings)).requeued, 30,
                 interval=0.3, what="beat's failover of the silent attempt")
        done = wait_for(lambda: (j := client.get(job.id)).done and j, 60, what="the job to end on runner k2")
    finally:
        second.terminate()
        second.wait(30)
    # a lost runner is an abort, not the job's failure (issue 14: MAX_ABORTS, not MAX_ATTEMPTS)
    assert (done.state, done.attempt, done.failures, done.aborts) == ("completed", 2, 0, 1), (done.error, remote.log())
    assert done.worker is not None and done.worker.startswith("k2@remote-")
    assert out.read_text() == f"{job.id} 2\n"


def test_remote_runners_join_the_fleet_views_and_obey_maintenance(remote: Remote) -> None:
    from mediarunner.api.keys import ApiKeys
    from mediarunner.fleet import FleetService

    runner = register(remote, "fleet1")
    settings = remote.stack.settings()
    _, key = ApiKeys(settings).create(f"read-{remote.queue}", ["read"])
    listed = httpx.get(f"{remote.url}/v1/runners", headers={"Authorization": f"Bearer {key}"}).json()
    (me,) = [r for r in listed if r["hostname"] == runner["hostname"]]
    assert me["queues"] == [remote.queue] and me["health"] == "healthy", me
    fleet = FleetService(settings)
    fleet.maintenance(runner["hostname"])
    job = remote.stack.client().submit_noop(queue=remote.queue)
    urgent = remote.stack.client().submit_noop(queue=remote.queue, priority=5)
    with httpx.Client(base_url=f"{remote.url}/v1/runner", headers=h(runner), timeout=30) as http:
        assert http.post("/jobs/request", json={"timeout": 0.5}).json() == {"jobs": []}
        fleet.enable(runner["hostname"])
        offered = http.post("/jobs/request", json={"timeout": 5}).json()["jobs"]
        assert [o["id"] for o in offered] == [urgent.id, job.id]  # rank order


def test_sigterm_gives_running_jobs_back_without_spending_a_failure(remote: Remote) -> None:
    from mediarunner.runner import config

    got = register(remote, "term")
    config.save(remote.home / "term.json", config.Registration(remote.url, got["id"], "term", got["runner_token"]))
    client = remote.stack.client()
    job = client.submit_noop(duration=60, queue=remote.queue)
    proc = remote.serve("--name", "term")
    try:
        wait_for(lambda: client.get(job.id).state == "running", 60, what="the runner to start the job")
        proc.terminate()
        assert proc.wait(30) == 0, remote.log()
    finally:
        if proc.poll() is None:
            proc.kill()
    back = client.get(job.id)
    assert (back.state, back.attempt, back.failures) == ("pending", 2, 0), remote.log()
    assert "runner term stopped" in remote.log()


def test_celery_children_of_a_remote_job_go_to_the_outbox(remote: Remote) -> None:
    """A remote transcode's transcription branch runs on Celery workers: when the runner completes
    the parent, the branch is left for the outbox to publish (it was never published as a chain)."""
    from sqlalchemy import select

    from mediarunner.models.db import transaction
    from mediarunner.models.tables import JobRow

    clip = make_clip(remote.stack.tmp / "in.mp4", seconds=1)
    job = remote.stack.client().submit_transcode(str(clip), str(remote.stack.tmp / "outputs" / "t"), ["360p", "240p"],
                                                 queue=remote.queue, transcribe=True)
    runner = register(remote, "mixed")
    with httpx.Client(base_url=f"{remote.url}/v1/runner", timeout=30) as http:
        token = http.post(f"/jobs/{job.id}/accept", json={"attempt": 1}, headers=h(runner)).json()["job_token"]
        family = http.post(f"/jobs/{job.id}/success", json={"result": {}}, headers=h(runner, token)).json()["family"]
    assert family["state"] == "completed"
    rows = transaction(lambda s: s.execute(select(JobRow.type, JobRow.queue, JobRow.state, JobRow.dispatched_at)
                                           .where(JobRow.parent_id == job.id)).all())
    by_type = {r[0].value: r for r in rows}
    assert by_type["extract_audio"][1:] == ("cpu", "pending", None)  # the outbox publishes it next tick
    rendition = by_type["transcode_rendition"]
    assert rendition[1:3] == (remote.queue, "pending")  # offered to remote runners


def test_a_running_job_reads_the_idle_slots_of_a_queue_for_the_planner(remote: Remote) -> None:
    """What the transcode planner of a job on a remote runner asks (``HttpLease.idle_slots``): the
    free slots of the queue's other enabled, online runners, less the jobs pending there."""
    a, _b = register(remote, "a"), register(remote, "b")
    client = remote.stack.client()
    job = client.submit_noop(duration=30, queue=remote.queue)
    with httpx.Client(base_url=f"{remote.url}/v1/runner", timeout=30) as http:
        got = http.post(f"/jobs/{job.id}/accept", json={"attempt": 1}, headers=h(a))
        assert got.status_code == 200, got.text
        token = got.json()["job_token"]
        idle = http.get(f"/jobs/{job.id}/idle-slots", params={"queue": remote.queue}, headers=h(a, token))
        assert idle.status_code == 200 and idle.json() == {"idle": 1}, idle.text  # b's one slot; a runs the job
        client.submit_noop(duration=30, queue=remote.queue)  # a job waiting for that slot: none is idle
        assert http.get(f"/jobs/{job.id}/idle-slots", params={"queue": remote.queue},
                        headers=h(a, token)).json() == {"idle": 0}
        assert http.get(f"/jobs/{job.id}/idle-slots", params={"queue": "no/such queue"},
                        headers=h(a, token)).status_code == 422
        assert http.get(f"/jobs/{job.id}/idle-slots", params={"queue": remote.queue},
                        headers=h(a)).status_code in (401, 403, 422)  # no job token


def test_part_encoded_records_the_interim_result_a_job_sends(remote: Remote) -> None:
    """``part-encoded`` (``HttpLease.record_part_encoded``): without a body the part is marked
    encoded; with ``{"result": …}`` that result is recorded instead (a Pod ladder's published
    rungs, ``tasks/pod.py``); both under the family lock, answering the family as committed."""
    a = register(remote, "a")
    job = remote.stack.client().submit_noop(duration=30, queue=remote.queue)
    with httpx.Client(base_url=f"{remote.url}/v1/runner", timeout=30) as http:
        got = http.post(f"/jobs/{job.id}/accept", json={"attempt": 1}, headers=h(a))
        assert got.status_code == 200, got.text
        token = got.json()["job_token"]
        plain = http.post(f"/jobs/{job.id}/part-encoded", headers=h(a, token))
        assert plain.status_code == 200 and plain.json()["family"]["result"] == {"part_encoded": True}, plain.text
        sent = {"published": ["360p"], "part_encoded": True}
        marked = http.post(f"/jobs/{job.id}/part-encoded", json={"result": sent}, headers=h(a, token))
        assert marked.status_code == 200 and marked.json()["family"]["result"] == sent, marked.text
        assert http.post(f"/jobs/{job.id}/part-encoded", json={"result": sent}, headers=h(a)).status_code in (
            401, 403, 422)  # no job token
