"""API fixtures: real uvicorn servers on free ports, credentials for every role, httpx clients.

Tests talk real HTTP (and WebSocket) to a server running in a thread of the test process,
against the session's PostgreSQL.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import uvicorn

from api.app import create_app
from api.auth import hash_password, sha256_hex
from watchpost.config import AccessConfig, ApiKeyConfig, ApiLimits, UserConfig, WatchpostConfig

JWT_SECRET = "test-secret-0123456789abcdef-0123456789"
PATROL_UNIT = "lotus-ebike-1"
OTHER_UNIT = "lotus-car-1"
# One API key per role; "patrol" is unit lotus-ebike-1's terminal, "patrol2" lotus-car-1's.
KEYS = {
    "operator": "k-operator",
    "supervisor": "k-supervisor",
    "admin": "k-admin",
    "auditor": "k-auditor",
    "patrol": "k-patrol-ebike-1",
    "patrol2": "k-patrol-car-1",
}
PASSWORD = "correct horse battery"


def _access() -> AccessConfig:
    quick = hash_password(PASSWORD, n=2**10)  # tests need no resistance to guessing: keep sign-in fast
    return AccessConfig(
        users=[
            UserConfig(username="alice", name="Alice", role="operator", password_hash=quick),
            UserConfig(username="rider", name="Rider", role="patrol", unit=PATROL_UNIT, password_hash=quick),
        ],
        api_keys=[
            ApiKeyConfig(
                name=f"key-{who}",
                role="patrol" if who.startswith("patrol") else who,  # type: ignore[arg-type]
                unit={"patrol": PATROL_UNIT, "patrol2": OTHER_UNIT}.get(who),
                key_sha256=sha256_hex(key),
            )
            for who, key in KEYS.items()
        ],
    )


@pytest.fixture
def api_config(config: WatchpostConfig) -> WatchpostConfig:
    """The test configuration with a credential for every role."""
    # Tests call far faster than a person: the rate limits are tested on their own (test_limits.py).
    unlimited = ApiLimits(requests_per_s=100_000, burst=100_000, sign_ins_per_minute=100_000)
    return config.model_copy(update={"access": _access(), "api": unlimited})


class Server:
    """A uvicorn server for one app, in a thread, on a port of its own."""

    def __init__(self, app: Any) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = app
        self.server = uvicorn.Server(
            uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=1, ws_ping_interval=None)
        )
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def start(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            assert time.monotonic() < deadline, "the API server did not start"
            assert self.thread.is_alive(), "the API server thread died"
            time.sleep(0.02)
        # Streams can only start once the feed listener is up (an app without a feed has none to wait for).
        feed = getattr(self.app.state, "feed", None)
        while feed is not None and not feed.health()["listening"]:
            assert time.monotonic() < deadline, "the feed listener did not start"
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


@dataclass
class Api:
    """A running API and clients for it."""

    server: Server
    config: WatchpostConfig
    clients: list[httpx.Client] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def app(self) -> Any:
        return self.server.app

    def client(self, role: str | None = None, *, token: str | None = None) -> httpx.Client:
        """An HTTP client with ``role``'s API key (or ``token``); no credential when both are None."""
        headers = {}
        credential = token or (KEYS[role] if role else None)
        if credential:
            headers["Authorization"] = f"Bearer {credential}"
        client = httpx.Client(base_url=self.url, headers=headers, timeout=httpx.Timeout(10.0))
        self.clients.append(client)
        return client

    def ws_url(self, query: str) -> str:
        return f"ws://127.0.0.1:{self.server.port}/ws?{query}"

    def close(self) -> None:
        for c in self.clients:
            c.close()
        self.server.stop()


@pytest.fixture
def start_api(api_config: WatchpostConfig, database_url: str, db: Any) -> Iterator[Callable[..., Api]]:
    """Start API servers on the session database (several share it, like replicas); stopped at the end."""
    running: list[Api] = []

    def start(**options: Any) -> Api:
        options.setdefault("jwt_secret", JWT_SECRET)
        app = create_app(config=options.pop("config", api_config), database_url=database_url, **options)
        api = Api(server=Server(app).start(), config=app.state.config)
        running.append(api)
        return api

    yield start
    for api in running:
        api.close()


@pytest.fixture
def api(start_api: Callable[..., Api]) -> Api:
    """One running API server with the test credentials."""
    return start_api()


# --- helpers ------------------------------------------------------------------------------------


def raise_manual(client: httpx.Client, **fields: Any) -> dict[str, Any]:
    """Raise a manual alert through the API (a reported theft at lotus unless told otherwise)."""
    body = {"type": "theft", "site_id": "lotus", "note": "reported by phone", **fields}
    r = client.post("/alerts", json=body)
    assert r.status_code == 201, r.text
    return r.json()


def assign(client: httpx.Client, alert_id: int, unit_id: str = PATROL_UNIT, **extra: Any) -> dict[str, Any]:
    """Assign ``unit_id`` to the alert through the API; return that assignment."""
    r = client.post(f"/alerts/{alert_id}/assign", json={"unit_id": unit_id, **extra})
    assert r.status_code == 200, r.text
    return next(a for a in reversed(r.json()["assignments"]) if a["unit_id"] == unit_id)


@dataclass(frozen=True)
class SseEvent:
    """One Server-Sent Event as a client parses it."""

    id: int | None
    event: str
    data: dict[str, Any]


def sse_events(response: httpx.Response, *, heartbeats: bool = False) -> Iterator[Any]:
    """Parse an SSE response into :class:`SseEvent` objects; with ``heartbeats``, None for each keep-alive."""
    fields: dict[str, str] = {}
    for line in response.iter_lines():
        if line == "":
            if "data" in fields:
                yield SseEvent(
                    id=int(fields["id"]) if "id" in fields else None,
                    event=fields.get("event", "message"),
                    data=json.loads(fields["data"]),
                )
            fields = {}
        elif line.startswith(":"):
            if heartbeats and "keep-alive" in line:
                yield None
        else:
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")


@pytest.fixture
def start_labelling() -> Iterator[Callable[..., Server]]:
    """Start ``watchpost crowd label``'s server on a folder of frames (a real uvicorn); stopped at the end."""
    from api.labelling import LabelBook, create_labelling_app

    running: list[Server] = []

    def start(frames: Any, labels: Any) -> Server:
        server = Server(create_labelling_app(LabelBook(frames, labels))).start()
        running.append(server)
        return server

    yield start
    for server in running:
        server.stop()
