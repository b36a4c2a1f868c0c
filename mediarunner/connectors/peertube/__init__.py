"""PeerTube connector: mediarunner's fleet registered on PeerTube instances as a remote runner.

``protocol``: PeerTube's ``/api/v1/runners`` HTTP calls; ``jobs``: each runner job type as
mediarunner jobs and the success body PeerTube expects; ``serve``: the loop that requests,
accepts, runs, reports and answers (``mediarunner peertube serve``).
"""

from mediarunner.connectors.peertube.jobs import SUPPORTED_JOB_TYPES
from mediarunner.connectors.peertube.protocol import PeerTubeError, RunnerAPI

__all__ = ["SUPPORTED_JOB_TYPES", "PeerTubeError", "RunnerAPI"]
