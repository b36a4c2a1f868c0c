"""Split renditions end to end: the parts of one video encoded by two workers at once, joined by
the last part into the same outputs an unsplit job makes (real ffmpeg, PostgreSQL, workers)."""

from __future__ import annotations

import itertools
import json
import subprocess
from pathlib import Path

from mediarunner.models.enums import JobState, JobType
from tests.media_checks import duration, master_variants, media_playlist_duration, streams
from tests.support import Stack, make_clip, wait_for

DONE = JobState.COMPLETED
SPLIT_ENV = {"MEDIARUNNER_TRANSCODE_PART_MIN_SECONDS": "3"}  # the stack's segments are 2 s


def frame_times(path: Path, keyframes_only: bool = False) -> list[float]:
    cmd = ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "frame=pts_time",
           "-of", "json", *(["-skip_frame", "nokey"] if keyframes_only else []), str(path)]
    out = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    return [float(f["pts_time"]) for f in out["frames"]]


def test_split_ladder_joins_parts_into_the_unsplit_outputs(stack: Stack, tmp_path: Path) -> None:
    src = make_clip(tmp_path / "in.mp4", seconds=12.0, size="854x480")
    stack.inproc_worker("a", extra_env=SPLIT_ENV)
    stack.inproc_worker("b", extra_env=SPLIT_ENV)
    client = stack.client()
    out, ref = stack.tmp / "outputs" / "split", stack.tmp / "outputs" / "whole"
    job = client.submit_transcode(str(src), str(out), renditions=["480p", "360p"], parts=3)
    whole = client.submit_transcode(str(src), str(ref), renditions=["480p", "360p"])
    job, whole = client.wait(job.id, timeout=300), client.wait(whole.id, timeout=300)
    assert all(j.state is DONE for j in job.family + whole.family), [(j.state, j.error) for j in job.family]

    parts = [j for j in job.family if j.type is JobType.TRANSCODE_RENDITION]
    assert len(parts) == 6 and job.result is not None and job.result["parts"] == 3
    assert "variant" not in job.result  # split: the parent only probed and planned
    for name in ("480p", "360p"):
        mine = [j for j in parts if j.payload["rendition"] == name]
        assert sorted(j.payload["part"] for j in mine) == [0, 1, 2]
        joiners = [j for j in mine if j.result and j.result.get("joined")]
        assert len(joiners) == 1 and all(j.result and j.result["part_encoded"] for j in mine)
        assert [a.kind for a in joiners[0].artifacts] == ["hls_playlist", "mp4"]

        mp4, ref_mp4 = out / f"{name}.mp4", ref / f"{name}.mp4"
        (v,) = streams(mp4, "video")
        (a,) = streams(mp4, "audio")
        assert (v["codec_name"], a["codec_name"]) == ("h264", "aac")
        ref_v = streams(ref_mp4, "video")[0]
        assert (v["width"], v["height"]) == (ref_v["width"], ref_v["height"])
        assert abs(duration(mp4) - 12.0) <= 0.1 and abs(float(a["duration"]) - 12.0) <= 0.1
        # Every frame once, in order, and keyframes on the 2 s segment grid, as in one encode.
        times, ref_times = frame_times(mp4), frame_times(ref_mp4)
        assert len(times) == len(ref_times) == 300
        assert all(b > a for a, b in itertools.pairwise(times))
        assert frame_times(mp4, keyframes_only=True) == frame_times(ref_mp4, keyframes_only=True)
        playlist = out / "hls" / name / "index.m3u8"
        assert abs(media_playlist_duration(playlist) - 12.0) <= 0.1
        assert playlist.read_text().count("#EXTINF") == (ref / "hls" / name / "index.m3u8").read_text().count(
            "#EXTINF") == 6
    assert sorted(uri for _, uri in master_variants(out / "master.m3u8")) == \
        ["hls/360p/index.m3u8", "hls/480p/index.m3u8"]
    # joined parts are removed right after each joiner's completion is committed
    wait_for(lambda: not (out / ".parts").exists(), 10, what="the joined parts to be removed")


def test_a_short_video_is_not_split(stack: Stack, tmp_path: Path) -> None:
    src = make_clip(tmp_path / "short.mp4", seconds=4.0, size="640x360")
    stack.inproc_worker("a", extra_env=SPLIT_ENV)
    client = stack.client()
    out = stack.tmp / "outputs" / "short"
    job = client.wait(client.submit_transcode(str(src), str(out), renditions=["360p", "240p"], parts=4).id,
                      timeout=120)
    assert all(j.state is DONE for j in job.family), [(j.state, j.error) for j in job.family]
    assert job.result is not None and job.result["parts"] == 1  # 4 s: parts of 3 s would not fit twice
    kids = [j for j in job.family if j.type is JobType.TRANSCODE_RENDITION]
    assert sorted((j.payload["rendition"], j.payload["part"]) for j in kids) == [("240p", 0), ("360p", 0)]
    assert all(j.result and "joined" not in j.result for j in kids)  # each encoded its rung whole
    assert sorted(p.name for p in out.glob("*.mp4")) == ["240p.mp4", "360p.mp4"]
    assert len(master_variants(out / "master.m3u8")) == 2 and not (out / ".parts").exists()
