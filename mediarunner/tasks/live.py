"""Live transcoding: a live input -> a live HLS ladder, until the stream ends or the job is cancelled.

Output layout under the job's output (see ``mediarunner.media.live``)::

    master.m3u8, <rendition>/index.m3u8 (EVENT playlists), <rendition>/seg_00000.ts ...

Outputs a store can offer as a local directory are written in place by ffmpeg (every file through
a temporary name and a rename). Others (remote stores) are written to scratch and a background
:class:`LiveSync` uploads what is new every ``segment/2`` seconds: segments first, then the
playlists as they were when the segments were taken, so a reader never meets a playlist naming
a segment that is not there yet.

Progress: a live stream has no length, so ``progress`` stays 0 while it runs (100 when it
completes); the seconds of media processed, over all attempts, are in ``result["seconds_processed"]``
(written with every heartbeat). A failed-over attempt resumes the same output: ffmpeg appends
to the playlists (numbering continues after an ``#EXT-X-DISCONTINUITY``).
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any

from mediarunner.config import Rendition
from mediarunner.errors import InvalidInputError, JobCancelled, MediarunnerError, StorageError
from mediarunner.media.ladder import PlannedRendition
from mediarunner.media.live import MASTER_PLAYLIST, VARIANT_PLAYLIST, run_live
from mediarunner.models.enums import Stage
from mediarunner.models.locations import check_live_input
from mediarunner.models.payloads import LivePayload, load
from mediarunner.storage.store import Store
from mediarunner.tasks import io
from mediarunner.tasks.context import JobContext
from mediarunner.tasks.runtime import Outcome

log = logging.getLogger(__name__)


def live_renditions(rungs: tuple[Rendition, ...], *, audio: bool) -> list[PlannedRendition]:
    """The live ladder. The source is unknown until it plays, so every rung is 16:9; other aspect
    ratios are letterboxed (ffmpeg fits the picture inside, never stretches it)."""
    return [PlannedRendition(name=r.name, width=max(2, round(r.height * 16 / 9 / 2) * 2), height=r.height,
                             video_bitrate_k=r.video_bitrate_k, audio_bitrate_k=r.audio_bitrate_k if audio else None,
                             has_video=True, has_audio=audio) for r in rungs]


def run_live_job(ctx: JobContext) -> Outcome:
    p = load(LivePayload, ctx.job.payload)
    s = ctx.settings
    # Input roots or an allowed network, checked again right before ffmpeg opens it (submitter's view may differ).
    input_url = check_live_input(p.input_url, s.input_roots, s.allowed_networks, listen=p.listen)
    renditions = live_renditions(p.renditions, audio=p.audio)
    # Attempt 1 starts a fresh stream; later attempts (failover, retry, restart) continue the output.
    resume = ctx.job.attempt > 1
    segment_seconds = p.segment_seconds or s.live_segment_seconds
    out_dir, sync = _live_output(ctx, p.output, renditions, resume=resume, segment_seconds=segment_seconds)
    previous = float((ctx.job.result or {}).get("seconds_processed", 0.0)) if resume else 0.0
    seconds = [0.0]

    def on_progress(sec: float) -> None:
        seconds[0] = sec
        ctx.note(seconds_processed=round(previous + sec, 3))

    def should_stop() -> bool:
        return ctx.should_cancel() or (sync is not None and sync.broken)

    ctx.set_stage(Stage.PROCESSING)
    ctx.log(f"live {p.input_url} -> {p.output} ({', '.join(r.name for r in renditions)}; "
            f"{'resuming' if resume else 'fresh'})")
    if sync is not None:
        sync.start()
    try:
        run_live(input_url, out_dir, renditions, listen=p.listen, segment_seconds=segment_seconds,
                 ffmpeg=s.ffmpeg_path, preset=s.x264_preset, threads=s.ffmpeg_threads, resume=resume,
                 stall_timeout=s.live_stall_timeout_seconds, on_progress=on_progress, should_cancel=should_stop,
                 cancel_poll=s.cancel_poll_seconds)
    except JobCancelled:
        if sync is not None and sync.broken:
            raise StorageError(f"live upload failing for {s.live_stall_timeout_seconds:g} s: {sync.error}") from None
        raise
    finally:
        if sync is not None:
            sync.stop()
    total = round(previous + seconds[0], 3)
    ctx.note(seconds_processed=total)
    if sync is not None:
        ctx.set_stage(Stage.UPLOADING)
        sync.flush()  # the final playlists (with #EXT-X-ENDLIST); errors here fail the attempt
    artifacts = [{"kind": "hls_master" if rel == MASTER_PLAYLIST else "hls_playlist",
                  "path": io.join_location(p.output, rel), "size": (out_dir / rel).stat().st_size,
                  "duration": None if rel == MASTER_PLAYLIST else total, "codec": None, "checksum": None}
                 for rel in [MASTER_PLAYLIST, *(f"{r.name}/{VARIANT_PLAYLIST}" for r in renditions)]
                 if (out_dir / rel).is_file()]
    result: dict[str, Any] = {"seconds_processed": total, "renditions": [r.name for r in renditions],
                              "master": io.join_location(p.output, MASTER_PLAYLIST), "artifacts": artifacts}
    return Outcome(result)


def _live_output(ctx: JobContext, output: str, renditions: list[PlannedRendition], *,
                 resume: bool, segment_seconds: float) -> tuple[Path, LiveSync | None]:
    """Where ffmpeg writes: in place when the store offers a local directory; otherwise into scratch,
    with a :class:`LiveSync` that uploads to the store (a resumed attempt first fetches the playlists)."""
    s = ctx.settings
    store = io.output_store(ctx, output)
    io.ensure_scratch_space(ctx)
    if store.local_path is not None:
        return store.local_path, None
    out_dir = ctx.scratch / "live"
    if resume:
        ctx.set_stage(Stage.DOWNLOADING)
        _restore_playlists(store, out_dir, renditions, ctx.scratch / "restore")
    sync = LiveSync(store, out_dir, interval=max(0.2, segment_seconds / 2),
                    give_up_after=s.live_stall_timeout_seconds, staging=ctx.scratch / "sync")
    return out_dir, sync


def _restore_playlists(store: Store, out_dir: Path, renditions: list[PlannedRendition], tmp: Path) -> None:
    """Fetch the previous attempt's variant playlists so ffmpeg appends to them (numbering continues)."""
    for r in renditions:
        rel = f"{r.name}/{VARIANT_PLAYLIST}"
        try:
            got = store.fetch(rel, tmp)
        except InvalidInputError:
            continue  # that attempt published nothing for this rendition
        (out_dir / r.name).mkdir(parents=True, exist_ok=True)
        os.replace(got, out_dir / rel)


