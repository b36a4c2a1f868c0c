"""ffmpeg/ffprobe layer: probing, ladder planning, encoding, HLS packaging, safe publishing.

Pure library: knows nothing of Celery or SQL. Every failure is raised from
:mod:`mediarunner.errors` so the retry policy can classify it.
"""

from mediarunner.workers.media.ffmpeg import ffmpeg_version, list_encoders, run_ffmpeg

__all__ = ["ffmpeg_version", "list_encoders", "run_ffmpeg"]
