"""mediarunner as an Esup-Pod Runner Manager (``/esup``), driven by a client that does what Pod's
code does (Esup-Pod ``pod/video_encode_transcript/``: ``runner_manager.py`` submits,
``views.py`` receives ``notify_task_end`` and downloads the manifest's files checking their
SHA-256, ``admin.py`` tests the connection, ``process_tasks.py`` polls the status; the same
requests, headers and checks, sent with httpx where Pod uses requests), against the
real server, real workers and ffmpeg. A small real HTTP server plays Pod's side: it serves
``/media/`` and receives ``POST /runner/notify_task_end/`` with Pod's checks (JSON, Bearer token)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.conftest import API_ENV, _keys, serving
from tests.support import Stack, free_port, make_clip, wait_for

HEADERS_JSON = {"Accept": "application/json", "Content-Type": "application/json"}


@dataclass
class PodSite:
    """Pod's web server as the Runner Manager sees it: ``/media/`` and the notify endpoint."""

    media: Path
    token: str = ""
    notified: list[dict[str, Any]] = field(default_factory=list)
    refused: list[int] = field(default_factory=list)
    unavailable: list[int] = field(default_factory=list)  # answers to give first (Pod down), then its own

    def start(self) -> None:
        site = self

        class Handler(SimpleHTTPRequestHandler):
            def do_POST(self) -> None:  # views.notify_task_end, its checks in its order
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                auth_type, _, token = (self.headers.get("Authorization") or "").partition(" ")
                if site.unavailable:
                    code = site.unavailable.pop(0)
                elif self.path != "/runner/notify_task_end/":
                    code = 404
                elif "application/json" not in (self.headers.get("Content-Type") or ""):
                    code = 415
                elif auth_type.lower() != "bearer" or not token.strip():
                    code = 401
                elif token.strip() != site.token:
                    code = 403
                else:
                    code = 200
                    site.notified.append(json.loads(body))
                if code != 200:
                    site.refused.append(code)
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"status": "OK"}' if code == 200 else b'{"error": "refused"}')

            def log_message(self, *args: Any) -> None:
                pass

        self.media.mkdir(parents=True, exist_ok=True)
        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()),
                                          partial(Handler, directory=str(self.media.parent)))
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"


@dataclass
class RunnerManager:
    """Pod's ``RunnerManager`` row (url, token) and what Pod's code does with it."""

    url: str
    token: str

    def _h(self, **extra: str) -> dict[str, str]:
        return {**extra, "Authorization": f"Bearer {self.token}"}

    def execute(self, payload: dict[str, Any]) -> httpx.Response:  # runner_manager._try_send_to_rm
        base = self.url if self.url.endswith("/") else self.url + "/"
        return httpx.post(base + "task/execute", content=json.dumps(payload), headers=self._h(**HEADERS_JSON),
                          timeout=30)

    def status(self, task_id: str) -> str | None:  # process_tasks._check_task_status
        r = httpx.get(self.url + f"task/status/{task_id}", headers=self._h(Accept="application/json"), timeout=30)
        return r.json().get("status") if r.status_code == 200 else None

    def health(self, token: str | None = None) -> httpx.Response:  # admin.test_connection_view
        return httpx.get(self.url + "manager/health", timeout=15,
                         headers={"Accept": "application/json", "Authorization": f"Bearer {token or self.token}"})

    def import_result(self, task_id: str, task_type: str, dest: Path) -> dict[str, Path]:
        """views.download_and_import_task_result: the manifest, then each file, SHA-256 checked."""
        r = httpx.get(self.url + f"task/result/{task_id}", headers=self._h(**HEADERS_JSON), timeout=30)
        assert r.status_code == 200, r.text
        files = r.json().get("files")
        assert isinstance(files, list) and files
        got = {}
        for entry in files:
            path = entry if isinstance(entry, str) else entry.get("file_path") or entry.get("path")
            sha = None if isinstance(entry, str) else entry.get("sha256")
            if task_type == "transcription" and not path.lower().endswith((".vtt", ".json")):
                continue
            norm = os.path.normpath(path)
            assert not norm.startswith("..") and not os.path.isabs(norm), path
            digest, target = hashlib.sha256(), dest / norm
            target.parent.mkdir(parents=True, exist_ok=True)
            with httpx.stream("GET", self.url + f"task/result/{task_id}/file/{path}",
                              headers=self._h(Accept="*/*"), timeout=60) as resp, target.open("wb") as f:
                assert resp.status_code == 200, (path, resp.status_code)
                for chunk in resp.iter_bytes(chunk_size=1024 * 1024):
                    f.write(chunk)
                    digest.update(chunk)
            assert sha is not None and digest.hexdigest() == sha.strip().lower(), path
            got[path] = target
        return got


