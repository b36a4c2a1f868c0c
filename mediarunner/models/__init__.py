"""Job model: tables, enums, read models, and the one module that changes state (transitions)."""

from mediarunner.models import api_tables as _api_tables  # noqa: F401  (registers the API's tables)
from mediarunner.models import peertube_tables as _peertube_tables  # noqa: F401  (the PeerTube connector's tables)
from mediarunner.models import remote_tables as _remote_tables  # noqa: F401  (registers the remote runners' tables)
from mediarunner.models.base import Base, utcnow
from mediarunner.models.enums import TERMINAL_STATES, ErrorKind, JobState, JobType, Queue, Stage
from mediarunner.models.schemas import Artifact, Job
from mediarunner.models.tables import EventRow, JobRow, LockRow

__all__ = [
    "TERMINAL_STATES", "Artifact", "Base", "ErrorKind", "EventRow", "Job", "JobRow", "JobState",
    "JobType", "LockRow", "Queue", "Stage", "utcnow",
]
