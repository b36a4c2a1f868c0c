"""``ApiKeys``: the HTTP API's keys (used by the API's auth and by ``mediarunner api-keys``)."""

from __future__ import annotations

from collections.abc import Sequence

from mediarunner.config import Settings, get_settings
from mediarunner.models import api_keys
from mediarunner.models.api_keys import ApiKeyInfo
from mediarunner.models.base import utcnow
from mediarunner.models.db import transaction


class ApiKeys:
    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()

    def create(self, name: str, scopes: Sequence[str]) -> tuple[ApiKeyInfo, str]:
        """A new key with ``scopes``; returns (its info, the key). The key is shown only this once."""
        return transaction(lambda s: api_keys.create_key(s, name, list(scopes), utcnow()),
                           url=self.settings.database_url)

    def list(self) -> list[ApiKeyInfo]:
        return transaction(api_keys.list_keys, url=self.settings.database_url)

    def revoke(self, name: str) -> bool:
        return transaction(lambda s: api_keys.revoke_key(s, name, utcnow()), url=self.settings.database_url)

    def verify(self, key: str) -> ApiKeyInfo | None:
        """Once per request: a primary-key read (and at most once a minute a ``last_used_at`` write),
        each atomic by itself, so without BEGIN/COMMIT round trips on PostgreSQL."""
        return transaction(lambda s: api_keys.verify_key(s, key, utcnow()), url=self.settings.database_url,
                           retry_for=5.0, single_statement=True)
