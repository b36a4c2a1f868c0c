"""All configuration, read from ``MEDIARUNNER_*`` environment variables, a ``.env`` file, or one file per
setting in the secrets directory (``/run/secrets/mediarunner_<name>``: compose/Kubernetes secrets).

Every field is documented in the README's settings table; keep the two in step.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, urlsplit, urlunsplit

from pydantic import BaseModel, Field, IPvAnyNetwork, SecretStr, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SecretsSettingsSource, SettingsConfigDict

from mediarunner.errors import MissingSecretError

#: Where secret files are read from (``MEDIARUNNER_SECRETS_DIR`` overrides; read only if it exists).
SECRETS_DIR_ENV = "MEDIARUNNER_SECRETS_DIR"
DEFAULT_SECRETS_DIR = Path("/run/secrets")


def secrets_dir() -> Path:
    return Path(os.environ.get(SECRETS_DIR_ENV) or DEFAULT_SECRETS_DIR)


class SecretFiles(SecretsSettingsSource):
    """One file per setting (``mediarunner_<name>``); an empty file is unset (compose needs a file
    for every secret it declares, used or not)."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        value, key, is_complex = super().get_field_value(field, field_name)
        return (None if isinstance(value, str) and not value.strip() else value), key, is_complex


class Rendition(BaseModel):
    """One rung of the encoding ladder."""

    model_config = {"frozen": True}

    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")
    height: int = Field(gt=0, le=4320)
    video_bitrate_k: int = Field(gt=0, le=200_000)
    audio_bitrate_k: int = Field(default=128, gt=0, le=1024)


class HostCredentials(BaseModel):
    """Login for one SFTP or FTP host (settings only: never taken from a URL or a task message)."""

    model_config = {"frozen": True, "extra": "forbid"}

    username: str = Field(min_length=1)
    password: SecretStr | None = None
    #: SFTP only: a private key file (OpenSSH or PEM format).
    private_key_path: Path | None = None
    private_key_passphrase: SecretStr | None = None


