"""ffmpeg/ffprobe layer: probing, ladder planning, encoding, HLS packaging, safe publishing.

Pure library: knows nothing of Celery or SQL. Every failure is raised from
:mod:`mediarunner.errors` so the retry policy can classify it.
"""

from mediarunner.workers.media.encode import concat_parts, encode_rendition, package_hls
from mediarunner.workers.media.ffmpeg import ffmpeg_version, list_encoders, run_ffmpeg
from mediarunner.workers.media.hls import HlsVariant, describe_variant, render_master_playlist
from mediarunner.workers.media.ladder import PlannedRendition, plan_ladder
from mediarunner.workers.media.parts import effective_parts, part_span
from mediarunner.workers.media.probe import MediaInfo, probe
from mediarunner.workers.media.publish import (
    atomic_write_text,
    publish_file,
    publish_tree,
    remove_quietly,
    resolve_local_path,
)

__all__ = [
    "HlsVariant",
    "MediaInfo",
    "PlannedRendition",
    "atomic_write_text",
    "concat_parts",
    "describe_variant",
    "effective_parts",
    "encode_rendition",
    "ffmpeg_version",
    "list_encoders",
    "package_hls",
    "part_span",
    "plan_ladder",
    "probe",
    "publish_file",
    "publish_tree",
    "remove_quietly",
    "render_master_playlist",
    "resolve_local_path",
    "run_ffmpeg",
]
