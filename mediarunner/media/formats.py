"""The demuxers and protocols ffmpeg/ffprobe may use on an input: the one place that decides.

ffmpeg's auto-detection is too generous for untrusted files: a playlist (``hls``), a concat list
(``concat``, ``.ffconcat``), an image-sequence pattern (``image2``) or a subtitle file makes it
open *other* files or URLs, outside the roots; a text file becomes video (``tty``), and so on.
Every input is therefore opened with an explicit ``-format_whitelist`` of real media containers
(demuxers that read only the bytes they are given) and, for a local or staged file,
``-protocol_whitelist file``. Live network inputs get the protocols of their scheme only.
The probed format is checked against the same list before any encode (:func:`check_format`).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from mediarunner.errors import InvalidInputError

__all__ = [
    "CONCAT_FORMATS",
    "IMAGE_FORMATS",
    "MEDIA_FORMATS",
    "SUBTITLE_FORMATS",
    "check_format",
    "file_input_options",
    "network_input_options",
    "option_args",
]

Options = dict[str, str | None]

#: Containers of audio/video media: none of them opens another file or URL.
#: (mov's external data references stay off: ffmpeg's ``enable_drefs`` defaults to false.)
MEDIA_FORMATS: tuple[str, ...] = (
    "mov", "mp4", "m4a", "3gp", "3g2", "mj2",  # the "mov,mp4,m4a,3gp,3g2,mj2" demuxer
    "matroska", "webm", "mpegts", "avi", "flv", "mpeg", "mpegvideo", "ogg", "wav", "w64", "mp3", "aac",
    "flac", "asf", "mxf", "nut", "h264", "hevc", "ac3", "eac3", "aiff", "caf", "dv", "yuv4mpegpipe",
)
#: Single still images (watermarks): the content-detected ``*_pipe`` demuxers, never ``image2``
#: (which expands ``%d`` patterns into sequences of other files).
IMAGE_FORMATS: tuple[str, ...] = ("png_pipe", "jpeg_pipe", "webp_pipe", "bmp_pipe", "tiff_pipe", "gif")
#: Text subtitles: probed only so that such a file is refused for what it is (no audio or video).
SUBTITLE_FORMATS: tuple[str, ...] = ("srt", "webvtt", "ass")
#: A split rendition's parts are joined by the concat demuxer over a list we write ourselves.
CONCAT_FORMATS: tuple[str, ...] = ("concat", "mov", "mp4")

#: Live network inputs: the protocols ffmpeg needs for each scheme, nothing else (no file:).
_PROTOCOLS = {
    "rtmp": "rtmp,tcp", "rtmps": "rtmps,tls,tcp", "srt": "srt,udp", "udp": "udp", "rtp": "rtp,udp",
    "tcp": "tcp", "http": "http,tcp", "https": "https,http,tls,tcp",
}
#: ... and the demuxers: the media containers, plus HLS for an http(s) playlist URL and RTP.
_NETWORK_FORMATS = {"http": ("hls",), "https": ("hls",), "rtp": ("rtp",)}


def _whitelist(formats: tuple[str, ...]) -> str:
    return ",".join(formats)


def file_input_options(formats: tuple[str, ...] = MEDIA_FORMATS) -> Options:
    """Input options for a local (or staged) file: only ``formats`` and only the file protocol."""
    return {"format_whitelist": _whitelist(formats), "protocol_whitelist": "file"}


def network_input_options(url: str) -> Options:
    """Input options for a live network input: its scheme's protocols, real media demuxers, and
    no HTTP redirects (the target host was checked; a redirect could lead anywhere)."""
    scheme = urlsplit(url).scheme.lower()
    if scheme not in _PROTOCOLS:
        raise InvalidInputError(f"unsupported live input scheme {scheme!r}")
    opts: Options = {"protocol_whitelist": _PROTOCOLS[scheme],
                     "format_whitelist": _whitelist(MEDIA_FORMATS + _NETWORK_FORMATS.get(scheme, ()))}
    if scheme in ("http", "https"):
        opts |= {"max_redirects": "0", "reconnect": "0"}
    return opts


def option_args(opts: Options) -> list[str]:
    """Options as command-line arguments (``-key value``; ``-key`` alone for None)."""
    return [a for k, v in opts.items() for a in ((f"-{k}",) if v is None else (f"-{k}", v))]


def check_format(format_name: str, name: str, formats: tuple[str, ...] = MEDIA_FORMATS) -> None:
    """Refuse a probed container that is not in ``formats`` (ffprobe's ``format_name`` may list
    several aliases, as in ``mov,mp4,m4a,3gp,3g2,mj2``)."""
    if not any(part in formats for part in format_name.split(",")):
        raise InvalidInputError(f"{name}: container {format_name or 'unknown'!r} is not an allowed media format")
