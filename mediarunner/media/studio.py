"""Studio edits: cut, intro, outro, watermark and compose, applied in order with one ffmpeg step each.

Pure library: the caller stages every URL an operation names (intro/outro/compose clips, watermark
images) and passes a ``resolve`` callable that maps the URL to its local copy.

Every step re-encodes to H.264 (CRF ``crf``) + AAC in MP4 under ``work_dir``; the returned
file is the last step's output. Intermediate files are removed as soon as the next step is
done, and a failed or cancelled step removes its partial output.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import ffmpeg as ffpy  # ffmpeg-python builds the argument lists; run_ffmpeg runs them

from mediarunner.errors import InvalidInputError
from mediarunner.media.encoders import MP4_OUTPUT, POLICY, studio_options, threads_option
from mediarunner.media.ffmpeg import run_ffmpeg
from mediarunner.media.formats import IMAGE_FORMATS, file_input_options
from mediarunner.media.probe import MediaInfo, probe
from mediarunner.models.studio import Compose, Cut, Intro, Operation, Outro, Watermark, parse_operations
from mediarunner.storage.local import remove_quietly

__all__ = ["apply_operations"]

AUDIO_RATE = POLICY.audio_rate
DEFAULT_FPS = Fraction(30)


# ------------------------------------------------------------------------------------------- helpers


def _file(path: Path) -> str:
    # "file:" stops ffmpeg reading "a:b.mp4" as protocol "a" or "-x.mp4" as an option.
    return "file:" + str(path.resolve())


def _even(x: int) -> int:
    return max(2, x - x % 2)


def _fps(info: MediaInfo) -> Fraction:
    if not info.fps or info.fps <= 0 or info.fps > 240:
        return DEFAULT_FPS
    return Fraction(info.fps).limit_denominator(1001)


def _output_args(streams: Sequence[Any], dst: Path, preset: str, crf: int, threads: int, *, audio: bool,
                 **extra: str | None) -> list[str]:  # fmt: skip
    """Map ``streams`` (ffmpeg-python streams) into the MP4 ``dst``, encoded by the studio policy."""
    options = {**extra, **studio_options(preset, crf, audio=audio), **threads_option(threads), **MP4_OUTPUT}
    return list(ffpy.output(*streams, _file(dst), **options).get_args())


def _need_video(info: MediaInfo, what: str) -> tuple[int, int]:
    if not info.has_video or not info.width or not info.height:
        raise InvalidInputError(f"{what} needs a video, but the input has no video stream")
    return info.width, info.height


# ---------------------------------------------------------------------------------------- arguments


def cut_args(src: Path, info: MediaInfo, op: Cut, dst: Path, *, preset: str, crf: int, threads: int
             ) -> tuple[list[str], float]:  # fmt: skip
    """ffmpeg arguments for a cut, and the expected output duration."""
    if op.start >= info.duration:
        raise InvalidInputError(f"cut starts at {op.start:g} s but the video lasts {info.duration:.3f} s")
    end = info.duration if op.end is None else min(op.end, info.duration)
    length = end - op.start
    # Input seeking is frame-accurate when re-encoding (ffmpeg >= 2.1) and skips decoding the head;
    # the length is an output option (as an input option it lets one extra video frame through).
    source = ffpy.input(_file(src), **file_input_options(), ss=f"{op.start:.6f}")
    streams = []
    if info.has_video:
        w, h = _need_video(info, "cut")
        video = source["V:0"]
        streams.append(video.filter("scale", _even(w), _even(h)) if (w % 2 or h % 2) else video)
    if info.has_audio:
        streams.append(source["a:0"])
    extra: dict[str, str | None] = {"t": f"{length:.6f}"} | ({} if info.has_video else {"vn": None})
    return _output_args(streams, dst, preset, crf, threads, audio=info.has_audio, **extra), length


def _distinct(streams: Sequence[Any], splitter: str) -> list[Any]:
    """ffmpeg-python merges equal nodes (the same file given twice is one input): a stream used
    k > 1 times is fanned out with ``split``/``asplit`` so every use has its own branch."""
    uses = Counter(streams)
    fans = {s: s.filter_multi_output(splitter) for s, n in uses.items() if n > 1}
    taken: Counter[Any] = Counter()
    out = []
    for s in streams:
        if s in fans:
            out.append(fans[s][taken[s]])
            taken[s] += 1
        else:
            out.append(s)
    return out


def _fit_video(video: Any, w: int, h: int, fps: Fraction) -> Any:
    """Scale to fit ``w`` x ``h``, pad (letterbox/pillarbox), square pixels, the main frame rate."""
    return (
        video.filter("scale", w, h, force_original_aspect_ratio="decrease")
        .filter("pad", w, h, "(ow-iw)/2", "(oh-ih)/2", color="black")
        .filter("setsar", 1)
        .filter("fps", f"{fps.numerator}/{fps.denominator}")
        .filter("format", POLICY.pix_fmt)
        .filter("setpts", "PTS-STARTPTS")
    )


def _audio_source(source: Any, info: MediaInfo) -> Any:
    """The clip's audio stream, or (an ``anullsrc`` lavfi input: ffmpeg-python has no source
    filters inside a graph) endless stereo silence."""
    if info.has_audio:
        return source["a:0"]
    return ffpy.input(f"anullsrc=channel_layout=stereo:sample_rate={AUDIO_RATE}", f="lavfi")["a"]


def _fit_audio(audio: Any, info: MediaInfo) -> Any:
    """Stereo float at the policy's rate; silence is cut to the clip's length."""
    if info.has_audio:
        audio = audio.filter("aresample", AUDIO_RATE)
        return audio.filter("aformat", sample_fmts="fltp", channel_layouts="stereo").filter("asetpts", "PTS-STARTPTS")
    return audio.filter("atrim", duration=f"{info.duration:.6f}").filter("aformat", sample_fmts="fltp")


def concat_args(
    clips: Sequence[tuple[Path, MediaInfo]],
    main: MediaInfo,
    dst: Path,
    *,
    preset: str,
    crf: int,
    threads: int,
) -> tuple[list[str], float]:
    """Concatenate ``clips`` (the main video among them) at the main video's size, frame rate and SAR.

    Every clip is scaled to fit, padded (letterbox/pillarbox), given square pixels and the main
    frame rate. When any clip has audio, clips without audio get silence of their own length.
    """
    w, h = _need_video(main, "intro/outro")
    w, h = _even(w), _even(h)
    fps = _fps(main)
    with_audio = any(info.has_audio for _, info in clips)
    for path, info in clips:
        _need_video(info, f"clip {path.name}")
    sources = [ffpy.input(_file(path), **file_input_options()) for path, _ in clips]
    videos = [_fit_video(v, w, h, fps) for v in _distinct([s["V:0"] for s in sources], "split")]
    parts: list[Any] = videos
    if with_audio:
        roots = _distinct([_audio_source(s, info) for s, (_, info) in zip(sources, clips, strict=True)], "asplit")
        audios = [_fit_audio(a, info) for a, (_, info) in zip(roots, clips, strict=True)]
        parts = [p for pair in zip(videos, audios, strict=True) for p in pair]
    joined = ffpy.concat(*parts, v=1, a=1 if with_audio else 0).node
    streams = [joined[0], joined[1]] if with_audio else [joined[0]]
    args = _output_args(streams, dst, preset, crf, threads, audio=with_audio)
    return args, sum(info.duration for _, info in clips)


_POSITIONS: dict[str, tuple[str, str]] = {
    "top-left": ("{m}", "{m}"),
    "top-right": ("main_w-overlay_w-{m}", "{m}"),
    "bottom-left": ("{m}", "main_h-overlay_h-{m}"),
    "bottom-right": ("main_w-overlay_w-{m}", "main_h-overlay_h-{m}"),
    "center": ("(main_w-overlay_w)/2", "(main_h-overlay_h)/2"),
}


def _sized_image(image: Any, w: int, h: int, op: Watermark) -> Any:
    if op.scale is not None:
        return image.filter("scale", w=max(2, round(w * op.scale)), h=-1)
    # Native size, shrunk (aspect kept) only when it would not fit inside the margins.
    fit_w, fit_h = max(2, w - 2 * op.margin), max(2, h - 2 * op.margin)
    return image.filter("scale", w=f"min(iw,{fit_w})", h=f"min(ih,{fit_h})", force_original_aspect_ratio="decrease")


def watermark_args(
    src: Path, info: MediaInfo, image: Path, op: Watermark, dst: Path, *, preset: str, crf: int, threads: int
) -> tuple[list[str], float]:
    """Overlay ``image`` on every frame of ``src``."""
    w, h = _need_video(info, "watermark")
    main = ffpy.input(_file(src), **file_input_options())
    image_in = ffpy.input(_file(image), **file_input_options(IMAGE_FORMATS))  # one still image, never a sequence
    logo = _sized_image(image_in["v"], w, h, op).filter("format", "rgba")
    if op.opacity < 1:  # the alpha channel scaled: Pod's dressing opacity
        logo = logo.filter("colorchannelmixer", aa=f"{op.opacity:.3f}")
    x, y = (c.format(m=op.margin) for c in _POSITIONS[op.position])
    video = ffpy.filter([main["V:0"], logo], "overlay", x=x, y=y, eof_action="repeat", format="auto")
    if w % 2 or h % 2:
        video = video.filter("scale", _even(w), _even(h))
    streams = [video.filter("format", POLICY.pix_fmt)]
    if info.has_audio:
        streams.append(main["a:0"])
    return _output_args(streams, dst, preset, crf, threads, audio=info.has_audio), info.duration


def _layout_input(video: Any, height: int, fps: Fraction, hold: float) -> Any:
    """One video of a layout: ``height`` high (even width), the main frame rate, its last frame held ``hold`` s."""
    return (video.filter("setpts", "PTS-STARTPTS").filter("fps", f"{fps.numerator}/{fps.denominator}")
            .filter("scale", -2, height).filter("setsar", 1).filter("format", POLICY.pix_fmt)
            .filter("tpad", stop_mode="clone", stop_duration=f"{max(0.0, hold):.3f}"))  # fmt: skip


def compose_args(src: Path, info: MediaInfo, clip: tuple[Path, MediaInfo], op: Compose, dst: Path, *,
                 preset: str, crf: int, threads: int) -> tuple[list[str], float]:  # fmt: skip
    """``src`` and the clip in ``op.layout`` (esup-runner's studio graphs: hstack, or an overlay at 1/4 height)."""
    _, h = _need_video(info, "compose")
    path, other = clip
    _, oh = _need_video(other, f"compose video {op.url}")
    duration, fps = max(info.duration, other.duration), _fps(info)
    main, side = ffpy.input(_file(src), **file_input_options()), ffpy.input(_file(path), **file_input_options())
    if op.layout == "mid":
        height = _even(min(h, oh))
        video = ffpy.filter([_layout_input(main["V:0"], height, fps, duration - info.duration),
                             _layout_input(side["V:0"], height, fps, duration - other.duration)], "hstack", inputs=2)
    else:
        height = _even(h)
        pip = _layout_input(side["V:0"], _even(height // 4), fps, duration - other.duration)
        video = ffpy.filter([_layout_input(main["V:0"], height, fps, duration - info.duration), pip], "overlay",
                            x="W-w-10", y="10" if op.layout == "piph" else "H-h-10", eof_action="repeat")
    streams = [video.filter("format", POLICY.pix_fmt)]
    sound = main if info.has_audio else side if other.has_audio else None
    if sound is not None:
        streams.append(sound["a:0"])
    return _output_args(streams, dst, preset, crf, threads, audio=sound is not None, t=f"{duration:.3f}"), duration


# -------------------------------------------------------------------------------------------- driver


_Clips = dict[str, tuple[Path, MediaInfo]]
_Images = dict[str, Path]


def _side_inputs(
    ops: Sequence[Operation], info: MediaInfo, resolve: Callable[[str], Path], ffprobe: str
) -> tuple[_Clips, _Images]:
    """Resolve and probe every side input first: a bad intro must not cost a full encode."""
    clips: _Clips = {}
    images: _Images = {}
    for op in ops:
        if isinstance(op, Intro | Outro | Compose) and op.url not in clips:
            path = Path(resolve(op.url))
            clip = probe(path, ffprobe=ffprobe)
            _need_video(clip, f"{op.op} clip {op.url}")
            clips[op.url] = (path, clip)
        elif isinstance(op, Watermark) and op.image_url not in images:
            path = Path(resolve(op.image_url))
            if not path.is_file() or path.stat().st_size == 0:
                raise InvalidInputError(f"watermark image {op.image_url} is missing or empty")
            images[op.image_url] = path
        if not isinstance(op, Cut):
            _need_video(info, op.op)
    return clips, images


def _step_args(
    op: Operation, current: Path, info: MediaInfo, dst: Path, clips: _Clips, images: _Images, **kw: Any
) -> tuple[list[str], float]:
    """One operation's ffmpeg arguments and expected duration."""
    if isinstance(op, Cut):
        return cut_args(current, info, op, dst, **kw)
    if isinstance(op, Intro):
        return concat_args([clips[op.url], (current, info)], info, dst, **kw)
    if isinstance(op, Outro):
        return concat_args([(current, info), clips[op.url]], info, dst, **kw)
    if isinstance(op, Compose):
        return compose_args(current, info, clips[op.url], op, dst, **kw)
    return watermark_args(current, info, images[op.image_url], op, dst, **kw)


def apply_operations(
    src: Path,
    ops: Sequence[Operation],
    work_dir: Path,
    *,
    resolve: Callable[[str], Path],
    ffmpeg: str = "ffmpeg",
    ffprobe: str = "ffprobe",
    preset: str = "veryfast",
    crf: int = 18,
    threads: int = 0,
    on_progress: Callable[[float], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    cancel_poll: float = 0.5,
) -> Path:
    """Apply ``ops`` to ``src`` in order; return the final MP4 (inside ``work_dir``).

    ``resolve`` maps an intro/outro/image URL to a local file (staged by the caller). Every
    such URL is resolved and every clip probed before the first encode, so a bad one fails the
    job at once. ``on_progress`` gets the overall fraction in [0, 1] (equal share per step).
    """
    ops = parse_operations(ops)
    work_dir.mkdir(parents=True, exist_ok=True)
    info = probe(src, ffprobe=ffprobe)
    clips, images = _side_inputs(ops, info, resolve, ffprobe)
    n = len(ops)
    current = src
    for i, op in enumerate(ops):
        dst = work_dir / f"studio-{i + 1:02d}-{op.op}.mp4"
        args, expected = _step_args(op, current, info, dst, clips, images, preset=preset, crf=crf, threads=threads)

        def step_progress(fraction: float, i: int = i) -> None:
            if on_progress is not None:
                on_progress(min(1.0, (i + fraction) / n))

        try:
            run_ffmpeg(args, ffmpeg=ffmpeg, duration=expected if expected > 0 and math.isfinite(expected) else None,
                       on_progress=step_progress, should_cancel=should_cancel, cancel_poll=cancel_poll)  # fmt: skip
            info = probe(dst, ffprobe=ffprobe)
        except BaseException:
            remove_quietly(dst)
            if current != src:
                remove_quietly(current)
            raise
        if current != src:
            remove_quietly(current)
        current = dst
    if on_progress is not None:
        on_progress(1.0)
    return current
