"""PeerTube's ``live-rtmp-hls-transcoding`` runner job as a mediarunner live job.

PeerTube (6.3.3: ``LiveRTMPHLSTranscodingJobHandler``, ``process-live.ts`` of ``peertube-runner``)
hands a runner ``{input: {rtmpUrl}, output: {toTranscode: [{resolution, fps}], segmentListSize,
segmentDuration}}``: pull the RTMP stream of its own server, write an HLS ladder and post every
chunk as it comes.

Here the stream is one ordinary mediarunner live job (``Client.submit_live``: priority, routing and
failover stay mediarunner's) writing its EVENT ladder under the job's staging output, and a
:class:`LiveRelay` in the connector reads that output *through the Store* (so the worker may write it
anywhere the store reaches) and turns it into PeerTube's live protocol:

* ``update`` ``payload[type]=add-chunk`` for every new segment of rung ``i`` in order, with the
  chunk ``payload[videoChunkFile]`` named ``<i>-<nnnnnn>.ts`` (``payload[videoChunkFilename]``;
  PeerTube's muxing session reads the rung from the digit before the ``-``), the rung's sliding
  playlist ``payload[resolutionPlaylistFile]`` named ``<i>.m3u8`` (the last ``segmentListSize``
  chunks, ending with this one) and the master ``payload[masterPlaylistFile]`` (PeerTube renames
  it to its own master name);
* ``remove-chunk`` for a chunk once ``segmentListSize + 1`` newer ones exist (ffmpeg's
  ``delete_segments`` with its default threshold of one, as the official runner's ffmpeg does);
* a ``remove-chunk`` of ``keepalive.ts`` (a name no chunk has; removing a missing file is a no-op on
  PeerTube) when nothing was posted for ``peertube_update_seconds``: live updates must carry a chunk
  name, and PeerTube errors a live job not updated for 30 s (a failover to another worker is quiet);
* ``success`` (empty payload) when the mediarunner job completes (the stream ended); ``error`` with
  one line when it fails for good. PeerTube cancelling or deleting the runner job (404), or ending
  the live session (400 ``runner_job_not_in_processing_state``: the official runner then posts
  success), cancels the mediarunner job.

Encoding: mediarunner's live ladder is H.264 + AAC in MPEG-TS segments, what PeerTube's own live
ffmpeg writes (libx264/aac, ``-f hls`` with ``.ts`` segments). The RTMP URL must be on the
instance's own host; the client and the worker then apply the usual network allow-list to it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import m3u8
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mediarunner.client import Client
from mediarunner.config.settings import Rendition
from mediarunner.connectors.peertube.protocol import NOT_PROCESSING, PeerTubeError, RunnerAPI
from mediarunner.errors import MediarunnerError
from mediarunner.media.live import MASTER_PLAYLIST, VARIANT_PLAYLIST
from mediarunner.models.enums import JobState
from mediarunner.models.schemas import Job
from mediarunner.storage.store import Store, open_store

if TYPE_CHECKING:
    from mediarunner.connectors.peertube.serve import JobWork

log = logging.getLogger(__name__)

LIVE = "live-rtmp-hls-transcoding"
KEEPALIVE_CHUNK = "keepalive.ts"


class _Rung(BaseModel):
    model_config = ConfigDict(extra="ignore")
    resolution: int = Field(ge=0, le=4320)  # 0: the audio-only stream (see LiveJobPayload.video)
    fps: float = Field(ge=0, le=120)


class _Input(BaseModel):
    model_config = ConfigDict(extra="ignore")
    rtmpUrl: str = Field(min_length=8, max_length=2000)


class _Output(BaseModel):
    model_config = ConfigDict(extra="ignore")
    toTranscode: list[_Rung] = Field(min_length=1, max_length=8)
    segmentListSize: int = Field(ge=1, le=1000)
    segmentDuration: float = Field(ge=0.5, le=60)


class LiveJobPayload(BaseModel):
    """The payload PeerTube sends (``RunnerJobLiveRTMPHLSTranscodingPayload``)."""

    model_config = ConfigDict(extra="ignore")
    input: _Input
    output: _Output

    @property
    def video(self) -> list[_Rung]:
        """The video rungs. PeerTube 6.3 always lists resolution 0 too (its ffmpeg writes the audio as
        a separate group); here every video rung carries the audio, so there is no audio-only playlist."""
        return [r for r in self.output.toTranscode if r.resolution > 0]


def parse(payload: Mapping[str, Any]) -> LiveJobPayload | None:
    try:
        p = LiveJobPayload.model_validate(payload)
    except ValidationError:
        return None
    heights = [r.resolution for r in p.video]
    return p if heights and len(set(heights)) == len(heights) else None


def check_rtmp(url: str, instance_url: str) -> str | None:
    """Why ``url`` is refused (one line), or None: an rtmp(s) URL on the instance's own host."""
    parts, own = urlsplit(url), urlsplit(instance_url)
    try:
        host = parts.hostname
        parts.port  # noqa: B018 - a malformed port raises here
    except ValueError:
        return "the live job's RTMP URL is malformed"
    if parts.scheme.lower() not in ("rtmp", "rtmps"):
        return "the live job's input is not an rtmp:// or rtmps:// URL"
    if "@" in parts.netloc:
        return "the live job's RTMP URL embeds credentials"
    if not host or host.lower() != (own.hostname or "").lower():
        return f"the live job's RTMP host {host!r} is not this PeerTube instance's host {own.hostname!r}"
    return None


