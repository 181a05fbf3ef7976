"""docker-compose.yml: parses, and describes the production topology the README promises."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SECRETS = {"POSTGRES_PASSWORD": "x", "MQTT_PASSWORD": "y", "WATCHPOST_JWT_SECRET": "z" * 32}


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))


def test_compose_file_is_accepted_by_docker_compose():
    """`docker compose config` (or docker-compose v1) accepts the file with the secrets set, refuses it without."""
    tool = (
        ["docker", "compose"]
        if shutil.which("docker")
        and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0
        else ["docker-compose"]
        if shutil.which("docker-compose")
        else None
    )
    if tool is None:
        pytest.skip("neither `docker compose` nor docker-compose is installed")
    env = {k: v for k, v in os.environ.items() if k not in SECRETS}
    ok = subprocess.run([*tool, "config", "-q"], cwd=ROOT, env={**env, **SECRETS}, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    missing = subprocess.run([*tool, "config", "-q"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert missing.returncode != 0 and "set " in missing.stderr  # names the secret to set


def test_production_topology_two_ingest_workers_two_dispatchers_two_api_replicas_health_checked_start_order():
    """Broker, TimescaleDB and the APIs are health-checked; migrations run first; two of each; production mode."""
    services = _compose()["services"]
    assert {"mosquitto", "timescaledb", "migrate", "api-1", "api-2"} <= set(services)
    ingest = [s for name, s in services.items() if name.startswith("ingest-")]
    dispatch = [s for name, s in services.items() if name.startswith("dispatch-")]
    assert len(ingest) == 2 and len(dispatch) == 2
    assert len({tuple(s["command"]) for s in ingest}) == 2  # distinct worker ids: distinct sessions
    for name in ("mosquitto", "timescaledb", "api-1", "api-2"):
        assert "healthcheck" in services[name], name
    for service in [*ingest, *dispatch, services["api-1"], services["api-2"]]:
        assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert service["environment"]["WATCHPOST_ENV"] == "production"
    assert "synchronous_commit=on" in services["timescaledb"]["command"]
