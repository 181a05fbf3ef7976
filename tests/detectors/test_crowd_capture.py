"""Frame sources and JPEG decoding: good frames, corrupt data, pixel bombs, dead and lost streams."""

from __future__ import annotations

import base64
import json
import time

import cv2
import numpy as np
import pytest

from detectors.crowd import synthetic as syn
from detectors.crowd.capture import (
    DirectorySource,
    FileSource,
    FrameError,
    FrameErrorReason,
    FrameInbox,
    HealthState,
    SnapshotSource,
    StreamSource,
    _Lag,
    decode_image,
    decode_jpeg,
    jpeg_dimensions,
    jpeg_payload,
    png_dimensions,
    redact_url,
)
from detectors.crowd.snapshot import encode_jpeg
from tests.camera_http import MjpegCamera, SnapshotCamera


def _jpeg(width: int = 160, height: int = 120) -> bytes:
    image = cv2.resize(syn.background(), (width, height))
    ok, buf = cv2.imencode(".jpg", image)
    assert ok
    return buf.tobytes()


def _pixel_bomb(width: int, height: int) -> bytes:
    """A small, valid JPEG whose frame header claims width x height."""
    data = bytearray(_jpeg(16, 16))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 7] = height.to_bytes(2, "big")
    data[sof + 7 : sof + 9] = width.to_bytes(2, "big")
    return bytes(data)


def _video(path, frames: int = 12, fps: float = 10.0) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (syn.WIDTH, syn.HEIGHT))
    assert writer.isOpened()
    for f in syn.video(frames, seed=1):
        writer.write(f.image)
    writer.release()


def test_a_good_jpeg_decodes_to_bgr_pixels():
    """A JPEG byte string (as published over MQTT) decodes to an H x W x 3 uint8 image."""
    image = decode_jpeg(_jpeg(160, 120))
    assert image.shape == (120, 160, 3) and image.dtype == np.uint8


@pytest.mark.parametrize(
    "params",
    [[cv2.IMWRITE_JPEG_PROGRESSIVE, 1], [cv2.IMWRITE_JPEG_RST_INTERVAL, 4], [cv2.IMWRITE_JPEG_OPTIMIZE, 1]],
)
def test_progressive_restart_and_optimised_jpegs_decode(params):
    """The integrity check accepts the JPEG variants cameras send (progressive, restart markers, optimised)."""
    ok, buf = cv2.imencode(".jpg", syn.background(), params)
    assert ok
    assert decode_jpeg(buf.tobytes()).shape == (syn.HEIGHT, syn.WIDTH, 3)


def test_dimensions_are_read_from_the_header():
    """The frame header gives width and height without decoding."""
    assert jpeg_dimensions(_jpeg(200, 100)) == (200, 100)


def test_pixel_bomb_is_refused_from_its_header_before_decoding():
    """A tiny file that declares 65000 x 65000 pixels is refused as too large, without a decode attempt."""
    bomb = _pixel_bomb(65000, 65000)
    assert len(bomb) < 2000
    with pytest.raises(FrameError) as err:
        decode_jpeg(bomb)
    assert err.value.reason is FrameErrorReason.TOO_LARGE
    assert "65000x65000" in err.value.detail


def test_pixel_cap_is_configurable():
    """A frame over a lowered pixel cap is refused; the same frame passes the default cap."""
    data = _jpeg(160, 120)
    with pytest.raises(FrameError, match="over the cap"):
        decode_jpeg(data, max_pixels=100 * 100)
    assert decode_jpeg(data).shape[:2] == (120, 160)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", FrameErrorReason.NOT_JPEG),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, FrameErrorReason.NOT_JPEG),
        (b'{"count": 3}', FrameErrorReason.NOT_JPEG),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)) * 4, FrameErrorReason.CORRUPT),
    ],
)
def test_data_that_is_not_a_jpeg_gets_a_typed_error(payload, reason):
    """Empty data, another format, JSON or a JPEG start followed by junk give FrameError with the reason."""
    with pytest.raises(FrameError) as err:
        decode_jpeg(payload)
    assert err.value.reason is reason