DEFAULT_LADDER: tuple[Rendition, ...] = (
    Rendition(name="1080p", height=1080, video_bitrate_k=5000, audio_bitrate_k=192),
    Rendition(name="720p", height=720, video_bitrate_k=2800, audio_bitrate_k=128),
    Rendition(name="480p", height=480, video_bitrate_k=1400, audio_bitrate_k=128),
    Rendition(name="360p", height=360, video_bitrate_k=800, audio_bitrate_k=96),
    Rendition(name="240p", height=240, video_bitrate_k=400, audio_bitrate_k=64),
)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="MEDIARUNNER_", env_file=".env", extra="ignore", env_nested_delimiter="__"
    )

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource,
                                   dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Precedence: arguments, environment, ``.env``, then secret files (the directory is looked up
        at each construction, so ``MEDIARUNNER_SECRETS_DIR`` may change; a missing one is skipped)."""
        folder = secrets_dir()
        files = SecretFiles(settings_cls, secrets_dir=folder) if folder.is_dir() else file_secret_settings
        return init_settings, env_settings, dotenv_settings, files

    # --- state and messaging
    database_url: str = "sqlite:///var/mediarunner.db"
    # Put into DATABASE_URL when that has no password of its own (a secret file keeps it out of the URL).
    database_password: SecretStr | None = None
    # Settings that must be set (e.g. ["database_password", "webhook_secret"]): a process refuses to start
    # without them, naming the missing one.
    required_secrets: list[str] = Field(default_factory=list)
    broker_url: str = "redis://127.0.0.1:6379/0"
    broker_password: SecretStr | None = None  # put into BROKER_URL when that has no password of its own
    result_backend: str | None = None
    # Redis re-delivers an unacked message after this many seconds. Must exceed the longest job;
    # quicker recovery from a dead worker comes from heartbeat failover, not from this.
    visibility_timeout: int = 6 * 3600
    # RabbitMQ (MEDIARUNNER_BROKER_URL=amqp://...): "quorum" (replicated; no message priorities:
    # the database claim orders the work) or "classic" (with x-max-priority 10).
    rabbitmq_queue_type: Literal["quorum", "classic"] = "quorum"

    # --- files
    scratch_dir: Path = Path("var/scratch")
    output_roots: list[Path] = Field(default_factory=lambda: [Path("var/outputs")])
    # Local inputs are read only from these directories (and nothing local is read when empty).
    input_roots: list[Path] = Field(default_factory=lambda: [Path("var/inputs")])
    # Network targets (live inputs, webhook notify_url) in loopback, private, link-local, CGNAT,
    # multicast or reserved ranges are refused unless inside one of these CIDRs.
    allowed_networks: list[IPvAnyNetwork] = Field(default_factory=list)
    ffmpeg_path: str = "ffmpeg"
    ffprobe_path: str = "ffprobe"
    ffmpeg_threads: int = 0  # 0 lets ffmpeg choose
    x264_preset: str = "veryfast"
    # The other codecs' speed settings (see media/encoders.py): x265 preset, SVT-AV1 preset
    # (0 slowest .. 13 fastest), libvpx-vp9 cpu-used (0 slowest .. 8 fastest; deadline "good").
    x265_preset: str = "fast"
    svtav1_preset: int = Field(default=10, ge=0, le=13)
    vp9_cpu_used: int = Field(default=4, ge=0, le=8)
    hls_segment_seconds: float = 4.0
    # How a ladder is laid out over the workers (media/strategy.py). "auto": the transcode parent
    # decides when it has probed the source, from the duration, the rungs' costs and the idle slots
    # of the queue: no other idle slot -> every rung in one ffmpeg (one decode); idle slots and a
    # long video -> each rung split into up to transcode_auto_max_parts time parts; otherwise one
    # job per rung. "fixed": one job per rung, split only into the parts asked for (parts= or
    # transcode_parts). An explicit parts= always fixes the split.
    transcode_planner: Literal["auto", "fixed"] = "auto"
    transcode_auto_max_parts: int = Field(default=4, ge=1, le=64)
    # With the fixed planner: each rung split into this many time parts (1: one job per rung).
    # A part is never shorter than transcode_part_min_seconds (either planner).
    transcode_parts: int = Field(default=1, ge=1, le=64)
    transcode_part_min_seconds: float = Field(default=20.0, gt=0)
    # A rung the source already fits (codec, size, bitrate cap, keyframes on the segment grid) is
    # packaged by stream copy instead of re-encoded (media/passthrough.py); False: always encode.
    transcode_passthrough: bool = True
    # PSNR/SSIM of every video rendition against its source in the job result (media/quality.py):
    # off by default (it decodes both again); every quality_sample_every-th frame is compared.
    quality_metrics: bool = False
    quality_sample_every: int = Field(default=10, ge=1, le=1000)
    vaapi_device: str = "/dev/dri/renderD128"  # the DRM render node VAAPI encodes (and the start-up probe) use
    # Storyboards (PeerTube's generate-video-storyboard): a tile every storyboard_min_interval_seconds
    # or more, at most storyboard_max_tiles, storyboard_columns wide; thumbnails and the poster.
    storyboard_tile_width: int = Field(default=192, ge=16, le=1920)
    storyboard_max_tiles: int = Field(default=100, ge=1, le=1000)
    storyboard_min_interval_seconds: float = Field(default=1.0, gt=0)
    storyboard_columns: int = Field(default=10, ge=1, le=100)
    storyboard_image: Literal["jpg", "webp"] = "jpg"
    thumbnail_width: int = Field(default=320, ge=16, le=3840)
    poster_width: int = Field(default=1280, ge=16, le=7680)
    renditions: list[Rendition] = Field(default_factory=lambda: list(DEFAULT_LADDER))

    # --- jobs and scheduling
    max_attempts: int = 3
    # A job whose worker was lost (killed, silent) this many times fails as a poison job; losing a
    # worker is not a failure of the job and spends none of its max_attempts.
    max_aborts: int = 10
    retry_base_seconds: float = 5.0
    retry_max_seconds: float = 600.0
    heartbeat_seconds: float = 2.0  # how often a running job touches its row
    failover_after_seconds: float = 60.0  # a running job silent this long is failed over
    job_time_limit_seconds: float = 6 * 3600
    publish_pause_seconds: float = 5.0  # after a failed publish, submits skip the broker (the outbox publishes)
    redispatch_after_seconds: float = 300.0  # a pending job unclaimed this long is re-published
    redispatch_max_seconds: float = 3600.0  # ... then after twice as long each time, up to this
    # A finished job waits this long for the database to record its completion (outputs are
    # published); fences before publishing wait as long.
    completion_retry_seconds: float = 900.0
    # PostgreSQL: a job's completion is committed without waiting for the WAL flush, like its claim
    # and heartbeats (see models.db.one_statement): a server crash within a second of it can make
    # the job run again (at-least-once; never lost, never a later state without it). True: wait,
    # as submits, failures and cancels always do. Live jobs always wait.
    durable_completions: bool = False
    parts_grace_seconds: float = 86400.0  # parts of split renditions whose jobs all ended: swept after this
    purge_after_days: float = 30.0  # <= 0 disables purging
    purge_batch_size: int = 1000
    beat_interval_seconds: float = 1.0
    priority_classes: dict[str, int] = Field(default_factory=lambda: {"staff": 0, "default": 10})
    # Starvation guard: a pending job moves up one priority class per this many minutes (0: off).
    priority_aging_minutes: float = Field(default=0.0, ge=0)
    # Which runner takes a job: the best runner priority (lower first, `runners set-priority`) with
    # idle capacity, and among equals: least_loaded (running / concurrency), round_robin (the one
    # that claimed least recently), priority (strict: by name; the next only when the first is full)
    # or weighted (running / weight, the weight defaulting to the concurrency).
    runner_balancing: Literal["least_loaded", "round_robin", "priority", "weighted"] = "least_loaded"
    # A job no preferred runner took within this long may be claimed by any runner that can run it.
    runner_preference_grace_seconds: float = Field(default=5.0, ge=0)
    # A worker that leaves a job to a preferred runner rings the queue again after this long (one
    # that leaves it to a worker with a capability it lacks: after at least 1 s).
    runner_decline_retry_seconds: float = Field(default=0.05, gt=0)

    # --- worker
    worker_token: SecretStr | None = None  # registration token (see `mediarunner tokens`); never logged
    min_free_scratch_mb: int = 500
    cancel_poll_seconds: float = 0.5

    # --- transcription (nothing is downloaded: models are local directories)
    whisper_engine: str = "faster-whisper"  # or "whisperx" (GPU workers, `mediarunner[whisperx]`)
    whisper_model: str = "tiny.en"  # a name looked up in whisper_model_dir, or a local path
    whisper_model_dir: Path | None = None
    whisper_device: str = "cpu"  # "cuda" on GPU workers
    whisper_compute_type: str = "int8"  # "float16" on GPU
    whisper_batch_size: int = 16  # whisperx only
    whisper_cpu_threads: int = 0
    whisper_align_model_dir: Path | None = None  # whisperx word alignment, optional
    whisper_diarize_model_dir: Path | None = None  # whisperx diarization, optional
    gpu_probe_timeout_seconds: float = 1.0  # how long submission asks Celery whether a GPU worker is up
    reroute_after_seconds: float = 30.0  # a job waiting on an empty gpu queue this long moves to cpu
    # Queues a submitter may name (`queue=`); `scheduler` carries beat's ticks only and is never one.
    job_queues: list[str] = Field(default_factory=lambda: ["cpu", "gpu"], min_length=1)

    @field_validator("job_queues")
    @classmethod
    def _job_queues(cls, v: list[str]) -> list[str]:
        if "scheduler" in v:
            raise ValueError("'scheduler' carries beat's ticks: it cannot be a job queue")
        return v

    @field_validator("max_attempts", "max_aborts")
    @classmethod
    def _positive(cls, v: int) -> int:
        if v < 1:
            raise ValueError("must be >= 1")
        return v

    @model_validator(mode="after")
    def _secrets(self) -> Settings:
        for name in self.required_secrets:
            field = name.lower().removeprefix("mediarunner_")
            if field not in type(self).model_fields:
                raise ValueError(f"REQUIRED_SECRETS names {name!r}, which is no setting")
            value = getattr(self, field)
            if value is None or (isinstance(value, SecretStr) and not value.get_secret_value()) or value in ("", {}):
                env = f"MEDIARUNNER_{field.upper()}"
                raise MissingSecretError(f"required secret {env} is missing: put it in "
                                         f"{secrets_dir() / ('mediarunner_' + field)} or set {env}")
        if self.database_password is not None:
            self.database_url = _with_password(self.database_url, self.database_password)
        if self.broker_password is not None:
            self.broker_url = _with_password(self.broker_url, self.broker_password)
        return self

    def ladder_by_name(self) -> dict[str, Rendition]:
        return {r.name: r for r in self.renditions}

    # --- fleet
    require_worker_token: bool = False  # workers without a valid MEDIARUNNER_WORKER_TOKEN refuse to start
    worker_register_timeout_seconds: float = 120.0  # a worker waits this long for the database to register
    runner_heartbeat_seconds: float = 5.0  # how often a worker publishes its heartbeat and diagnostics
    runner_warning_after_seconds: float = 15.0  # heartbeat older than this: health `warning`
    runner_offline_after_seconds: float = 30.0  # older than this: `offline`, its running jobs fail over
    # Offline (or unregistered) longer than this: removed from the registry, history kept (<= 0: never).
    runner_prune_after_seconds: float = 7 * 86400.0
    # This worker's runner name; `{n}` is replaced by the lowest free ordinal (e.g. `cpu@worker-cpu-{n}`),
    # so a recreated container takes its predecessor's name back. Unset: `--name`, else Celery's `celery@host`.
    worker_name: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.@{}%-]{1,200}$")  # %h: Celery expands it
    runner_warning_load_per_cpu: float = 2.0  # 1-minute load average per CPU above this: `warning`
    runner_warning_free_disk_mb: int = 2048  # free scratch space below this: `warning`
    flower_basic_auth: SecretStr | None = None  # `user:password[,user2:password2]` for `mediarunner flower`
    metrics_basic_auth: SecretStr | None = None  # `user:password` for `mediarunner metrics` (unset: no auth)
    demo_mode: bool = False  # read-only CLI and web admin (no changes; hosts and secrets masked), for demos
    # Remote output locations (s3://, sftp://, ftp://) the web admin's storage page lists with a
    # "Test connection" button (any other can be typed in there).
    admin_storage_locations: list[str] = Field(default_factory=list)

    # --- storage (read as they are by the stores in mediarunner.storage)
    # S3 or S3-compatible store; keys unset: boto's default chain (env, profile, instance role).
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    s3_access_key_id: str | None = None
    s3_secret_access_key: SecretStr | None = None
    s3_session_token: SecretStr | None = None
    # Logins keyed by "host:port" or "host"; FTP without an entry logs in anonymously.
    sftp_credentials: dict[str, HostCredentials] = Field(default_factory=dict)
    ftp_credentials: dict[str, HostCredentials] = Field(default_factory=dict)
    sftp_known_hosts: Path | None = None  # unset: the worker user's ~/.ssh/known_hosts
    sftp_host_key_policy: Literal["reject", "auto_add"] = "reject"
    ftp_tls: bool = False
    transfer_retries: int = Field(default=3, ge=0, le=100)  # per transfer step, on a fresh connection
    transfer_backoff_seconds: float = Field(default=1.0, ge=0)
    transfer_backoff_max_seconds: float = Field(default=30.0, ge=0)
    transfer_timeout_seconds: float = Field(default=30.0, gt=0)
    # http(s) inputs larger than this fail the job (permanently) before or while downloading.
    http_max_input_bytes: int = Field(default=50 * 2**30, ge=1)
    live_segment_seconds: float = Field(default=2.0, ge=0.5, le=60)
    live_stall_timeout_seconds: float = 30.0  # no media this long: the attempt fails (and resumes)
    # Live jobs run as long as their stream: they get this limit instead of job_time_limit_seconds.
    live_time_limit_seconds: float = 7 * 24 * 3600

    # --- HTTP API and webhooks (`mediarunner api`)
    api_max_body_bytes: int = Field(default=1024 * 1024, ge=1024)  # larger request bodies: 413
    webhook_secret: SecretStr | None = None  # HMAC-SHA256 key of Mediarunner-Signature; never logged
    webhook_timeout_seconds: float = Field(default=10.0, gt=0)  # per delivery attempt
    webhook_retry_base_seconds: float = Field(default=10.0, gt=0)  # backoff doubles from this...
    webhook_retry_max_seconds: float = Field(default=3600.0, gt=0)  # ...up to this between attempts
    webhook_give_up_after_seconds: float = Field(default=24 * 3600.0, gt=0)  # then the delivery fails
    # Esup-Pod Runner Manager API (`/esup`): Pod's tasks write under <this>/<task id> (a local directory
    # inside output_roots that the API server also reads, to serve the results); unset: /esup is off.
    esup_output_root: Path | None = None
    # A task created more than this many days ago (any status; once its family ended) is forgotten:
    # its results removed, its status and result 404 (esup-runner's CLEANUP_TASK_FILES_DAYS); 0 keeps all.
    esup_cleanup_days: float = Field(default=60.0, ge=0)

    # --- remote (HTTP) runners (`mediarunner runner serve`; served by `mediarunner api`)
    # Jobs on these queues are offered to remote runners (add them to job_queues to submit there).
    remote_queues: list[str] = Field(default_factory=lambda: ["remote"])
    runner_poll_max_seconds: float = Field(default=20.0, gt=0, le=60)  # a job request waits at most this long
    runner_poll_interval_seconds: float = Field(default=0.05, gt=0)  # how often a waiting request looks
    runner_max_upload_bytes: int = Field(default=50 * 2**30, ge=1)  # per uploaded result file: larger is 413
    runner_max_job_upload_bytes: int = Field(default=200 * 2**30, ge=1)  # all files of one attempt: beyond, 413
    runner_rate_per_second: float = Field(default=100.0, gt=0)  # requests per runner token, sustained
    runner_rate_burst: int = Field(default=500, ge=1)  # ... and at once; beyond: 429 with Retry-After
    runner_presign_seconds: int = Field(default=0, ge=0, le=7 * 86400)  # S3 inputs: presigned URLs (0: via the API)

    # --- PeerTube connector (`mediarunner peertube serve`)
    # Inputs downloaded from PeerTube and the results of their jobs, one directory per PeerTube job
    # (removed when it ends): must lie inside input_roots and output_roots, on storage the workers share.
    peertube_staging_dir: Path = Path("var/outputs/peertube")
    # Progress `update` to PeerTube this often per job: PeerTube aborts a job silent for 2 min (VOD).
    peertube_update_seconds: float = Field(default=15.0, gt=0, le=60)
    peertube_poll_seconds: float = Field(default=10.0, gt=0)  # job requests without a socket.io ping


def _with_password(url: str, password: SecretStr) -> str:
    """``url`` with ``password`` in it, unless it has one already (or is a file URL such as SQLite's)."""
    parts = urlsplit(url)
    if not parts.hostname or parts.password is not None or not password.get_secret_value():
        return url
    host = parts.netloc.rsplit("@", 1)[-1]
    netloc = f"{parts.username or ''}:{quote(password.get_secret_value(), safe='')}@{host}"
    return urlunsplit(parts._replace(netloc=netloc))


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def is_amqp(broker_url: str) -> bool:
    """RabbitMQ (``amqp://``, ``amqps://``, ``pyamqp://``) rather than Redis."""
    return broker_url.split("://", 1)[0].lower() in ("amqp", "amqps", "pyamqp")
