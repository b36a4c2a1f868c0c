"""The image cannot be built here (no Docker engine): its Dockerfile is parsed with Docker's own
parser and linted with hadolint, and its locks are checked against pyproject.toml."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import dockerfile
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
LOCKS = ROOT / "requirements"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def stages() -> dict[str, list[dockerfile.Command]]:
    """Stage name -> its instructions (FROM first)."""
    out: dict[str, list[dockerfile.Command]] = {}
    current: list[dockerfile.Command] = []
    for cmd in dockerfile.parse_file(str(ROOT / "Dockerfile")):
        if cmd.cmd == "FROM":
            current = out.setdefault(cmd.value[-1] if "AS" in [v.upper() for v in cmd.value] else cmd.value[0], [])
        current.append(cmd)
    return out


def locked(name: str) -> dict[str, str]:
    pins = re.findall(r"^([A-Za-z0-9_.\-]+)==([^\s\\;]+)", (LOCKS / name).read_text(), re.MULTILINE)
    return {canonicalize_name(n): v for n, v in pins}


def test_dockerfile_passes_hadolint() -> None:
    res = subprocess.run([str(Path(sys.executable).parent / "hadolint"), "Dockerfile"], cwd=ROOT,
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_image_is_multi_stage_non_root_healthchecked_with_deps_before_code() -> None:
    s = stages()
    assert list(s)[-1] == "runtime"  # the default target
    assert {"deps", "gpu-deps", "wheel", "gpu", "runtime"} <= set(s)
    for final, deps in (("runtime", "deps"), ("gpu", "gpu-deps")):
        cmds = s[final]
        user = [c.value[0] for c in cmds if c.cmd == "USER"]
        assert user and user[-1].split(":")[0] not in ("root", "0"), final
        assert [c.cmd for c in cmds].index("USER") > max(i for i, c in enumerate(cmds) if c.cmd == "RUN")
        assert any(c.cmd == "HEALTHCHECK" and c.value[:2] == ("CMD", "mediarunner") for c in cmds), final
        assert f"--from={deps}" in [f for c in cmds if c.cmd == "COPY" for f in c.flags], final
        run = " ".join(c.value[0] for c in cmds if c.cmd == "RUN")
        assert "chown -R 10001:10001 /data /app" in run  # the non-root user owns its writable paths
        assert not any(c.cmd == "COPY" and "mediarunner" in c.value for c in cmds)  # code only via the wheel
    # the lock is installed (with hashes) in a stage that never sees the code
    for stage, lock in (("deps", "runtime.lock"), ("gpu-deps", "gpu.lock")):
        text = " ".join(" ".join(c.value) for c in s[stage])
        assert f"requirements/{lock}" in text and "--require-hashes" in text, stage
        assert not any(c.cmd == "COPY" and ("mediarunner" in c.value or "pyproject.toml" in c.value)
                       for c in s[stage])
    wheel = [c for c in s["wheel"] if c.cmd in ("COPY", "RUN")]
    assert next(c.value[0] for c in wheel if c.cmd == "COPY") == "requirements/build.lock"


@pytest.mark.parametrize(("lock", "extras"), [("runtime.lock", ["s3", "sftp", "transcribe"]),
                                              ("gpu.lock", ["s3", "sftp", "transcribe", "whisperx"]),
                                              ("dev.lock", ["test", "s3", "sftp", "transcribe"])])
def test_locks_pin_every_dependency_within_pyproject(lock: str, extras: list[str]) -> None:
    pins = locked(lock)
    project = PYPROJECT["project"]
    wanted = [Requirement(r) for r in project["dependencies"]]
    wanted += [Requirement(r) for e in extras for r in project["optional-dependencies"][e]]
    for req in wanted:
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} missing from {lock}: run `make lock`"
        assert req.specifier.contains(pins[name], prereleases=True), f"{lock}: {name}=={pins[name]} vs {req}"
    entries = re.split(r"\n(?=\S)", (LOCKS / lock).read_text().strip())
    assert len(entries) == len(pins) and all("--hash=sha256:" in e for e in entries), lock  # every pin hashed
    heavy = {"whisperx", "torch"}
    assert (heavy <= set(pins)) == ("whisperx" in extras), lock  # the 7.6 GB stack only in the GPU image


def test_build_lock_and_license_match_the_build_system() -> None:
    build = {canonicalize_name(Requirement(r).name): Requirement(r) for r in PYPROJECT["build-system"]["requires"]}
    assert build["setuptools"].specifier.contains("77")  # SPDX `license` string needs setuptools >= 77
    assert not build["setuptools"].specifier.contains("76.9")
    pins = locked("build.lock")
    for name, req in build.items():
        assert req.specifier.contains(pins[name]), name
    assert PYPROJECT["project"]["license"] == "MIT" and "MIT License" in (ROOT / "LICENSE").read_text()


def test_ci_and_make_install_from_the_lock() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "--require-hashes -r requirements/dev.lock" in makefile
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make lint" in ci  # `make lint` builds the venv through the lock first