def _wrapped(jpeg: bytes) -> dict[str, bytes]:
    text = base64.b64encode(jpeg)
    return {
        "raw": jpeg,
        "base64": text,
        "base64 in 76-character lines": base64.encodebytes(jpeg),
        "data URI": b"data:image/jpeg;base64," + text,
        "JSON image": json.dumps({"camera": "gate-1", "image": text.decode()}).encode(),
        "JSON Snapshot data URI": json.dumps({"Snapshot": "data:image/jpeg;base64," + text.decode()}).encode(),
    }


@pytest.mark.parametrize("kind", list(_wrapped(b"\xff\xd8\xff")))
def test_a_frame_message_may_be_raw_base64_a_data_uri_or_json(kind):
    """Raw JPEG bytes, base64 text (with or without line breaks, or as a data URI) and JSON carrying it decode alike."""
    jpeg = _jpeg(64, 48)
    payload = _wrapped(jpeg)[kind]
    assert jpeg_payload(payload) == jpeg
    assert decode_jpeg(jpeg_payload(payload)).shape == (48, 64, 3)


@pytest.mark.parametrize(
    ("payload", "reason", "words"),
    [
        (b'{"count": 3}', FrameErrorReason.NOT_JPEG, "without a base64 JPEG"),
        (b'{"image": "not base64 at all!"}', FrameErrorReason.NOT_JPEG, "JSON field 'image' is not base64"),
        (b'{"image": 42, "frame": ""}', FrameErrorReason.NOT_JPEG, "JSON field 'frame' is empty"),
        (b'{"image": "', FrameErrorReason.NOT_JPEG, "does not parse"),
        (base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64), FrameErrorReason.NOT_JPEG, "not a JPEG"),
        (b"data:image/jpeg,%FF%D8", FrameErrorReason.NOT_JPEG, "not base64"),
        (b"\x00\x01binary", FrameErrorReason.NOT_JPEG, "neither a JPEG"),
        (b"A" * 100_000, FrameErrorReason.TOO_LARGE, "over the 1000-byte cap"),
    ],
)
def test_a_frame_message_that_carries_no_jpeg_says_what_it_was(payload, reason, words):
    """JSON without an image, text that is not base64, base64 of another format, junk: a typed error saying so."""
    with pytest.raises(FrameError) as err:
        jpeg_payload(payload, max_bytes=1000 if reason is FrameErrorReason.TOO_LARGE else 10**6)
    assert err.value.reason is reason and words in err.value.detail


