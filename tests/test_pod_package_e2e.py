"""Esup-Pod packaging as the last step of a ladder (``tasks/pod.py``), on workers: with the ladder
split into parts encoded by two workers at once, exactly one job (the one that published the last
rung) makes Pod's files and ``info_video.json``, through the output store, before it completes."""

from __future__ import annotations

import json
from pathlib import Path

from mediarunner.config.settings import Rendition
from mediarunner.models.enums import JobState, JobType
from mediarunner.models.payloads import PodPackaging
from tests.media_checks import duration
from tests.support import Stack, make_clip

SPLIT_ENV = {"MEDIARUNNER_TRANSCODE_PART_MIN_SECONDS": "3"}  # the stack's segments are 2 s
LADDER = [Rendition(name="360p", height=360, video_bitrate_k=750, audio_bitrate_k=96),
          Rendition(name="240p", height=240, video_bitrate_k=400, audio_bitrate_k=64)]


def test_split_ladder_is_packaged_once_by_its_last_job(stack: Stack, tmp_path: Path) -> None:
    src = make_clip(tmp_path / "in.mp4", seconds=9.0, size="640x360")
    stack.inproc_worker("a", extra_env=SPLIT_ENV)
    stack.inproc_worker("b", extra_env=SPLIT_ENV)
    client = stack.client()
    out = stack.tmp / "outputs" / "pod"
    pod = PodPackaging(resolutions={"360p": "640x360", "240p": "426x240"}, video_id="7", video_title="Talk")
    job = client.submit_transcode(str(src), str(out), formats=("mp4",), ladder=LADDER, parts=3, pod=pod)
    job = client.wait(job.id, timeout=300)
    assert all(j.state is JobState.COMPLETED for j in job.family), [(j.type, j.state, j.error) for j in job.family]
    ladder = [j for j in job.family if j.type in (JobType.TRANSCODE, JobType.TRANSCODE_RENDITION)]
    assert sum(1 for j in ladder if j.result and j.result.get("joined")) == 2  # really split
    (packager,) = [j for j in ladder if j.result and "pod" in j.result]
    assert packager.result is not None and packager.result["pod"]["info"] == "info_video.json"
    info = json.loads((out / "info_video.json").read_text())
    assert (info["video_id"], info["video_title"]) == ("7", "Talk") and "video_slug" not in info
    assert {(v["filename"], v["rendition"]) for v in info["encode_video"]} == {
        ("360p.mp4", "640x360"), ("240p.mp4", "426x240"), ("360p.m3u8", "640x360"), ("240p.m3u8", "426x240")}
    named = [v["filename"] for v in info["encode_video"]] + [a["filename"] for a in info["encode_audio"]]
    named += [t["filename"] for t in info["encode_thumbnail"]] + list(info["encode_overview"].values())
    assert all((out / name).is_file() for name in named), named
    assert abs(info["duration"] - 9) < 0.5 and abs(duration(out / "audio_192k.mp3") - 9) < 0.5
    # the Pod files are the packager's artifacts, each with the SHA-256 Pod checks its download against
    pod_files = {Path(a.path).name: a.checksum for a in packager.artifacts if a.kind == "pod"}
    assert "info_video.json" in pod_files and "livestream.m3u8" in pod_files and all(pod_files.values())
