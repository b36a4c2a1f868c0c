"""The fake PeerTube's side of ``live-rtmp-hls-transcoding`` (server 6.3.3), used by ``fake.py``.

Modelled on ``updateRunnerJobValidator`` + ``isRunnerJobLiveRTMPHLSUpdatePayloadValid``
(``server/core/helpers/custom-validators/runners/jobs.ts``), the ``runnerJobUpdateVideoFiles`` multer
fields of ``controllers/api/runners/jobs.ts`` and ``LiveRTMPHLSTranscodingJobHandler.specificUpdate``:

* files only in ``payload[videoChunkFile]``, ``payload[resolutionPlaylistFile]``,
  ``payload[masterPlaylistFile]`` (multer ``.fields``, one each);
* ``payload[type]`` ``add-chunk`` (with a ``videoChunkFile``) or ``remove-chunk``;
  ``payload[videoChunkFilename]`` matches ``^[a-z0-9-]+\\.ts$``; a ``resolutionPlaylistFilename``
  needs its file, a ``resolutionPlaylistFile`` a filename matching ``^[a-z0-9-]+\\.m3u8$``;
* a session that ended on PeerTube's side answers 400 ``runner_job_not_in_processing_state``;
* then, in this order: the chunk moved in (add) or removed (remove; a missing file is fine), the
  resolution playlist moved in, the master moved in under the video's master name.

The job's output directory is ``FakeJob.live_files`` (name -> bytes); every accepted update is kept in
``FakeJob.live_updates`` (fields and files, field by field) for the tests.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from fastapi.responses import Response

if TYPE_CHECKING:
    from tests.peertube.fake import FakeJob, FakePeerTube

LIVE = "live-rtmp-hls-transcoding"
MASTER_NAME = "f1d2c3b4-master.m3u8"  # privatePayload.masterPlaylistName (the video's own)
FILE_FIELDS = {"videoChunkFile", "resolutionPlaylistFile", "masterPlaylistFile"}  # runnerJobUpdateVideoFiles
TS_NAME = re.compile(r"^[a-z0-9-]+\.ts$")
M3U8_NAME = re.compile(r"^[a-z0-9-]+\.m3u8$")


async def _files(form: Any) -> tuple[dict[str, tuple[str, bytes, str]] | None, str | None]:
    files: dict[str, tuple[str, bytes, str]] = {}
    for key, value in form.multi_items():
        if isinstance(value, str):
            continue
        name = key[8:-1] if key.startswith("payload[") and key.endswith("]") else None
        if name not in FILE_FIELDS:  # multer .fields(): an unexpected file field is an error
            return None, f"Unexpected field {key}"
        if name in files:
            return None, f"Too many files for {key}"
        files[name] = (value.filename or "", await value.read(), value.content_type or "")
    return files, None


def _payload_valid(value: dict[str, str], files: dict[str, tuple[str, bytes, str]]) -> bool:
    """isRunnerJobLiveRTMPHLSUpdatePayloadValid."""
    if not value:
        return False
    if value.get("resolutionPlaylistFilename") and "resolutionPlaylistFile" not in files:
        return False
    if "resolutionPlaylistFile" in files and not M3U8_NAME.match(value.get("resolutionPlaylistFilename") or ""):
        return False
    if not TS_NAME.match(value.get("videoChunkFilename") or ""):
        return False
    return value.get("type") == "remove-chunk" or (value.get("type") == "add-chunk" and "videoChunkFile" in files)


async def live_update(fake: FakePeerTube, j: FakeJob, fields: dict[str, Any], form: Any) -> Response:
    """The update route for a live job, after the jobOfRunner validator accepted it."""
    from tests.peertube.fake import COMPLETED, _fail

    if form is None:  # a JSON body: multer set no req.files, the validator reads none
        return _fail(400, "Payload is invalid")
    files, problem = await _files(form)
    if files is None:
        return _fail(400, problem or "bad files")
    progress = fields.get("progress")
    if progress is not None and (not re.fullmatch(r"\d+", str(progress)) or not 0 <= int(progress) <= 100):
        return _fail(400, "Incorrect request parameters: progress")
    value = {k[8:-1]: v for k, v in fields.items() if k.startswith("payload[") and k.endswith("]")}
    if not _payload_valid(value, files):
        return _fail(400, "Payload is invalid")
    with fake.lock:
        if j.uuid in fake.ended_sessions:
            return _fail(400, "Session of this live ended", "runner_job_not_in_processing_state")
        if j.state == COMPLETED:
            return Response(status_code=204)
        _apply(j, value, files)
    return Response(status_code=204)


def _apply(j: FakeJob, value: dict[str, str], files: dict[str, tuple[str, bytes, str]]) -> None:
    """LiveRTMPHLSTranscodingJobHandler.specificUpdate (and AbstractJobHandler.update's touch)."""
    import time

    chunk = value["videoChunkFilename"]
    if value["type"] == "add-chunk":
        j.live_files[chunk] = files["videoChunkFile"][1]
    else:
        j.live_files.pop(chunk, None)
    if "resolutionPlaylistFile" in files and value.get("resolutionPlaylistFilename"):
        j.live_files[value["resolutionPlaylistFilename"]] = files["resolutionPlaylistFile"][1]
    if "masterPlaylistFile" in files:
        j.live_files[MASTER_NAME] = files["masterPlaylistFile"][1]
    j.updated_at = time.monotonic()
    j.live_updates.append({"fields": value, "files": files, "at": j.updated_at})
