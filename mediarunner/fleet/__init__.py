"""The runner fleet as one application-facing service (:class:`FleetService`) and its read models.

The CLI calls it; an HTTP API or web admin should too. Import from here, not from the modules.
"""

from mediarunner.fleet.service import FleetService
from mediarunner.fleet.views import (
    NOTABLE_ENCODERS,
    ActivityEvent,
    AmbiguousRunner,
    Dashboard,
    FleetError,
    Gpu,
    MetricsSnapshot,
    NewToken,
    ReadOnlyFleet,
    RunnerDetail,
    RunnerNotFound,
    TokenNotFound,
)
from mediarunner.models.enums import Health, RunnerStatus
from mediarunner.models.fleet_queries import Runner
from mediarunner.models.health import HealthReport
from mediarunner.models.stats import FleetStats
from mediarunner.models.tokens import TokenInfo
from mediarunner.scheduler.steering import PingResult, SteerResult

__all__ = [
    "NOTABLE_ENCODERS", "ActivityEvent", "AmbiguousRunner", "Dashboard", "FleetError", "FleetService", "FleetStats",
    "Gpu", "Health", "HealthReport", "MetricsSnapshot", "NewToken", "PingResult", "ReadOnlyFleet", "Runner",
    "RunnerDetail", "RunnerNotFound", "RunnerStatus", "SteerResult", "TokenInfo", "TokenNotFound",
]
