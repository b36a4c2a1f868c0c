"""The vocabularies of a job: its type, its state, the stage inside a run, and the queues."""

from __future__ import annotations

from enum import StrEnum


class JobType(StrEnum):
    TRANSCODE = "transcode"  # parent of a VOD ladder: probe + top rendition
    TRANSCODE_RENDITION = "transcode_rendition"  # one lower rung of the ladder
    EXTRACT_AUDIO = "extract_audio"
    TRANSCRIBE = "transcribe"
    STUDIO = "studio"
    LIVE = "live"
    STORYBOARD = "storyboard"  # sprite sheet + WebVTT thumbnails track, preview images and a poster
    NOOP = "noop"  # control-plane benchmarks and smoke tests


class JobState(StrEnum):
    PENDING = "pending"  # ready: waiting for a worker (or for run_after)
    WAITING_FOR_PARENT = "waiting_for_parent"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    PARENT_FAILED = "parent_failed"
    PARENT_CANCELLED = "parent_cancelled"
    TIMEOUT = "timeout"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATES


TERMINAL_STATES: frozenset[JobState] = frozenset(
    {
        JobState.COMPLETED,
        JobState.FAILED,
        JobState.CANCELLED,
        JobState.PARENT_FAILED,
        JobState.PARENT_CANCELLED,
        JobState.TIMEOUT,
    }
)
# States from which an operator may restart a job.
RESTARTABLE_STATES: frozenset[JobState] = TERMINAL_STATES - {JobState.COMPLETED}
ACTIVE_STATES: frozenset[JobState] = frozenset({JobState.PENDING, JobState.WAITING_FOR_PARENT, JobState.RUNNING})


class Stage(StrEnum):
    DOWNLOADING = "downloading"
    PROCESSING = "processing"
    UPLOADING = "uploading"


class Queue(StrEnum):
    CPU = "cpu"
    GPU = "gpu"
    SCHEDULER = "scheduler"  # beat ticks: never behind a long transcode


class ErrorKind(StrEnum):
    PERMANENT = "permanent"
    TRANSIENT = "transient"


class RunnerStatus(StrEnum):
    """What the operator wants a runner to do (health is derived separately, from heartbeats)."""

    ENABLED = "enabled"  # consuming its queues
    MAINTENANCE = "maintenance"  # draining: finishes running jobs, takes no new ones
    DISABLED = "disabled"  # out of the fleet until enabled again (also takes no new jobs)


class Health(StrEnum):
    HEALTHY = "healthy"
    WARNING = "warning"  # alive, but late heartbeats, high load, low disk or no ffmpeg
    OFFLINE = "offline"  # no heartbeat within the offline threshold (or stopped)
