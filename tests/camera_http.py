"""Cameras on a real local HTTP server: a still-image URL, as Hikvision (digest) and Axis (basic)
serve it, and an MJPEG stream (multipart/x-mixed-replace), as most IP cameras offer one.

Not mocks of the sources: SnapshotSource and OpenCV's FFmpeg reader talk HTTP to them over a
socket; the snapshot server checks digest responses (RFC 7616, MD5, qop=auth) and basic
credentials the way a camera does.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["MjpegCamera", "SnapshotCamera"]


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()  # noqa: S324  (the digest scheme cameras use)


def _local_server(
    get: Callable[[BaseHTTPRequestHandler], None],
) -> tuple[ThreadingHTTPServer, threading.Thread]:
    """A quiet HTTP server on a free local port answering every GET with ``get``, and its (unstarted) thread."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802
            get(self)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    return server, threading.Thread(target=server.serve_forever, daemon=True)


class SnapshotCamera:
    """Serves ``picture()`` (JPEG bytes) at /picture (digest), /basic (basic auth) and /open (none).

    /html answers a login page, /status/<code> that HTTP status. ``requests`` counts the pictures
    served; ``schemes`` the authorisation schemes seen.
    """

    def __init__(self, picture: Callable[[], bytes], *, user: str = "admin", password: str = "se@cret") -> None:
        self.picture = picture
        self.user, self.password = user, password
        self.realm = "IP Camera(C1234)"
        self.nonce = secrets.token_hex(16)
        self.requests = 0
        self.schemes: list[str] = []
        self.server, self.thread = _local_server(self._serve)
        self.port = self.server.server_address[1]

    def url(self, path: str = "/picture", *, user: str | None = None, password: str | None = None) -> str:
        """The URL with credentials (the right ones unless told otherwise; ``user=""``: none)."""
        user = self.user if user is None else user
        password = self.password if password is None else password
        auth = f"{user}:{password.replace('@', '%40')}@" if user else ""
        return f"http://{auth}127.0.0.1:{self.port}{path}"

    def __enter__(self) -> SnapshotCamera:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _serve(self, h: BaseHTTPRequestHandler) -> None:
        path = h.path.split("?")[0]
        auth = h.headers.get("Authorization", "")
        self.schemes.append(auth.split(" ", 1)[0] if auth else "none")
        if path == "/picture" and not self._digest_ok(auth):
            return self._send(
                h, 401, b"", {"WWW-Authenticate": f'Digest realm="{self.realm}", qop="auth", nonce="{self.nonce}"'}
            )
        if path == "/basic":
            expected = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
            if auth != f"Basic {expected}":
                return self._send(h, 401, b"", {"WWW-Authenticate": f'Basic realm="{self.realm}"'})
        if path == "/html":
            return self._send(h, 200, b"<html>please log in</html>", {"Content-Type": "text/html"})
        if path.startswith("/status/"):
            return self._send(h, int(path.rsplit("/", 1)[1]), b"", {})
        if path in ("/picture", "/basic", "/open"):
            self.requests += 1
            return self._send(h, 200, self.picture(), {"Content-Type": "image/jpeg"})
        return self._send(h, 404, b"", {})

    def _digest_ok(self, header: str) -> bool:
        if not header.startswith("Digest "):
            return False
        fields = dict(re.findall(r'(\w+)="?([^",]*)"?', header[len("Digest ") :]))
        if fields.get("username") != self.user or fields.get("nonce") != self.nonce:
            return False
        ha1 = _md5(f"{self.user}:{self.realm}:{self.password}")
        ha2 = _md5(f"GET:{fields.get('uri', '')}")
        expected = _md5(f"{ha1}:{self.nonce}:{fields.get('nc', '')}:{fields.get('cnonce', '')}:auth:{ha2}")
        return fields.get("response") == expected

    @staticmethod
    def _send(h: BaseHTTPRequestHandler, status: int, body: bytes, headers: dict[str, str]) -> None:
        h.send_response(status)
        for key, value in headers.items():
            h.send_header(key, value)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)


class MjpegCamera:
    """Serves ``frames`` (JPEG bytes) as an MJPEG stream at /stream, ``fps`` a second, for the first
    ``connections`` connections (later ones get 404: the camera is gone), then closes the
    connection. With ``stall_after`` it stops sending after that many frames (at most all of them)
    and keeps the connection open, as a hung camera does."""

    def __init__(
        self, frames: list[bytes], *, fps: float = 20.0, stall_after: int | None = None, connections: int = 1
    ) -> None:
        self.frames, self.fps, self.stall_after, self.connections = frames, fps, stall_after, connections
        self.served = 0  # connections served
        self._closing = threading.Event()
        self.server, self.thread = _local_server(self._stream)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/stream"

    def __enter__(self) -> MjpegCamera:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closing.set()  # a stalled connection lets go
        self.server.shutdown()
        self.server.server_close()

    def _stream(self, h: BaseHTTPRequestHandler) -> None:
        if h.path != "/stream" or self.served >= self.connections:
            return SnapshotCamera._send(h, 404, b"", {})
        self.served += 1
        h.send_response(200)
        h.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        h.end_headers()
        try:
            for i, jpeg in enumerate(self.frames):
                if self.stall_after is not None and i >= self.stall_after:
                    self._closing.wait()  # connected, sending nothing
                    return
                part = b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpeg)
                h.wfile.write(part + jpeg + b"\r\n")
                h.wfile.flush()
                if self._closing.wait(1 / self.fps):
                    return
            if self.stall_after is not None:
                self._closing.wait()  # all sent: hang rather than close
        except (BrokenPipeError, ConnectionResetError):
            pass  # the reader hung up
