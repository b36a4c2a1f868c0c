"""Transcription handlers: ``extract_audio`` (cpu) -> ``transcribe`` (gpu, or cpu as a fallback).

Outputs beside the job's other outputs (any store: local, S3, SFTP, FTP)::

    transcript.audio.wav     16 kHz mono audio handed from the parent to the child through the
                             output store (the two steps share no filesystem), removed by the child
    transcript.vtt / .srt    subtitles
    transcript.json          segments, language, engine, model, device, realtime factor
"""

from __future__ import annotations

from typing import Any

from mediarunner.errors import PermanentError
from mediarunner.models.enums import Stage
from mediarunner.models.payloads import ExtractAudioPayload, TranscribePayload, load
from mediarunner.speech import Transcript, engine_loads, engine_lock, extract_audio, get_engine
from mediarunner.speech.subtitles import to_json, to_srt, to_webvtt
from mediarunner.tasks import io
from mediarunner.tasks.context import JobContext
from mediarunner.tasks.runtime import Outcome
from mediarunner.tasks.transcode import artifact

AUDIO = "transcript.audio.wav"
RENDER = {"vtt": to_webvtt, "srt": to_srt, "json": to_json}


def run_extract_audio(ctx: JobContext) -> Outcome:
    p = load(ExtractAudioPayload, ctx.job.payload)
    s = ctx.settings
    io.check_output(ctx, p.output)
    src = io.stage_input(ctx, p.input)
    ctx.set_stage(Stage.PROCESSING)
    wav = ctx.scratch / AUDIO
    duration = extract_audio(src, wav, ffmpeg=s.ffmpeg_path, ffprobe=s.ffprobe_path,
                             on_progress=ctx.span(0, 90), should_cancel=ctx.should_cancel)
    result: dict[str, Any] = {"has_audio": duration is not None, "audio_duration": duration or 0.0}
    if duration is None:
        ctx.log("input has no audio stream: the transcript will be empty")
        return Outcome(result)
    (f,) = io.publish_output(ctx, wav, p.output, AUDIO)
    result.update(audio=f.location,
                  artifacts=[{**artifact("audio_wav", f.local, duration, "pcm_s16le"), "path": f.location}])
    return Outcome(result)


def run_transcribe(ctx: JobContext) -> Outcome:
    p = load(TranscribePayload, ctx.job.payload)
    s = ctx.settings
    parent = ctx.parent.result if ctx.parent else None
    if parent is None:
        raise PermanentError("transcribe job has no completed extract_audio parent")
    ctx.set_stage(Stage.PROCESSING)
    loads = engine_loads()
    engine = get_engine(
        s.whisper_engine, p.model or s.whisper_model, model_dir=s.whisper_model_dir, device=s.whisper_device,
        compute_type=s.whisper_compute_type, batch_size=s.whisper_batch_size, cpu_threads=s.whisper_cpu_threads,
        align_model_dir=s.whisper_align_model_dir, diarize_model_dir=s.whisper_diarize_model_dir,
    )
    if parent.get("has_audio"):
        ctx.set_stage(Stage.DOWNLOADING)
        audio = io.fetch_output(ctx, p.output, AUDIO)
        ctx.set_stage(Stage.PROCESSING)
        with engine_lock(engine.device):
            transcript = engine.transcribe(audio, language=p.language, should_cancel=ctx.should_cancel)
    else:
        transcript = Transcript(language=p.language, segments=[], engine=engine.name, model=engine.model_name,
                                device=engine.device, audio_duration=0.0, processing_seconds=0.0)
    ctx.progress(90)
    ctx.log(f"{len(transcript.segments)} segment(s), language {transcript.language}, "
            f"realtime factor {transcript.realtime_factor:.3f} on {engine.device}")

    ctx.set_stage(Stage.UPLOADING)
    artifacts = []
    for fmt in p.formats:
        f = io.publish_text(ctx, RENDER[fmt](transcript), p.output, f"transcript.{fmt}")
        artifacts.append({**artifact(fmt, f.local, transcript.audio_duration), "path": f.location})
    if parent.get("audio"):
        io.remove_output(ctx, p.output, AUDIO)  # the handover copy is no longer needed
    return Outcome({
        "artifacts": artifacts, "language": transcript.language, "segments": len(transcript.segments),
        "engine": engine.name, "model": engine.model_name, "device": engine.device,
        "realtime_factor": transcript.realtime_factor, "audio_duration": transcript.audio_duration,
        "ran_on": {"queue": ctx.job.queue, "worker": ctx.worker, "why": ctx.job.routing_reason},
        # False once the worker process has the model: it is loaded once per process, not per job.
        "model_loaded": engine_loads() > loads,
    })
