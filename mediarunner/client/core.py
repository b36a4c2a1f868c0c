"""The Python API: ``from mediarunner import Client``.

Submission writes the job rows first (one transaction), then publishes the root job's message (a
doorbell for its queue: workers run a queue's jobs in rank order, ``models/ordering.py``).
If the broker is down the rows stay ``pending`` and the scheduler's outbox publishes them
later: a submission is never lost and never hangs on the broker.
"""

from __future__ import annotations

import builtins
import functools
import json
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import timedelta
from typing import Any

from celery import Celery
from pydantic import ValidationError as PydanticValidationError

from mediarunner.client.ladder import LadderJobs
from mediarunner.config import Settings, get_settings
from mediarunner.config.settings import Rendition
from mediarunner.errors import InvalidInputError, InvalidOutputError, MediarunnerError, ValidationError
from mediarunner.models import transitions, webhooks
from mediarunner.models.base import utcnow
from mediarunner.models.capabilities import Needs
from mediarunner.models.db import one_statement, transaction
from mediarunner.models.enums import JobState, JobType
from mediarunner.models.locations import (
    INPUT_ONLY_SCHEMES,
    check_input_root,
    check_live_input,
    check_location,
    is_local,
    join_location,
    parse_location,
    resolve_local_path,
)
from mediarunner.models.networks import check_network_target
from mediarunner.models.payloads import (
    STUDIO_OUTPUT,
    ExtractAudioPayload,
    LivePayload,
    NoopPayload,
    PodPackaging,
    StudioPayload,
    TranscribePayload,
    dump,
)
from mediarunner.models.queries import get_job, list_jobs, select_job_ids
from mediarunner.models.schemas import Job
from mediarunner.models.transitions import NewJob
from mediarunner.scheduler.dispatch import dispatch, publish_submitted
from mediarunner.scheduler.routing import QueueProbe, route, route_transcription

MAX_METADATA_BYTES = 16_384
OnSubmit = Callable[[Any, Job], None]  # (session, root job), in the submission's transaction


def _needs(needs: Mapping[str, Any] | None) -> dict[str, Any]:
    """``needs`` ({"gpu": bool, "model": name, "encoder": name}) as ``NewJob`` fields, validated."""
    if needs is None:
        return {}
    if not isinstance(needs, Mapping) or set(needs) - {"gpu", "model", "encoder"}:
        raise ValidationError("needs must be a mapping with keys among gpu, model, encoder")
    gpu, model, encoder = needs.get("gpu", False), needs.get("model"), needs.get("encoder")
    if not isinstance(gpu, bool) or any(v is not None and not (isinstance(v, str) and 0 < len(v) <= 64
                                                               and v.isprintable() and "|" not in v)
                                        for v in (model, encoder)):
        raise ValidationError("needs: gpu is true or false; model and encoder are names (1-64 characters)")
    return Needs(gpu=gpu, model=model, encoder=encoder).columns()


