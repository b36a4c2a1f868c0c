"""compose.yaml cannot run here (no Docker engine): validate it against the Compose
specification's JSON schema and check the wiring a production stack needs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_compose_matches_the_compose_spec() -> None:
    res = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec",
                          str(ROOT / "compose.yaml")], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_compose_wiring() -> None:
    spec = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = spec["services"]
    assert {"redis", "postgres", "migrate", "worker-cpu", "worker-gpu", "beat", "flower"} <= set(services)
    for name in ("redis", "postgres", "worker-cpu", "worker-gpu", "beat", "flower"):
        assert "healthcheck" in services[name], name
    for name in ("worker-cpu", "worker-gpu", "beat", "flower"):
        deps = services[name]["depends_on"]
        assert deps["redis"]["condition"] == "service_healthy"
        assert deps["postgres"]["condition"] == "service_healthy"
        assert deps["migrate"]["condition"] == "service_completed_successfully"
        command = services[name]["command"]
        assert "mediarunner.workers.app" in " ".join(command) or command[:2] in (["mediarunner", "beat"],
                                                                                  ["mediarunner", "flower"])
    assert "-Q" in services["worker-cpu"]["command"] and "cpu" in services["worker-cpu"]["command"]
    assert "gpu" in services["worker-gpu"]["command"]
    (gpu,) = services["worker-gpu"]["deploy"]["resources"]["reservations"]["devices"]
    assert gpu["capabilities"] == ["gpu"]
    assert services["migrate"]["command"] == ["mediarunner", "db", "upgrade"]
    # basic auth on; `mediarunner flower` hands it to Flower through the environment, not argv
    assert services["flower"]["environment"]["MEDIARUNNER_FLOWER_BASIC_AUTH"]
    env = services["worker-cpu"]["environment"]
    assert env["MEDIARUNNER_BROKER_URL"].startswith("redis://redis")
    assert env["MEDIARUNNER_DATABASE_URL"].startswith("postgresql+psycopg://")


def test_compose_example_remote_runner_holds_no_credentials() -> None:
    services = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
    runner = services["runner"]
    assert "runner serve" in " ".join(runner["command"]) and runner["profiles"] == ["remote-runner"]
    assert not {"MEDIARUNNER_DATABASE_URL", "MEDIARUNNER_BROKER_URL"} & set(runner["environment"])
    assert "volumes" in runner and "media:/data" not in runner["volumes"]
    assert "remote" in services["api"]["environment"]["MEDIARUNNER_JOB_QUEUES"]
