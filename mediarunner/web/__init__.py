"""The operator's web admin, served by ``mediarunner api`` under ``/admin/``.

Server-rendered Jinja2 pages with one vendored script (``static/admin.js``: live regions over
Server-Sent Events, no build step, nothing from a CDN). Every read and every action goes through
``FleetService``, ``Client``, ``ApiKeys`` and the HTTP API's job serializer: no second
implementation of any query or state change. :func:`create_app` is the API with the admin mounted.
"""

from mediarunner.web.app import create_app, mount

__all__ = ["create_app", "mount"]
