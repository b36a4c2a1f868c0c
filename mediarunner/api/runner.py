"""The routes of remote (HTTP) runners under ``/v1/runner/``: the protocol
(:mod:`~mediarunner.api.runner_protocol`) and files (:mod:`~mediarunner.api.runner_files`)."""

from __future__ import annotations

from fastapi import APIRouter

from mediarunner.api import runner_files, runner_protocol

router = APIRouter()
router.include_router(runner_protocol.router)
router.include_router(runner_files.router)
