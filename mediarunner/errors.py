"""Error taxonomy shared by every layer.

Everything a worker can raise is classified as *permanent* (bad input: retrying cannot help,
the job fails at once) or *transient* (I/O, storage, a killed process: retried with backoff).
The retry policy (``mediarunner.models.retry``) reads only this classification.
"""

from __future__ import annotations


class MediarunnerError(Exception):
    """Base class. ``permanent`` decides whether the retry policy may try again."""

    permanent: bool = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class PermanentError(MediarunnerError):
    """Bad input or configuration: never retried."""

    permanent = True


class TransientError(MediarunnerError):
    """Something outside the job went wrong (I/O, network, a killed process): retried."""

    permanent = False


class ValidationError(PermanentError):
    """A payload or an API argument is invalid (raised at the edge, before anything is enqueued)."""


class InvalidInputError(PermanentError):
    """The input is missing, empty, corrupt or not a media file."""


class UnsupportedMediaError(PermanentError):
    """The input is media, but nothing we can process (no usable stream, 0x0 video, unknown codec)."""


class InvalidOutputError(PermanentError):
    """The output location is not allowed (escapes the configured roots, unknown scheme)."""


class ModelNotFoundError(PermanentError):
    """A speech model is not available locally; nothing is ever downloaded at run time."""


class ProcessingError(TransientError):
    """A media tool failed on an input that probed fine (e.g. ffmpeg killed by a signal)."""


class StorageError(TransientError):
    """Staging an input or uploading an output failed for a reason that may pass."""


class InsufficientResourcesError(TransientError):
    """This worker cannot take the job now (e.g. too little scratch disk); another may."""


class JobCancelled(MediarunnerError):
    """The job was cancelled while it ran; the worker stopped its processes and cleaned up."""


class StaleAttemptError(MediarunnerError):
    """This worker's attempt was superseded (failover/restart); its results must be discarded."""


class JobNotFoundError(MediarunnerError):
    """No job with that id."""


class MissingSecretError(MediarunnerError):
    """A secret named in ``MEDIARUNNER_REQUIRED_SECRETS`` is not set: the process refuses to start."""
