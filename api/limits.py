"""Request size and rate limits, as ASGI middleware (pure ASGI: streams pass through untouched).

Each API process keeps its own token buckets: a client spread over N replicas gets N times the
rate, which still bounds it. Limits answer in the API's error shape: 413 and 429 with the
reason, and ``Retry-After`` on 429.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from watchpost.config import ApiLimits

__all__ = ["LimitMiddleware"]

_MAX_CLIENTS = 50_000  # buckets kept; the least recently seen are forgotten first


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class _Buckets:
    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def take(self, key: str) -> float:
        """0 when the request may go, else the seconds until it may."""
        now = time.monotonic()
        bucket = self._buckets.pop(key, None) or _Bucket(self.burst, now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.at) * self.rate)
        bucket.at = now
        self._buckets[key] = bucket
        if len(self._buckets) > _MAX_CLIENTS:
            self._buckets.popitem(last=False)
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0.0
        return (1 - bucket.tokens) / self.rate


class LimitMiddleware:
    """Refuse bodies over ``max_body_bytes`` (413) and clients over their rate (429)."""

    def __init__(self, app: Any, *, limits: ApiLimits) -> None:
        self.app = app
        self.limits = limits
        self.requests = _Buckets(limits.requests_per_s, limits.burst)
        self.sign_ins = _Buckets(limits.sign_ins_per_minute / 60.0, limits.sign_ins_per_minute)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        client = _client(scope, headers)
        wait = self.requests.take(client)
        if wait:
            await _refuse(
                send,
                429,
                f"too many requests from this client: at most {self.limits.requests_per_s:g}"
                f" a second (burst {self.limits.burst}); retry in {wait:.1f} s",
                retry_after=wait,
            )
            return
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limits.max_body_bytes:
            await _refuse(
                send,
                413,
                f"request body of {int(length)} bytes is over the limit of {self.limits.max_body_bytes} bytes",
            )
            return
        if scope["method"] in ("POST", "PUT", "PATCH"):
            # Bodies here are small JSON or forms: read at most the limit (a chunked upload has no
            # length to check up front), then hand the application the same bytes.
            body = await _read(receive, self.limits.max_body_bytes)
            if body is None:
                await _refuse(send, 413, f"request body is over the limit of {self.limits.max_body_bytes} bytes")
                return
            if scope["path"] == "/auth/token":
                wait = self.sign_ins.take(f"{_address(scope)}|{_username(body)}")
                if wait:
                    await _refuse(
                        send,
                        429,
                        f"too many sign-in attempts for this name from this address; retry in {wait:.0f} s",
                        retry_after=wait,
                    )
                    return
            receive = _replay(body, receive)
        await self.app(scope, receive, send)


def _address(scope: dict[str, Any]) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "-"


def _client(scope: dict[str, Any], headers: dict[bytes, bytes]) -> str:
    """A credential's bucket key (its hash: no secret is kept), else the peer address."""
    credential = headers.get(b"authorization")
    if credential:
        return "c:" + hashlib.sha256(credential).hexdigest()[:24]
    return "a:" + _address(scope)


def _username(body: bytes) -> str:
    from urllib.parse import parse_qs

    try:
        return parse_qs(body.decode("utf-8", "replace")).get("username", [""])[0][:64]
    except ValueError:
        return ""


async def _read(receive: Any, limit: int) -> bytes | None:
    chunks, size = [], 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


def _replay(body: bytes, original: Any) -> Any:
    """The body once, then whatever the client sends next (its disconnect)."""
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return await original()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


async def _refuse(send: Any, status: int, detail: str, *, retry_after: float | None = None) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if retry_after is not None:
        headers.append((b"retry-after", str(max(1, round(retry_after))).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
