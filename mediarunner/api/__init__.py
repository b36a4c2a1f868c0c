"""The HTTP API (FastAPI): ``create_app(settings)``, served by ``mediarunner api``.

It calls ``Client`` and ``FleetService`` (no second implementation of submission or state
changes); keys (:mod:`~mediarunner.api.keys`), problem details (:mod:`~mediarunner.api.problems`),
jobs, the SSE stream and the fleet are one module each.
"""

from mediarunner.api.app import create_app

__all__ = ["create_app"]
