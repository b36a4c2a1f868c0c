"""Source passthrough end to end: a rung the source already fits is stream-copied (same video packets),
one it does not fit (keyframes off the segment grid, bitrate over the cap) is encoded, and the
setting turns it off; every decision and its reason is in the job result."""

from __future__ import annotations

import subprocess
from pathlib import Path

from mediarunner.models.enums import JobState
from tests.media_checks import streams
from tests.support import Stack


def _clip(path: Path, *, keyint: str, bitrate: str, seconds: int = 4) -> Path:
    subprocess.run(["ffmpeg", "-v", "error", "-y",
                    "-f", "lavfi", "-i", f"testsrc2=size=640x360:rate=25:duration={seconds}",
                    "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}",
                    "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-b:v", bitrate,
                    "-maxrate", bitrate, "-bufsize", bitrate, *keyint.split(), "-c:a", "aac", "-shortest", str(path)],
                   check=True)
    return path


def _video_packets(path: Path) -> list[str]:
    out = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:v:0", "-c", "copy", "-f", "framemd5",
                          "-"], check=True, capture_output=True, text=True).stdout
    return [ln.split(",")[-1].strip() for ln in out.splitlines() if not ln.startswith("#")]


def test_a_fitting_rung_is_copied_and_a_misfit_is_encoded(stack: Stack, tmp_path: Path) -> None:
    on_grid = _clip(tmp_path / "grid.mp4", keyint="-force_key_frames expr:gte(t,n_forced*2) -g 100",
                    bitrate="400k")  # the stack's segments are 2 s
    off_grid = _clip(tmp_path / "off.mp4", keyint="-g 250 -sc_threshold 0", bitrate="400k")
    too_big = _clip(tmp_path / "big.mp4", keyint="-force_key_frames expr:gte(t,n_forced*2)", bitrate="3000k")
    stack.inproc_worker("a")
    client = stack.client()
    out = {k: stack.tmp / "outputs" / k for k in ("grid", "off", "big")}
    jobs = {k: client.submit_transcode(str(src), str(out[k]), renditions=["360p", "240p"])
            for k, src in (("grid", on_grid), ("off", off_grid), ("big", too_big))}
    done = {k: client.wait(j.id, timeout=180) for k, j in jobs.items()}
    assert all(j.state is JobState.COMPLETED for d in done.values() for j in d.family)

    grid = done["grid"].result or {}
    assert grid["passthrough"] == {"used": True, "reason": "source fits 360p: video stream-copied"}
    assert _video_packets(out["grid"] / "360p.mp4") == _video_packets(on_grid)  # not re-encoded
    assert streams(out["grid"] / "360p.mp4", "audio")[0]["codec_name"] == "aac"
    assert (out["grid"] / "hls" / "360p" / "index.m3u8").read_text().count("#EXTINF") == 2
    (lower,) = done["grid"].children  # 240p: another size, encoded
    assert (lower.result or {})["passthrough"]["used"] is False and "640x360" in lower.result["passthrough"]["reason"]

    off = (done["off"].result or {})["passthrough"]
    assert off["used"] is False and off["reason"] == "no source keyframe at 2s (segments are 2s)"
    assert _video_packets(out["off"] / "360p.mp4") != _video_packets(off_grid)
    big = (done["big"].result or {})["passthrough"]
    assert big["used"] is False and "above the rung's cap 800000" in big["reason"]


def test_the_setting_turns_passthrough_off(stack: Stack, tmp_path: Path) -> None:
    src = _clip(tmp_path / "grid.mp4", keyint="-force_key_frames expr:gte(t,n_forced*2)", bitrate="400k", seconds=2)
    stack.inproc_worker("a", extra_env={"MEDIARUNNER_TRANSCODE_PASSTHROUGH": "false"})
    client = stack.client()
    job = client.wait(client.submit_transcode(str(src), str(stack.tmp / "outputs" / "p"), renditions=["360p"]).id,
                      timeout=120)
    assert job.state is JobState.COMPLETED and "passthrough" not in (job.result or {})
    assert _video_packets(stack.tmp / "outputs" / "p" / "360p.mp4") != _video_packets(src)
