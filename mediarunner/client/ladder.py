"""The jobs of a transcode ladder (a mixin of :class:`~mediarunner.client.Client`): rungs, codecs,
split parts, hardware routing, cover images and storyboards, validated before anything is written."""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from mediarunner.config import Settings
from mediarunner.config.settings import Rendition
from mediarunner.errors import MediarunnerError, ValidationError
from mediarunner.media.cover import probe_image
from mediarunner.media.hardware import route_hardware
from mediarunner.media.probe import probe
from mediarunner.models.base import utcnow
from mediarunner.models.db import transaction
from mediarunner.models.enums import Health, JobType
from mediarunner.models.fleet_queries import list_runners
from mediarunner.models.health import HealthThresholds
from mediarunner.models.locations import is_local, resolve_local_path
from mediarunner.models.payloads import (
    PodPackaging,
    RenditionPayload,
    SpriteGrid,
    StoryboardPayload,
    TranscodePayload,
    dump,
    rendition_name,
)
from mediarunner.models.schemas import Job
from mediarunner.models.transitions import NewJob
from mediarunner.scheduler.routing import route


class LadderJobs:
    settings: Settings

    if TYPE_CHECKING:  # provided by Client
        def _check_input(self, input: str) -> None: ...
        def _check_output(self, output: str) -> None: ...
        def _check_local_input(self, input: str | None) -> None: ...
        @staticmethod
        def _check_exists(input: str | None) -> None: ...
        @staticmethod
        def _validated(schema: type[Any], /, **fields: Any) -> Any: ...
        def _common(self, priority: int, priority_class: str, metadata: Mapping[str, Any] | None) -> dict[str, Any]: ...
        def _submit(self, jobs: builtins.list[NewJob]) -> Job: ...

    def _rungs(self, renditions: Sequence[str] | None, given: Sequence[Rendition] | None = None) -> builtins.list[Any]:
        """The configured rungs named by ``renditions`` (None: all), tallest first; or the rungs ``given``."""
        if given is not None:
            if renditions is not None or isinstance(given, str) or not given or \
                    not all(isinstance(r, Rendition) for r in given):
                raise ValidationError("ladder must be a non-empty list of Rendition (and renditions unset)")
            return list({r.name: r for r in sorted(given, key=lambda r: -r.height)}.values())
        ladder = self.settings.ladder_by_name()
        if renditions is not None:
            if isinstance(renditions, str) or not renditions:
                raise ValidationError("renditions must be a non-empty list of rendition names")
            unknown = [r for r in renditions if r not in ladder]
            if unknown:
                raise ValidationError(f"unknown rendition(s) {unknown}; configured: {sorted(ladder)}")
        rungs = sorted((ladder[n] for n in (renditions or ladder)), key=lambda r: -r.height)
        return list({r.name: r for r in rungs}.values())

    def _ladder_jobs(self, input: str, output: str, renditions: Sequence[str] | None, formats: Sequence[str],
                     common: dict[str, Any], *, queue: str | None, parent: int | None = None,
                     index: int = 0, parts: int | None = 1,
                     video_codecs: Sequence[str] = ("h264",),
                     cover_image: str | None = None, hardware: str = "none",
                     ladder: Sequence[Rendition] | None = None,
                     fps: float | None = None, pod: PodPackaging | None = None) -> builtins.list[NewJob]:
        """The jobs of a transcode ladder: the TRANSCODE parent (child of ``parent``, placed at ``index``
        of the submitted list) and one TRANSCODE_RENDITION child per lower rung; split into
        ``parts``, one child per part of every rung (the parent prunes those a short video needs not).
        ``parts=None``: the ``transcode_parts`` setting, or with the auto planner up to
        ``transcode_auto_max_parts`` children per rung, of which the parent keeps what it decides."""
        rungs = self._rungs(renditions, ladder)
        planner = self.settings.transcode_planner
        auto_parts = parts is None and planner == "auto"
        if parts is None:
            parts = self.settings.transcode_auto_max_parts if auto_parts else self.settings.transcode_parts
        q, why = route(JobType.TRANSCODE, queue=queue, allowed=self.settings.job_queues)
        self._check_input(input)
        self._check_output(output)
        if isinstance(formats, str) or isinstance(video_codecs, str):
            raise ValidationError("formats and video_codecs must be sequences such as ('hls', 'mp4'), ('h264',)")
        if not isinstance(parts, int) or isinstance(parts, bool):
            raise ValidationError("parts must be an integer")
        top = self._validated(TranscodePayload, input=input, output=output, formats=tuple(formats),
                              ladder=tuple(rungs), parts=parts, video_codecs=tuple(video_codecs),
                              cover_image=cover_image, hardware=hardware, fps=fps, planner=planner,
                              auto_parts=auto_parts, pod=pod)
        self._check_local_input(input)
        cq, cwhy = route(JobType.TRANSCODE_RENDITION, queue=queue, allowed=self.settings.job_queues)
        if top.hardware != "none" and queue is None:
            q, why = cq, cwhy = self._route_hardware(top.hardware, top.video_codecs)
        jobs = [NewJob(JobType.TRANSCODE, q, dump(top), parent=parent, routing_reason=why, **common)]
        # Unsplit, the parent encodes the top rung (of the first codec) it can fill and children the rest.
        names = [rendition_name(rung.name, codec) for codec in top.video_codecs for rung in rungs]
        children = [(name, 0) for name in names[1:]] if parts == 1 else \
            [(name, part) for name in names for part in range(parts)]
        for name, part in children:
            child = self._validated(RenditionPayload, input=input, output=output, formats=top.formats,
                                    rendition=name, part=part, parts=parts, cover_image=cover_image,
                                    hardware=top.hardware, pod=top.pod)
            jobs.append(NewJob(JobType.TRANSCODE_RENDITION, cq, dump(child), parent=index, routing_reason=cwhy,
                               **common))
        return jobs

    def _route_hardware(self, asked: str, codecs: Sequence[str]) -> tuple[str, str]:
        """A hardware request goes to an online worker whose start-up test encode opened such an
        encoder; with none online, to cpu as a software fallback (the reason says so)."""
        def online(s: Any) -> builtins.list[Any]:
            return [(r.hostname, r.queues, (r.capabilities.get("ffmpeg") or {}).get("hardware_usable") or ())
                    for r in list_runners(s, utcnow(), HealthThresholds.from_settings(self.settings))
                    if r.health is not Health.OFFLINE]
        runners = transaction(online, url=self.settings.database_url)
        return route_hardware(asked, codecs, runners, allowed=self.settings.job_queues)

    def _check_cover(self, input: str, cover: str | None) -> None:
        """A cover image lies in the input roots (or is an allowed URL); a local one must be an image,
        and a local input with it must be audio only."""
        if cover is None:
            return
        self._check_input(cover)
        self._check_local_input(cover)
        self._check_exists(cover)
        try:
            if is_local(cover):
                probe_image(resolve_local_path(cover, None, what="input"), ffprobe=self.settings.ffprobe_path)
            if is_local(input) and probe(resolve_local_path(input, None, what="input"),
                                         ffprobe=self.settings.ffprobe_path).has_video:
                raise ValidationError(f"{input!r} already has video; a cover image is for an audio-only input")
        except MediarunnerError as exc:
            raise ValidationError(f"invalid cover_image: {exc}") from None

    def submit_storyboard(self, input: str, output: str, *, sprites: SpriteGrid | Mapping[str, Any] | None = None,
                          image: str | None = None, thumbnails: int = 0, priority: int = 0,
                          priority_class: str = "default", metadata: Mapping[str, Any] | None = None,
                          queue: str | None = None) -> Job:
        """A storyboard of ``input`` as a job of its own (no transcode): ``output``/storyboard/ holds
        the sprite and its WebVTT track. ``sprites``: the geometry (tile size, columns x rows, seconds
        between tiles: see :class:`~mediarunner.models.payloads.SpriteGrid`), else planned from the
        settings; ``image``: ``jpg`` or ``webp`` (None: the ``storyboard_image`` setting)."""
        common = self._common(priority, priority_class, metadata)
        self._check_input(input)
        self._check_output(output)
        self._check_local_input(input)
        self._check_exists(input)
        job = self._storyboard_job(input, output, True, thumbnails, common, queue=queue, parent=None,
                                   sprites=sprites, image=image)
        return self._submit([job])

    def _storyboard_job(self, input: str, output: str, storyboard: bool, thumbnails: int, common: dict[str, Any],
                        *, queue: str | None, parent: int | None = 0, sprites: Any = None,
                        image: str | None = None) -> NewJob:
        """The ``storyboard`` job: a child of a transcode parent (index 0), or (``parent=None``) a
        root. A local input is probed now, so that an audio-only one is refused before anything is
        written (a remote one: by the job)."""
        if not isinstance(thumbnails, int) or isinstance(thumbnails, bool):
            raise ValidationError("thumbnails must be an integer")
        payload = self._validated(StoryboardPayload, input=input, output=output, storyboard=bool(storyboard),
                                  thumbnails=thumbnails, sprites=sprites, image=image)
        if is_local(input):
            try:
                info = probe(resolve_local_path(input, None, what="input"), ffprobe=self.settings.ffprobe_path)
            except MediarunnerError as exc:
                raise ValidationError(f"invalid input: {exc}") from None
            if not info.has_video:
                raise ValidationError(f"storyboard and thumbnails need a video stream; {input!r} is audio only")
        q, why = route(JobType.STORYBOARD, queue=queue, allowed=self.settings.job_queues)
        return NewJob(JobType.STORYBOARD, q, dump(payload), parent=parent, routing_reason=why, **common)
