"""The Python API: :class:`Client` submits jobs (rows first, then one message) and reads and steers
them; the HTTP API, the web admin and the CLI all go through it."""

from mediarunner.client.core import MAX_METADATA_BYTES, Client

__all__ = ["MAX_METADATA_BYTES", "Client"]