def payload(pod: PodSite, task_type: str, source: str, parameters: dict[str, Any]) -> dict[str, Any]:
    """runner_manager._prepare_task_data."""
    return {"etab_name": "University name / Pod", "app_name": "Esup-Pod", "app_version": "4.2.0",
            "task_type": task_type, "source_url": f"{pod.base_url}/media/{source}",
            "notify_url": f"{pod.base_url}/runner/notify_task_end/", "parameters": parameters}


RENDITIONS = {  # _build_rendition_parameters: Pod's VideoRendition rows, as a JSON string
    "240": {"resolution": "426x240", "video_bitrate": "400k", "audio_bitrate": "64k", "encode_mp4": True},
    "360": {"resolution": "640x360", "video_bitrate": "750k", "audio_bitrate": "96k", "encode_mp4": True},
}


@dataclass
class Setup:
    stack: Stack
    pod: PodSite
    rm: RunnerManager
    keys: dict[str, str]


@pytest.fixture
def esup(stack: Stack) -> Iterator[Setup]:
    env = {**API_ENV, "MEDIARUNNER_ESUP_OUTPUT_ROOT": str(stack.tmp / "outputs" / "esup")}
    env.pop("MEDIARUNNER_WEBHOOK_SECRET")  # Pod's webhook needs no signing secret
    pod = PodSite(stack.tmp / "pod" / "media")
    pod.start()
    with serving(stack, env) as (url, settings):
        keys = _keys(settings)
        pod.token = keys["submit"]
        yield Setup(stack, pod, RunnerManager(url + "/esup/", keys["submit"]), keys)
    pod.server.shutdown()


def run_task(s: Setup, task_type: str, source: str, parameters: dict[str, Any]) -> tuple[str, dict[str, Path]]:
    r = s.rm.execute(payload(s.pod, task_type, source, parameters))
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["status"] == "running" and len(answer["task_id"]) == 36
    task_id = answer["task_id"]
    wait_for(lambda: any(n["task_id"] == task_id for n in s.pod.notified), 240, what="Pod to be notified")
    (note,) = [n for n in s.pod.notified if n["task_id"] == task_id]
    assert note["status"] == "completed" and note["error_message"] is None, note
    assert set(note) == {"task_id", "status", "error_message", "script_output"}
    assert s.rm.status(task_id) == "completed"
    if task_type != "transcription":  # made by a worker before the task completed, not by the result request
        assert (Path(str(s.stack.settings().esup_output_root)) / task_id / "info_video.json").is_file()
    return task_id, s.rm.import_result(task_id, task_type, s.stack.tmp / "pod" / "imported" / task_id)


def clip(path: Path, seconds: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return make_clip(path, seconds=seconds)


def duration(path: Path) -> float:
    from mediarunner.media.probe import probe

    return probe(path).duration


def ffprobe_duration(path: Path) -> float:
    """The duration ffprobe reads (HLS included: a player's view, not mediarunner's input whitelist)."""
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(path)],
                         capture_output=True, text=True, check=True).stdout
    return float(out.strip())


