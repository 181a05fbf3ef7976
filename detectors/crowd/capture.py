"""Frame sources: the one module that owns OpenCV capture and JPEG decoding.

Sources yield :class:`Frame` objects at a configured sampling rate:

- :class:`StreamSource` -- RTSP/HTTP URLs (or a video file treated as a live stream) through
  ``cv2.VideoCapture``, reconnecting with exponential backoff when the stream is lost, and
  giving up (health ``dead``) after a configured number of failed attempts;
- :class:`SnapshotSource` -- a camera's still-image URL (Hikvision ISAPI ``.../picture``, Dahua
  ``snapshot.cgi``, Axis ``jpg/image.cgi``) fetched with httpx at the sampling rate, with
  digest or basic authentication, backing off and giving up the same way;
- :class:`FileSource` -- a video file, read once to its end;
- :class:`DirectorySource` -- a folder of JPEG or PNG files (or a given list of them), in order;
- :class:`FrameInbox` -- JPEG frames pushed by a transport (a camera publishing over MQTT);
- :func:`decode_jpeg` -- one JPEG byte string, e.g. a frame published over MQTT;
  :func:`decode_image` also takes a PNG (labelled frames of public datasets often are);
- :func:`jpeg_payload` -- the JPEG inside an MQTT frame message: the raw bytes, base64 text
  (as Node-RED flows and Blue Iris's ``&ALERT_JPEG`` send it, or a ``data:`` URI), or a JSON
  object carrying such text under ``image``, ``jpeg``, ``frame``, ``snapshot``, ... ;
  :func:`frame_message` also reads the capture time such an envelope carries.

Every JPEG (and PNG) is checked before it is decoded: the magic bytes, a size cap, and the dimensions
declared in its header against a pixel cap, so a small file that declares a gigapixel image
(a pixel bomb) is refused without allocating it. What cannot be used raises
:class:`FrameError` with a stable reason and a human detail; nothing here crashes on bad data.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
import threading
import time as _time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from enum import StrEnum
from pathlib import Path

import cv2
import httpx
import numpy as np

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_PIXELS",
    "CameraHealth",
    "DirectorySource",
    "FileSource",
    "Frame",
    "FrameInbox",
    "FrameError",
    "FrameErrorReason",
    "HealthState",
    "SnapshotSource",
    "StreamSource",
    "decode_image",
    "decode_jpeg",
    "jpeg_dimensions",
    "png_dimensions",
    "IMAGE_KEYS",
    "IMAGE_SUFFIXES",
    "TIME_KEYS",
    "frame_message",
    "jpeg_payload",
    "redact_url",
]

log = logging.getLogger("watchpost.crowd.capture")

DEFAULT_MAX_PIXELS = 4096 * 3072  # 12.6 Mpx: above any surveillance camera's main stream
DEFAULT_MAX_BYTES = 16 * 1024 * 1024
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")  # the files a folder of frames is read from


class FrameErrorReason(StrEnum):
    """Why a frame or a source could not be used. Stable codes."""

    NOT_JPEG = "not_jpeg"
    TOO_LARGE = "too_large"  # bytes or declared pixels over the cap
    CORRUPT = "corrupt"  # a JPEG that does not decode cleanly
    OPEN_FAILED = "open_failed"
    STREAM_LOST = "stream_lost"
    DEAD = "dead"  # gave up reconnecting


class FrameError(Exception):
    """A frame or source that cannot be used; carries a stable reason and a human detail."""

    def __init__(self, reason: FrameErrorReason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


class HealthState(StrEnum):
    """A camera's state as the console shows it."""

    OK = "ok"
    WAITING = "waiting"  # no frame yet
    SILENT = "silent"  # a pushed source (MQTT) that has sent nothing for a while
    RECONNECTING = "reconnecting"
    DEAD = "dead"


@dataclass(frozen=True, slots=True)
class CameraHealth:
    """Snapshot of a source's health: state, when the last frame arrived, and why if not ok."""

    source: str
    state: HealthState
    last_frame_at: float | None  # epoch seconds
    reason: str | None
    reconnects: int
    frames: int  # frames given out (the sampled ones)
    errors: int = 0  # frames refused (corrupt, too large, not JPEG)
    decoded: int = 0  # frames read from a stream or file, sampled or not (each one costs decoding)
    behind_s: float = 0.0  # how far reading lags the stream's own clock (frames waiting to be read)


@dataclass(frozen=True, slots=True, eq=False)
class Frame:
    """One decoded frame: BGR uint8 pixels, capture time (epoch s), index in its source, and its name."""

    image: np.ndarray
    time: float
    index: int
    source: str
    name: str = ""


# --- JPEG --------------------------------------------------------------------------------------

_SOF_MARKERS = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})


