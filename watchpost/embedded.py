"""Embedded PostgreSQL and MQTT broker for a machine that has neither (a newcomer's laptop).

PostgreSQL comes from the ``pgserver`` wheel, the MQTT 5 broker (rumqttd) from ``iotcore``.
Both keep their state under one data folder and stop when this process exits.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["EmbeddedServices", "free_port", "start_broker", "start_mosquitto", "start_postgres"]

log = logging.getLogger("watchpost.embedded")

_BROKER_TOML = """\
id = 0

[router]
id = 0
max_connections = 10010
max_outgoing_packet_count = 200
max_segment_size = 104857600
max_segment_count = 10

[v5.1]
name = "v5-1"
listen = "{host}:{port}"
next_connection_delay_ms = 1
    [v5.1.connections]
    connection_timeout_ms = 60000
    max_payload_size = {max_payload}
    max_inflight_count = 500
"""


@dataclass
class EmbeddedServices:
    """What was started here, to stop at exit."""

    database_url: str | None = None
    broker_url: str | None = None
    _handles: list[Any] = field(default_factory=list)

    def stop(self) -> None:
        """Stop everything this object started (safe to call twice)."""
        while self._handles:
            handle = self._handles.pop()
            try:
                handle.stop() if hasattr(handle, "stop") else handle.cleanup()
            except Exception:  # best effort at exit; nothing to recover
                log.exception("stopping embedded service failed")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@contextmanager
def service_processes(
    config: Any, database_url: str, broker_url: str, port: int, commands: dict[str, list[str]]
) -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    """Watchpost services, each ``watchpost <command ...>`` in its own process as deployed, on ``config``
    (written to a scratch file), the database and broker given and the API on ``port``; yields once the
    API answers ``/health`` (a second more for the others to subscribe) and stops them all after."""
    import httpx  # here: only the benchmarks start services
    import yaml

    with tempfile.TemporaryDirectory() as tmp:
        cfg_file = Path(tmp) / "bench.yaml"
        cfg_file.write_text(yaml.safe_dump(config.model_dump(mode="json"), allow_unicode=True), encoding="utf-8")
        env = {
            **os.environ,
            "WATCHPOST_DATABASE_URL": database_url,
            "WATCHPOST_MQTT_URL": broker_url,
            "WATCHPOST_LOG_LEVEL": "WARNING",
            "WATCHPOST_API_PORT": str(port),
        }
        base = [sys.executable, "-m", "watchpost.cli", "--config", str(cfg_file)]
        procs = {
            name: subprocess.Popen([*base, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for name, args in commands.items()
        }
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                dead = [n for n, p in procs.items() if p.poll() is not None]
                if dead or time.monotonic() > deadline:
                    raise RuntimeError(f"services did not come up (exited: {dead})")
                time.sleep(0.2)
            time.sleep(1.0)  # the workers subscribed
            yield procs
        finally:
            for p in procs.values():
                p.terminate()
            for p in procs.values():
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    p.kill()


def start_postgres(data_dir: Path, services: EmbeddedServices) -> str:
    """Start (or reuse) an embedded PostgreSQL 16 in ``data_dir``; return its URL."""
    import pgserver  # imported here: a deployment with a real server never loads it

    data_dir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("XDG_RUNTIME_DIR", str(data_dir.parent))
    logging.getLogger("pgserver").setLevel(logging.WARNING)  # it narrates every start step at INFO
    server = pgserver.get_server(data_dir, cleanup_mode="stop")
    services._handles.append(server)
    url = server.get_uri()
    services.database_url = url
    log.info("embedded postgresql started: data=%s", data_dir)
    return url


def start_broker(
    data_dir: Path, services: EmbeddedServices, *, port: int | None = None, max_payload: int = 4 * 1024 * 1024
) -> str:
    """Start an embedded MQTT 5 broker (rumqttd) on loopback; return its URL."""
    from iotcore import Broker

    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    toml = data_dir / "broker.toml"
    toml.write_text(_BROKER_TOML.format(host="127.0.0.1", port=port, max_payload=max_payload), encoding="utf-8")
    broker = Broker(config_path=str(toml)).start()
    services._handles.append(broker)
    url = f"mqtt://127.0.0.1:{port}"
    services.broker_url = url
    log.info("embedded mqtt broker started: url=%s", url)
    return url


class _Process:
    """A child process stopped like the other embedded services."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def start_mosquitto(
    data_dir: Path, services: EmbeddedServices, *, production_conf: Path, port: int | None = None
) -> str | None:
    """Start a private Mosquitto on loopback with the deployment's queue and persistence settings.

    Returns its URL, or None when no ``mosquitto`` binary is installed. Started again with the
    same folder and port, it is the same broker after a restart (its persisted sessions). Authentication and
    TLS lines are left out (loopback only); everything that decides whether messages are
    held or dropped is kept, so what runs here behaves like production.
    """
    binary = shutil.which("mosquitto")
    if binary is None:
        return None
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    skip = (
        "listener",
        "allow_anonymous",
        "password_file",
        "acl_file",
        "persistence_location",
        "log_",
        "cafile",
        "certfile",
        "keyfile",
        "require_certificate",
        "tls_version",
    )
    kept = [line for line in production_conf.read_text(encoding="utf-8").splitlines() if not line.startswith(skip)]
    run_as = ["user root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []  # else it drops to 'mosquitto'
    conf = data_dir / "mosquitto.conf"
    conf.write_text(
        "\n".join(
            [
                *run_as,
                *kept,
                f"persistence_location {data_dir}/",
                f"listener {port} 127.0.0.1",
                "allow_anonymous true",
                "",
            ]
        ),
        encoding="utf-8",
    )
    proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"mosquitto did not start from {conf}") from None
            time.sleep(0.05)
    services._handles.append(_Process(proc))
    url = f"mqtt://127.0.0.1:{port}"
    services.broker_url = url
    log.info("private mosquitto started: url=%s conf=%s", url, conf)
    return url
