from __future__ import annotations

import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from mediarunner.errors import InvalidInputError, JobCancelled, ProcessingError, ValidationError
from mediarunner.media.ladder import PlannedRendition
from mediarunner.media.live import live_args, plan_resume, run_live
from tests.support import wait_for

from .conftest import X264, ffmpeg_gen

LADDER = [
    PlannedRendition(
        name="240p",
        width=320,
        height=240,
        video_bitrate_k=300,
        audio_bitrate_k=64,
        has_video=True,
        has_audio=True,
    ),
    PlannedRendition(
        name="120p",
        width=160,
        height=120,
        video_bitrate_k=120,
        audio_bitrate_k=48,
        has_video=True,
        has_audio=True,
    ),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def is_listening(port: int) -> bool:
    """Port in LISTEN state, read from /proc (connecting would use up ffmpeg's single accept)."""
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                return True
    return False


def publish(url: str, seconds: float) -> subprocess.Popen[bytes]:
    """Publish a generated A/V stream in real time to an RTMP URL."""
    return subprocess.Popen(
        ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-re",
         "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=15",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
         "-t", f"{seconds}", *X264, "-g", "15", "-c:a", "aac", "-b:a", "64k", "-f", "flv", url],
    )  # fmt: skip


class LiveRun:
    """run_live in a thread, capturing progress, the outcome and timing."""

    def __init__(self, **kwargs: Any) -> None:
        self.progress: list[float] = []
        self.error: BaseException | None = None
        self.cancel = threading.Event()
        self.kwargs = kwargs
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.ended_at: float | None = None

    def _run(self) -> None:
        try:
            run_live(on_progress=self.progress.append, should_cancel=self.cancel.is_set, **self.kwargs)
        except BaseException as exc:
            self.error = exc
        finally:
            self.ended_at = time.monotonic()

    def start(self) -> LiveRun:
        self.thread.start()
        return self

    def join(self, timeout: float) -> None:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "run_live did not return"


def segments_in(playlist: Path) -> list[str]:
    return [ln for ln in playlist.read_text().splitlines() if ln and not ln.startswith("#")]


def playlist_seconds(playlist: Path) -> float:
    return sum(
        float(ln.split(":", 1)[1].split(",", 1)[0])
        for ln in playlist.read_text().splitlines()
        if ln.startswith("#EXTINF:")
    )


def has_segment(out: Path, name: str = "240p") -> bool:
    pl = out / name / "index.m3u8"
    return pl.is_file() and bool(segments_in(pl))


def test_rtmp_publish_to_live_ladder(tmp_path: Path, publishers: list[subprocess.Popen[bytes]]) -> None:
    out = tmp_path / "live"
    port = free_port()
    url = f"rtmp://127.0.0.1:{port}/live/stream"
    run = LiveRun(
        input_url=url, out_dir=out, renditions=LADDER, listen=True, listen_timeout=30, preset="ultrafast"
    ).start()
    assert wait_for(lambda: is_listening(port), 10)
    publishers.append(publish(url, 7))
    # Playlists appear while the stream is still running.
    assert wait_for(lambda: has_segment(out) and (out / "master.m3u8").is_file(), 15)
    assert run.thread.is_alive()
    assert "#EXT-X-ENDLIST" not in (out / "240p" / "index.m3u8").read_text()
    run.join(30)
    assert run.error is None
    master = (out / "master.m3u8").read_text()
    assert "240p/index.m3u8" in master and "120p/index.m3u8" in master and "RESOLUTION=160x120" in master
    for name in ("240p", "120p"):
        pl = out / name / "index.m3u8"
        text = pl.read_text()
        assert text.rstrip().endswith("#EXT-X-ENDLIST") and "#EXT-X-PLAYLIST-TYPE:EVENT" in text
        assert abs(playlist_seconds(pl) - 7) < 1.0
        assert all((out / name / seg).is_file() for seg in segments_in(pl))
    assert not list(out.rglob("*.tmp"))
    assert run.progress == sorted(run.progress) and 6 <= run.progress[-1] <= 7.5


