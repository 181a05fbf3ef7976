"""Schemathesis against the API's own OpenAPI document, over real HTTP: generated requests for every
operation give no server error, and no operation answers a caller without a valid credential."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.api.conftest import KEYS, raise_manual

pytestmark = pytest.mark.skipif(
    shutil.which("schemathesis", path=str(Path(sys.executable).parent)) is None,
    reason="schemathesis is in the test extras: `make test` installs it",
)


def _run(url: str, key: str, tmp: Path, *checks: str) -> subprocess.CompletedProcess[str]:
    command = [
        str(Path(sys.executable).parent / "schemathesis"),
        "run",
        f"{url}/openapi.json",
        "--checks",
        ",".join(checks),
        "--header",
        f"Authorization: Bearer {key}",
        "--max-examples",
        "10",
        "--phases",
        "coverage,fuzzing",
        "--seed",
        "20261201",
        "--generation-deterministic",
        "--exclude-path",
        "/stream",
        "--request-timeout",
        "10",
        "--report-dir",
        str(tmp),
        "--suppress-health-check",
        "all",
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=600)


def test_generated_requests_give_no_server_error_and_respect_authentication(api, tmp_path):
    """Every operation, fuzzed with an admin key: no 5xx; and ignored_auth: none answers without the key."""
    raise_manual(api.client("operator"))
    done = _run(api.url, KEYS["admin"], tmp_path, "not_a_server_error", "ignored_auth")
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert " passed" in done.stdout and "generated" in done.stdout
