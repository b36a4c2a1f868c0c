"""Transcription handlers: ``extract_audio`` (cpu) -> ``transcribe`` (gpu, or cpu as a fallback).

Outputs beside the job's other outputs::

    transcript.audio.wav     16 kHz mono audio handed from the parent to the child
    transcript.vtt / .srt    subtitles
    transcript.json          segments, language, engine, model, device, realtime factor
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mediarunner.errors import PermanentError
from mediarunner.models.enums import Stage
from mediarunner.models.locations import resolve_local_path
from mediarunner.models.payloads import ExtractAudioPayload, TranscribePayload
from mediarunner.speech import Transcript, engine_loads, engine_lock, extract_audio, get_engine
from mediarunner.speech.subtitles import to_json, to_srt, to_webvtt
from mediarunner.storage.local import publish_file, remove_quietly
from mediarunner.tasks.context import JobContext
from mediarunner.tasks.runtime import Outcome
from mediarunner.tasks.transcode import artifact, stage_input

AUDIO = "transcript.audio.wav"
RENDER = {"vtt": to_webvtt, "srt": to_srt, "json": to_json}


def run_extract_audio(ctx: JobContext) -> Outcome:
    p = ExtractAudioPayload.model_validate(ctx.job.payload)
    s = ctx.settings
    src = stage_input(ctx, p.input)
    ctx.set_stage(Stage.PROCESSING)
    wav = ctx.scratch / AUDIO
    duration = extract_audio(src, wav, ffmpeg=s.ffmpeg_path, ffprobe=s.ffprobe_path,
                             on_progress=ctx.span(0, 90), should_cancel=ctx.should_cancel)
    result: dict[str, Any] = {"has_audio": duration is not None, "audio_duration": duration or 0.0}
    if duration is None:
        ctx.log("input has no audio stream: the transcript will be empty")
        return Outcome(result)
    ctx.set_stage(Stage.UPLOADING)
    final = resolve_local_path(p.output, s.output_roots, what="output") / AUDIO
    publish_file(wav, final)
    result.update(audio=str(final), artifacts=[artifact("audio_wav", final, duration, "pcm_s16le")])
    return Outcome(result)


def run_transcribe(ctx: JobContext) -> Outcome:
    p = TranscribePayload.model_validate(ctx.job.payload)
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
        audio = resolve_local_path(str(parent["audio"]), s.output_roots, what="input")
        with engine_lock(engine.device):
            transcript = engine.transcribe(audio, language=p.language, should_cancel=ctx.should_cancel)
    else:
        transcript = Transcript(language=p.language, segments=[], engine=engine.name, model=engine.model_name,
                                device=engine.device, audio_duration=0.0, processing_seconds=0.0)
    ctx.progress(90)
    ctx.log(f"{len(transcript.segments)} segment(s), language {transcript.language}, "
            f"realtime factor {transcript.realtime_factor:.3f} on {engine.device}")

    ctx.set_stage(Stage.UPLOADING)
    out_dir = resolve_local_path(p.output, s.output_roots, what="output")
    artifacts = []
    for fmt in p.formats:
        tmp = ctx.scratch / f"transcript.{fmt}"
        tmp.write_text(RENDER[fmt](transcript), encoding="utf-8")
        publish_file(tmp, out_dir / tmp.name)
        artifacts.append(artifact(fmt, out_dir / tmp.name, transcript.audio_duration))
    if parent.get("audio"):
        remove_quietly(Path(parent["audio"]))  # the handover copy is no longer needed
    return Outcome({
        "artifacts": artifacts, "language": transcript.language, "segments": len(transcript.segments),
        "engine": engine.name, "model": engine.model_name, "device": engine.device,
        "realtime_factor": transcript.realtime_factor, "audio_duration": transcript.audio_duration,
        "ran_on": {"queue": ctx.job.queue, "worker": ctx.worker, "why": ctx.job.routing_reason},
        # False once the worker process has the model: it is loaded once per process, not per job.
        "model_loaded": engine_loads() > loads,
    })