def test_cancel_stops_within_two_seconds(tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    ffmpeg_gen(
        "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=15:duration=10",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=10",
        *X264, "-c:a", "aac", "-shortest", str(clip),
    )  # fmt: skip
    out = tmp_path / "live"
    run = LiveRun(
        input_url=str(clip),
        out_dir=out,
        renditions=LADDER[1:],
        realtime=True,
        preset="ultrafast",
        cancel_poll=0.2,
    ).start()
    assert wait_for(lambda: has_segment(out, "120p"), 15)
    t0 = time.monotonic()
    run.cancel.set()
    run.join(10)
    assert isinstance(run.error, JobCancelled)
    assert run.ended_at is not None and run.ended_at - t0 < 2.0


def test_stalled_publisher_then_failover_resume(tmp_path: Path, publishers: list[subprocess.Popen[bytes]]) -> None:
    out = tmp_path / "live"
    port = free_port()
    url = f"rtmp://127.0.0.1:{port}/live/stream"
    first = LiveRun(
        input_url=url, out_dir=out, renditions=LADDER, listen=True, preset="ultrafast", stall_timeout=2.0,
        cancel_poll=0.2,
    ).start()  # fmt: skip
    assert wait_for(lambda: is_listening(port), 10)
    pub = publish(url, 30)
    publishers.append(pub)
    assert wait_for(lambda: has_segment(out), 15)
    pub.send_signal(signal.SIGSTOP)  # the source freezes: no more data, connection stays open
    first.join(15)
    assert isinstance(first.error, ProcessingError) and "stalled" in str(first.error)
    before = {n: segments_in(out / n / "index.m3u8") for n in ("240p", "120p")}
    assert all(before.values())

    # Another worker takes over the same output directory.
    port2 = free_port()
    url2 = f"rtmp://127.0.0.1:{port2}/live/stream"
    second = LiveRun(input_url=url2, out_dir=out, renditions=LADDER, listen=True, preset="ultrafast").start()
    assert wait_for(lambda: is_listening(port2), 10)
    publishers.append(publish(url2, 4))
    second.join(30)
    assert second.error is None
    for name, old in before.items():
        pl = out / name / "index.m3u8"
        segs = segments_in(pl)
        assert segs[: len(old)] == old  # the earlier segments are kept, in order
        assert len(segs) > len(old)
        numbers = [int(s[4:9]) for s in segs]
        assert numbers == sorted(set(numbers))  # numbering continues, nothing overwritten
        text = pl.read_text()
        assert "#EXT-X-DISCONTINUITY" in text and text.rstrip().endswith("#EXT-X-ENDLIST")
        assert all((out / name / s).is_file() for s in segs)


def test_plan_resume(tmp_path: Path) -> None:
    out = tmp_path / "live"
    (out / "240p").mkdir(parents=True)
    (out / "120p").mkdir()
    assert plan_resume(out, LADDER).start_number is None
    for n in (0, 1, 2):
        (out / "240p" / f"seg_{n:05d}.ts").write_bytes(b"x")
    (out / "120p" / "seg_00003.ts").write_bytes(b"x")
    (out / "120p" / "seg_00004.ts.tmp").write_bytes(b"partial")
    plan = plan_resume(out, LADDER)
    assert (plan.append, plan.start_number) == (False, 4)
    assert not (out / "120p" / "seg_00004.ts.tmp").exists()
    args = live_args("rtmp://127.0.0.1:1935/live/x", out, LADDER, resume=plan)
    assert args[args.index("-start_number") + 1] == "4"
    (out / "120p" / "index.m3u8").write_text("#EXTM3U\n")
    plan = plan_resume(out, LADDER)
    assert plan.append and plan.start_number is None
    args = live_args("rtmp://127.0.0.1:1935/live/x", out, LADDER, resume=plan)
    assert "append_list" in args[args.index("-hls_flags") + 1] and "-start_number" not in args
    plan_resume(out, LADDER, resume=False)
    assert not list(out.rglob("*.ts")) and not list(out.rglob("*.m3u8"))


def test_live_args_ladder() -> None:
    audio = PlannedRendition(
        name="audio",
        width=None,
        height=None,
        video_bitrate_k=None,
        audio_bitrate_k=96,
        has_video=False,
        has_audio=True,
    )
    args = live_args("srt://127.0.0.1:9000?mode=caller", Path("/tmp/o"), [*LADDER, audio], segment_seconds=4)
    assert args[args.index("-var_stream_map") + 1] == "v:0,a:0,name:240p v:1,a:1,name:120p a:2,name:audio"
    assert args[args.index("-hls_time") + 1] == "4"
    assert "-rw_timeout" in args and "-listen" not in args
    assert args[args.index("-b:a:2") + 1] == "96k"


@pytest.mark.parametrize(
    ("url", "kwargs", "error"),
    [
        ("gopher://h/x", {}, InvalidInputError),
        ("rtmp://user:pw@127.0.0.1/live/x", {}, ValidationError),
        ("/no/such/file.mp4", {}, InvalidInputError),
        ("http://127.0.0.1/x.m3u8", {"listen": True}, ValidationError),
        ("rtmp://127.0.0.1/live/x", {"renditions": []}, ValidationError),
        ("rtmp://127.0.0.1/live/x", {"renditions": [LADDER[0], LADDER[0]]}, ValidationError),
        ("rtmp://127.0.0.1/live/x", {"segment_seconds": 0}, ValidationError),
    ],
)
def test_live_validation(url: str, kwargs: dict[str, object], error: type[Exception], tmp_path: Path) -> None:
    kw: dict[str, object] = {"renditions": LADDER, **kwargs}
    with pytest.raises(error):
        run_live(url, tmp_path / "o", **kw)  # type: ignore[arg-type]