def rungs(client: Client, p: LiveJobPayload) -> list[Rendition]:
    """One rung per video ``toTranscode`` entry (in PeerTube's order: rung ``i`` is playlist ``i``),
    with the bitrates of the configured rung nearest in height."""
    out = []
    for i, r in enumerate(p.video):
        near = min(client.settings.renditions, key=lambda c: abs(c.height - r.resolution))
        out.append(Rendition(name=f"r{i}-{r.resolution}p", height=r.resolution, video_bitrate_k=near.video_bitrate_k,
                             audio_bitrate_k=near.audio_bitrate_k))
    return out


def submit(client: Client, p: LiveJobPayload, out: Path, *, priority_class: str, meta: Mapping[str, Any]) -> Job:
    ladder = rungs(client, p)
    rung_client = Client(client.settings.model_copy(update={"renditions": ladder}), app=client.app)
    return rung_client.submit_live(p.input.rtmpUrl, str(out), [r.name for r in ladder], priority_class=priority_class,
                                   metadata=dict(meta), segment_seconds=p.output.segmentDuration)


def chunk_name(rung: int, number: int) -> str:
    return f"{rung}-{number:06d}.ts"


class LiveRelay:
    """Posts the live output of one mediarunner job to PeerTube, chunk by chunk (see the module)."""

    def __init__(self, api: RunnerAPI, uuid: str, job_token: str, store: Store, names: list[str], *,
                 list_size: int, scratch: Path, keepalive: float) -> None:
        self.api, self.uuid, self.job_token, self.store = api, uuid, job_token, store
        self.names, self.list_size, self.scratch, self.keepalive = names, list_size, scratch, keepalive
        self.sent = [0] * len(names)  # chunks posted per rung
        self.removed = [0] * len(names)  # chunks removed per rung
        self.last_post = time.monotonic()
        self.scratch.mkdir(parents=True, exist_ok=True)

    def _read(self, rel: str) -> bytes:
        """The bytes of ``rel`` in the store; a copy a remote store made in scratch is removed."""
        path = self.store.fetch(rel, self.scratch)
        try:
            return path.read_bytes()
        finally:
            if path.is_relative_to(self.scratch):
                path.unlink(missing_ok=True)

    def _text(self, rel: str) -> str | None:
        try:
            return self._read(rel).decode()
        except (MediarunnerError, OSError, UnicodeDecodeError):  # not written yet (or being replaced)
            return None

    def relay(self) -> int:
        """Post what is new; the number of chunks added. Raises PeerTubeError."""
        master_text = self._text(MASTER_PLAYLIST)
        if master_text is None:
            return 0
        master = _master(master_text, self.names)
        if master is None:
            return 0
        added = 0
        for i, name in enumerate(self.names):
            text = self._text(f"{name}/{VARIANT_PLAYLIST}")
            if text is None:
                continue
            full = m3u8.loads(text)
            while self.sent[i] < len(full.segments):
                self._add(i, full, self.sent[i], master)
                self.sent[i] += 1
                added += 1
                while self.removed[i] < self.sent[i] - self.list_size - 1:
                    self._remove(i, full)
        return added

    def _remove(self, i: int, full: m3u8.M3U8) -> None:
        """Remove-chunk for rung ``i``'s oldest chunk, then its segment from the staging output
        (the live job's EVENT playlist keeps naming it; only a resumed attempt reads that, for numbering)."""
        k = self.removed[i]
        self._post({"type": "remove-chunk", "videoChunkFilename": chunk_name(i, k)}, {})
        self.removed[i] += 1
        try:
            self.store.remove(f"{self.names[i]}/{full.segments[k].uri}")
        except MediarunnerError as exc:  # disk use only: the stream goes on
            log.warning("PeerTube job %s: cannot remove a relayed segment: %s", self.uuid, exc)

    def _add(self, i: int, full: m3u8.M3U8, k: int, master: str) -> None:
        segment = self._read(f"{self.names[i]}/{full.segments[k].uri}")
        playlist = _window(full, i, k, self.list_size)
        fields = {"type": "add-chunk", "videoChunkFilename": chunk_name(i, k),
                  "resolutionPlaylistFilename": f"{i}.m3u8"}
        files = {"videoChunkFile": (chunk_name(i, k), segment, "video/mp2t"),
                 "resolutionPlaylistFile": (f"{i}.m3u8", playlist.encode(), "application/vnd.apple.mpegurl"),
                 "masterPlaylistFile": (MASTER_PLAYLIST, master.encode(), "application/vnd.apple.mpegurl")}
        self._post(fields, files)

    def _post(self, fields: dict[str, str], files: dict[str, tuple[str, bytes, str]]) -> None:
        self.api.update_live(self.uuid, self.job_token, fields, files)
        self.last_post = time.monotonic()

    def feed_watchdog(self) -> None:
        """A harmless update when nothing was posted for ``keepalive`` seconds."""
        if time.monotonic() - self.last_post >= self.keepalive:
            self._post({"type": "remove-chunk", "videoChunkFilename": KEEPALIVE_CHUNK}, {})


