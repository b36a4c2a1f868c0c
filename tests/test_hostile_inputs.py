"""Hostile inputs: files that would make ffmpeg read outside the roots, text turned into video, paths
with control characters, live sources on private networks. Each is refused once, clearly (at
submit, or permanently on attempt 1), nothing is published, and the same worker keeps serving.

One module-scoped stack and worker for the whole table (fast); every case has its own output.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mediarunner.errors import ValidationError
from mediarunner.models.base import utcnow
from mediarunner.models.db import transaction
from mediarunner.models.enums import JobState, JobType
from mediarunner.models.transitions import NewJob
from mediarunner.scheduler.dispatch import dispatch
from tests import rows
from tests.support import RedisServer, Stack, make_clip, make_stack

LADDER = [{"name": "240p", "height": 240, "video_bitrate_k": 400, "audio_bitrate_k": 64}]


@dataclass
class Env:
    stack: Stack
    client: Any
    root: Path  # the only input root: root/in
    outside: Path  # readable files outside it

    @property
    def inp(self) -> Path:
        return self.root / "in"

    def out(self, label: str) -> str:
        return str(self.stack.tmp / "outputs" / label.replace(" ", "_").replace("/", "_"))


def _make_files(inp: Path, outside: Path) -> None:
    inp.mkdir(parents=True)
    outside.mkdir(parents=True, exist_ok=True)
    secret = make_clip(outside / "secret.mp4", seconds=1.0, size="320x240")
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-i", str(secret), "-c", "copy",
                    "-f", "mpegts", str(outside / "secret.ts")], check=True)
    make_clip(inp / "good.mp4", seconds=1.0, size="320x240")
    (inp / "playlist.m3u8").write_text("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-PLAYLIST-TYPE:VOD\n"
                                       f"#EXTINF:1.0,\n{outside / 'secret.ts'}\n#EXT-X-ENDLIST\n")
    (inp / "list.ffconcat").write_text(f"ffconcat version 1.0\nfile {outside / 'secret.mp4'}\n")
    (inp / "list.txt").write_text(f"file '{outside / 'secret.mp4'}'\n")
    (inp / "secrets.txt").write_text("AWS_SECRET_ACCESS_KEY=hunter2\n" * 40)
    (inp / "secrets.mp4").write_text("password: hunter2\n" * 40)
    (inp / "subs.srt").write_text("1\n00:00:00,000 --> 00:00:01,000\nhello\n")
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    "color=red:size=32x32", "-frames:v", "3", str(inp / "img%03d.png")], check=True)
    shutil.copy(inp / "img001.png", inp / "img%03d.png")  # the pattern also exists as a file
    (inp / "link.mp4").symlink_to(outside / "secret.mp4")


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, pg_url: str, redis_server: RedisServer) -> Iterator[Env]:
    import redis

    redis_server.ping() or redis_server.start()
    redis.Redis.from_url(redis_server.url).flushdb()
    tmp = tmp_path_factory.mktemp("hostile")
    root, outside = tmp / "root", tmp_path_factory.mktemp("outside")
    _make_files(root / "in", outside)
    with make_stack(tmp, pg_url, redis_server.url, MEDIARUNNER_INPUT_ROOTS=f'["{root / "in"}"]',
                    MEDIARUNNER_ALLOWED_NETWORKS="[]") as stack:
        stack.worker("hostile", queues="cpu")
        yield Env(stack, stack.client(), root, outside)


def raw(env: Env, job_type: JobType, payload: dict[str, Any]) -> str:
    """Insert and publish a job without the client's checks (a buggy or hostile producer): the
    worker must refuse it on its own."""
    ids = transaction(lambda s: rows.create_jobs(s, [NewJob(job_type, "cpu", payload)], utcnow()))
    assert dispatch(ids[0], app=env.client.app)
    return ids[0]


def transcode(path: Callable[[Env], str]) -> Callable[[Env, str], Any]:
    return lambda e, label: e.client.submit_transcode(path(e), e.out(label), renditions=["240p"], formats=["hls"])


def live(url: Callable[[Env], str], **kw: Any) -> Callable[[Env, str], Any]:
    return lambda e, label: e.client.submit_live(url(e), e.out(label), renditions=["240p"], **kw)


def studio(ops: Callable[[Env], list[dict[str, Any]]]) -> Callable[[Env, str], Any]:
    return lambda e, label: e.client.submit_studio(str(e.inp / "good.mp4"), e.out(label), ops(e))


def raw_transcode(**fields: Callable[[Env], str]) -> Callable[[Env, str], Any]:
    def submit(e: Env, label: str) -> str:
        base = {"input": str(e.inp / "good.mp4"), "output": e.out(label), "formats": ["hls"], "ladder": LADDER}
        return raw(e, JobType.TRANSCODE, {**base, **{k: f(e) for k, f in fields.items()}})
    return submit


def raw_live(url: str) -> Callable[[Env, str], Any]:
    return lambda e, label: raw(e, JobType.LIVE, {"input_url": url, "output": e.out(label), "renditions": LADDER})


def in_(name: str) -> Callable[[Env], str]:
    return lambda e: str(e.inp / name)


# (label, submit, where: "submit" (ValidationError) or "worker" (permanent failure), words of the message)
CASES: list[tuple[str, Callable[[Env, str], Any], str, str]] = [
    # ffmpeg must not follow what a file says, nor turn text into video
    ("hls playlist file pointing outside", transcode(in_("playlist.m3u8")), "worker", "allowed"),
    ("ffconcat list pointing outside", transcode(in_("list.ffconcat")), "worker", "allowed"),
    ("concat list as .txt", transcode(in_("list.txt")), "worker", "allowed"),
    ("text file with secrets", transcode(in_("secrets.txt")), "worker", "allowed"),
    ("text file named .mp4", transcode(in_("secrets.mp4")), "worker", "not a valid mp4"),
    ("subtitles as video", transcode(in_("subs.srt")), "worker", "no audio or video"),
    ("image sequence pattern", transcode(in_("img%03d.png")), "worker", "image2"),
    ("transcription of a text file", lambda e, label: e.client.submit_transcription(
        str(e.inp / "secrets.txt"), e.out(label), device="cpu"), "worker", "allowed"),
    ("studio intro is a playlist", studio(lambda e: [{"op": "intro", "url": str(e.inp / "playlist.m3u8")}]),
     "worker", "allowed"),
    ("studio watermark is a text file", studio(lambda e: [{"op": "watermark", "image_url": str(
        e.inp / "secrets.txt")}]), "worker", "not an allowed media format (tty)"),
    # the roots
    ("symlink out of the root", transcode(in_("link.mp4")), "submit", "escapes"),
    ("dot-dot path", transcode(lambda e: f"{e.inp}/../../{e.outside.name}/secret.mp4"), "submit", ".."),
    ("percent-encoded dot-dot", transcode(lambda e: f"file://{e.inp}/%2e%2e/x.mp4"), "submit", ".."),
    ("absolute path outside", transcode(lambda e: "/etc/passwd"), "submit", "escapes"),
    ("file url with a host", transcode(lambda e: "file://evil.example/etc/passwd"), "submit", "local path"),
    ("worker: input outside the roots", raw_transcode(input=lambda e: str(e.outside / "secret.mp4")), "worker",
     "escapes"),
    ("studio intro outside the roots", studio(lambda e: [{"op": "intro", "url": str(e.outside / "secret.mp4")}]),
     "submit", "escapes"),
    # control characters
    ("NUL in input", transcode(lambda e: f"{e.inp}/a\x00.mp4"), "submit", "nul"),
    ("newline in input", transcode(lambda e: f"{e.inp}/a\n.mp4"), "submit", "newline"),
    ("CR in input", transcode(lambda e: f"{e.inp}/a\r.mp4"), "submit", "carriage return"),
    ("tab in input", transcode(lambda e: f"{e.inp}/a\t.mp4"), "submit", "tab"),
    ("encoded newline in file url", transcode(lambda e: f"file://{e.inp}/a%0a.mp4"), "submit", "newline"),
    ("C1 control in input", transcode(lambda e: f"{e.inp}/a\x85.mp4"), "submit", "control character"),
    ("newline in output", lambda e, label: e.client.submit_transcode(
        str(e.inp / "good.mp4"), e.out(label) + "\nfile '/etc/passwd'", parts=2), "submit", "newline"),
    ("worker: newline in output", raw_transcode(output=lambda e: e.out("x") + "\nfile '/etc/passwd'"), "worker",
     "control characters"),
    ("newline in studio url", studio(lambda e: [{"op": "outro", "url": f"{e.inp}/good.mp4\n"}]), "submit",
     "newline"),
    # unknown schemes and ffmpeg pseudo-protocols
    ("gopher scheme", transcode(lambda e: "gopher://example.com/x.mp4"), "worker", "scheme"),
    ("data: url", transcode(lambda e: "data:text/plain,hello"), "submit", "escapes"),
    ("concat: protocol", transcode(lambda e: "concat:/etc/passwd|/etc/hosts"), "submit", "escapes"),
    ("subfile: protocol", transcode(lambda e: "subfile,,start,0,end,100,,:/etc/passwd"), "submit", "escapes"),
    ("pipe: protocol", transcode(lambda e: "pipe:0"), "submit", "escapes"),
    ("credentials in url", transcode(lambda e: "s3://AKIA:secret@bucket/x.mp4"), "submit", "credentials"),
    ("queue scheduler", lambda e, label: e.client.submit_transcode(
        str(e.inp / "good.mp4"), e.out(label), queue="scheduler"), "submit", "unknown job queue"),
    # live: the roots and the networks
    ("live file outside the roots", live(lambda e: f"file://{e.outside}/secret.mp4"), "submit", "escapes"),
    ("live dot-dot", live(lambda e: f"{e.inp}/../../{e.outside.name}/secret.mp4"), "submit", ".."),
    ("live concat: protocol", live(lambda e: "concat:/etc/passwd"), "submit", "escapes"),
    ("live http loopback", live(lambda e: "http://127.0.0.1:8080/x.m3u8"), "submit", "loopback"),
    ("live http localhost name", live(lambda e: "http://localhost:8080/x.m3u8"), "submit", "loopback"),
    ("live http metadata", live(lambda e: "http://169.254.169.254/latest/meta-data/"), "submit", "link-local"),
    ("live http private", live(lambda e: "http://10.1.2.3/x.m3u8"), "submit", "private"),
    ("live http ipv6 loopback", live(lambda e: "http://[::1]:8080/x.m3u8"), "submit", "loopback"),
    ("live http ipv4-mapped ipv6", live(lambda e: "http://[::ffff:127.0.0.1]/x.m3u8"), "submit", "loopback"),
    ("live rtmp private", live(lambda e: "rtmp://192.168.1.10/live/key"), "submit", "private"),
    ("live srt cgnat", live(lambda e: "srt://100.64.0.1:9000"), "submit", "non-public"),
    ("live udp multicast", live(lambda e: "udp://239.1.2.3:5000"), "submit", "multicast"),
    ("live tcp unspecified", live(lambda e: "tcp://0.0.0.0:9000"), "submit", "unspecified"),
    ("live credentials", live(lambda e: "rtmp://u:pw@127.0.0.1/live/x"), "submit", "credentials"),
    ("live gopher", live(lambda e: "gopher://example.com/x"), "submit", "scheme"),
    ("worker: live http metadata", raw_live("http://169.254.169.254/latest/"), "worker", "link-local"),
    ("worker: live file outside the roots", raw_live("/etc/passwd"), "worker", "escapes"),
]


def test_hostile_input_table(env: Env) -> None:
    assert len(CASES) >= 40
    before = len(env.client.list(limit=10_000))
    for label, submit, where, expect in CASES:
        if where != "submit":
            continue
        with pytest.raises(ValidationError) as ei:
            submit(env, label)
        message = str(ei.value)
        assert len(message.splitlines()) == 1, (label, message)
        assert expect.lower() in message.lower(), (label, message)
        assert "hunter2" not in message and "pw@" not in message and "secret@" not in message, label
    assert len(env.client.list(limit=10_000)) == before  # refused at submit: no row at all

    jobs: dict[str, tuple[str, str]] = {}
    for label, submit, where, expect in CASES:
        if where == "worker":
            got = submit(env, label)
            jobs[label] = (got if isinstance(got, str) else got.id, expect)
    for label, (job_id, expect) in jobs.items():
        job = env.client.wait(job_id, timeout=90)
        assert job.state is JobState.FAILED, (label, job.state, job.error)
        assert (job.attempt, job.failures, job.error_kind) == (1, 0, "permanent"), (label, job.error)
        first = (job.error or "").splitlines()[0]
        assert expect.lower() in first.lower(), (label, job.error)
        assert "Traceback" not in (job.error or "") and "hunter2" not in (job.error or ""), label
        assert all(c.state is JobState.PARENT_FAILED for c in job.children), label
    for label, *_ in CASES:
        assert not Path(env.out(label)).exists(), f"{label}: something was published"
    assert not Path(env.out("x")).exists()

    ok = env.client.submit_transcode(str(env.inp / "good.mp4"), env.out("ok"), renditions=["240p"])
    assert env.client.wait(ok.id, timeout=90).state is JobState.COMPLETED  # the same worker still serves


def test_every_resolved_address_is_checked() -> None:
    from ipaddress import ip_network

    from mediarunner.errors import InvalidInputError
    from mediarunner.models.networks import check_network_target

    def split_horizon(host: str, port: int | None) -> list[str]:
        return ["93.184.216.34", "10.0.0.7"]  # one public answer must not hide a private one

    with pytest.raises(InvalidInputError, match=r"private address \(10\.0\.0\.7\)"):
        check_network_target("https://media.example/x.m3u8", resolve=split_horizon)
    check_network_target("https://media.example/x.m3u8", [ip_network("10.0.0.0/8")], resolve=split_horizon)
    check_network_target("rtmp://93.184.216.34/live/key")  # a public literal needs no resolver


def test_concat_list_holds_only_fixed_names(tmp_path: Path) -> None:
    from mediarunner.media import concat_parts, probe

    hostile = tmp_path / "out\nfile '/etc/passwd'\n"  # what a newline in an output path used to inject
    hostile.mkdir(parents=True)
    parts = [make_clip(tmp_path / f"p{i}.mp4", seconds=1.0, size="160x120", audio=False).rename(hostile / f"p{i}.mp4")
             for i in range(2)]
    dst = tmp_path / "joined.mp4"
    concat_parts(parts, None, dst)
    assert 1.9 < probe(dst).duration < 2.2
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".joined")]  # the join directory is gone
