"""compose.yaml cannot run here (no Docker engine): validate it against the Compose
specification's JSON schema, render it with ``.env.example`` the way ``docker compose config``
interpolates it, and check every service against the README's deployment table; then start each
mediarunner service's settings with exactly the secret files compose would mount for it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from mediarunner.config import Settings
from mediarunner.config.redact import is_secret_name

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-c", "from mediarunner.cli import main; main()"]
_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")
APP = {"migrate", "worker-cpu", "worker-gpu", "beat", "api", "flower", "metrics"}


def dotenv(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = re.split(r"\s+#", value, maxsplit=1)[0].strip()
    return out


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's interpolation: ``${V}``, ``${V:-default}``, ``${V-default}``, ``${V:?err}``, ``$$``."""
    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name, op, arg = m.group(1), m.group(2), m.group(3)
        value = env.get(name)
        if op in (":?", "?") and not value:
            raise AssertionError(f"compose would refuse: {name}: {arg}")
        if (op == ":-" and not value) or (op == "-" and value is None):
            return arg
        return value or ""
    return _VAR.sub(sub, text)


def rendered() -> dict[str, Any]:
    return yaml.safe_load(interpolate((ROOT / "compose.yaml").read_text(), dotenv(ROOT / ".env.example")))


def readme_table() -> dict[str, dict[str, str]]:
    """The README's service table: service -> {command, healthcheck, secrets, volumes} cells."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Deployment with compose", 1)[1].split("\n## ", 1)[0]
    table = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("| `") or len(cells) != 5:
            continue
        table[re.match(r"`([^`]+)`", cells[0]).group(1)] = dict(  # type: ignore[union-attr]
            zip(("command", "healthcheck", "secrets", "volumes"), cells[1:], strict=True))
    return table


def ticked(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def test_compose_matches_the_compose_spec() -> None:
    res = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec",
                          str(ROOT / "compose.yaml")], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_compose_wiring() -> None:
    services = rendered()["services"]
    assert {"redis", "postgres", "migrate", "worker-cpu", "worker-gpu", "beat", "flower", "api", "metrics",
            "rabbitmq"} <= set(services)
    for name in ("redis", "postgres", "worker-cpu", "worker-gpu", "beat", "flower", "api", "metrics"):
        assert "healthcheck" in services[name], name
    for name in ("worker-cpu", "worker-gpu", "beat", "api", "metrics"):
        deps = services[name]["depends_on"]
        assert deps["redis"]["condition"] == "service_healthy"
        assert deps["postgres"]["condition"] == "service_healthy"
        assert deps["migrate"]["condition"] == "service_completed_successfully"
    assert services["worker-cpu"]["command"][:4] == ["mediarunner", "worker", "-Q", "cpu"]
    assert services["worker-gpu"]["command"][:4] == ["mediarunner", "worker", "-Q", "gpu"]
    assert services["beat"]["command"][:2] == ["mediarunner", "beat"]
    (gpu,) = services["worker-gpu"]["deploy"]["resources"]["reservations"]["devices"]
    assert gpu["capabilities"] == ["gpu"]
    gpu_env = services["worker-gpu"]["environment"]
    assert gpu_env["MEDIARUNNER_WHISPER_COMPUTE_TYPE"] == "float16" and gpu_env["MEDIARUNNER_WHISPER_DEVICE"] == "cuda"
    assert services["worker-gpu"]["build"]["target"] == "gpu" and services["worker-cpu"]["build"]["target"] == "runtime"
    assert services["migrate"]["command"] == ["mediarunner", "db", "upgrade"]
    assert services["rabbitmq"]["profiles"] == ["rabbitmq"]
    assert "volumes" not in services["flower"] and "volumes" not in services["metrics"]  # no media
    env = services["worker-cpu"]["environment"]
    assert env["MEDIARUNNER_BROKER_URL"].startswith("redis://redis")
    assert env["MEDIARUNNER_DATABASE_URL"].startswith("postgresql+psycopg://")
    # flower's basic auth is required, from a secret file (handed to Flower in its environment, not argv)
    assert "flower_basic_auth" in services["flower"]["environment"]["MEDIARUNNER_REQUIRED_SECRETS"]
    assert {"source": "flower_basic_auth", "target": "mediarunner_flower_basic_auth"} in services["flower"]["secrets"]


def test_no_secret_or_default_password_in_the_environment() -> None:
    raw = (ROOT / "compose.yaml").read_text() + (ROOT / ".env.example").read_text()
    assert "change-me" not in raw and "POSTGRES_PASSWORD:" not in raw
    for name, svc in rendered()["services"].items():
        for key, value in (svc.get("environment") or {}).items():
            setting = key.removeprefix("MEDIARUNNER_")
            assert not (is_secret_name(setting) and value), (name, key)
            assert not re.search(r"://[^/@\s]*:[^/@\s]*@", str(value)), (name, key)  # no password in a URL


def test_every_service_matches_the_readme_table() -> None:
    services, table = rendered()["services"], readme_table()
    assert set(table) == set(services)
    for name, row in table.items():
        svc = services[name]
        command = " ".join(svc["command"]) if "command" in svc else "the image's"
        assert ticked(row["command"]) == ([command] if "command" in svc else []), name
        check = svc.get("healthcheck", {})
        test = check.get("test", [])
        shown = "none" if check.get("disable") else test[1] if test[0] == "CMD-SHELL" else " ".join(test[1:])
        assert (ticked(row["healthcheck"]) or [row["healthcheck"]]) == [shown], name
        sources = sorted(s["source"] if isinstance(s, dict) else s for s in svc.get("secrets", []))
        assert sorted(ticked(row["secrets"])) == sources, name
        assert ticked(row["volumes"]) == svc.get("volumes", []), name


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkout prepared by ``scripts/compose-init.sh`` (what an operator runs first)."""
    root = tmp_path_factory.mktemp("host")
    shutil.copytree(ROOT / "scripts", root / "scripts")
    shutil.copy(ROOT / ".env.example", root / ".env.example")
    res = subprocess.run(["bash", "scripts/compose-init.sh"], cwd=root, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return root


def test_init_script_creates_every_secret_file_and_media_dir(host: Path) -> None:
    spec = rendered()
    files = {Path(s["file"]).name for s in spec["secrets"].values()}
    assert {p.name for p in (host / "secrets").iterdir()} == files
    assert oct((host / "secrets").stat().st_mode & 0o777) == "0o700"
    for generated in ("database_password", "webhook_secret", "flower_basic_auth", "metrics_basic_auth"):
        assert len((host / "secrets" / generated).read_text()) >= 24, generated
    env = dotenv(host / ".env")
    for key in ("MEDIARUNNER_INPUTS_DIR", "MEDIARUNNER_OUTPUTS_DIR", "MEDIARUNNER_MODELS_DIR"):
        assert (host / env[key]).is_dir()
    assert spec["services"]["postgres"]["environment"]["POSTGRES_PASSWORD_FILE"] == "/run/secrets/database_password"


@pytest.mark.parametrize("name", sorted(APP))
def test_each_service_starts_with_the_secrets_compose_mounts(name: str, host: Path, tmp_path: Path) -> None:
    """``mediarunner settings`` with the service's environment and a /run/secrets built from its
    ``secrets:`` (targets), then with each required one missing: one line, exit 2."""
    spec = rendered()
    svc = spec["services"][name]
    run_secrets = tmp_path / "run-secrets"
    run_secrets.mkdir()
    mounted = {}
    for s in svc["secrets"]:
        target = s["target"]
        assert target.startswith("mediarunner_") and target.removeprefix("mediarunner_") in Settings.model_fields
        shutil.copy(host / "secrets" / Path(spec["secrets"][s["source"]]["file"]).name, run_secrets / target)
        mounted[target.removeprefix("mediarunner_")] = (run_secrets / target).read_text()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIARUNNER_")}
    env.update({k: str(v) for k, v in svc["environment"].items()}, MEDIARUNNER_SECRETS_DIR=str(run_secrets),
               COLUMNS="1000")  # wide enough for any tmp path: rich truncates cells
    res = subprocess.run([*CLI, "settings"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    for field, value in mounted.items():
        line = next(ln for ln in res.stdout.splitlines() if f" MEDIARUNNER_{field.upper()} " in ln)
        assert (f"file {run_secrets / ('mediarunner_' + field)}" in line) == bool(value), line
        assert not value or value not in res.stdout
    required = yaml.safe_load(svc["environment"]["MEDIARUNNER_REQUIRED_SECRETS"])
    assert set(required) <= set(mounted) and required
    (run_secrets / f"mediarunner_{required[-1]}").unlink()
    res = subprocess.run([*CLI, "settings"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and res.stderr.startswith(f"error: required secret MEDIARUNNER_{required[-1].upper()}")


def test_compose_example_remote_runner_holds_no_credentials() -> None:
    services = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
    runner = services["runner"]
    assert "runner serve" in " ".join(runner["command"]) and runner["profiles"] == ["remote-runner"]
    assert not {"MEDIARUNNER_DATABASE_URL", "MEDIARUNNER_BROKER_URL"} & set(runner["environment"])
    assert "volumes" in runner and "media:/data" not in runner["volumes"]
    assert "remote" in services["api"]["environment"]["MEDIARUNNER_JOB_QUEUES"]