def test_a_base64_frame_of_a_corrupt_jpeg_is_still_refused_as_corrupt():
    """Unwrapping does not skip the JPEG checks: a truncated JPEG in base64 is corrupt."""
    jpeg = _jpeg()
    with pytest.raises(FrameError) as err:
        decode_jpeg(jpeg_payload(base64.b64encode(jpeg[: len(jpeg) // 2])))
    assert err.value.reason is FrameErrorReason.CORRUPT


def test_truncated_jpeg_is_corrupt_not_a_half_grey_frame():
    """A JPEG cut short (which libjpeg would fill with grey) is refused as corrupt."""
    data = _jpeg()
    with pytest.raises(FrameError) as err:
        decode_jpeg(data[: len(data) // 2])
    assert err.value.reason is FrameErrorReason.CORRUPT and "truncated" in err.value.detail


def test_scrambled_jpeg_data_is_corrupt():
    """A JPEG whose compressed data was overwritten does not decode and says so."""
    data = bytearray(_jpeg())
    start = data.index(b"\xff\xda") + 20
    for i in range(start, len(data) - 2, 5):
        data[i] = 0xFF if i % 2 else 0x00
    with pytest.raises(FrameError) as err:
        decode_jpeg(bytes(data))
    assert err.value.reason is FrameErrorReason.CORRUPT


def test_oversized_payload_is_refused_before_parsing():
    """More bytes than the cap is refused as too large."""
    with pytest.raises(FrameError) as err:
        decode_jpeg(b"\xff\xd8\xff" + b"\x00" * 2000, max_bytes=1000)
    assert err.value.reason is FrameErrorReason.TOO_LARGE


def test_dead_stream_gives_up_after_backoff_and_reports_why():
    """A stream that cannot be opened is retried with doubling delays, then marked dead with the reason."""
    delays: list[float] = []
    source = StreamSource(
        "rtsp://127.0.0.1:9/none",
        max_attempts=4,
        backoff_initial=0.5,
        sleep=delays.append,
        open_capture=lambda url: cv2.VideoCapture("/nonexistent/camera.avi"),  # fails fast, as a dead camera does
    )
    assert list(source) == []
    health = source.health
    assert health.state is HealthState.DEAD
    assert "gave up after 4 failed attempts" in (health.reason or "")
    assert delays == [0.5, 1.0, 2.0]
    assert health.reconnects == 3 and health.last_frame_at is None


def test_stream_that_closes_is_reconnected_then_declared_dead(tmp_path):
    """Frames are read until the stream ends; reconnecting fails (it is gone), so the source ends dead."""
    path = tmp_path / "camera.avi"
    _video(path, frames=6)
    delays: list[float] = []
    source = StreamSource(str(path), max_attempts=2, sleep=delays.append)
    frames = []
    for frame in source:
        frames.append(frame)
        if len(frames) == 1:
            path.unlink()  # the camera goes away while we are reading
    assert len(frames) == 6
    assert source.health.state is HealthState.DEAD
    assert source.health.frames == 6 and source.health.last_frame_at is not None
    assert "gave up after 2 failed attempts" in (source.health.reason or "")
    assert delays == [1.0, 2.0]  # lost: wait, retry (fails), wait longer, retry (fails): dead


def test_stream_sampling_keeps_the_configured_rate_and_converts_only_the_sampled_frames():
    """At 2 frames per second sampling, a 10 fps stream yields every fifth frame; every frame is grabbed (decoded)
    but only those five are retrieved (converted to BGR)."""
    clock = iter(i * 0.1 for i in range(1000))
    path_frames = syn.video(20, seed=2)
    retrieved: list[int] = []

    class _Capture:  # a fake of OpenCV's grab/retrieve/get, to count them: timed frames without a camera
        def __init__(self) -> None:
            self.i = 0

        def isOpened(self) -> bool:  # noqa: N802 - OpenCV's name
            return self.i == 0 or self.i < len(path_frames)

        def grab(self) -> bool:
            if self.i >= len(path_frames):
                return False
            self.i += 1
            return True

        def retrieve(self):
            retrieved.append(self.i - 1)
            return True, path_frames[self.i - 1].image

        def get(self, prop: int) -> float:  # the stream's frame rate and the time of the frame just grabbed
            return 10.0 if prop == cv2.CAP_PROP_FPS else self.i * 100.0

        def release(self) -> None:
            self.i = len(path_frames) + 1

    opened: list[int] = []
    source = StreamSource(
        "unused",
        sample_fps=2.0,
        clock=lambda: next(clock),
        max_attempts=1,
        sleep=lambda s: None,
        open_capture=lambda url: opened.append(1) or (_Capture() if len(opened) == 1 else cv2.VideoCapture("/no/such")),
    )
    frames = list(source)
    assert [f.time for f in frames] == pytest.approx([0.0, 0.5, 1.0, 1.5])
    assert retrieved == [0, 5, 10, 15]
    assert all(f.image is path_frames[i].image for f, i in zip(frames, retrieved, strict=True))


def test_camera_that_opens_but_sends_nothing_is_declared_dead(tmp_path):
    """A source that connects but never delivers a frame counts as failing and ends dead, not in a busy loop."""
    empty = tmp_path / "empty.avi"
    _video(empty, frames=0)
    delays: list[float] = []
    source = StreamSource(str(empty), max_attempts=3, sleep=delays.append)
    assert list(source) == []
    assert source.health.state is HealthState.DEAD and delays == [1.0, 2.0]


def test_file_source_reads_a_video_at_the_sampling_rate(tmp_path):
    """A 10 fps file sampled at 5 fps yields every other frame with the file's own timestamps."""
    path = tmp_path / "clip.avi"
    _video(path, frames=10, fps=10.0)
    frames = list(FileSource(path, sample_fps=5.0))
    assert len(frames) == 5
    assert [round(f.time, 2) for f in frames] == [0.0, 0.2, 0.4, 0.6, 0.8]
    assert frames[0].image.shape == (syn.HEIGHT, syn.WIDTH, 3)


def test_a_file_played_as_live_keeps_its_frame_rate_when_counting_is_slow_at_times(tmp_path):
    """A file read as a live stream (``pace``) is decoded at its own frame rate on average: a frame
    handed over late (its counting took longer than a frame's time) is made up by the next ones, as a
    live camera's frames wait in the stream for the reader."""
    path = tmp_path / "clip.avi"
    _video(path, frames=200, fps=50.0)
    source = StreamSource(str(path), pace=True, max_attempts=1)
    started = time.monotonic()
    for frame in source:
        if frame.index % 10 == 9:
            time.sleep(0.05)  # every tenth frame counts for 2.5 frames' time
        if frame.index == 99:
            break
    elapsed = time.monotonic() - started
    assert source.health.decoded == 100
    assert 1.9 < elapsed < 2.3  # 2 s of frames; without making up, 10 x 30 ms more would be lost


def test_how_far_a_reader_is_behind_its_stream_is_measured_from_when_it_last_caught_up():
    """Behind is the wall time passed beyond the stream's time since a grab last had to wait for its frame;
    a first burst of buffered frames and a stream time that goes back (a looped file) are not lag."""
    lag = _Lag()
    assert lag.behind(100.0, 5.0, waited=False) == 0.0
    assert lag.behind(100.1, 6.0, waited=False) == 0.0  # the camera's buffered first second, read at once
    assert lag.behind(101.1, 6.5, waited=False) == pytest.approx(0.5)  # 1 s of wall for 0.5 s of stream
    assert lag.behind(103.1, 7.5, waited=False) == pytest.approx(1.5)
    assert lag.behind(103.3, 7.6, waited=True) == 0.0  # it waited for this frame: nothing was queued
    assert lag.behind(104.3, 0.1, waited=False) == 0.0  # the file started again
    assert lag.behind(105.3, 0.0, waited=False) == 0.0  # no stream time at all: no measure


def test_a_reader_slower_than_its_stream_is_reported_behind_and_an_mjpeg_stream_never_is(tmp_path):
    """A file read as live by a consumer slower than its frame rate falls behind by the stream time it has
    not read yet; an MJPEG camera (whose frame times are only numbers at a nominal 25 fps) sending 10 frames
    a second to a reader that keeps up is not behind."""
    path = tmp_path / "clip.avi"
    _video(path, frames=120, fps=50.0)
    source = StreamSource(str(path), pace=True, max_attempts=1)
    for frame in source:
        time.sleep(0.05)  # 20 frames a second read of a 50 fps stream
        if frame.index == 59:
            break
    assert source.health.behind_s > 1.0  # 3 s of reading for 1.2 s of stream
    frames = [encode_jpeg(syn.background(), quality=80)] * 40
    with MjpegCamera(frames, fps=10) as camera:
        mjpeg = StreamSource(camera.url, max_attempts=1)
        for frame in mjpeg:
            if frame.index == 29:
                break
        assert mjpeg.health.decoded == 30 and mjpeg.health.behind_s < 0.5


def test_missing_file_is_a_clear_error(tmp_path):
    """A video file that does not exist raises FrameError(open_failed) and the health says dead."""
    source = FileSource(tmp_path / "missing.mp4")
    with pytest.raises(FrameError) as err:
        list(source)
    assert err.value.reason is FrameErrorReason.OPEN_FAILED
    assert source.health.state is HealthState.DEAD and "no such file" in (source.health.reason or "")


def test_directory_source_names_the_bad_file_or_skips_it(tmp_path):
    """A corrupt JPEG in a folder raises with its file name, or is skipped and recorded with skip_bad."""
    (tmp_path / "a.jpg").write_bytes(_jpeg())
    (tmp_path / "b.jpg").write_bytes(b"\xff\xd8\xff\xe0 broken")
    (tmp_path / "c.jpg").write_bytes(_pixel_bomb(50000, 50000))
    with pytest.raises(FrameError, match="b.jpg"):
        list(DirectorySource(tmp_path))
    source = DirectorySource(tmp_path, skip_bad=True)
    frames = list(source)
    assert [f.name for f in frames] == ["a.jpg"]
    assert [(name, e.reason) for name, e in source.bad] == [
        ("b.jpg", FrameErrorReason.CORRUPT),
        ("c.jpg", FrameErrorReason.TOO_LARGE),
    ]


def _png(image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", image)
    assert ok
    return buf.tobytes()


def test_png_frames_decode_to_bgr_grey_and_16_bit_included():
    """decode_image takes colour, grey and 16-bit PNGs (as datasets ship frames) and JPEGs, all to H x W x 3 uint8."""
    colour = cv2.resize(syn.background(), (160, 120))
    grey = cv2.cvtColor(colour, cv2.COLOR_BGR2GRAY)
    deep = grey.astype(np.uint16) * 257
    for data in (_png(colour), _png(grey), _png(deep), _jpeg(160, 120)):
        image = decode_image(data)
        assert image.shape == (120, 160, 3) and image.dtype == np.uint8
    assert png_dimensions(_png(grey)) == (160, 120)
    assert np.array_equal(decode_image(_png(colour)), colour)  # lossless
    assert np.array_equal(decode_image(_png(deep))[:, :, 0], grey)  # 16-bit scaled to 8


def test_bad_pngs_are_refused_before_decoding():
    """A PNG declaring 65000 x 65000 pixels, a cut-short PNG and a GIF are refused with the reason."""
    data = bytearray(_png(np.zeros((16, 16), np.uint8)))
    data[16:24] = (65000).to_bytes(4, "big") * 2
    with pytest.raises(FrameError) as err:
        decode_image(bytes(data))
    assert err.value.reason is FrameErrorReason.TOO_LARGE and "65000x65000" in err.value.detail
    whole = _png(cv2.resize(syn.background(), (160, 120)))
    with pytest.raises(FrameError) as err:
        decode_image(whole[: len(whole) // 2])
    assert err.value.reason is FrameErrorReason.CORRUPT and "truncated" in err.value.detail
    with pytest.raises(FrameError) as err:
        decode_image(b"GIF89a" + b"\x00" * 64)
    assert err.value.reason is FrameErrorReason.NOT_JPEG and "neither a JPEG nor a PNG" in err.value.detail


def test_directory_source_reads_png_and_jpeg_files_in_name_order(tmp_path):
    """A folder mixing .png and .jpg frames is read in name order; other files are left out."""
    (tmp_path / "b.png").write_bytes(_png(cv2.resize(syn.background(), (64, 48))))
    (tmp_path / "a.jpg").write_bytes(_jpeg(64, 48))
    (tmp_path / "c.PNG").write_bytes(_png(np.zeros((48, 64), np.uint8)))
    (tmp_path / "notes.txt").write_text("not a frame")
    frames = list(DirectorySource(tmp_path))
    assert [f.name for f in frames] == ["a.jpg", "b.png", "c.PNG"]
    assert all(f.image.shape == (48, 64, 3) for f in frames)


def test_pushed_frames_are_sampled_and_the_newest_one_wins():
    """Frames pushed faster than the sampling rate are skipped; one not yet taken is replaced by a newer one."""
    inbox = FrameInbox("mqtt:cam", sample_fps=2, clock=lambda: 101.0)
    assert inbox.health.state is HealthState.WAITING
    assert inbox.push(_jpeg(32, 24), at=100.0)
    assert not inbox.push(_jpeg(32, 24), at=100.2)  # within half a second of the last: skipped
    assert inbox.push(_jpeg(48, 36), at=100.5)  # due, and replaces the one not yet decoded
    frame = inbox.next(timeout=1)
    assert frame is not None and frame.image.shape == (36, 48, 3) and frame.time == 100.5
    assert inbox.next(timeout=0.05) is None
    assert inbox.health.state is HealthState.OK and inbox.health.frames == 1


def test_a_bad_pushed_frame_is_counted_with_its_reason_and_the_next_one_is_used():
    """A corrupt frame or pixel bomb is refused (health and callback say why); iteration carries on."""
    refused: list[FrameError] = []
    inbox = FrameInbox("mqtt:cam", on_error=refused.append, max_pixels=1_000_000, clock=lambda: 7.0)
    inbox.push(_pixel_bomb(4000, 4000), at=1.0)
    inbox.push(b"not a jpeg", at=2.0)  # replaces the bomb before it is taken: only the newest is judged
    inbox.push(json.dumps({"image": base64.b64encode(_jpeg(32, 24)).decode()}).encode(), at=3.0)
    frame = inbox.next(timeout=1)
    assert frame is not None and frame.time == 3.0 and frame.image.shape == (24, 32, 3)
    inbox.push(_pixel_bomb(4000, 4000), at=4.0)
    inbox.push(_jpeg(32, 24), at=5.0)
    assert inbox.next(timeout=1) is not None
    assert inbox.push(_pixel_bomb(4000, 4000), at=6.0)
    assert inbox.next(timeout=0.2) is None
    assert [e.reason for e in refused] == [FrameErrorReason.TOO_LARGE]
    health = inbox.health
    assert health.errors == 1 and "4000x4000" in (health.reason or "")


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("timestamp", 1764745200.25, 1764745200.25),  # epoch seconds
        ("ts", 1764745200250, 1764745200.25),  # epoch milliseconds
        ("Time", "1764745200.25", 1764745200.25),  # numeric text, the key in any case
        ("captured_at", "2025-12-03T07:00:00Z", 1764745200.0),
        ("datetime", "2025-12-03 15:00:00", 1764745200.0),  # no offset: the camera's zone (+08:00)
        ("timestamp", "yesterday", None),  # unreadable: no time, the frame still counts
        ("timestamp", True, None),
    ],
)
def test_a_json_frame_envelope_gives_its_capture_time(field, value, expected):
    """frame_message reads the capture time of a JSON envelope (epoch s or ms, ISO 8601, local without offset)."""
    from datetime import timedelta, timezone

    from detectors.crowd.capture import frame_message

    jpeg = _jpeg(32, 24)
    message = json.dumps({"image": base64.b64encode(jpeg).decode(), field: value}).encode()
    got, captured = frame_message(message, tz=timezone(timedelta(hours=8)))
    assert got == jpeg and captured == (pytest.approx(expected) if expected is not None else None)
    assert frame_message(jpeg) == (jpeg, None)


def test_a_pushed_frame_keeps_the_time_it_was_taken_unless_the_camera_clock_is_off(caplog):
    """A frame that waited in a gateway is timed by its envelope's capture time; a camera clock beyond the skew
    limit is logged and the receipt used; a frame taken before one already counted does not go back in time."""

    def message(taken: float) -> bytes:
        return json.dumps({"image": base64.b64encode(_jpeg(32, 24)).decode(), "timestamp": taken}).encode()

    inbox = FrameInbox("mqtt:cam", max_skew_s=60, clock=lambda: 1000.0)
    inbox.push(message(1764745100.0), at=1764745103.0)  # taken 3 s before it arrived
    assert inbox.next(timeout=1).time == 1764745100.0
    inbox.push(message(1764741500.0), at=1764745110.0)  # an hour behind: the clock is wrong
    assert inbox.next(timeout=1).time == 1764745110.0
    assert "the camera's clock is wrong" in caplog.text
    inbox.push(message(1764745105.0), at=1764745111.0)  # taken before the frame above was counted
    assert inbox.next(timeout=1).time == 1764745110.0
    inbox.push(message(1764745125.0), at=1764745115.0)  # "taken" 10 s after it arrived: a fast clock
    assert inbox.next(timeout=1).time == 1764745115.0
    inbox.push(_jpeg(32, 24), at=1764745120.0)  # a raw JPEG carries no time: its receipt
    assert inbox.next(timeout=1).time == 1764745120.0


def test_a_pushed_source_that_stops_sending_is_silent():
    """No frame for longer than the silence limit turns the health to silent, with the reason."""
    now = [10.0]
    inbox = FrameInbox("mqtt:cam", silent_after_s=5, clock=lambda: now[0])
    inbox.push(_jpeg(32, 24))
    assert inbox.next(timeout=1) is not None
    now[0] = 20.0
    assert inbox.health.state is HealthState.SILENT and "no frame for more than 5 s" in (inbox.health.reason or "")
    inbox.stop()
    assert list(inbox) == []


def test_passwords_in_stream_urls_are_not_shown():
    """A stream URL's password never reaches logs or the health report."""
    assert redact_url("rtsp://admin:s3cret@10.0.0.5:554/Streaming/101") == "rtsp://admin:***@10.0.0.5:554/Streaming/101"
    assert redact_url("http://cam.local/mjpg") == "http://cam.local/mjpg"
    source = StreamSource(
        "rtsp://admin:s3cret@127.0.0.1:9/x",
        max_attempts=1,
        sleep=lambda s: None,
        open_capture=lambda url: cv2.VideoCapture("/nonexistent/camera.avi"),
    )
    assert list(source) == []
    assert "s3cret" not in source.health.source and "s3cret" not in (source.health.reason or "")


def _take(source: SnapshotSource, n: int) -> list:
    frames = []
    for frame in source:
        frames.append(frame)
        if len(frames) == n:
            source.stop()
    return frames


@pytest.mark.parametrize("path", ["/picture", "/basic", "/open"])
def test_a_snapshot_url_is_fetched_with_the_authentication_the_camera_asks_for(path):
    """Digest (Hikvision, Dahua), basic (Axis) or none: the still image is fetched at the rate and decoded;
    the password is never shown."""
    with SnapshotCamera(lambda: _jpeg(320, 240)) as camera:
        source = SnapshotSource(camera.url(path), sample_fps=20, max_attempts=2, sleep=lambda s: None)
        frames = _take(source, 3)
        assert [f.image.shape for f in frames] == [(240, 320, 3)] * 3 and camera.requests == 3
        assert source.health.state is HealthState.OK and source.health.frames == 3
        assert "se@cret" not in source.shown and "se%40cret" not in source.shown and "***" in source.shown
        expected = {"/picture": "Digest", "/basic": "Basic", "/open": "none"}[path]
        assert camera.schemes[-1] == expected, camera.schemes


def test_a_snapshot_url_keeps_the_sampling_rate():
    """At 10 frames a second, about 10 fetches a second: the camera is not polled as fast as it answers."""
    import time

    with SnapshotCamera(lambda: _jpeg(64, 48)) as camera:
        source = SnapshotSource(camera.url("/open"), sample_fps=10)
        started = time.monotonic()
        frames = _take(source, 6)
        took = time.monotonic() - started
    assert len(frames) == 6 and 0.45 <= took <= 2.0, took


@pytest.mark.parametrize(
    ("url", "words"),
    [
        (lambda c: c.url(password="wrong"), "HTTP 401: the camera refused the request (check the user and password"),
        (lambda c: c.url(user=""), "HTTP 401: the camera refused the request (the URL needs user:password@"),
        (lambda c: c.url("/status/503"), "HTTP 503"),
        (lambda c: c.url("/html"), "not_jpeg"),
        (lambda c: c.url("/missing"), "HTTP 404"),
        (lambda c: "http://127.0.0.1:9/picture", "cannot reach the camera"),
    ],
)
def test_a_snapshot_url_that_fails_backs_off_then_is_dead_saying_why(url, words):
    """Wrong or missing credentials, an HTTP error, a login page instead of a JPEG, an unreachable camera:
    each failed fetch backs off (1, 2, 4 s), and after the configured attempts the source is dead with the reason."""
    waits: list[float] = []
    with SnapshotCamera(lambda: _jpeg()) as camera:
        source = SnapshotSource(url(camera), sample_fps=50, max_attempts=4, sleep=waits.append, timeout_s=2)
        assert list(source) == []
    health = source.health
    assert health.state is HealthState.DEAD and "gave up after 4 failed fetches" in health.reason
    assert words in health.reason, health.reason
    assert [w for w in waits if w >= 1] == [1.0, 2.0, 4.0] and health.reconnects == 3


def test_a_snapshot_that_is_too_large_or_a_pixel_bomb_is_refused_unread():
    """A body over the byte cap, or a JPEG declaring more pixels than the cap, is refused with its reason."""
    for picture, cap, words in (
        (lambda: _jpeg(320, 240), {"max_bytes": 1000}, "too_large"),
        (lambda: _pixel_bomb(60000, 60000), {}, "too_large"),
    ):
        with SnapshotCamera(picture) as camera:
            source = SnapshotSource(camera.url("/open"), max_attempts=1, sleep=lambda s: None, **cap)
            assert list(source) == []
        assert words in source.health.reason and source.health.errors == 1, source.health.reason


def test_a_snapshot_source_must_be_http():
    """An rtsp:// URL given as a snapshot is refused at once, saying what a snapshot URL is."""
    with pytest.raises(ValueError, match="a snapshot URL is http:// or https://"):
        SnapshotSource("rtsp://admin:x@cam/1")


def test_a_still_image_url_read_as_a_stream_is_dead_saying_to_set_snapshot():
    """A camera's picture URL configured as a stream gives one frame per connection: after three, the source is
    dead with the reason and the fix (crowd.snapshot: true), instead of reconnecting for ever."""
    with SnapshotCamera(lambda: _jpeg(64, 48)) as camera:
        source = StreamSource(camera.url("/open"), max_attempts=3, sleep=lambda s: None)
        frames = list(source)
    assert len(frames) == 3 and source.health.state is HealthState.DEAD
    assert "one picture per connection" in source.health.reason and "crowd.snapshot: true" in source.health.reason


def test_an_mjpeg_http_stream_is_read_and_a_camera_that_stalls_is_lost_then_dead_saying_why():
    """A camera's MJPEG stream over real HTTP is decoded frame by frame; when it stops sending but keeps the
    connection open, the read gives up after the stall timeout (not OpenCV's 30 s) and says it stalled."""
    jpegs = [encode_jpeg(f.image, quality=90) for f in syn.video(6, seed=3)]
    with MjpegCamera(jpegs, stall_after=4) as camera:
        lost: list[str | None] = []  # why the stream was lost, as the health said while waiting to reconnect
        source = StreamSource(
            camera.url, stall_timeout_s=2.0, max_attempts=1, sleep=lambda s: lost.append(source.health.reason)
        )
        started = time.monotonic()
        frames = list(source)
        took = time.monotonic() - started
    assert len(frames) == 4 and frames[0].image.shape == (syn.HEIGHT, syn.WIDTH, 3)
    assert float(np.abs(frames[0].image.astype(int) - decode_jpeg(jpegs[0]).astype(int)).mean()) < 1.0
    assert 2.0 <= took < 15.0, f"gave up after {took:.1f} s"
    health = source.health
    assert health.state is HealthState.DEAD and health.frames == 4
    assert "gave up after 1 failed attempts" in (health.reason or "")
    assert camera.served == 1
    assert lost == ["stream lost after 4 frames: stalled, no frame for 2 s"]


@pytest.mark.parametrize("codec", ["h264", "h265", "jpeg"])
def test_an_rtsp_camera_is_read_and_when_it_goes_away_is_reconnected_then_dead(tmp_path, codec):
    """A camera's RTSP stream (H.264, H.265 or RTP/JPEG from a real RTSP server) is decoded frame by frame; when the
    camera goes away the stream is lost, reconnection is tried with backoff and fails, and the source ends dead saying
    why."""
    from tests.camera_rtsp import RtspCamera, rtsp_unavailable

    if why := rtsp_unavailable(codec):
        pytest.skip(why)
    frames = syn.video(20, seed=4)
    for i, f in enumerate(frames):
        (tmp_path / f"frame{i:04d}.jpg").write_bytes(encode_jpeg(f.image, quality=90))
    with RtspCamera(tmp_path, fps=10, codec=codec) as camera:
        delays: list[float] = []
        source = StreamSource(camera.url, stall_timeout_s=3.0, max_attempts=2, sleep=delays.append)
        got = []
        for frame in source:
            got.append(frame)
            if len(got) == 5:
                camera.stop()  # the camera goes away mid-stream
    assert len(got) >= 5 and got[0].image.shape == (syn.HEIGHT, syn.WIDTH, 3)
    assert min(float(np.abs(got[0].image.astype(int) - f.image.astype(int)).mean()) for f in frames) < 3.0
    health = source.health
    assert health.state is HealthState.DEAD and "gave up after 2 failed attempts" in (health.reason or "")
    assert delays == [1.0, 2.0] and health.reconnects == 2