def image_size(path: Path) -> tuple[int, int]:
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=width,height",
                          "-of", "csv=p=0", str(path)], capture_output=True, text=True, check=True).stdout
    w, h = out.strip().split(",")[:2]
    return int(w), int(h)


def assert_overview(sprite: Path, vtt: Path, seconds: float) -> None:
    """Pod's overview: a WebVTT track whose cues cover the video and point inside the sprite."""
    width, height = image_size(sprite)
    lines = vtt.read_text().splitlines()
    assert lines[0] == "WEBVTT"
    cues = [ln for ln in lines if "#xywh=" in ln]
    assert cues and len([ln for ln in lines if "-->" in ln]) == len(cues)
    for cue in cues:
        name, _, box = cue.partition("#xywh=")
        x, y, w, h = map(int, box.split(","))
        assert name == sprite.name and w > 0 and h > 0 and x + w <= width and y + h <= height, cue
    last_end = [ln for ln in lines if "-->" in ln][-1].split("-->")[1].strip()
    assert abs(sum(float(p) * 60 ** i for i, p in enumerate(reversed(last_end.split(":")))) - seconds) < 0.5


def test_encoding_as_pod_does_it(esup: Setup) -> None:
    clip(esup.pod.media / "videos" / "talk.mp4", 3)
    esup.stack.worker("cpu1", "cpu")
    esup.stack.worker("sched", "scheduler", beat=True)
    esup.pod.unavailable = [503]  # the first notify attempt finds Pod down: retried (webhook backoff)
    assert esup.rm.health().status_code == 200 and esup.rm.health().json()["status"] == "healthy"
    task_id, files = run_task(esup, "encoding", "videos/talk.mp4", {
        "rendition": json.dumps(RENDITIONS), "video_id": 12, "video_slug": "0012-talk", "video_title": "Talk"})
    assert esup.pod.refused == [503]
    info = json.loads(files["info_video.json"].read_text())
    assert info["has_stream_video"] is True and info["has_stream_thumbnail"] is True
    assert abs(info["duration"] - 3) < 0.5 and info["video_id"] == "12"
    videos = {v["filename"]: v for v in info["encode_video"]}
    assert set(videos) == {"360p.mp4", "240p.mp4", "360p.m3u8", "240p.m3u8"}  # Pod maps "360..." to its 360p
    assert {v["rendition"] for v in videos.values()} == {"640x360", "426x240"}
    assert {n: v["encoding_format"] for n, v in videos.items()} == {
        "360p.mp4": "video/mp4", "240p.mp4": "video/mp4", "360p.m3u8": "video/mp2t", "240p.m3u8": "video/mp2t"}
    assert info["encode_audio"] == [{"encoding_format": "audio/mp3", "filename": "audio_192k.mp3"}]
    thumbs = info["encode_thumbnail"]
    assert [t["filename"] for t in thumbs] == ["thumbnail_0.png", "thumbnail_1.png", "thumbnail_2.png"]
    assert [t["percentage"] for t in thumbs] == [25, 50, 75]
    assert info["encode_overview"] == {"sprite_filename": "overview.png", "vtt_filename": "overview.vtt"}
    assert info["master_playlist"] == "livestream.m3u8"
    # exactly Pod's files, each downloaded and checked against its SHA-256 by import_result
    assert set(files) == {"info_video.json", *videos, "240p.ts", "360p.ts", "livestream.m3u8", "audio_192k.mp3",
                          *(t["filename"] for t in thumbs), "overview.png", "overview.vtt"}
    for name in videos:  # what Pod's import opens: the MP4s, and each single-file HLS rendition (plain ffprobe)
        assert abs(ffprobe_duration(files[name]) - 3) < 0.5, name
    assert abs(ffprobe_duration(files["livestream.m3u8"]) - 3) < 0.5
    assert abs(duration(files["audio_192k.mp3"]) - 3) < 0.5
    assert "240p.ts" in files["240p.m3u8"].read_text() and "#EXT-X-BYTERANGE" in files["240p.m3u8"].read_text()
    assert sorted(ln for ln in files["livestream.m3u8"].read_text().splitlines() if ln.endswith(".m3u8")) == [
        "240p.m3u8", "360p.m3u8"]
    assert_overview(files["overview.png"], files["overview.vtt"], 3)
    assert image_size(files["thumbnail_1.png"]) == (640, 360)
    # a path outside the task's directory is not served
    bad = httpx.get(esup.rm.url + f"task/result/{task_id}/file/../../x", headers=esup.rm._h(), timeout=10)
    assert bad.status_code == 404
    assert_expiry(esup, task_id)


