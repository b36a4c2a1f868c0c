"""Celery task names, one per job type (Flower shows them by name)."""

from mediarunner.models.enums import JobType

TASK_NAMES: dict[JobType, str] = {t: f"mediarunner.{t.value}" for t in JobType}
