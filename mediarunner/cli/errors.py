"""What an operator did wrong, in one line: the errors :class:`mediarunner.cli.ErrorHandlingGroup`
turns into ``error: <line>`` on stderr and exit code 2. Anything not listed here is a bug and keeps
its traceback."""

from __future__ import annotations

import re

from kombu.exceptions import OperationalError as BrokerError
from pydantic import ValidationError as PydanticValidationError
from pydantic_settings import SettingsError
from sqlalchemy.exc import ArgumentError, DBAPIError

from mediarunner.config.redact import mask_secrets
from mediarunner.errors import MediarunnerError

_MISSING_TABLE = re.compile(r"no such table|relation \"[^\"]+\" does not exist|UndefinedTable", re.IGNORECASE)
_SETTING_FIELD = re.compile(r'field "([^"]+)"')
UPGRADE = "database schema missing: run `mediarunner db upgrade`"


def _first_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return mask_secrets(lines[0] if lines else "")


def _setting(field: str) -> str:
    return f"MEDIARUNNER_{field.upper()}"


def _settings_error(exc: SettingsError) -> str:
    m = _SETTING_FIELD.search(str(exc))
    name = _setting(m.group(1)) if m else "a MEDIARUNNER_* setting"
    return (f"invalid setting {name}: not valid JSON (lists and mappings are JSON, "
            f"e.g. MEDIARUNNER_OUTPUT_ROOTS='[\"/srv/out\"]')")


def _validation_error(exc: PydanticValidationError) -> str:
    problems = []
    for e in exc.errors():
        where = ".".join(map(str, e["loc"]))
        name = _setting(str(e["loc"][0])) if exc.title == "Settings" and e["loc"] else where
        problems.append(f"{name}: {e['msg']}" + (f" (got {e['input']!r})" if isinstance(e.get("input"), str) else ""))
    what = "invalid setting" if exc.title == "Settings" else "invalid value"
    return mask_secrets(f"{what} {'; '.join(problems)}")


def _database_error(exc: DBAPIError) -> str:
    text = str(exc.orig) if exc.orig is not None else str(exc)
    if _MISSING_TABLE.search(text) or _MISSING_TABLE.search(type(exc.orig).__name__):
        return UPGRADE
    return f"database error (check MEDIARUNNER_DATABASE_URL): {_first_line(text)}"


def explain(exc: BaseException) -> str | None:
    """The one-line message for an operator's error, or None for a bug (shown with its traceback)."""
    if isinstance(exc, MediarunnerError):
        return _first_line(str(exc)) or type(exc).__name__
    if isinstance(exc, SettingsError):
        return _settings_error(exc)
    if isinstance(exc, PydanticValidationError):
        return _validation_error(exc)
    if isinstance(exc, ArgumentError):
        return f"invalid setting MEDIARUNNER_DATABASE_URL: {_first_line(str(exc))}"
    if isinstance(exc, DBAPIError):
        return _database_error(exc)
    if isinstance(exc, BrokerError):
        return f"cannot reach the broker (check MEDIARUNNER_BROKER_URL): {_first_line(str(exc))}"
    return None
