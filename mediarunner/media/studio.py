"""Studio edits: cut, intro, outro and watermark, applied in order with one ffmpeg step each.

Pure library: the caller stages every URL an operation names (intro/outro clips, watermark
images) and passes a ``resolve`` callable that maps the URL to its local copy.

Every step re-encodes to H.264 (CRF ``crf``) + AAC in MP4 under ``work_dir``; the returned
file is the last step's output. Intermediate files are removed as soon as the next step is
done, and a failed or cancelled step removes its partial output.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

from mediarunner.errors import InvalidInputError
from mediarunner.media.encoders import MP4_OUTPUT, POLICY, studio_options, threads_option, to_args
from mediarunner.media.ffmpeg import run_ffmpeg
from mediarunner.media.probe import MediaInfo, probe
from mediarunner.models.studio import Cut, Intro, Operation, Outro, Watermark, parse_operations
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


def _encode_args(preset: str, crf: int, threads: int, *, audio: bool) -> list[str]:
    return to_args({**studio_options(preset, crf, audio=audio), **threads_option(threads), **MP4_OUTPUT})


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
    args = ["-ss", f"{op.start:.6f}", "-i", _file(src), "-t", f"{length:.6f}"]
    if info.has_video:
        w, h = _need_video(info, "cut")
        args += ["-map", "0:V:0"]
        if w % 2 or h % 2:
            args += ["-vf", f"scale={_even(w)}:{_even(h)}"]
    if info.has_audio:
        args += ["-map", "0:a:0"]
    args += _encode_args(preset, crf, threads, audio=info.has_audio)
    if not info.has_video:
        args += ["-vn"]
    return [*args, _file(dst)], length


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
    args: list[str] = []
    graph: list[str] = []
    labels: list[str] = []
    for i, (path, info) in enumerate(clips):
        _need_video(info, f"clip {path.name}")
        args += ["-i", _file(path)]
        graph.append(
            f"[{i}:V:0]scale={w}:{h}:force_original_aspect_ratio=decrease,"
            f"pad={w}:{h}:(ow-iw)/2:(oh-ih)/2:color=black,setsar=1,"
            f"fps={fps.numerator}/{fps.denominator},format=yuv420p,setpts=PTS-STARTPTS[v{i}]"
        )
        labels.append(f"[v{i}]")
        if with_audio:
            if info.has_audio:
                graph.append(
                    f"[{i}:a:0]aresample={AUDIO_RATE},aformat=sample_fmts=fltp:channel_layouts=stereo,"
                    f"asetpts=PTS-STARTPTS[a{i}]"
                )
            else:
                graph.append(
                    f"anullsrc=channel_layout=stereo:sample_rate={AUDIO_RATE},"
                    f"atrim=duration={info.duration:.6f},aformat=sample_fmts=fltp[a{i}]"
                )
            labels.append(f"[a{i}]")
    n = len(clips)
    graph.append(f"{''.join(labels)}concat=n={n}:v=1:a={1 if with_audio else 0}[v]{'[a]' if with_audio else ''}")
    args += ["-filter_complex", ";".join(graph), "-map", "[v]"]
    if with_audio:
        args += ["-map", "[a]"]
    args += _encode_args(preset, crf, threads, audio=with_audio)
    return [*args, _file(dst)], sum(info.duration for _, info in clips)


_POSITIONS: dict[str, tuple[str, str]] = {
    "top-left": ("{m}", "{m}"),
    "top-right": ("main_w-overlay_w-{m}", "{m}"),
    "bottom-left": ("{m}", "main_h-overlay_h-{m}"),
    "bottom-right": ("main_w-overlay_w-{m}", "main_h-overlay_h-{m}"),
    "center": ("(main_w-overlay_w)/2", "(main_h-overlay_h)/2"),
}


def watermark_args(
    src: Path, info: MediaInfo, image: Path, op: Watermark, dst: Path, *, preset: str, crf: int, threads: int
) -> tuple[list[str], float]:
    """Overlay ``image`` on every frame of ``src``."""
    w, h = _need_video(info, "watermark")
    m = op.margin
    if op.scale is not None:
        target = max(2, round(w * op.scale))
        size = f"scale=w={target}:h=-1"
    else:
        # Native size, shrunk (aspect kept) only when it would not fit inside the margins.
        fit_w, fit_h = max(2, w - 2 * m), max(2, h - 2 * m)
        size = f"scale=w='min(iw,{fit_w})':h='min(ih,{fit_h})':force_original_aspect_ratio=decrease"
    x, y = (c.format(m=m) for c in _POSITIONS[op.position])
    fix = f",scale={_even(w)}:{_even(h)}" if (w % 2 or h % 2) else ""
    graph = (
        f"[1:v]{size},format=rgba[wm];"
        f"[0:V:0][wm]overlay=x={x}:y={y}:eof_action=repeat:format=auto{fix},format=yuv420p[v]"
    )
    args = ["-i", _file(src), "-i", _file(image), "-filter_complex", graph, "-map", "[v]"]
    if info.has_audio:
        args += ["-map", "0:a:0"]
    args += _encode_args(preset, crf, threads, audio=info.has_audio)
    return [*args, _file(dst)], info.duration


# -------------------------------------------------------------------------------------------- driver


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

    # Resolve and probe every side input first: a bad intro must not cost a full encode.
    clips: dict[str, tuple[Path, MediaInfo]] = {}
    images: dict[str, Path] = {}
    for op in ops:
        if isinstance(op, Intro | Outro) and op.url not in clips:
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

    n = len(ops)
    current = src
    for i, op in enumerate(ops):
        dst = work_dir / f"studio-{i + 1:02d}-{op.op}.mp4"
        kw: dict[str, Any] = {"preset": preset, "crf": crf, "threads": threads}
        if isinstance(op, Cut):
            args, expected = cut_args(current, info, op, dst, **kw)
        elif isinstance(op, Intro):
            args, expected = concat_args([clips[op.url], (current, info)], info, dst, **kw)
        elif isinstance(op, Outro):
            args, expected = concat_args([(current, info), clips[op.url]], info, dst, **kw)
        else:
            args, expected = watermark_args(current, info, images[op.image_url], op, dst, **kw)

        def step_progress(fraction: float, i: int = i) -> None:
            if on_progress is not None:
                on_progress(min(1.0, (i + fraction) / n))

        try:
            run_ffmpeg(
                args,
                ffmpeg=ffmpeg,
                duration=expected if expected > 0 and math.isfinite(expected) else None,
                on_progress=step_progress,
                should_cancel=should_cancel,
                cancel_poll=cancel_poll,
            )
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