def _master(text: str, names: list[str]) -> str | None:
    """mediarunner's master with PeerTube's variant names (``<name>/index.m3u8`` -> ``<i>.m3u8``);
    None until it names every rung."""
    master = m3u8.loads(text)
    index = {f"{n}/{VARIANT_PLAYLIST}": i for i, n in enumerate(names)}
    if {v.uri for v in master.playlists} != set(index):
        return None
    for v in master.playlists:
        v.uri = f"{index[v.uri]}.m3u8"
    return str(master.dumps())


def _window(full: m3u8.M3U8, rung: int, k: int, size: int) -> str:
    """Rung ``rung``'s live playlist as PeerTube serves it after chunk ``k``: the last ``size`` chunks
    up to ``k`` (no ENDLIST, no EVENT type), media and discontinuity sequences counted from the start."""
    first = max(0, k + 1 - size)
    pl = m3u8.loads(full.dumps())
    before = pl.segments[:first]
    kept = pl.segments[first:k + 1]
    for n, seg in enumerate(kept, start=first):
        seg.uri = chunk_name(rung, n)
    pl.segments = m3u8.SegmentList(kept)
    pl.media_sequence = first
    pl.discontinuity_sequence = sum(1 for s in before if s.discontinuity) or None
    pl.playlist_type = None
    pl.is_endlist = False
    return str(pl.dumps())


# --------------------------------------------------------------------------- the job's thread


def work(w: JobWork) -> tuple[str, str]:
    """Run one accepted live job (``JobWork._work`` for this type): (outcome, message)."""
    from mediarunner.models import peertube as records
    from mediarunner.models.db import transaction

    loop, s = w.loop, w.loop.settings
    p = parse(w.payload)
    if p is None:
        return "error", "mediarunner cannot run this live job: its payload is invalid"
    why = check_rtmp(p.input.rtmpUrl, loop.inst.url)
    if why is not None:
        return "error", f"mediarunner refused the live job: {why}"
    out = w.dir / "out"
    out.mkdir(parents=True, exist_ok=True)
    meta = {"peertube": {"instance": loop.inst.name, "job": w.uuid, "type": w.kind}}
    try:
        job = submit(loop.client, p, out, priority_class=loop.inst.priority_class, meta=meta)
    except MediarunnerError as exc:
        return "error", f"mediarunner refused the live job: {exc}"
    w.job_id = job.id
    transaction(lambda ss: records.set_job(ss, w.uuid, state="running", job_id=job.id), url=w.db)
    relay = LiveRelay(loop.api, w.uuid, w.job_token, open_store(str(out), s, "output"),
                      [r.name for r in rungs(loop.client, p)], list_size=p.output.segmentListSize,
                      scratch=w.dir / "work", keepalive=min(s.peertube_update_seconds, 10.0))
    return _follow(w, relay, job.id, interval=max(0.2, p.output.segmentDuration / 4))


def _follow(w: JobWork, relay: LiveRelay, job_id: str, *, interval: float) -> tuple[str, str]:
    """Relay until the mediarunner job ends, PeerTube drops the job or the connector stops."""
    client = w.loop.client
    while True:
        if w._interrupted():
            return w._interruption()
        job = client.get(job_id)  # first: everything written before it ended is relayed below
        try:
            relay.relay()
            if job.done:
                break
            relay.feed_watchdog()
        except PeerTubeError as exc:
            refused = _refused(w, exc)
            if refused is not None:
                return refused
        time.sleep(interval)
    if job.state is not JobState.COMPLETED:
        return "error", f"mediarunner live job {job.id} {job.state.value}: {job.error or 'no error recorded'}"
    refused = w.post_end(lambda: w.loop.api.success_live(w.uuid, w.job_token), "the end of the live")
    return refused or ("success", f"live ended; {sum(relay.sent)} chunks posted to PeerTube")


def _refused(w: JobWork, exc: PeerTubeError) -> tuple[str, str] | None:
    """What a refused update means: None (transient: the next round retries), or the outcome."""
    if exc.status == 0 or exc.status >= 500:
        log.warning("PeerTube job %s: live update failed (will retry): %s", w.uuid, exc)
        return None
    if exc.status == 400 and exc.code == NOT_PROCESSING:
        # The live session ended on PeerTube (or the job changed state): as peertube-runner does,
        # stop transcoding and report success; the mediarunner job is cancelled by the report.
        w.gone = f"the live session ended on PeerTube ({exc})"
        try:
            w.loop.api.success_live(w.uuid, w.job_token)
        except PeerTubeError as sub:
            log.info("PeerTube job %s: success after the session ended refused: %s", w.uuid, sub)
        return "gone", w.gone
    if exc.job_gone or exc.unknown_runner:
        w._mark_gone(exc)
        return "gone", w.gone or str(exc)
    return "error", f"PeerTube refused a live update: {exc}"
