"""Where each setting came from (for ``mediarunner settings``): never the value, only its source.

Precedence is the one ``Settings`` applies: the environment, then ``.env``, then a secret file in
the secrets directory (``/run/secrets/mediarunner_<name>``), else the default.
"""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import DotEnvSettingsSource, EnvSettingsSource

from mediarunner.config.settings import SecretFiles, Settings, secrets_dir


def _secret_file(folder: Path, field: str) -> Path | None:
    if not folder.is_dir():
        return None
    wanted = f"mediarunner_{field}"
    return next((p for p in folder.iterdir() if p.name.lower() == wanted and p.is_file()), None)


def setting_sources(settings_cls: type[Settings] = Settings) -> dict[str, str]:
    """``env``, ``.env``, ``file <path>`` or ``default`` for every field of ``settings_cls``."""
    from_env = EnvSettingsSource(settings_cls)()
    from_dotenv = DotEnvSettingsSource(settings_cls)()
    folder = secrets_dir()
    from_files = SecretFiles(settings_cls, secrets_dir=folder)() if folder.is_dir() else {}
    out: dict[str, str] = {}
    for field in settings_cls.model_fields:
        if field in from_env:
            out[field] = "env"
        elif field in from_dotenv:
            out[field] = ".env"
        elif field in from_files:
            out[field] = f"file {_secret_file(folder, field) or folder / ('mediarunner_' + field)}"
        else:
            out[field] = "default"
    return out