def jpeg_dimensions(data: bytes) -> tuple[int, int]:
    """``(width, height)`` from the JPEG's frame header, without decoding the image."""
    if len(data) < 4 or data[:3] != b"\xff\xd8\xff":
        raise FrameError(FrameErrorReason.NOT_JPEG, "does not start with the JPEG marker FFD8FF")
    i = 2
    n = len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            raise FrameError(FrameErrorReason.CORRUPT, f"expected a marker at byte {i}")
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in _STANDALONE:
            i += 2
            continue
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        if length < 2:
            raise FrameError(FrameErrorReason.CORRUPT, f"segment length {length} at byte {i}")
        if marker in _SOF_MARKERS:
            if i + 9 > n:
                break
            height = int.from_bytes(data[i + 5 : i + 7], "big")
            width = int.from_bytes(data[i + 7 : i + 9], "big")
            if width == 0 or height == 0:
                raise FrameError(FrameErrorReason.CORRUPT, f"declares a {width}x{height} image")
            return width, height
        if marker == 0xDA:  # start of scan before any frame header
            break
        i += 2 + length
    raise FrameError(FrameErrorReason.CORRUPT, "no frame header (SOF) before the image data")


def _within_caps(
    data: bytes, dimensions: Callable[[bytes], tuple[int, int]], max_pixels: int, max_bytes: int
) -> tuple[int, int]:
    """The image's declared ``(width, height)``, after the byte cap and before any decoding the pixel cap."""
    if len(data) > max_bytes:
        raise FrameError(FrameErrorReason.TOO_LARGE, f"{len(data)} bytes, over the {max_bytes}-byte cap")
    width, height = dimensions(data)
    if width * height > max_pixels:
        raise FrameError(
            FrameErrorReason.TOO_LARGE,
            f"declares {width}x{height} = {width * height} pixels, over the cap {max_pixels}",
        )
    return width, height


def decode_jpeg(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS, max_bytes: int = DEFAULT_MAX_BYTES) -> np.ndarray:
    """Decode one JPEG to BGR uint8, refusing anything that is not a complete, reasonably sized JPEG."""
    width, height = _within_caps(data, jpeg_dimensions, max_pixels, max_bytes)
    # A JPEG cut short still decodes in libjpeg (grey below the cut): require the end marker.
    if not data.rstrip(b"\x00").endswith(b"\xff\xd9"):
        raise FrameError(FrameErrorReason.CORRUPT, "truncated: no end-of-image marker")
    raw = np.frombuffer(data, np.uint8)
    _check_entropy_data(raw)
    image = cv2.imdecode(raw, cv2.IMREAD_COLOR)
    if image is None:
        raise FrameError(FrameErrorReason.CORRUPT, "the JPEG data does not decode")
    if image.shape[:2] != (height, width):
        raise FrameError(
            FrameErrorReason.CORRUPT, f"decoded {image.shape[1]}x{image.shape[0]}, header says {width}x{height}"
        )
    return image


# --- PNG ---------------------------------------------------------------------------------------

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_PNG_END = b"IEND\xaeB`\x82"  # the IEND chunk's type and CRC: the last 8 bytes of a whole PNG


def png_dimensions(data: bytes) -> tuple[int, int]:
    """``(width, height)`` from the PNG's IHDR chunk, without decoding the image."""
    if not data.startswith(_PNG_MAGIC):
        raise FrameError(FrameErrorReason.NOT_JPEG, "does not start with the PNG signature")
    if len(data) < 24 or data[12:16] != b"IHDR":
        raise FrameError(FrameErrorReason.CORRUPT, "no IHDR chunk after the PNG signature")
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if width == 0 or height == 0:
        raise FrameError(FrameErrorReason.CORRUPT, f"declares a {width}x{height} image")
    return width, height


def decode_image(
    data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS, max_bytes: int = DEFAULT_MAX_BYTES
) -> np.ndarray:
    """Decode one JPEG or PNG to BGR uint8 (grey and 16-bit PNGs too), with the checks of :func:`decode_jpeg`:
    a byte cap, the declared size against the pixel cap before anything is allocated, and a whole file."""
    if not data.startswith(_PNG_MAGIC):
        if data[:3] != _JPEG_MAGIC:
            raise FrameError(
                FrameErrorReason.NOT_JPEG, f"neither a JPEG nor a PNG (starts with {data[:8].hex() or 'nothing'})"
            )
        return decode_jpeg(data, max_pixels=max_pixels, max_bytes=max_bytes)
    width, height = _within_caps(data, png_dimensions, max_pixels, max_bytes)
    if not data.endswith(_PNG_END):
        raise FrameError(FrameErrorReason.CORRUPT, "truncated: no IEND chunk at the end of the PNG")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None or image.shape[:2] != (height, width):
        raise FrameError(FrameErrorReason.CORRUPT, "the PNG data does not decode")
    return image