class LiveSync:
    """Uploads the new files of a live output directory to a remote location, in the background.

    A round takes hard links of the changed playlists *first*, then of the new segments, and
    publishes that snapshot in one connection (playlists last). Links freeze the content (ffmpeg
    replaces files by rename), and every segment a frozen playlist names existed before it.
    """

    def __init__(self, store: Store, local: Path, *, interval: float, give_up_after: float, staging: Path) -> None:
        self.store = store
        self.local = local
        self.url = store.location.url
        self.interval = interval
        self.give_up_after = give_up_after
        self.staging = staging
        self.error: str | None = None
        self._failing_since: float | None = None
        self._sent: dict[str, tuple[int, int]] = {}  # rel path -> (size, mtime_ns) uploaded
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="live-sync", daemon=True)
        self._rounds = 0

    @property
    def broken(self) -> bool:
        """Uploads have failed for ``give_up_after`` seconds: the attempt should end (and be retried)."""
        since = self._failing_since
        return since is not None and time.monotonic() - since > self.give_up_after

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(self.interval + 60)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.flush()
            except MediarunnerError as exc:
                self.error = str(exc)
                if self._failing_since is None:
                    self._failing_since = time.monotonic()
                log.warning("live upload to %s failed (will retry): %s", self.url, exc)

    def _changed(self) -> tuple[list[str], list[str]]:
        playlists: list[str] = []
        others: list[str] = []
        for dirpath, _dirs, files in os.walk(self.local):
            for name in files:
                if name.endswith(".tmp"):
                    continue  # ffmpeg is still writing it (temp_file)
                rel = (Path(dirpath) / name).relative_to(self.local).as_posix()
                try:
                    st = (Path(dirpath) / name).stat()
                except FileNotFoundError:
                    continue
                if self._sent.get(rel) != (st.st_size, st.st_mtime_ns):
                    (playlists if name.endswith(".m3u8") else others).append(rel)
        return playlists, others

    def flush(self) -> None:
        """Upload everything new or changed since the last round (one snapshot)."""
        playlists, others = self._changed()
        if not playlists and not others:
            return
        self._rounds += 1
        snap = self.staging / f"round-{self._rounds}"
        linked: dict[str, tuple[int, int]] = {}
        try:
            for rel in [*playlists, *others]:  # playlists first: see the class docstring
                dst = snap / rel
                dst.parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.link(self.local / rel, dst)
                except FileNotFoundError:
                    continue
                st = dst.stat()
                linked[rel] = (st.st_size, st.st_mtime_ns)
            if linked:
                self.store.publish(snap)
        finally:
            shutil.rmtree(snap, ignore_errors=True)
        self._sent.update(linked)
        self._failing_since = None
        self.error = None
