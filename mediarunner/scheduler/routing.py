"""Which queue a job goes to, and why (recorded on the job for operators)."""

from __future__ import annotations

from mediarunner.models.enums import JobType, Queue

# Encoding is CPU work unless hardware encoders are asked for; speech models want a GPU.
_DEFAULT: dict[JobType, Queue] = {
    JobType.TRANSCODE: Queue.CPU,
    JobType.TRANSCODE_RENDITION: Queue.CPU,
    JobType.EXTRACT_AUDIO: Queue.CPU,
    JobType.TRANSCRIBE: Queue.GPU,
    JobType.STUDIO: Queue.CPU,
    JobType.LIVE: Queue.CPU,
    JobType.NOOP: Queue.CPU,
}


def route(job_type: JobType, *, queue: str | None = None) -> tuple[str, str]:
    """Return (queue, reason). An explicit ``queue`` wins; otherwise the job type decides."""
    if queue is not None:
        return queue, f"queue {queue!r} requested"
    q = _DEFAULT[job_type]
    return q.value, f"{job_type.value} jobs run on {q.value}"
