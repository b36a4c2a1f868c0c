"""Which handler runs which job type."""

from __future__ import annotations

from mediarunner.models.enums import JobType
from mediarunner.tasks.live import run_live_job
from mediarunner.tasks.noop import run_noop
from mediarunner.tasks.runtime import Handler
from mediarunner.tasks.storyboard import run_storyboard
from mediarunner.tasks.studio import run_studio
from mediarunner.tasks.transcode import run_rendition, run_transcode
from mediarunner.tasks.transcribe import run_extract_audio, run_transcribe

HANDLERS: dict[JobType, Handler] = {
    JobType.TRANSCODE: run_transcode,
    JobType.TRANSCODE_RENDITION: run_rendition,
    JobType.EXTRACT_AUDIO: run_extract_audio,
    JobType.TRANSCRIBE: run_transcribe,
    JobType.NOOP: run_noop,
    JobType.STUDIO: run_studio,
    JobType.LIVE: run_live_job,
    JobType.STORYBOARD: run_storyboard,
}