class Client(LadderJobs):
    def __init__(self, settings: Settings | None = None, *, app: Celery | None = None) -> None:
        self.settings = settings or get_settings()
        self._app = app
        self._probe: QueueProbe | None = None
        self._broker_down_until = 0.0  # monotonic time before which submissions skip the broker

    @property
    def app(self) -> Celery:
        if self._app is None:
            from mediarunner.workers.app import app, create_app

            # The shared app was configured at import; settings given later may name another broker.
            self._app = app if app.conf.broker_url == self.settings.broker_url else create_app(self.settings)
        return self._app

    # ------------------------------------------------------------------ submission

    def submit_transcode(self, input: str, output: str, renditions: Sequence[str] | None = None,
                         formats: Sequence[str] = ("hls", "mp4"), priority: int = 0,
                         metadata: Mapping[str, Any] | None = None, *, priority_class: str = "default",
                         queue: str | None = None, transcribe: bool = False, language: str | None = None,
                         transcribe_device: str = "auto", parts: int | None = None,
                         video_codecs: Sequence[str] = ("h264",), storyboard: bool = False,
                         thumbnails: int = 0, cover_image: str | None = None, hardware: str = "none",
                         notify_url: str | None = None, ladder: Sequence[Rendition] | None = None,
                         on_submit: OnSubmit | None = None, fps: float | None = None,
                         pod: PodPackaging | None = None) -> Job:
        """Transcode ``input`` into an HLS + MP4 ladder under the directory ``output``; with
        ``transcribe=True`` also subtitles (an extract_audio -> transcribe branch after the parent).
        ``parts``: split every rung of a long video into that many time parts, encoded by several
        workers at once (fewer for a short video); default: with the ``auto`` planner
        (``transcode_planner``) the transcode parent decides from the duration and the idle workers,
        with ``fixed`` the ``transcode_parts`` setting.
        ``video_codecs`` (``h264``, ``hevc``, ``av1``, ``vp9``): one ladder per codec, all in one master
        playlist (renditions named ``720p``, ``720p_hevc``, ``720p_av1``...). ``storyboard=True`` and/or
        ``thumbnails=N`` add a ``storyboard`` child: a sprite sheet + WebVTT track, N images and a poster.
        ``cover_image`` (a path or URL of a still image; ``input`` an audio file): the video ladder of
        that image over the audio (PeerTube's audio merge). ``hardware`` (``auto``, ``nvenc``, ``qsv``,
        ``vaapi``; default ``none``): encode on a worker whose GPU encoder opens, else in software
        (the routing reason and each rendition's ``encoder`` record say which and why).
        ``fps``: every video rendition at this frame rate (default: the source's, at most the policy's).
        ``notify_url`` (every ``submit_*``): POSTed a signed webhook when the family is terminal
        (:meth:`_notify`); the subscription is written in the submission's transaction. ``ladder``: the
        rungs themselves instead of configured names (``renditions``). ``on_submit(session, root)``
        (``submit_transcode``, ``submit_studio``, ``submit_transcription``): called in the submission's
        transaction, e.g. to record what the family stands for elsewhere (``api/esup.py``). ``pod``: the
        ladder also makes an Esup-Pod task's files once its last rung is published (``tasks/pod.py``)."""
        notify = self._notify(notify_url)

        common = self._common(priority, priority_class, metadata)
        jobs = self._ladder_jobs(input, output, renditions, formats, common, queue=queue,
                                 parts=parts,
                                 video_codecs=video_codecs, cover_image=cover_image, hardware=hardware,
                                 ladder=ladder, fps=fps, pod=pod)
        self._check_exists(input)
        self._check_cover(input, cover_image)
        if storyboard or thumbnails:
            jobs.append(self._storyboard_job(input, output, storyboard, thumbnails, common, queue=queue))
        if transcribe:
            ext = self._validated(ExtractAudioPayload, input=input, output=output)
            jobs.append(NewJob(JobType.EXTRACT_AUDIO, route(JobType.EXTRACT_AUDIO)[0], dump(ext), parent=0,
                               routing_reason=route(JobType.EXTRACT_AUDIO)[1], **common))
            jobs.append(self._transcribe_job(output, language, None, ("vtt", "srt", "json"), transcribe_device,
                                             parent=len(jobs) - 1, common=common))
        return self._submit(jobs, notify, on_submit)

    def submit_studio(self, input: str, output: str, operations: Sequence[Mapping[str, Any]], *,
                      transcode: bool = False, renditions: Sequence[str] | None = None,
                      formats: Sequence[str] = ("hls", "mp4"), priority: int = 0,
                      metadata: Mapping[str, Any] | None = None, priority_class: str = "default",
                      queue: str | None = None, notify_url: str | None = None,
                      ladder: Sequence[Rendition] | None = None, on_submit: OnSubmit | None = None,
                      pod: PodPackaging | None = None) -> Job:
        """Apply studio ``operations`` (cut, intro, outro, watermark; in order) to ``input`` and publish
        ``output``/studio.mp4. ``transcode=True`` adds a transcode ladder of that file under ``output``
        as a child branch (it starts when the edit completes)."""
        notify = self._notify(notify_url)
        self._check_input(input)
        self._check_output(output)
        payload = self._validated(StudioPayload, input=input, output=output, operations=operations)
        for op in payload.operations:
            side = getattr(op, "url", None) or getattr(op, "image_url", None)
            if side is not None:
                self._check_input(side)
        for op in payload.operations:
            side = getattr(op, "url", None) or getattr(op, "image_url", None)
            self._check_local_input(side)
        self._check_local_input(input)
        self._check_exists(input)
        common = self._common(priority, priority_class, metadata)
        q, why = route(JobType.STUDIO, queue=queue, allowed=self.settings.job_queues)
        jobs = [NewJob(JobType.STUDIO, q, dump(payload), routing_reason=why, **common)]
        if transcode:
            jobs += self._ladder_jobs(join_location(output, STUDIO_OUTPUT), output, renditions, formats, common,
                                      queue=queue, parent=0, index=len(jobs), ladder=ladder, pod=pod)
        return self._submit(jobs, notify, on_submit)

    def submit_live(self, input_url: str, output: str, renditions: Sequence[str] | None = None, *,
                    listen: bool = False, audio: bool = True, priority: int = 0,
                    metadata: Mapping[str, Any] | None = None, priority_class: str = "default",
                    queue: str | None = None, notify_url: str | None = None,
                    segment_seconds: float | None = None) -> Job:
        """Transcode a live input (RTMP/SRT/HLS/...; with ``listen`` the RTMP address to receive a publish
        on) into a live HLS ladder under ``output`` until the stream ends or the job is cancelled.
        ``segment_seconds``: the HLS segment length (default: the worker's ``live_segment_seconds``)."""
        notify = self._notify(notify_url)
        self._check_output(output)
        rungs = self._rungs(renditions)
        payload = self._validated(LivePayload, input_url=input_url, output=output, renditions=tuple(rungs),
                                  listen=listen, audio=audio, segment_seconds=segment_seconds)
        q, why = route(JobType.LIVE, queue=queue, allowed=self.settings.job_queues)
        self._check_live_input(payload.input_url, listen)
        return self._submit([NewJob(JobType.LIVE, q, dump(payload), routing_reason=why,
                                    **self._common(priority, priority_class, metadata))], notify)

    def submit_transcription(self, input: str, output: str, language: str | None = None, model: str | None = None,
                             formats: Sequence[str] = ("vtt", "srt", "json"), priority: int = 0,
                             metadata: Mapping[str, Any] | None = None, *, device: str = "auto",
                             priority_class: str = "default", notify_url: str | None = None,
                             queue: str | None = None, on_submit: OnSubmit | None = None) -> Job:
        """Speech to subtitles: ``extract_audio`` (cpu) then ``transcribe`` — on a GPU worker when one
        is online (or ``device="gpu"``), else on cpu; the job records where it ran and why. ``queue``
        (one of ``job_queues``, e.g. a remote runners' queue): both jobs run there instead."""
        notify = self._notify(notify_url)
        self._check_output(output)
        self._check_input(input)
        common = self._common(priority, priority_class, metadata)
        ext = self._validated(ExtractAudioPayload, input=input, output=output)
        q, why = route(JobType.EXTRACT_AUDIO, queue=queue, allowed=self.settings.job_queues)
        self._check_local_input(input)
        self._check_exists(input)
        jobs = [NewJob(JobType.EXTRACT_AUDIO, q, dump(ext), routing_reason=why, **common)]
        jobs.append(self._transcribe_job(output, language, model, formats, device, parent=0, common=common,
                                         queue=queue))
        return self._submit(jobs, notify, on_submit)

    def _transcribe_job(self, output: str, language: str | None, model: str | None, formats: Sequence[str],
                        device: str, *, parent: int, common: dict[str, Any], queue: str | None = None) -> NewJob:
        if isinstance(formats, str):
            raise ValidationError("formats must be a sequence such as ('vtt', 'srt')")
        payload = self._validated(TranscribePayload, output=output, language=language, model=model,
                                  formats=tuple(formats), device=device)
        if queue is not None:
            q, why = route(JobType.TRANSCRIBE, queue=queue, allowed=self.settings.job_queues)
        else:
            q, why = route_transcription(payload.device, lambda: self.queue_probe.online("gpu"))
        # A model named (not a path) must be on the worker's disk: only a worker that has it claims the job.
        model = payload.model if payload.model and not any(c in payload.model for c in "/\\~") else None
        return NewJob(JobType.TRANSCRIBE, q, dump(payload), parent=parent, routing_reason=why, need_model=model,
                      **common)

    @property
    def queue_probe(self) -> QueueProbe:
        if self._probe is None:
            self._probe = QueueProbe(self.app, timeout=self.settings.gpu_probe_timeout_seconds)
        return self._probe

    def submit_noop(self, duration: float = 0.0, output: str | None = None, priority: int = 0, *,
                    queue: str | None = None, metadata: Mapping[str, Any] | None = None,
                    fail_attempts: int = 0, priority_class: str = "default",
                    needs: Mapping[str, Any] | None = None) -> Job:
        """A diagnostic job: waits ``duration`` seconds (interruptibly), optionally writes a file, and
        fails transiently on its first ``fail_attempts`` attempts. ``needs`` (``gpu``, ``model``,
        ``encoder``): only a worker that has them claims it (routing checks, capacity planning)."""
        if output is not None:
            self._check_output(output)
        payload = self._validated(NoopPayload, duration=duration, output=output, fail_attempts=fail_attempts)
        q, why = route(JobType.NOOP, queue=queue, allowed=self.settings.job_queues)
        return self._submit([NewJob(JobType.NOOP, q, dump(payload), routing_reason=why,
                                    **self._common(priority, priority_class, metadata), **_needs(needs))])

    # ------------------------------------------------------------------ queries and control

    def get(self, job_id: str) -> Job:
        return transaction(lambda s: get_job(s, job_id), url=self.settings.database_url)

    def list(self, state: JobState | str | None = None, type: JobType | str | None = None,
             limit: int = 100) -> builtins.list[Job]:
        st = JobState(state) if state is not None else None
        ty = JobType(type) if type is not None else None
        return transaction(lambda s: list_jobs(s, state=st, type=ty, limit=limit), url=self.settings.database_url)

    def cancel(self, job_id: str) -> Job:
        """Cancel a job and its unfinished descendants; a running ffmpeg is killed within ~2 s."""
        transaction(lambda s: (get_job(s, job_id, with_children=False), transitions.cancel(s, job_id, utcnow())),
                    url=self.settings.database_url)
        return self.get(job_id)

    def restart(self, job_id: str) -> Job:
        """Run a failed, timed-out or cancelled job (and its unfinished descendants) again."""
        job = self.get(job_id)
        if not transaction(lambda s: transitions.restart(s, job_id, utcnow()), url=self.settings.database_url):
            raise ValidationError(f"job {job_id} is {job.state.value}; only failed, timed-out or cancelled "
                                  "jobs can be restarted")
        job = self.get(job_id)
        if job.state is JobState.PENDING and job.queue not in self.settings.remote_queues:
            dispatch(job_id, app=self.app, database_url=self.settings.database_url)
        return self.get(job_id)

    def select(self, *, states: Collection[JobState], types: Collection[JobType] = (),
               since: timedelta | None = None) -> builtins.list[str]:
        """Ids of the jobs in ``states`` (of ``types``) whose state changed within ``since``: the
        targets of :meth:`restart_many` / :meth:`cancel_many` (and of their dry runs)."""
        cutoff = utcnow() - since if since is not None else None
        return transaction(lambda s: select_job_ids(s, states=states, types=types, changed_since=cutoff),
                           url=self.settings.database_url)

    def restart_many(self, job_ids: Sequence[str]) -> builtins.list[str]:
        """:meth:`restart` each job that is still restartable (one transaction each); the restarted ids."""
        done = []
        for job_id in job_ids:
            if transaction(functools.partial(_restart, job_id=job_id), url=self.settings.database_url):
                done.append(job_id)
                dispatch(job_id, app=self.app, database_url=self.settings.database_url)  # no-op unless pending
        return done

    def cancel_many(self, job_ids: Sequence[str]) -> builtins.list[str]:
        """:meth:`cancel` each job that is still active; the cancelled ids."""
        return [j for j in job_ids if transaction(functools.partial(_cancel, job_id=j), url=self.settings.database_url)]

    def wait(self, job_id: str, timeout: float | None = None, poll: float = 0.2) -> Job:
        """Block until the job and all its descendants are in a terminal state."""
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.02
        while True:
            job = self.get(job_id)
            if job.done:
                return job
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"job {job_id} not finished after {timeout}s (state {job.state.value})")
            time.sleep(delay)
            delay = min(delay * 2, poll)

    # ------------------------------------------------------------------ helpers

    def _submit(self, jobs: builtins.list[NewJob], notify_url: str | None = None,
                on_submit: OnSubmit | None = None) -> Job:
        url = self.settings.database_url
        # Rows first (the source of truth, stamped as being published), then the message: one
        # transaction per submit, holding the webhook subscription too. If publishing fails the
        # stamp is cleared and the outbox publishes the job at its next tick; if this process
        # dies in between, the outbox re-publishes it once the stamp is `redispatch_after_seconds` old.
        # After a failed publish the broker is skipped for `publish_pause_seconds`: submissions
        # during an outage return at once, unpublished, and the outbox publishes them when it is back.
        # Jobs of remote queues are never published: remote runners ask the API for pending jobs.
        publishing = time.monotonic() >= self._broker_down_until and jobs[0].queue not in self.settings.remote_queues

        def write(session: Any) -> Job:
            now = utcnow()
            job = transitions.insert_jobs(session, jobs, now, publishing=publishing)
            if notify_url is not None:
                webhooks.subscribe(session, job.id, notify_url, now)
            if on_submit is not None:
                on_submit(session, job)
            return job

        # A lone job with nothing else to write is one statement (transitions.insert_jobs).
        alone = len(jobs) == 1 and notify_url is None and on_submit is None
        job = one_statement(write, url=url) if alone else transaction(write, url=url)
        if publishing and not publish_submitted(job, app=self.app, database_url=url):
            self._broker_down_until = time.monotonic() + self.settings.publish_pause_seconds
        return job

    def _notify(self, notify_url: str | None) -> str | None:
        """A ``notify_url`` checked first (before the other arguments): http(s), no credentials,
        its host allowed by ``allowed_networks``; and a webhook secret to sign deliveries with."""
        if notify_url is None:
            return None
        if not self.settings.webhook_secret:  # unset or empty
            raise ValidationError("notify_url needs MEDIARUNNER_WEBHOOK_SECRET set (deliveries are signed with it)")
        return webhooks.check_notify_url(notify_url, self.settings.allowed_networks)

    def _common(self, priority: int, priority_class: str, metadata: Mapping[str, Any] | None) -> dict[str, Any]:
        if not isinstance(priority, int) or isinstance(priority, bool) or not -1000 <= priority <= 1000:
            raise ValidationError("priority must be an integer between -1000 and 1000")
        if priority_class not in self.settings.priority_classes:
            raise ValidationError(f"unknown priority class {priority_class!r}; configured: "
                                  f"{sorted(self.settings.priority_classes)}")
        meta = dict(metadata or {})
        try:
            size = len(json.dumps(meta))
        except (TypeError, ValueError) as exc:
            raise ValidationError(f"metadata must be JSON-serialisable: {exc}") from None
        except RecursionError:
            raise ValidationError("metadata is nested too deeply") from None
        if size > MAX_METADATA_BYTES:
            raise ValidationError(f"metadata is {size} bytes; the limit is {MAX_METADATA_BYTES}")
        return dict(priority=priority, priority_class=priority_class, meta=meta,
                    max_attempts=self.settings.max_attempts)

    def _check_output(self, output: str) -> None:
        if not isinstance(output, str):
            raise ValidationError("output must be a string (a path or a file://, s3://, sftp:// or ftp:// URL)")
        try:  # local: inside the roots; remote: syntax only (known scheme, no credentials)
            check_location(output, "output", self.settings.output_roots)
        except (InvalidOutputError, ValidationError) as exc:
            raise ValidationError(f"invalid output: {exc}") from None

    def _check_input(self, input: str) -> None:
        """Reject credentials embedded in an input URL, and control characters, before they reach a
        row or a message; an http(s) input's host must pass the network allow-list (the worker checks
        it again before connecting). Other problems (missing file, unknown scheme) fail the job on the
        worker, once; the root check of a local input comes last (:meth:`_check_local_input`)."""
        if not isinstance(input, str) or not input:
            return
        try:
            loc = parse_location(input, "input")
        except ValidationError as exc:
            raise ValidationError(f"invalid input: {exc}") from None
        except InvalidInputError:
            return
        if loc.scheme in INPUT_ONLY_SCHEMES:
            try:
                check_network_target(input, self.settings.allowed_networks, what="input")
            except InvalidInputError as exc:
                raise ValidationError(f"invalid input: {exc}") from None

    def _check_local_input(self, input: str | None) -> None:
        """A local input must lie inside ``input_roots`` (and none is read when they are empty); checked
        after the other arguments, so that their own errors are the ones reported."""
        if isinstance(input, str) and is_local(input):
            try:
                check_input_root(input, self.settings.input_roots)
            except InvalidInputError as exc:
                raise ValidationError(f"invalid input: {exc}") from None

    def _check_live_input(self, input_url: str, listen: bool) -> None:
        """The live input's root or network check, the same one the worker repeats before opening it."""
        if isinstance(input_url, str):
            try:
                check_live_input(input_url, self.settings.input_roots, self.settings.allowed_networks,
                                 listen=listen)
            except (ValidationError, InvalidInputError) as exc:
                raise ValidationError(f"invalid live input: {exc}") from None

    @staticmethod
    def _check_exists(input: str | None) -> None:
        """A local input must exist when submitted (after the root checks above): a missing file
        would otherwise fail the parent on a worker and every child with it."""
        if not isinstance(input, str) or not is_local(input):
            return
        try:
            path = resolve_local_path(input, None, what="input")
        except MediarunnerError as exc:
            raise ValidationError(f"invalid input: {exc}") from None
        if not path.is_file():
            raise ValidationError(f"invalid input: {input!r} does not exist or is not a file")

    @staticmethod
    def _validated(schema: type[Any], /, **fields: Any) -> Any:
        try:
            return schema(**fields)
        except PydanticValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise ValidationError(f"invalid {schema.__name__}: {problems}") from None


def _restart(session: Any, *, job_id: str) -> bool:
    return transitions.restart(session, job_id, utcnow())


def _cancel(session: Any, *, job_id: str) -> bool:
    return transitions.cancel(session, job_id, utcnow())