_JPEG_MAGIC = b"\xff\xd8\xff"
# Keys a JSON frame message may carry its base64 JPEG under (compared without case), in this order.
IMAGE_KEYS = ("image", "jpeg", "jpg", "frame", "picture", "snapshot", "img", "image_data", "imagedata", "data")


def jpeg_payload(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """The JPEG bytes in a frame message: ``data`` itself when it is a JPEG, else decoded from base64
    text, a ``data:image/jpeg;base64,`` URI, or a JSON object holding one under an :data:`IMAGE_KEYS` key.

    :class:`FrameError` ``not_jpeg`` says what the message was instead; ``too_large`` when the
    text could only hold more than ``max_bytes`` of JPEG. The JPEG itself is checked by
    :func:`decode_jpeg`.
    """
    return _unwrap(data, max_bytes)[0]


# Keys a JSON frame message may carry its capture time under (compared without case), in this order.
TIME_KEYS = ("captured_at", "capture_time", "timestamp", "time", "ts", "datetime", "date_time")
_EPOCH_MS_FROM = 1e11  # larger epoch numbers are milliseconds (1e11 s is the year 5138)
_AHEAD_S = 2.0  # a frame is not taken after it arrives: a capture time further ahead is a fast camera clock


def frame_message(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES, tz: tzinfo = UTC) -> tuple[bytes, float | None]:
    """The JPEG of a frame message (see :func:`jpeg_payload`) and the capture time its JSON envelope
    gives under a :data:`TIME_KEYS` key, as epoch seconds: a number or numeric text (seconds or
    milliseconds) or ISO 8601 (read in ``tz`` when it has no offset). None without one, or when it
    cannot be read: a frame is never refused for its time."""
    jpeg, fields = _unwrap(data, max_bytes)
    if not fields:
        return jpeg, None
    value = next((fields[k] for k in TIME_KEYS if k in fields), None)
    return jpeg, _epoch(value, tz)


def _epoch(value: object, tz: tzinfo) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        try:
            value = float(text)
        except ValueError:
            try:
                parsed = datetime.fromisoformat(text)
            except ValueError:
                return None
            return (parsed if parsed.tzinfo else parsed.replace(tzinfo=tz)).timestamp()
    if isinstance(value, int | float) and math.isfinite(value) and value > 0:
        return value / 1000.0 if value >= _EPOCH_MS_FROM else float(value)
    return None


def _unwrap(data: bytes, max_bytes: int) -> tuple[bytes, dict[str, object] | None]:
    """:func:`jpeg_payload`, and the JSON envelope's fields (keys lower-cased) when there was one."""
    if data[:3] == _JPEG_MAGIC:
        return data, None
    if len(data) > max_bytes * 4 // 3 + 65536:  # base64 is 4/3 of the bytes; room for a JSON envelope
        raise FrameError(FrameErrorReason.TOO_LARGE, f"{len(data)} bytes, over the {max_bytes}-byte cap")
    text = data.strip()
    what = "message"
    fields: dict[str, object] | None = None
    if text[:1] == b"{":
        try:
            doc = json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise FrameError(FrameErrorReason.NOT_JPEG, f"a JSON message that does not parse ({exc})") from exc
        fields = {str(k).lower(): v for k, v in doc.items()} if isinstance(doc, dict) else {}
        key = next((k for k in IMAGE_KEYS if isinstance(fields.get(k), str)), None)
        if key is None:
            raise FrameError(
                FrameErrorReason.NOT_JPEG, f"a JSON message without a base64 JPEG under any of {', '.join(IMAGE_KEYS)}"
            )
        text, what = str(fields[key]).encode("ascii", "replace").strip(), f"JSON field {key!r}"
    if text[:5].lower() == b"data:":
        head, comma, text = text.partition(b",")
        if not comma or not head.lower().endswith(b";base64"):
            raise FrameError(FrameErrorReason.NOT_JPEG, f"{what}: a data: URI that is not base64")
    if not text:
        raise FrameError(FrameErrorReason.NOT_JPEG, "an empty message" if what == "message" else f"{what} is empty")
    try:
        raw = base64.b64decode(b"".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        if what == "message":
            raise FrameError(
                FrameErrorReason.NOT_JPEG,
                "neither a JPEG (it does not start with FFD8FF) nor base64 text or JSON carrying one",
            ) from None
        raise FrameError(FrameErrorReason.NOT_JPEG, f"{what} is not base64") from None
    if raw[:3] != _JPEG_MAGIC:
        raise FrameError(FrameErrorReason.NOT_JPEG, f"{what}: base64 of something that is not a JPEG")
    return raw, fields


# After 0xFF inside compressed data only these may follow: a stuffed zero, fill, restart
# markers, end of image, and the tables/scan markers that separate progressive scans.
_ALLOWED_AFTER_FF = np.zeros(256, bool)
_ALLOWED_AFTER_FF[[0x00, 0xFF, 0xC4, 0xCC, 0xD9, 0xDA, 0xDB, 0xDD, 0xFE, *range(0xD0, 0xD8), *range(0xE0, 0xF0)]] = True


def _check_entropy_data(raw: np.ndarray) -> None:
    """Refuse compressed data with impossible markers: libjpeg only warns about those and decodes garbage."""
    sos = bytes(raw[: min(len(raw), 65536)]).find(b"\xff\xda")
    if sos < 0:
        raise FrameError(FrameErrorReason.CORRUPT, "no image data (SOS marker)")
    body = raw[sos + 2 : -1]
    follow = body[1:][body[:-1] == 0xFF]
    bad = follow[~_ALLOWED_AFTER_FF[follow]]
    if bad.size:
        raise FrameError(
            FrameErrorReason.CORRUPT, f"damaged image data ({bad.size} invalid markers, first 0xFF{bad[0]:02X})"
        )


# --- sources -------------------------------------------------------------------------------------


def redact_url(url: str) -> str:
    """``url`` with the password of its user part replaced (rtsp://admin:secret@host -> rtsp://admin:***@host)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    authority, slash, path = rest.partition("/")
    user, at, host = authority.rpartition("@")
    if not at or ":" not in user:
        return url
    return f"{scheme}://{user.split(':', 1)[0]}:***@{host}{slash}{path}"


class _Sampler:
    """Lets a frame through when at least 1/fps has passed (by the frame's own time)."""

    def __init__(self, fps: float | None) -> None:
        self._period = 1.0 / fps if fps else 0.0
        self._next: float | None = None

    def take(self, t: float) -> bool:
        if self._next is not None and t < self._next - 1e-6:  # float steps like 0.1 * 6 < 0.6
            return False
        # schedule from the ideal grid, not from t, so a steady stream keeps the configured rate
        late = self._next is None or t - self._next > self._period
        self._next = t + self._period if late else self._next + self._period
        return True


class _Health:
    def __init__(self, source: str) -> None:
        self.source = source
        self.state = HealthState.OK
        self.last_frame_at: float | None = None
        self.reason: str | None = None
        self.reconnects = 0
        self.frames = 0
        self.errors = 0
        self.decoded = 0
        self.behind_s = 0.0

    def snapshot(self) -> CameraHealth:
        return CameraHealth(
            source=self.source,
            state=self.state,
            last_frame_at=self.last_frame_at,
            reason=self.reason,
            reconnects=self.reconnects,
            frames=self.frames,
            errors=self.errors,
            decoded=self.decoded,
            behind_s=round(self.behind_s, 2),
        )


_SINGLE_FRAME_CONNECTIONS = 3  # one picture per connection this many times in a row: a snapshot URL
_PACE_SLACK_S = 1.0  # a paced file further behind its clock than this starts its clock again


class _Lag:
    """How far a reader is behind a stream: how much more wall time than stream time has passed since
    the reader last caught up. It has caught up when a grab had to wait for the next frame (then no
    frame is waiting to be read), or at the first frame; a stream's first second often arrives at
    once from the camera's buffer, which only lowers the mark. Streams whose times are not real (an
    MJPEG stream's are its frame numbers at a nominal rate) wait at every grab, so they are never
    taken for behind; a stream time that goes back (a looped file) starts again. A file played as live
    never waits for a frame: its lateness is counted on its own clock from its first frame."""

    def __init__(self) -> None:
        self._mark: float | None = None  # wall minus stream time when last caught up
        self._last_pos = 0.0

    def behind(self, wall: float, pos: float, *, waited: bool) -> float:
        if pos <= 0:  # the reader gives no stream time
            return 0.0
        gap = wall - pos
        if self._mark is None or waited or pos < self._last_pos - 1.0:
            self._mark = gap
        self._last_pos = pos
        self._mark = min(self._mark, gap)
        return gap - self._mark


class _LiveSource:
    """What a live source (stream, snapshot URL) shares: its health, and a stop for another thread."""

    _health: _Health
    _stopped: bool

    @property
    def health(self) -> CameraHealth:
        """The source's health now."""
        return self._health.snapshot()

    def stop(self) -> None:
        """Make iteration end after the current frame."""
        self._stopped = True


class StreamSource(_LiveSource):
    """A live stream (RTSP/HTTP URL, or a file read as if live) with reconnect and backoff.

    ``max_attempts`` failed (re)connections in a row make the source dead: iteration stops and
    :attr:`health` says why. ``sleep`` and ``clock`` can be replaced in tests. With ``pace`` the
    frames are read no faster than the stream's own frame rate (a file played as if live, not
    decoded as fast as the CPU allows); a file that ends is opened again. A network stream that
    gives no frame for ``stall_timeout_s`` (a camera that stops sending but keeps the connection
    open, a connection that never completes) is lost and reconnected, saying it stalled.
    """

    def __init__(
        self,
        url: str,
        *,
        sample_fps: float | None = None,
        backoff_initial: float = 1.0,
        backoff_max: float = 30.0,
        max_attempts: int | None = 10,
        sleep: Callable[[float], None] = _time.sleep,
        clock: Callable[[], float] = _time.time,
        open_capture: Callable[[str], cv2.VideoCapture] | None = None,
        pace: bool = False,
        stall_timeout_s: float = 10.0,
    ) -> None:
        self.url = url
        self.shown = redact_url(url)  # what logs and the health show: no password
        self._pace = pace
        self._stall = stall_timeout_s
        self._sampler = _Sampler(sample_fps)
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._max_attempts = max_attempts
        self._sleep = sleep
        self._clock = clock
        self._open = open_capture or self._capture
        self._health = _Health(self.shown)
        self._stopped = False

    def _capture(self, url: str) -> cv2.VideoCapture:
        """OpenCV's FFmpeg reader, bounded by the stall timeout for a network stream (OpenCV waits 30 s)."""
        if "://" not in url:
            return cv2.VideoCapture(url)
        ms = int(self._stall * 1000)
        return cv2.VideoCapture(
            url, cv2.CAP_FFMPEG, [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms]
        )

    def __iter__(self) -> Iterator[Frame]:
        index = 0
        failures = 0  # connections in a row that gave no frame
        single = 0  # http connections in a row that gave exactly one frame: a still-image URL, not a stream
        delay = self._backoff_initial
        while not self._stopped:
            cap = self._open(self.url)
            got_frames = False
            frames_before = self._health.frames
            if cap is not None and cap.isOpened():
                if self._health.state is not HealthState.OK:
                    log.info("stream connected source=%s after_failures=%d", self.shown, failures)
                self._health.state = HealthState.OK
                self._health.reason = None
                frame_s = 1.0 / (cap.get(cv2.CAP_PROP_FPS) or 25.0)
                period = frame_s if self._pace else 0.0
                due = _time.monotonic()
                lag = _Lag()
                try:
                    while not self._stopped:
                        if period:
                            # on the file's own clock, as a live camera sends: a frame read late is
                            # made up by reading the next ones sooner, unless a second or more behind
                            due += period
                            wait = due - _time.monotonic()
                            if wait > 0:
                                self._sleep(wait)
                            elif wait < -_PACE_SLACK_S:
                                due = _time.monotonic()
                        asked = _time.monotonic()
                        # every frame of a stream is decoded (grab), but only a sampled one is converted
                        # to BGR (retrieve): a 1080p H.264 frame costs 1.8x as much read as grabbed
                        ok = cap.grab()
                        grabbed = _time.monotonic()
                        now = self._clock()
                        take = ok and self._sampler.take(now)
                        image = cap.retrieve()[1] if take else None
                        if not ok or (take and image is None):
                            waited = _time.monotonic() - asked
                            self._health.reason = f"stream lost after {self._health.frames} frames" + (
                                f": stalled, no frame for {waited:.0f} s" if waited >= 0.9 * self._stall else ""
                            )
                            log.warning("stream lost source=%s frames=%d", self.shown, self._health.frames)
                            break
                        got_frames = True
                        self._health.decoded += 1
                        pos = cap.get(cv2.CAP_PROP_POS_MSEC) / 1000
                        # a network stream's grab that took half a frame's time waited for the frame; a
                        # paced file's lateness is on its own clock, which a restart of the pacing keeps
                        waited = not period and grabbed - asked > 0.5 * frame_s
                        self._health.behind_s = lag.behind(grabbed, pos, waited=waited)
                        failures = 0
                        delay = self._backoff_initial
                        if not take:
                            continue
                        self._health.last_frame_at = now
                        self._health.frames += 1
                        yield Frame(image=image, time=now, index=index, source=self.shown)
                        index += 1
                finally:
                    cap.release()
            else:
                if cap is not None:
                    cap.release()
                self._health.reason = f"cannot open {self.shown}"
            if self._stopped:
                return
            if not got_frames:  # an open that yields nothing counts as a failure, or a flapping camera spins
                failures += 1
            one = self._health.frames - frames_before == 1 and self.url.startswith(("http://", "https://"))
            single = single + 1 if one else 0
            if single >= _SINGLE_FRAME_CONNECTIONS:
                self._health.state = HealthState.DEAD
                self._health.reason = (
                    f"{self.shown} gives one picture per connection: it is a still-image URL, not a video stream"
                    " (set crowd.snapshot: true)"
                )
                log.warning("stream is a snapshot URL source=%s", self.shown)
                return
            if self._max_attempts is not None and failures >= self._max_attempts:
                self._health.state = HealthState.DEAD
                self._health.reason = f"gave up after {failures} failed attempts to open {self.shown}"
                log.warning("stream dead source=%s reason=%s", self.shown, self._health.reason)
                return
            self._health.state = HealthState.RECONNECTING
            self._health.reconnects += 1
            log.warning("stream reconnecting source=%s delay_s=%.1f reason=%s", self.shown, delay, self._health.reason)
            self._sleep(delay)
            delay = min(delay * 2, self._backoff_max)


class SnapshotSource(_LiveSource):
    """A camera's still-image URL, fetched at the sampling rate: one JPEG per request.

    Many cameras on community networks are reached this way rather than by a video stream.
    Credentials in the URL's user part are sent with the scheme the camera asks for (digest,
    as Hikvision and Dahua do, or basic); they never appear in the health or the logs. A fetch
    that fails (unreachable, an HTTP error, a body that is not a usable JPEG) counts against
    ``max_attempts`` in a row, with exponential backoff between tries; then the source is dead.
    A body over ``max_bytes`` or a JPEG declaring over ``max_pixels`` is refused unread.
    """

    def __init__(
        self,
        url: str,
        *,
        sample_fps: float = 1.0,
        backoff_initial: float = 1.0,
        backoff_max: float = 30.0,
        max_attempts: int | None = 10,
        sleep: Callable[[float], None] = _time.sleep,
        timeout_s: float = 5.0,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> None:
        parsed = httpx.URL(url)
        if parsed.scheme not in ("http", "https"):
            raise ValueError(f"a snapshot URL is http:// or https://, not {redact_url(url)!r}")
        self.shown = redact_url(url)
        self._url = parsed.copy_with(userinfo=b"")
        self._credentials = (parsed.username, parsed.password) if parsed.username else None
        self._auth: httpx.Auth | None = None
        self._period = 1.0 / sample_fps
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._max_attempts = max_attempts
        self._sleep = sleep
        self._timeout = timeout_s
        self._max_bytes = max_bytes
        self._max_pixels = max_pixels
        self._health = _Health(self.shown)
        self._stopped = False

    def __iter__(self) -> Iterator[Frame]:
        index = 0
        failures = 0
        delay = self._backoff_initial
        due = _time.monotonic()
        with httpx.Client(timeout=self._timeout, follow_redirects=True) as client:
            while not self._stopped:
                wait = due - _time.monotonic()
                if wait > 0:
                    self._sleep(wait)
                    if self._stopped:
                        return
                due = max(due + self._period, _time.monotonic())
                try:
                    image = decode_jpeg(self._fetch(client), max_pixels=self._max_pixels)
                except (FrameError, httpx.HTTPError) as exc:
                    failures += 1
                    reason = self._why(exc)
                    if isinstance(exc, FrameError):
                        self._health.errors += 1
                    self._health.reason = reason
                    if self._max_attempts is not None and failures >= self._max_attempts:
                        self._health.state = HealthState.DEAD
                        self._health.reason = f"gave up after {failures} failed fetches of {self.shown}: {reason}"
                        log.warning("snapshot source dead source=%s reason=%s", self.shown, reason)
                        return
                    self._health.state = HealthState.RECONNECTING
                    self._health.reconnects += 1
                    log.warning("snapshot fetch failed source=%s delay_s=%.1f reason=%s", self.shown, delay, reason)
                    self._sleep(delay)
                    delay = min(delay * 2, self._backoff_max)
                    due = _time.monotonic()
                    continue
                failures, delay = 0, self._backoff_initial
                now = _time.time()
                self._health.state, self._health.reason = HealthState.OK, None
                self._health.last_frame_at = now
                self._health.frames += 1
                yield Frame(image=image, time=now, index=index, source=self.shown)
                index += 1

    def _fetch(self, client: httpx.Client) -> bytes:
        response, body = self._get(client, self._auth)
        if response.status_code == 401 and self._credentials and self._auth is None:
            # answer the scheme the camera asks for, and keep it for the next fetches
            scheme = response.headers.get("www-authenticate", "").split(" ", 1)[0].lower()
            user, password = self._credentials
            self._auth = httpx.DigestAuth(user, password) if scheme == "digest" else httpx.BasicAuth(user, password)
            response, body = self._get(client, self._auth)
        if response.status_code in (401, 403):
            hint = "check the user and password in the URL" if self._credentials else "the URL needs user:password@"
            raise httpx.HTTPStatusError(
                f"HTTP {response.status_code}: the camera refused the request ({hint})",
                request=response.request,
                response=response,
            )
        if response.status_code != 200:
            raise httpx.HTTPStatusError(
                f"HTTP {response.status_code} {response.reason_phrase}", request=response.request, response=response
            )
        return body

    def _get(self, client: httpx.Client, auth: httpx.Auth | None) -> tuple[httpx.Response, bytes]:
        """The response (closed) and its body, read under the size cap."""
        with client.stream("GET", self._url, auth=auth or httpx.USE_CLIENT_DEFAULT) as response:
            declared = response.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > self._max_bytes:
                raise FrameError(FrameErrorReason.TOO_LARGE, f"{declared} bytes declared (limit {self._max_bytes})")
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > self._max_bytes:
                    raise FrameError(FrameErrorReason.TOO_LARGE, f"more than {self._max_bytes} bytes")
        return response, bytes(body)

    @staticmethod
    def _why(exc: Exception) -> str:
        if isinstance(exc, httpx.HTTPStatusError):
            return str(exc)
        if isinstance(exc, httpx.TimeoutException):
            return "no answer in time"
        if isinstance(exc, httpx.HTTPError):
            return f"cannot reach the camera: {exc}"
        return str(exc)


class FrameInbox:
    """JPEG frames pushed by a transport (a camera publishing over MQTT), decoded at the sampling rate.

    A message is a JPEG, or base64 text or JSON carrying one (see :func:`jpeg_payload`). A frame
    is timed by its receipt, or by the capture time its JSON envelope carries (see
    :func:`frame_message`; naive times in ``tz``) when that is at most ``max_skew_s`` before the
    receipt (and not over 2 s after it): a frame that waited in a gateway or the broker keeps the
    time it was taken. A camera clock further off is logged (once) and the receipt used. Times
    never go backwards.

    :meth:`push` is called from the transport's thread and only keeps the newest frame due by
    the sampling rate (a slow counter skips frames, it never queues them); iteration decodes
    each in the caller's thread. A frame that cannot be used (:class:`FrameError`: not a JPEG,
    corrupt, a pixel bomb) is counted in the health with its reason, handed to ``on_error``
    and skipped. No frame for ``silent_after_s`` makes the health ``silent``.
    """

    def __init__(
        self,
        name: str,
        *,
        sample_fps: float | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        max_bytes: int = DEFAULT_MAX_BYTES,
        silent_after_s: float = 30.0,
        on_error: Callable[[FrameError], None] | None = None,
        clock: Callable[[], float] = _time.time,
        tz: tzinfo = UTC,
        max_skew_s: float = 300.0,
    ) -> None:
        self.name = name
        self._tz, self._max_skew = tz, max_skew_s
        self._last_time = -math.inf
        self._clock_warned = False
        self._sampler = _Sampler(sample_fps)
        self._max_pixels = max_pixels
        self._max_bytes = max_bytes
        self._silent_after = silent_after_s
        self._on_error = on_error
        self._clock = clock
        self._health = _Health(name)
        self._health.state = HealthState.WAITING
        self._health.reason = "no frame received yet"
        self._pending: tuple[bytes, float] | None = None
        self._last_push: float | None = None
        self._cond = threading.Condition()
        self._stopped = False
        self._index = 0

    @property
    def health(self) -> CameraHealth:
        """The source's health now (silent when frames stopped coming)."""
        h = self._health
        last = self._last_push
        if last is not None and self._clock() - last > self._silent_after and h.state is HealthState.OK:
            h.state = HealthState.SILENT
            h.reason = f"no frame for more than {self._silent_after:g} s"
        return h.snapshot()

    def push(self, data: bytes, at: float | None = None) -> bool:
        """Offer one JPEG received at ``at`` (epoch s); False when the sampling rate skips it."""
        at = self._clock() if at is None else at
        with self._cond:
            self._last_push = at
            if not self._sampler.take(at):
                return False
            self._pending = (data, at)  # a frame not yet taken is replaced by the newer one
            self._cond.notify()
        return True

    def _time_of(self, captured: float | None, received: float) -> float:
        if captured is None:
            return received
        if -self._max_skew <= captured - received <= _AHEAD_S:
            return captured
        if not self._clock_warned:
            self._clock_warned = True
            log.warning(
                "frame times off source=%s skew_s=%.0f: the camera's clock is wrong, receive times used",
                self.name,
                captured - received,
            )
        return received

    def _in_order(self, at: float) -> float:
        """``at``, or the previous frame's time if that is later (a frame from before one already counted)."""
        self._last_time = max(at, self._last_time)
        return self._last_time

    def stop(self) -> None:
        """End iteration."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    def next(self, timeout: float | None = None) -> Frame | None:
        """The next usable frame, or None when stopped or after ``timeout`` seconds without one."""
        deadline = None if timeout is None else _time.monotonic() + timeout
        while True:
            with self._cond:
                while self._pending is None and not self._stopped:
                    left = None if deadline is None else deadline - _time.monotonic()
                    if left is not None and left <= 0:
                        return None
                    self._cond.wait(left if left is not None else 1.0)
                if self._stopped:
                    return None
                data, at = self._pending  # type: ignore[misc]
                self._pending = None
            try:
                jpeg, captured = frame_message(data, max_bytes=self._max_bytes, tz=self._tz)
                image = decode_jpeg(jpeg, max_pixels=self._max_pixels, max_bytes=self._max_bytes)
            except FrameError as exc:
                self._health.errors += 1
                self._health.reason = f"frame refused: {exc}"
                log.warning("frame refused source=%s reason=%s detail=%s", self.name, exc.reason.value, exc.detail)
                if self._on_error is not None:
                    self._on_error(exc)
                continue
            at = self._in_order(self._time_of(captured, at))
            h = self._health
            h.state, h.reason = HealthState.OK, None
            h.last_frame_at = at
            h.frames += 1
            frame = Frame(image=image, time=at, index=self._index, source=self.name)
            self._index += 1
            return frame

    def __iter__(self) -> Iterator[Frame]:
        while True:
            frame = self.next()
            if frame is None:
                return
            yield frame


class FileSource:
    """A video file read once to its end; frame times are the file's own (seconds from its start)."""

    def __init__(self, path: Path, *, sample_fps: float | None = None, start_time: float = 0.0) -> None:
        self.path = Path(path)
        self._sampler = _Sampler(sample_fps)
        self._start = start_time
        self._health = _Health(str(path))

    @property
    def health(self) -> CameraHealth:
        """The source's health now."""
        return self._health.snapshot()

    def __iter__(self) -> Iterator[Frame]:
        if not self.path.is_file():
            self._health.state = HealthState.DEAD
            self._health.reason = f"no such file: {self.path}"
            raise FrameError(FrameErrorReason.OPEN_FAILED, self._health.reason)
        cap = cv2.VideoCapture(str(self.path))
        try:
            if not cap.isOpened():
                self._health.state = HealthState.DEAD
                self._health.reason = f"cannot open {self.path} as video"
                raise FrameError(FrameErrorReason.OPEN_FAILED, self._health.reason)
            fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
            position = 0
            index = 0
            while True:
                if not cap.grab():  # decoded; converted to BGR only when sampled
                    return
                self._health.decoded += 1
                t = self._start + position / fps
                position += 1
                if not self._sampler.take(t):
                    continue
                ok, image = cap.retrieve()
                if not ok or image is None:
                    return
                self._health.last_frame_at = t
                self._health.frames += 1
                yield Frame(image=image, time=t, index=index, source=str(self.path))
                index += 1
        finally:
            cap.release()


class DirectorySource:
    """JPEG and PNG files of a folder in name order, or the given names; frame i has time i / fps.

    Each file goes through :func:`decode_image`. With ``skip_bad`` a bad file is logged, counted
    in the health and skipped; without it the :class:`FrameError` propagates (naming the file).
    """

    def __init__(
        self,
        folder: Path,
        *,
        names: Sequence[str] | None = None,
        fps: float = 1.0,
        skip_bad: bool = False,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> None:
        self.folder = Path(folder)
        self._names = names
        self._fps = fps
        self._skip_bad = skip_bad
        self._max_pixels = max_pixels
        self._health = _Health(str(folder))
        self.bad: list[tuple[str, FrameError]] = []

    @property
    def health(self) -> CameraHealth:
        """The source's health now."""
        return self._health.snapshot()

    def read(self, name: str) -> np.ndarray:
        """Read and decode one file of the folder."""
        path = self.folder / name
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise FrameError(FrameErrorReason.OPEN_FAILED, f"{path}: {exc.strerror or exc}") from exc
        try:
            return decode_image(data, max_pixels=self._max_pixels)
        except FrameError as exc:
            raise FrameError(exc.reason, f"{path}: {exc.detail}") from exc

    def __iter__(self) -> Iterator[Frame]:
        if not self.folder.is_dir():
            self._health.state = HealthState.DEAD
            self._health.reason = f"no such folder: {self.folder}"
            raise FrameError(FrameErrorReason.OPEN_FAILED, self._health.reason)
        names = (
            list(self._names)
            if self._names is not None
            else sorted(p.name for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        )
        for index, name in enumerate(names):
            try:
                image = self.read(name)
            except FrameError as exc:
                self._health.reason = str(exc)
                if not self._skip_bad:
                    raise
                log.warning("bad frame skipped source=%s frame=%s reason=%s", self.folder, name, exc)
                self.bad.append((name, exc))
                continue
            t = index / self._fps
            self._health.last_frame_at = t
            self._health.frames += 1
            yield Frame(image=image, time=t, index=index, source=str(self.folder), name=name)
