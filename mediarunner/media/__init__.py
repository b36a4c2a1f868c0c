"""ffmpeg/ffprobe layer: probing, ladder planning, encoding, HLS packaging, live, studio, time parts.

Pure library: knows nothing of Celery or SQL. Every failure is raised from
:mod:`mediarunner.errors` so the retry policy can classify it.
"""

from mediarunner.media.encode import concat_parts, encode_rendition, encode_renditions, package_hls
from mediarunner.media.ffmpeg import ffmpeg_version, list_encoders, run_ffmpeg
from mediarunner.media.hls import HlsVariant, describe_variant, render_master_playlist
from mediarunner.media.ladder import PlannedRendition, plan_ladder
from mediarunner.media.parts import effective_parts, part_span
from mediarunner.media.probe import MediaInfo, probe

__all__ = [
    "HlsVariant",
    "MediaInfo",
    "PlannedRendition",
    "concat_parts",
    "describe_variant",
    "effective_parts",
    "encode_rendition",
    "encode_renditions",
    "ffmpeg_version",
    "list_encoders",
    "package_hls",
    "part_span",
    "plan_ladder",
    "probe",
    "render_master_playlist",
    "run_ffmpeg",
]
