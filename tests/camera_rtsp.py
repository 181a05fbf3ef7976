"""A camera's RTSP stream on a real local RTSP server (GStreamer's, as many NVRs and cameras embed it):
JPEG frames, looped, sent as H.264 (what IP cameras' main and sub streams are) or as RTP/JPEG
(RFC 2435), or played once as H.265 (newer cameras' main streams), read by OpenCV's FFmpeg exactly
as a camera would be.

GStreamer's RTSP server has no wheel: it runs in the system's Python with PyGObject (Debian packages
python3-gi, gir1.2-gst-rtsp-server-1.0, gstreamer1.0-plugins-good, and gstreamer1.0-plugins-ugly for
x264; `make test` installs them as root). Debian's GStreamer encodes H.265 only in plugins-bad, so the
H.265 stream is a file written beforehand by PyAV's x265 (the test extra) and sent as it is. Without
them the tests that need it skip, saying so.
"""

from __future__ import annotations

import importlib.util
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import cv2

__all__ = ["RtspCamera", "rtsp_unavailable"]

_SERVER = r"""
import sys
import gi
gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer
Gst.init(None)
port, pattern, fps, codec = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
encode = {
    "jpeg": "jpegenc ! rtpjpegpay name=pay0 pt=26",
    # a camera's H.264: baseline-like, an I-frame every second, SPS/PPS repeated for late joiners
    "h264": f"x264enc tune=zerolatency speed-preset=ultrafast key-int-max={fps} bitrate=2000"
    " ! video/x-h264,profile=baseline ! rtph264pay name=pay0 pt=96 config-interval=1",
    # the H.265 file as it was encoded (a camera's stream), at its own pace
    "h265": "rtph265pay name=pay0 pt=96 config-interval=1",
}[codec]
source = (
    f'filesrc location="{pattern}" ! qtdemux'
    if codec == "h265"
    else f'multifilesrc location="{pattern}" loop=true caps="image/jpeg,framerate={fps}/1"'
    " ! jpegdec ! videoconvert ! video/x-raw,format=I420"
)
server = GstRtspServer.RTSPServer()
server.set_service(port)
factory = GstRtspServer.RTSPMediaFactory()
factory.set_launch(f"( {source} ! {encode} )")
factory.set_shared(True)
server.get_mount_points().add_factory("/cam", factory)
server.attach(None)
print("ready", flush=True)
GLib.MainLoop().run()
"""

_ELEMENTS = {"jpeg": ("jpegenc", "rtpjpegpay"), "h264": ("x264enc", "rtph264pay"), "h265": ("qtdemux", "rtph265pay")}
_PACKAGES = {
    "jpeg": "gstreamer1.0-plugins-good",
    "h264": "gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly",
    "h265": "gstreamer1.0-plugins-good",
}


def _check(codec: str) -> str:
    elements = ("multifilesrc", "jpegdec", "videoconvert", *_ELEMENTS[codec])
    return (
        'import gi; gi.require_version("GstRtspServer", "1.0"); from gi.repository import GstRtspServer, Gst;'
        f" Gst.init(None); assert all(Gst.ElementFactory.find(e) for e in {elements!r})"
    )


def _system_python() -> str | None:
    for candidate in ("/usr/bin/python3", shutil.which("python3")):
        if candidate and Path(candidate).exists() and Path(candidate).resolve() != Path(sys.executable).resolve():
            return candidate
    return None


def rtsp_unavailable(codec: str = "jpeg") -> str | None:
    """Why no RTSP server sending ``codec`` ("jpeg", "h264" or "h265") can run here, or None when one can."""
    if codec == "h265" and importlib.util.find_spec("av") is None:
        return "PyAV (the av package, in the test extra) is not installed to write the H.265 stream"
    python = _system_python()
    if python is None:
        return "no system python3 for GStreamer's RTSP server"
    done = subprocess.run([python, "-c", _check(codec)], capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        packages = f"python3-gi gir1.2-gst-rtsp-server-1.0 {_PACKAGES[codec]}"
        return f"GStreamer's RTSP server for {codec} is not installed ({packages})"
    return None


class RtspCamera:
    """Serves the JPEG files ``folder/frame%04d.jpg`` at rtsp://127.0.0.1:<port>/cam, ``fps`` a second, encoded as
    ``codec`` ("jpeg": RTP/JPEG, "h264", looped; "h265", once). :meth:`stop` takes the camera away (the server
    ends)."""

    def __init__(self, folder: Path, *, fps: int = 10, codec: str = "jpeg") -> None:
        python = _system_python()
        assert python, rtsp_unavailable()
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.url = f"rtsp://127.0.0.1:{port}/cam"
        script = folder / "rtsp_server.py"
        script.write_text(_SERVER, encoding="utf-8")
        pattern = folder / "frame%04d.jpg"
        if codec == "h265":
            import av

            from detectors.crowd.bench import write_camera_video

            frames = [cv2.imread(str(p)) for p in sorted(folder.glob("frame[0-9][0-9][0-9][0-9].jpg"))]
            pattern = folder / "camera-h265.mp4"
            write_camera_video(av, pattern, frames, fps, "h265")
        self._proc = subprocess.Popen(
            [python, str(script), str(port), str(pattern), str(fps), codec],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self._proc.stdout is not None and self._proc.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # listening once it accepts a connection
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.05)

    def stop(self) -> None:
        if self._proc.poll() is None:
            self._proc.terminate()
            self._proc.wait(10)

    def __enter__(self) -> RtspCamera:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
