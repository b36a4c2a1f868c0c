"""Keeping secrets out of task messages, logs, CLI output and Flower.

* ``mask_url``: ``redis://:pw@h/0`` -> ``redis://:***@h/0`` (and secret-looking query parameters),
  for any URL in any text; ``mask_database_url`` (SQLAlchemy's ``make_url``) and
  ``mask_broker_url`` (kombu's ``maybe_sanitize_url``) for the URLs the settings name;
* ``redact``: a JSON-like value with secret-looking keys masked and every URL masked;
* ``secret_values`` + ``RedactingFilter``: the literal secrets this process knows (the worker token,
  passwords inside the broker/database URLs, ``MEDIARUNNER_*`` variables named like secrets),
  replaced by ``***`` in every log record a handler emits.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

from kombu.utils.url import maybe_sanitize_url
from pydantic import BaseModel, SecretStr
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from mediarunner.config.settings import Settings

MASK = "***"
# Names that hold secrets: passwords, tokens, keys, credentials, basic-auth pairs. The last word
# decides: ``s3_secret_access_key`` is a secret, ``sftp_host_key_policy`` or ``private_key_path`` is not.
SECRET_NAME = re.compile(r"(^|[_\-.])(pass(word|wd|phrase)?|pwd|secret|token|key(_id)?|credentials?|auth|"
                         r"signature|sig)$", re.IGNORECASE)
_URL = re.compile(r"\b[a-z][a-z0-9+.\-]*://[^\s'\"<>]+", re.IGNORECASE)
_MIN_SECRET_LEN = 4  # shorter "secrets" would mask unrelated text


def is_secret_name(name: str) -> bool:
    return bool(SECRET_NAME.search(name)) and not name.lower().startswith(("require_", "min_", "max_"))


# Query parameters that carry a live stream's secret although not named like one (SRT's stream id
# often names the stream key and the publisher); every secret-named parameter is masked too.
_SECRET_PARAMS = frozenset({"streamid"})
_QUERY_PAIR = re.compile(r"([?&;])([^=&;?#]+)=([^&;]*)")
_RTMP = re.compile(r"^(rtmp[a-z]*://[^/?#]+/[^?#]*/)([^/?#]+)", re.IGNORECASE)  # rtmp://host/app/KEY
_TRAILING = re.compile(r"[.,:;)\]}]+$")  # punctuation after a URL in prose ("...?passphrase=x: refused")


def is_secret_param(name: str) -> bool:
    return name.lower() in _SECRET_PARAMS or is_secret_name(name)


def _query_masked(url: str) -> str:
    base, sep, query = url.partition("?")
    if not sep:
        return url
    return base + _QUERY_PAIR.sub(lambda m: f"{m.group(1)}{m.group(2)}={MASK}" if is_secret_param(m.group(2))
                                  else m.group(0), "?" + query)


def mask_url(url: str) -> str:
    """The password, an RTMP stream key (the last path segment of ``rtmp://host/app/KEY``) and
    secret query parameters (``passphrase``, ``streamid``, ``key``, ``token``, ``sig``...) masked;
    every other character kept as it was (no re-assembly, which would turn ``sqlite:////srv/x.db``
    into ``sqlite://srv/x.db``)."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return _query_masked(url)
    if password is not None:
        user_info = parts.netloc.rsplit("@", 1)[0]
        url = url.replace(f"//{user_info}@", f"//{parts.username or ''}:{MASK}@", 1)
    url = _RTMP.sub(lambda m: m.group(1) + MASK, url, count=1)
    return _query_masked(url)


def url_secrets(value: Any) -> set[str]:
    """The literal secrets inside the URLs of a JSON-like value (a job's payload, a command line):
    URL passwords, RTMP stream keys and secret query parameter values, so that text echoing them
    without their URL (a tool's stderr) can be scrubbed too."""
    found: set[str] = set()
    if isinstance(value, Mapping):
        value = list(value.values())
    if isinstance(value, list | tuple | set | frozenset):
        for v in value:
            found |= url_secrets(v)
        return found
    if not isinstance(value, str) or "://" not in value:
        return found
    for m in _URL.finditer(value):
        url = m.group(0)
        found.add(_url_password(url) or "")
        if key := _RTMP.match(url):
            found.add(unquote(key.group(2)))
        for q in _QUERY_PAIR.finditer(url.partition("?")[1] + url.partition("?")[2]):
            if is_secret_param(q.group(2)):
                found.update({q.group(3), unquote(q.group(3))})
    return {s for s in found if len(s) >= _MIN_SECRET_LEN}


def mask_secrets(text: str, *contexts: Any) -> str:
    """The one masking function for text that is shown or recorded (job errors, log tails, log
    lines, events): every URL masked (:func:`mask_url`) and every literal secret found in the
    URLs of ``contexts`` (e.g. the job's payload, the command line) replaced by ``***``."""
    return scrub(text, url_secrets(list(contexts))) if contexts else mask_urls_in(text)


def mask_database_url(url: str) -> str:
    """A SQLAlchemy URL with its password hidden, as SQLAlchemy renders it."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return mask_url(url)


def mask_broker_url(url: str) -> str:
    """A broker or result-backend URL (``;``-separated failover lists too) with passwords masked, as
    kombu shows it."""
    try:
        return ";".join(maybe_sanitize_url(u, mask=MASK) for u in url.split(";"))
    except ValueError:
        return mask_url(url)


def _mask_found(m: re.Match[str]) -> str:
    url = m.group(0)
    tail = _TRAILING.search(url)
    return mask_url(url[:tail.start()]) + tail.group(0) if tail else mask_url(url)


def mask_urls_in(text: str) -> str:
    return _URL.sub(_mask_found, text)


def redact(value: Any, key: str = "") -> Any:
    """A copy of ``value`` safe to show or send: secret-named string fields masked, URLs masked."""
    if isinstance(value, SecretStr):
        return MASK
    if isinstance(value, Mapping):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redact(v, key) for v in value)
    if isinstance(value, str):
        if key and is_secret_name(key) and value:
            return MASK
        return mask_urls_in(value)
    return value


def _url_password(url: str) -> str | None:
    try:
        return urlsplit(url).password
    except ValueError:
        return None


def secret_values(settings: Settings, environ: Mapping[str, str] | None = None) -> set[str]:
    """Every literal secret this process was configured with."""
    found: set[str] = set()
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            found.add(value.get_secret_value())
        elif isinstance(value, dict):  # storage logins: host -> HostCredentials (password, passphrase)
            found.update(f.get_secret_value() for creds in value.values() if isinstance(creds, BaseModel)
                         for f in vars(creds).values() if isinstance(f, SecretStr))
        elif isinstance(value, str) and "://" in value:
            found.add(_url_password(value) or "")
    for name, value in (environ if environ is not None else os.environ).items():
        if name.startswith("MEDIARUNNER_") and is_secret_name(name[len("MEDIARUNNER_"):]):
            found.add(value)
        elif "://" in value:
            found.add(_url_password(value) or "")
    return {s for s in found if len(s) >= _MIN_SECRET_LEN}


def scrub(text: str, secrets: Iterable[str]) -> str:
    for s in sorted(secrets, key=len, reverse=True):  # longest first: one secret may contain another
        if s in text:
            text = text.replace(s, MASK)
    return mask_urls_in(text) if "://" in text else text


class RedactingFilter(logging.Filter):
    """Attach to handlers: rewrites each record's message (and traceback) with secrets masked."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__("mediarunner.redact")
        self.secrets = frozenset(secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string is logging's problem, not ours
            return True
        record.msg, record.args = scrub(message, self.secrets), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text, self.secrets)
        return True


def install_log_redaction(secrets: Iterable[str], loggers: Iterable[logging.Logger] = ()) -> None:
    """Add one ``RedactingFilter`` to every handler of the root logger and of ``loggers``."""
    flt = RedactingFilter(secrets)
    for logger in (logging.getLogger(), *loggers):
        for handler in logger.handlers:
            handler.filters = [f for f in handler.filters if not isinstance(f, RedactingFilter)]
            handler.addFilter(flt)


DATABASE_URL_FIELDS = frozenset({"database_url"})
BROKER_URL_FIELDS = frozenset({"broker_url", "result_backend"})


def settings_view(settings: Settings) -> dict[str, str]:
    """Every setting as display text for ``mediarunner settings``: ``SecretStr`` fields and
    secret-named values masked, passwords in URLs hidden, everything else (paths, policies) as is."""
    data = settings.model_dump(mode="json")
    out: dict[str, str] = {}
    for name, value in data.items():
        raw = getattr(settings, name)
        if value is None:
            out[name] = ""
        elif isinstance(raw, SecretStr) or (is_secret_name(name) and isinstance(value, str)):
            out[name] = MASK
        elif name in DATABASE_URL_FIELDS:
            out[name] = mask_database_url(value)
        elif name in BROKER_URL_FIELDS:
            out[name] = mask_broker_url(value)
        else:
            safe = redact(value, name)
            out[name] = safe if isinstance(safe, str) else json.dumps(safe)
    return out
