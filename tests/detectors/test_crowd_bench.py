"""`watchpost bench crowd`: a real crowd worker counts a synthetic clip's cameras into a scratch database,
beside the decoding and counting ceilings; the worker sizes double until one falls behind, then bisect."""

from __future__ import annotations

import json
import sys

import cv2
import pytest

from detectors.crowd.bench import Step, _ladder, _write_clip, run_crowd_bench
from watchpost.cli import main


def test_the_bench_counts_each_camera_through_a_worker_and_stores_its_samples(config, server_url, capsys):
    """With 1 and 2 cameras playing the clip, in one worker process or split over two, every camera's frames
    are decoded at the clip's rate and its samples counted and stored; the ceilings say what one core could
    serve, decoding alone more."""
    figures = run_crowd_bench(
        config=config,
        database_url=server_url,
        size=(320, 192),
        sample_fps=2.0,
        seconds=3.0,
        warmup_s=2.0,
        cameras=[1, 2],
        processes=[1, 2],
        method="linear",
        codec="mp4v",
        as_json=True,
    )
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed == figures
    assert [(s["processes"], s["cameras"]) for s in figures["steps"]] == [(1, 1), (1, 2), (1, 1), (2, 2)]
    for step in figures["steps"]:
        offered = step["offered_samples_per_s"] * step["seconds"]
        assert step["offered_frames_per_s"] == 25.0 * step["cameras"]
        assert step["decoded_per_s"] >= 0.8 * step["offered_frames_per_s"]
        assert step["observations"] >= 0.8 * offered  # stored, not only counted
        assert step["cpu_cores"] > 0
    assert figures["grab_ms"] > 0 and figures["count_ms"] > 0
    assert 0 < figures["predicted_cameras_per_core"] < figures["decode_only_cameras_per_core"]
    assert figures["cameras_kept_up"] == {"1": 2, "2": 2} and figures["working_size"] == "320x192"


def _step(n: int, limit: int) -> Step:
    keeps = n <= limit
    return Step(
        cameras=n,
        processes=1,
        seconds=1.0,
        decoded_per_s=25.0 * n if keeps else 20.0 * n,
        offered_frames_per_s=25.0 * n,
        counted_per_s=2.0 * n,
        offered_samples_per_s=2.0 * n,
        observations=2 * n,
        cpu_cores=0.1 * n,
        behind_s=0.0 if keeps else 3.0,
        keeps_up=keeps,
    )


@pytest.mark.parametrize(
    ("limit", "tried"), [(5, [1, 2, 4, 8, 6, 5]), (1, [1, 2]), (0, [1]), (40, [1, 2, 4, 8, 16, 32, 64, 48, 40, 44])]
)
def test_the_worker_sizes_double_until_one_falls_behind_then_halve_the_gap(limit, tried):
    """The ladder stops at the first size that falls behind and bisects down to within 15 % of the limit."""
    steps = list(_ladder(None, lambda n: _step(n, limit), lambda _line: None))
    assert [s.cameras for s in steps] == tried
    kept = [s.cameras for s in steps if s.keeps_up]
    assert max(kept, default=0) == limit


def test_bench_crowd_refuses_bad_sizes_and_counts_with_a_usage_error(capsys):
    """A size that is not WxH, a camera count of 0 or a negative rate stops before anything runs."""
    for args in (["--size", "1080p"], ["--cameras", "0,4"], ["--sample-fps", "-1"], ["--processes", "two"]):
        with pytest.raises(SystemExit) as stopped:
            main(["bench", "crowd", *args])
        assert stopped.value.code == 2
        assert args[1] in capsys.readouterr().err


def test_the_clip_is_written_as_the_codec_asked_for_and_read_back_frame_for_frame(tmp_path):
    """The bench's clip is H.264 by default, as cameras send, or H.265 or MPEG-4 part 2 when asked: each read back
    by OpenCV's FFmpeg with its codec's tag, every frame, at the size asked for."""
    pytest.importorskip("av", reason="PyAV (the test extra) writes the H.264 and H.265 clips")
    expected = {"auto": {"avc1", "h264", "H264"}, "h265": {"hvc1", "hevc", "HEVC"}, "mp4v": {"mp4v", "FMP4"}}
    for codec, fourccs in expected.items():
        path = tmp_path / f"{codec}.mp4"
        assert _write_clip(path, (320, 192), 25.0, 1.0, codec) == ("h264" if codec == "auto" else codec)
        cap = cv2.VideoCapture(str(path))
        code = int(cap.get(cv2.CAP_PROP_FOURCC))
        assert code.to_bytes(4, "little").decode() in fourccs
        frames = 0
        while cap.grab():
            frames += 1
        assert frames == 25 and (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (320, 192)


def test_without_pyav_the_clip_falls_back_to_mpeg4_or_says_what_to_install(tmp_path, monkeypatch):
    """Without PyAV, `auto` writes MPEG-4 part 2 (which the OpenCV wheel can) and H.264 asked for by name stops
    with what to install."""
    monkeypatch.setitem(sys.modules, "av", None)  # `import av` raises ImportError, as where it is not installed
    assert _write_clip(tmp_path / "a.mp4", (320, 192), 25.0, 1.0, "auto") == "mp4v"
    with pytest.raises(RuntimeError, match=r"PyAV is needed \(pip install av"):
        _write_clip(tmp_path / "b.mp4", (320, 192), 25.0, 1.0, "h264")