def assert_expiry(esup: Setup, task_id: str) -> None:
    """ESUP_CLEANUP_DAYS (60 by default): beat's purge removes an expired task's results through the
    output store and forgets it; Pod then gets esup-runner's 404 "Task not found"."""
    from mediarunner.models.base import utcnow
    from mediarunner.models.db import transaction
    from mediarunner.scheduler.esup_cleanup import expire_tasks
    from mediarunner.storage.store import open_store

    settings = esup.stack.settings()
    out = Path(str(settings.esup_output_root)) / task_id
    removed: list[tuple[str, str]] = []

    def remove(location: str, rel: str) -> None:
        removed.append((location, rel))
        open_store(location, settings, "output").remove(rel)

    def expire(at: Any, s: Any = settings) -> list[str]:
        return transaction(lambda db: expire_tasks(db, at, s, remove), url=settings.database_url)

    now = utcnow()
    assert expire(now + timedelta(days=59)) == [] and (out / "info_video.json").is_file()
    assert expire(now + timedelta(days=600), settings.model_copy(update={"esup_cleanup_days": 0})) == []  # 0: keep
    assert expire(now + timedelta(days=61)) == [task_id] and removed == [(str(out.parent), task_id)]
    assert not out.exists() and out.parent.is_dir()
    for path in (f"task/result/{task_id}", f"task/status/{task_id}", f"task/result/{task_id}/file/240p.mp4"):
        r = httpx.get(esup.rm.url + path, headers=esup.rm._h(Accept="application/json"), timeout=10)
        assert (r.status_code, r.json()["detail"]) == (404, "Task not found"), path  # esup-runner's words
    assert expire(now + timedelta(days=61)) == []


def test_studio_mediapackage_with_cut(esup: Setup) -> None:
    clip(esup.pod.media / "studio" / "presenter.mp4", 4)
    (esup.pod.media / "studio" / "mediapackage.xml").write_text(
        '<?xml version="1.0" encoding="UTF-8"?><mediapackage xmlns="http://mediapackage.opencastproject.org">'
        f'<media><track type="presenter/source" id="t1"><url>{esup.pod.base_url}/media/studio/presenter.mp4</url>'
        '</track></media></mediapackage>')
    esup.stack.worker("cpu1", "cpu")
    esup.stack.worker("sched", "scheduler", beat=True)
    _, files = run_task(esup, "studio", "studio/mediapackage.xml", {
        "rendition": json.dumps({"240": RENDITIONS["240"]}),
        "cut": json.dumps({"start": "00:00:01", "end": "00:00:03", "initial_duration": "00:00:04"})})
    assert not esup.pod.refused  # JSON, and the Bearer key Pod stores as the Runner Manager's token
    assert abs(duration(files["studio_base.mp4"]) - 2) < 0.5  # what Pod turns into a video
    assert "studio.mp4" not in files  # listed once, under Pod's name
    info = json.loads(files["info_video.json"].read_text())
    assert [(v["encoding_format"], v["filename"], v["rendition"]) for v in info["encode_video"]] == [
        ("video/mp4", "240p.mp4", "426x240"), ("video/mp2t", "240p.m3u8", "426x240")]
    assert abs(ffprobe_duration(files["240p.m3u8"]) - 2) < 0.5 and "overview.vtt" in files


