"""What each PeerTube version's runner protocol accepts, from its ``/api/v1/config`` ``serverVersion``.

Read from PeerTube's source (6.3.3 as tagged, and the newest upstream ``develop`` that carries the
storyboard runner job):

==============================  ==========================================  ==========================================
                                6.3.x                                       8.0 and later
==============================  ==========================================  ==========================================
``POST /register``              ``registrationToken``, ``name``,            the same and ``version`` (optional; a
                                ``description`` (other fields ignored)      ``X.Y.Z`` or ``X.Y.Z-alpha|beta|rc.N``
                                                                            version, else 400)
``POST /jobs/request``          ``runnerToken`` (other fields ignored:      ``runnerToken``, ``jobTypes`` (optional
                                every pending job of every type offered)    array: only those types offered),
                                                                            ``version`` (optional, as above)
job types                       VOD web/HLS/audio-merge, live, studio,      the same and ``generate-video-storyboard``
                                transcription
success files                   ``videoFile``, ``resolutionPlaylistFile``,  the same and ``storyboardFile`` (an image:
                                ``vttFile`` (video, m3u8, caption MIME)     jpeg, png, webp, gif)
==============================  ==========================================  ==========================================

``jobTypes`` is sent from 7.0 (7.x filters by it, as this connector's earlier notes say; 6.3.3
has no such field). The storyboard job came with upstream PR #7191 (merged September 2025, after
7.3): taken as offered from 8.0. Neither 7.x boundary was checked against a tagged 7.x source
here (the fork read carries tags up to 6.3.3 only). A server whose version cannot be read is
taken for the oldest supported one (6.3): nothing newer is asked for or accepted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mediarunner import __version__

#: The oldest PeerTube this connector was checked against.
OLDEST = (6, 3, 0)
JOB_TYPES_FILTER_SINCE = (7, 0, 0)
RUNNER_VERSION_SINCE = (8, 0, 0)
#: Job types only some servers have, and the first version that offers them.
NEWER_JOB_TYPES: dict[str, tuple[int, int, int]] = {"generate-video-storyboard": (8, 0, 0)}
#: PeerTube's isStableOrUnstableVersionValid: what a ``version`` field must look like.
RUNNER_VERSION = re.compile(r"^\d+\.\d+\.\d+(?:-(?:alpha|beta|rc)\.\d+)?$")
_SERVER_VERSION = re.compile(r"^\s*v?(\d{1,4})\.(\d{1,4})(?:\.(\d{1,4}))?")


def parse_version(text: object) -> tuple[int, int, int] | None:
    """``"6.3.3"``, ``"8.0.0-rc.1"``, ``"v7.2"`` -> ``(6, 3, 3)``...; None when it is not a version."""
    m = _SERVER_VERSION.match(text) if isinstance(text, str) else None
    return (int(m[1]), int(m[2]), int(m[3] or 0)) if m else None


def runner_version() -> str | None:
    """mediarunner's version as PeerTube's validator takes it (None if it would refuse it)."""
    return __version__ if RUNNER_VERSION.match(__version__) else None


@dataclass(frozen=True)
class ServerProfile:
    """The runner protocol of one PeerTube server version (``version`` None: unknown, as the oldest)."""

    version: tuple[int, int, int] | None

    @property
    def _at(self) -> tuple[int, int, int]:
        return self.version or OLDEST

    @property
    def label(self) -> str:
        return ".".join(map(str, self.version)) if self.version else "unknown (taken for 6.3)"

    def offers(self, job_type: str) -> bool:
        """Whether this server can offer ``job_type`` at all (a newer type never is on an older one)."""
        return self._at >= NEWER_JOB_TYPES.get(job_type, OLDEST)

    def job_types(self, enabled: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(t for t in enabled if self.offers(t))

    @property
    def filters_job_types(self) -> bool:
        return self._at >= JOB_TYPES_FILTER_SINCE

    @property
    def takes_runner_version(self) -> bool:
        return self._at >= RUNNER_VERSION_SINCE
