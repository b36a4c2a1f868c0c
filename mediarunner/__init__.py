"""mediarunner: distributed media processing on Celery."""

from typing import Any

__version__ = "0.1.0"
__all__ = ["Client", "Job", "JobState", "JobType"]


def __getattr__(name: str) -> Any:
    # Lazy, so `import mediarunner.config` stays cheap for workers and tools.
    if name == "Client":
        from mediarunner.client import Client

        return Client
    if name in ("Job", "JobState", "JobType"):
        import mediarunner.models as models

        return getattr(models, name)
    raise AttributeError(name)
