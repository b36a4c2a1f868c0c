"""A remote runner's registration, kept in a JSON file of mode 0600 (it holds the runner token).

Several runners may live on one machine: each registration is ``<dir>/<name>.json`` under
``$MEDIARUNNER_RUNNER_HOME`` (default ``~/.config/mediarunner/runners``), or any ``--config`` path.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from mediarunner.errors import ValidationError


@dataclass(frozen=True)
class Registration:
    url: str  # the API's base URL
    id: str
    name: str
    runner_token: str

    def __repr__(self) -> str:  # never show the token
        return f"Registration(url={self.url!r}, id={self.id!r}, name={self.name!r})"


def home() -> Path:
    return Path(os.environ.get("MEDIARUNNER_RUNNER_HOME") or Path.home() / ".config" / "mediarunner" / "runners")


def path_for(name: str | None, config: Path | None) -> Path:
    """The registration file ``--config`` names, else the one of ``--name``, else the only one."""
    if config is not None:
        return config
    if name is not None:
        return home() / f"{name}.json"
    found = registered()
    if len(found) != 1:
        raise ValidationError(f"{len(found)} runners are registered here ({home()}): say which with --name or --config")
    return found[0]


def registered() -> list[Path]:
    return sorted(home().glob("*.json")) if home().is_dir() else []


def save(path: Path, reg: Registration) -> None:
    """Write atomically with mode 0600 (created so: the token is never readable by others)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(asdict(reg), f)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def load(path: Path) -> Registration:
    try:
        data = json.loads(path.read_text())
        return Registration(url=data["url"], id=data["id"], name=data["name"], runner_token=data["runner_token"])
    except FileNotFoundError:
        raise ValidationError(f"no runner registration at {path} (run `mediarunner runner register`)") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValidationError(f"unreadable runner registration {path}: {type(exc).__name__}") from None