def test_studio_two_tracks_in_pods_layout_with_a_translucent_watermark(esup: Setup) -> None:
    """Pod's studio: presentation (gray, with sound) + presenter (blue), ``presenter=pipb``, and a
    dressing watermark (red) at 50 % top left: both tracks and the blend are in the picture."""
    from tests.studio.conftest import frame_rgb, region_mean

    d = esup.pod.media / "studio2"
    d.mkdir(parents=True)
    gen = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y"]
    subprocess.run([*gen, "-f", "lavfi", "-i", "color=c=0x808080:size=320x240:rate=25:duration=3", "-f", "lavfi",
                    "-i", "sine=frequency=440:duration=3", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt",
                    "yuv420p", "-c:a", "aac", "-shortest", str(d / "slides.mp4")], check=True, timeout=60)
    subprocess.run([*gen, "-f", "lavfi", "-i", "color=c=blue:size=160x120:rate=25:duration=3", "-c:v", "libx264",
                    "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(d / "cam.mp4")], check=True, timeout=60)
    subprocess.run([*gen, "-f", "lavfi", "-i", "color=c=red:size=64x32", "-frames:v", "1", str(d / "wm.png")],
                   check=True, timeout=60)
    media = f"{esup.pod.base_url}/media/studio2"
    (d / "mediapackage.xml").write_text(
        '<?xml version="1.0" encoding="UTF-8"?><mediapackage xmlns="http://mediapackage.opencastproject.org">'
        f'<media><track type="presentation/source"><url>{media}/slides.mp4</url></track>'
        f'<track type="presenter/source"><url>{media}/cam.mp4</url></track></media></mediapackage>')
    esup.stack.worker("cpu1", "cpu")
    esup.stack.worker("sched", "scheduler", beat=True)
    _, files = run_task(esup, "studio", "studio2/mediapackage.xml", {
        "rendition": json.dumps({"240": RENDITIONS["240"]}), "presenter": "pipb",
        "dressing": json.dumps({"watermark": f"{media}/wm.png", "watermark_position_orig": "top_left",
                                "watermark_opacity": 50})})
    base = files["studio_base.mp4"]
    assert abs(duration(base) - 3) < 0.3 and image_size(base) == (320, 240)
    raw = frame_rgb(base, 1.5, 320, 240)
    r, g, b = region_mean(raw, 320, 238, 178, 298, 222)  # the presenter, 80x60 at 10 px from the bottom right
    assert b > 200 and r < 60 and g < 60, (r, g, b)
    r, g, b = region_mean(raw, 320, 100, 80, 200, 160)  # the presentation
    assert all(abs(c - 128) < 12 for c in (r, g, b)), (r, g, b)
    r, g, b = region_mean(raw, 320, 20, 20, 60, 36)  # the watermark (48x24 at 16 px), half see-through
    assert 170 < r < 210 and 45 < g < 85 and 45 < b < 85, (r, g, b)


def test_the_api_process_never_loads_the_pod_packaging() -> None:
    """Pod's files are made by workers (``tasks/pod.py``): the API (``/esup`` included) imports no
    module that runs ffmpeg for them, so ``task/result`` never spawns one."""
    code = ("import sys; from mediarunner.api import create_app; import mediarunner.api.esup_results; "
            "print(sorted(m for m in sys.modules if m == 'mediarunner.media.pod_package' "
            "or m.startswith('mediarunner.tasks')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "[]", out.stdout


def test_a_failed_packaging_fails_the_task_for_pod(esup: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    """The packaging step is part of the task: when it fails, Pod is notified ``failed`` with a
    message that says so, its status is ``failed`` and ``task/result`` answers 400."""
    import mediarunner.tasks.pod
    from mediarunner.errors import UnsupportedMediaError

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise UnsupportedMediaError("no frame could be read")

    monkeypatch.setattr(mediarunner.tasks.pod, "package_for_pod", broken)
    clip(esup.pod.media / "videos" / "short.mp4", 2)
    esup.stack.inproc_worker("cpu1", "cpu")
    esup.stack.worker("sched", "scheduler", beat=True)
    r = esup.rm.execute(payload(esup.pod, "encoding", "videos/short.mp4", {"rendition": json.dumps(RENDITIONS)}))
    assert r.status_code == 200, r.text
    task_id = r.json()["task_id"]
    wait_for(lambda: any(n["task_id"] == task_id for n in esup.pod.notified), 240, what="Pod to be notified")
    (note,) = [n for n in esup.pod.notified if n["task_id"] == task_id]
    assert note["status"] == "failed", note
    message = note["error_message"]
    assert "packaging for Esup-Pod failed" in message and "no frame could be read" in message, message
    assert esup.rm.status(task_id) == "failed"
    res = httpx.get(esup.rm.url + f"task/result/{task_id}", headers=esup.rm._h(**HEADERS_JSON), timeout=30)
    assert res.status_code == 400 and "packaging for Esup-Pod failed" in res.json()["detail"]
    out = Path(str(esup.stack.settings().esup_output_root)) / task_id
    assert (out / "360p.mp4").is_file() and not (out / "info_video.json").exists()


def test_a_task_past_the_cleanup_age_is_not_found_even_before_the_purge(stack: Stack) -> None:
    """The API applies ESUP_CLEANUP_DAYS itself (here 10 s): Pod gets 404 "Task not found"."""
    env = {**API_ENV, "MEDIARUNNER_ESUP_OUTPUT_ROOT": str(stack.tmp / "outputs" / "esup"),
           "MEDIARUNNER_ESUP_CLEANUP_DAYS": str(10 / 86400)}
    pod = PodSite(stack.tmp / "pod" / "media")
    pod.start()
    try:
        clip(pod.media / "v.mp4", 1)
        with serving(stack, env) as (url, settings):
            rm = RunnerManager(url + "/esup/", _keys(settings)["submit"])
            r = rm.execute(payload(pod, "encoding", "v.mp4", {}))
            assert r.status_code == 200, r.text
            task_id = r.json()["task_id"]
            assert rm.status(task_id) == "pending"  # no worker: it waits, then expires
            wait_for(lambda: rm.status(task_id) is None, 60, what="the task to expire")
            got = httpx.get(rm.url + f"task/result/{task_id}", headers=rm._h(Accept="application/json"), timeout=10)
            assert (got.status_code, got.json()["detail"]) == (404, "Task not found")
    finally:
        pod.server.shutdown()


def test_refusals_are_problems(esup: Setup) -> None:
    clip(esup.pod.media / "v.mp4", 1)
    good = payload(esup.pod, "encoding", "v.mp4", {})
    for token in ("nope", esup.keys["read"]):
        r = RunnerManager(esup.rm.url, token).execute(good)
        assert r.status_code in (401, 403) and r.headers["content-type"] == "application/problem+json"
    assert esup.rm.health("nope").status_code == 401  # Pod's "Test connection": "check the bearer token"
    missing = {k: v for k, v in good.items() if k != "source_url"}
    for bad in ({**good, "task_type": "live"}, {**good, "notify_url": "http://10.1.2.3/runner/notify_task_end/"},
                {**good, "parameters": {"rendition": "{not json"}}, missing):
        r = esup.rm.execute(bad)
        assert r.status_code in (400, 422), r.text
        assert r.headers["content-type"] == "application/problem+json"
    r = esup.rm.execute(good)  # no worker: it waits
    task_id = r.json()["task_id"]
    assert esup.rm.status(task_id) == "pending"
    early = httpx.get(esup.rm.url + f"task/result/{task_id}", headers=esup.rm._h(), timeout=10)
    assert early.status_code == 425
    assert esup.rm.status("0" * 36) is None
    shown = httpx.get(esup.rm.url + f"task/status/{task_id}", headers=esup.rm._h(), timeout=10)
    job_id = shown.json()["job_id"]
    job = httpx.get(esup.rm.url.replace("/esup/", f"/v1/jobs/{job_id}"), timeout=10,
                       headers={"Authorization": f"Bearer {esup.keys['rw']}"})
    assert job.status_code == 200 and job.json()["meta"]["esup"]["etab_name"] == "University name / Pod"
    assert all(esup.rm.token not in text for text in (shown.text, job.text))  # Pod's key is never shown


def test_transcription_as_pod_does_it(esup: Setup) -> None:
    from tests.transcribe.conftest import SPEECH_TEXT

    wav, mp4 = esup.stack.tmp / "speech.wav", esup.pod.media / "videos" / "speech.mp4"
    mp4.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(wav), SPEECH_TEXT], check=True)
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "color=c=blue:s=128x72:r=10", "-i", str(wav),
                    "-shortest", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", str(mp4)], check=True)
    esup.stack.inproc_worker("cpu1", queues="cpu")
    esup.stack.worker("sched", "scheduler", beat=True)
    _, files = run_task(esup, "transcription", "videos/speech.mp4", {  # _prepare_transcription_parameters
        "language": "en", "source_language": "auto", "duration": 6.0, "normalize": False, "video_id": 5})
    assert not esup.pod.refused
    assert set(files) == {"transcript.vtt", "transcript.json"}  # what Pod keeps of a transcription
    vtt = files["transcript.vtt"].read_text()
    assert vtt.startswith("WEBVTT") and "-->" in vtt


def test_pod_parameters_become_rungs_and_operations() -> None:
    from mediarunner.api import esup_tasks
    from mediarunner.errors import ValidationError

    rungs, resolutions = esup_tasks.ladder({"rendition": json.dumps({
        **RENDITIONS, "1080": {"resolution": "1920x1080", "video_bitrate": "3M", "audio_bitrate": "192k",
                               "encode_mp4": False}})})
    assert rungs is not None
    assert [(r.name, r.height, r.video_bitrate_k, r.audio_bitrate_k) for r in rungs] == [
        ("240p", 240, 400, 64), ("360p", 360, 750, 96), ("1080p", 1080, 3000, 192)]
    assert resolutions == {"240p": "426x240", "360p": "640x360", "1080p": "1920x1080"}
    assert esup_tasks.ladder({}) == (None, {})
    ops = esup_tasks.operations({
        "cut": json.dumps({"start": "00:00:07", "end": "00:01:17.5", "initial_duration": "00:01:00"}),
        "dressing": json.dumps({"watermark": "https://pod.example/media/wm.png", "watermark_position": "haut gauche",
                                "opening_credits_video": "https://pod.example/media/open.mp4"})})
    assert ops == [{"op": "cut", "start": 7.0, "end": 60.0},
                   {"op": "watermark", "image_url": "https://pod.example/media/wm.png", "position": "top-left",
                    "scale": 0.15, "opacity": 1.0},
                   {"op": "intro", "url": "https://pod.example/media/open.mp4"}]
    for dressing, position, opacity in (  # Pod's Dressing.to_json: position_orig, opacity in percent
            ({"watermark_position_orig": "bottom_left", "watermark_position": "En bas à gauche",
              "watermark_opacity": 40}, "bottom-left", 0.4),
            ({"watermark_position": "en bas à droite", "watermark_opacity": "100"}, "bottom-right", 1.0),
            ({"watermark_position": "", "watermark_opacity": "lots"}, "top-right", 1.0),
            ({"watermark_position_orig": "top_right", "watermark_opacity": 0}, "top-right", 0.01)):
        (op,) = esup_tasks.operations({"dressing": json.dumps({"watermark": "https://pod.example/wm.png", **dressing})})
        assert (op["position"], op["opacity"]) == (position, opacity), dressing
    assert esup_tasks.transcription_language({"language": "fr", "source_language": "auto"}) == "fr"
    assert esup_tasks.transcription_language({"language": "", "source_language": "auto"}) is None
    for bad in ({"rendition": json.dumps({"360": {"resolution": "big"}})}, {"rendition": "[1]"},
                {"cut": json.dumps({"start": "soon", "end": "later"})}):
        with pytest.raises(ValidationError):
            esup_tasks.ladder(bad) if "rendition" in bad else esup_tasks.operations(bad)


def test_mediapackage_tracks_layout_and_hostile_xml() -> None:
    from mediarunner.api.esup_tasks import studio_source
    from mediarunner.errors import ValidationError

    two = (b'<mediapackage xmlns="http://mediapackage.opencastproject.org"><media>'
           b'<track type="presentation/source"><url>https://pod/slides.mp4</url></track>'
           b'<track type="presenter/source"><url>https://pod/cam.mp4</url></track></media></mediapackage>')
    both = ("https://pod/slides.mp4", [{"op": "compose", "url": "https://pod/cam.mp4", "layout": "mid"}])
    assert studio_source(two) == both  # esup-runner's default layout
    assert studio_source(two, "piph")[1][0]["layout"] == "piph"  # Pod's parameters.presenter
    with_attr = two.replace(b"<mediapackage ", b'<mediapackage presenter="pipb" ')
    assert studio_source(with_attr)[1][0]["layout"] == "pipb"  # the mediapackage's own choice...
    assert studio_source(with_attr, "mid")[1][0]["layout"] == "mid"  # ...unless Pod's parameter says
    assert studio_source(two, "sideways") == both
    assert studio_source(two.replace(b"presenter/source", b"other/source")) == ("https://pod/slides.mp4", [])
    assert studio_source(two.replace(b"presentation/source", b"other/source")) == ("https://pod/cam.mp4", [])
    for bad in (b'<!DOCTYPE x [<!ENTITY a "aaaa">]><mediapackage>&a;</mediapackage>', b"<mediapackage>",
                b"<mediapackage><media/></mediapackage>"):
        with pytest.raises(ValidationError):
            studio_source(bad)


def test_notify_of_a_cancelled_task_is_sent_once_even_if_pod_answers_late(api: Any) -> None:
    """Pod imports the result inside its notify handler: an answer later than the webhook timeout
    is not a reason to send it again. A cancelled family is ``failed`` for Pod."""
    import time

    from mediarunner.models.base import utcnow
    from mediarunner.scheduler import webhooks

    got: list[tuple[dict[str, str], bytes]] = []

    class Slow(SimpleHTTPRequestHandler):
        def do_POST(self) -> None:
            got.append((dict(self.headers.items()), self.rfile.read(int(self.headers["Content-Length"]))))
            time.sleep(1.5)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", free_port()), Slow)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{srv.server_address[1]}"
        r = api.http.post("/esup/task/execute", headers=api.h("submit"), json={
            "etab_name": "U", "app_name": "Esup-Pod", "task_type": "encoding", "source_url": f"{base}/media/v.mp4",
            "notify_url": f"{base}/runner/notify_task_end/", "parameters": {}})
        assert r.status_code == 200, r.text
        assert api.http.post(f"/v1/jobs/{r.json()['job_id']}/cancel", headers=api.h()).status_code == 200
        settings = api.stack.settings().model_copy(update={"webhook_timeout_seconds": 0.5})
        assert webhooks.enqueue_finished(settings, utcnow()) == 1
        assert list(webhooks.deliver_due(settings, utcnow()).values()) == ["delivered"]
        assert webhooks.deliver_due(settings, utcnow() + timedelta(hours=1)) == {}
    finally:
        srv.shutdown()
    ((headers, body),) = got
    assert headers["Authorization"] == f"Bearer {api.keys['submit']}" and "Mediarunner-Signature" not in headers
    assert json.loads(body) == {"task_id": r.json()["task_id"], "status": "failed", "error_message": "cancelled",
                                "script_output": f"mediarunner job {r.json()['job_id']}: failed"}
