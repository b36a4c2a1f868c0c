"""Studio edits end to end: cut, intro, outro and watermark through a real worker, checked with
ffprobe and decoded frames; then a studio edit feeding a transcode ladder as a child branch."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from mediarunner.errors import ValidationError
from mediarunner.models.enums import JobState, JobType
from tests.media_checks import duration, master_variants, media_playlist_duration, streams
from tests.storage.servers import FTPServer
from tests.studio.conftest import X264, ffmpeg_gen, frame_rgb, region_mean
from tests.support import Stack, make_clip

DONE = JobState.COMPLETED
W, H = 320, 240
RED_BOX = (12, 12, 68, 36)  # inside a 64x32 top-left watermark with an 8 px margin


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("studio-e2e")
    out = {"main": d / "main.mp4", "intro": d / "intro.mp4", "outro": d / "outro.mp4", "logo": d / "logo.png"}
    ffmpeg_gen("-f", "lavfi", "-i", f"color=c=0x808080:size={W}x{H}:rate=25:duration=3",
               "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=3",
               *X264, "-c:a", "aac", "-shortest", str(out["main"]))  # gray, with audio
    ffmpeg_gen("-f", "lavfi", "-i", "testsrc2=size=200x100:rate=15:duration=1", *X264,
               str(out["intro"]))  # wider than 4:3 (letterboxed), no audio
    ffmpeg_gen("-f", "lavfi", "-i", "testsrc2=size=240x240:rate=30:duration=1",
               "-f", "lavfi", "-i", "sine=frequency=880:sample_rate=44100:duration=1",
               *X264, "-c:a", "aac", "-shortest", str(out["outro"]))  # square (pillarboxed), with audio
    ffmpeg_gen("-f", "lavfi", "-i", "color=c=red:size=64x32", "-frames:v", "1", str(out["logo"]))
    return out


@pytest.fixture
def ftp_intro(tmp_path: Path, media: dict[str, Path]) -> Iterator[tuple[str, dict[str, str]]]:
    """The intro clip served by an FTP server: (its URL, the worker settings to reach it)."""
    root = tmp_path / "ftp-root"
    (root / "clips").mkdir(parents=True)
    (root / "clips" / "intro.mp4").write_bytes(media["intro"].read_bytes())
    server = FTPServer(root, "bob", "s3cret").start()
    env = {"MEDIARUNNER_FTP_CREDENTIALS": json.dumps({"127.0.0.1": {"username": "bob", "password": "s3cret"}})}
    try:
        yield f"ftp://127.0.0.1:{server.port}/clips/intro.mp4", env
    finally:
        server.stop()


def is_red(rgb: tuple[float, float, float]) -> bool:
    return rgb[0] > 200 and rgb[1] < 60 and rgb[2] < 60


def is_gray(rgb: tuple[float, float, float]) -> bool:
    return all(abs(c - 128) < 12 for c in rgb)


def is_black(rgb: tuple[float, float, float]) -> bool:
    return all(c < 30 for c in rgb)


def at(path: Path, t: float, box: tuple[int, int, int, int]) -> tuple[float, float, float]:
    return region_mean(frame_rgb(path, t, W, H), W, *box)


def av(path: Path) -> tuple[str, str, int, int]:
    (v,) = streams(path, "video")
    (a,) = streams(path, "audio")
    return v["codec_name"], a["codec_name"], int(v["width"]), int(v["height"])


def test_every_operation_through_a_worker(stack: Stack, media: dict[str, Path],
                                          ftp_intro: tuple[str, dict[str, str]]) -> None:
    intro_url, ftp_env = ftp_intro
    out = stack.tmp / "outputs"
    stack.inproc_worker("a", concurrency=2, extra_env=ftp_env)  # five small jobs: two at a time
    client = stack.client()
    main = str(media["main"])
    ops = {
        "cut": [{"op": "cut", "start": 0.5, "end": 2.0}],
        "intro": [{"op": "intro", "url": intro_url}],
        "outro": [{"op": "outro", "url": f"file://{media['outro']}"}],
        "watermark": [{"op": "watermark", "image_url": str(media["logo"]), "position": "bottom-right",
                       "margin": 16, "scale": 0.25}],
        "all": [{"op": "cut", "start": 0.5, "end": 2.5}, {"op": "intro", "url": intro_url},
                {"op": "outro", "url": str(media["outro"])},
                {"op": "watermark", "image_url": str(media["logo"]), "position": "top-left", "margin": 8}],
    }
    ids = {name: client.submit_studio(main, str(out / name), o).id for name, o in ops.items()}
    jobs = {name: client.wait(i, timeout=180) for name, i in ids.items()}
    assert {n: j.state for n, j in jobs.items()} == dict.fromkeys(ops, DONE), {n: j.error for n, j in jobs.items()}
    f = {name: out / name / "studio.mp4" for name in ops}
    for name, path in f.items():
        assert av(path) == ("h264", "aac", W, H), name
        assert jobs[name].artifacts[0].path == str(path) and jobs[name].artifacts[0].kind == "mp4"
        assert jobs[name].result and jobs[name].result["operations"] == [o["op"] for o in ops[name]]

    assert abs(duration(f["cut"]) - 1.5) < 0.1
    assert abs(duration(f["intro"]) - 4.0) < 0.15
    assert is_black(at(f["intro"], 0.5, (100, 5, 300, 35)))  # letterboxed intro first ...
    assert is_gray(at(f["intro"], 2.5, (100, 5, 300, 35)))  # ... then the main video
    assert abs(duration(f["outro"]) - 4.0) < 0.15
    assert is_gray(at(f["outro"], 1.5, (292, 100, 318, 200)))
    assert is_black(at(f["outro"], 3.5, (292, 100, 318, 200)))  # pillarboxed outro last
    assert abs(duration(f["watermark"]) - 3.0) < 0.1
    assert is_red(at(f["watermark"], 1.0, (230, 190, 298, 218)))  # 80x40 at bottom-right, 16 px in
    assert is_gray(at(f["watermark"], 1.0, (100, 100, 200, 150)))

    # All four in order: intro (1 s) + cut (2 s) + outro (1 s), watermarked throughout.
    combined = f["all"]
    assert abs(duration(combined) - 4.0) < 0.15
    (audio,) = streams(combined, "audio")
    assert abs(float(audio["duration"]) - 4.0) < 0.15  # the silent intro got silence
    for t, band in ((0.5, is_black), (2.0, is_gray)):
        assert band(at(combined, t, (100, 5, 300, 35))), t
        assert is_red(at(combined, t, RED_BOX)), t
    assert is_black(at(combined, 3.5, (292, 100, 318, 200)))
    assert is_red(at(combined, 3.5, RED_BOX))
    scratch = Path(stack.env["MEDIARUNNER_SCRATCH_DIR"])
    assert not scratch.exists() or not any(scratch.iterdir())


def test_studio_feeds_a_transcode_ladder(stack: Stack, tmp_path: Path) -> None:
    src = make_clip(tmp_path / "in.mp4", seconds=3.0, size="640x360")
    out = stack.tmp / "outputs" / "edit"
    stack.inproc_worker("a")
    client = stack.client()
    job = client.submit_studio(str(src), str(out), [{"op": "cut", "start": 0.5, "end": 2.5}], transcode=True,
                               renditions=["360p", "240p"])
    studio = client.wait(job.id, timeout=240)
    family = studio.family
    assert [(j.type, j.state) for j in family] == [(JobType.STUDIO, DONE), (JobType.TRANSCODE, DONE),
                                                   (JobType.TRANSCODE_RENDITION, DONE)], [j.error for j in family]
    transcode = studio.children[0]
    assert transcode.payload["input"] == str(out / "studio.mp4")
    assert transcode.started_at >= studio.finished_at  # type: ignore[operator]
    assert abs(duration(out / "studio.mp4") - 2.0) < 0.1
    for name, (w, h) in {"360p": (640, 360), "240p": (426, 240)}.items():
        assert av(out / f"{name}.mp4") == ("h264", "aac", w, h)
        assert abs(duration(out / f"{name}.mp4") - 2.0) < 0.15
        assert abs(media_playlist_duration(out / "hls" / name / "index.m3u8") - 2.0) < 0.15
    assert sorted(uri for _, uri in master_variants(out / "master.m3u8")) == [
        "hls/240p/index.m3u8", "hls/360p/index.m3u8"]


def test_bad_side_input_fails_once(stack: Stack, media: dict[str, Path]) -> None:
    stack.inproc_worker("a")
    client = stack.client()
    out = stack.tmp / "outputs" / "bad"
    job = client.wait(client.submit_studio(str(media["main"]), str(out), [
        {"op": "cut", "start": 1.0}, {"op": "outro", "url": str(media["main"].with_name("missing.mp4"))}]).id,
        timeout=60)
    assert (job.state, job.attempt, job.error_kind) == (JobState.FAILED, 1, "permanent")
    assert "missing.mp4" in (job.error or "")
    assert not out.exists()


@pytest.mark.parametrize("ops, message", [
    ([], "operations"),
    ([{"op": "cut", "start": 2, "end": 1}], "after its start"),
    ([{"op": "blur"}], "op"),
    ([{"op": "intro", "url": "sftp://user:pw@host/intro.mp4"}], "credentials"),
    ("cut", "list"),
])
def test_invalid_operations_rejected_before_enqueue(stack: Stack, ops: object, message: str) -> None:
    client = stack.client()
    before = len(client.list(limit=10_000))
    with pytest.raises(ValidationError, match=message) as err:
        client.submit_studio("in.mp4", str(stack.tmp / "outputs" / "x"), ops)  # type: ignore[arg-type]
    assert "pw" not in str(err.value)
    assert len(client.list(limit=10_000)) == before
    assert redis.Redis.from_url(stack.env["MEDIARUNNER_BROKER_URL"]).llen("cpu") == 0
