"""``watchpost crowd grab``, ``calibrate`` and ``eval`` on synthetic video, a local HTTP camera and labelled frames."""

from __future__ import annotations

import json

import numpy as np
import pytest

from detectors.crowd import synthetic as syn
from tests.camera_http import SnapshotCamera
from tests.support import synthetic_ground
from watchpost.cli import main


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    folder = tmp_path_factory.mktemp("synthetic")
    labels = syn.write_dataset(folder / "frames", syn.video(120, seed=21, max_people=14))
    roi = folder / "roi.npz"
    with open(roi, "wb") as fh:
        np.savez(fh, roi_mask=np.ones((syn.HEIGHT, syn.WIDTH), np.uint8), perspective=syn.perspective())
    return folder, labels, roi


@pytest.fixture(scope="module")
def model(dataset):
    folder, labels, roi = dataset
    out = folder / "camera.model"
    args = ["crowd", "calibrate", "--frames", str(folder / "frames"), "--labels", str(labels)]
    args += ["--range", "1-80", "--roi", str(roi), "--person-height", "60", "--out", str(out)]
    assert main(args) == 0
    return out


def test_calibrate_writes_a_model_and_reports_the_fit(model, dataset, capsys):
    """Calibration on a labelled range writes the model file and says how well it fits."""
    folder, labels, roi = dataset
    out = folder / "again.model"
    args = ["crowd", "calibrate", "--frames", str(folder / "frames"), "--labels", str(labels)]
    assert main([*args, "--range", "1-40", "--roi", str(roi), "--out", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["frames"] == 40 and report["first_frame"] == "seq_000001.jpg" and out.is_file()
    assert model.is_file()


def test_calibrate_says_how_the_density_model_was_chosen(dataset, tmp_path, capsys):
    """Without --json calibrate prints the fit, both held-out scores, and with trees their row profile's range."""
    folder, labels, roi = dataset
    args = ["crowd", "calibrate", "--frames", str(folder / "frames"), "--labels", str(labels), "--range", "1-60"]
    args += ["--roi", str(roi), "--method", "trees", "--rounds", "30"]
    assert main([*args, "--out", str(tmp_path / "t.model")]) == 0
    text = capsys.readouterr().out
    assert "from 60 frames" in text and "(density trees)" in text
    assert "held out, a quarter at a time: linear density" in text and "row profile: the trees' rows" in text


def _ground_points() -> str:
    """The synthetic scene's ground points as --ground gives them (see tests/watchpost/test_ground.py)."""
    points = [(40, 60), (280, 60), (300, 230), (20, 230)]
    return " ".join(f"{x},{y}={gx:.3f},{gy:.3f}" for (x, y), (gx, gy) in ((p, synthetic_ground(*p)) for p in points))


def test_calibrate_takes_its_perspective_from_ground_points_where_no_map_is_known(dataset, tmp_path, capsys):
    """With --ground instead of a perspective map, calibration says how tall a person is and counts as well."""
    folder, labels, _ = dataset
    out = tmp_path / "ground.model"
    args = ["crowd", "calibrate", "--frames", str(folder / "frames"), "--labels", str(labels), "--range", "1-80"]
    assert main([*args, "--ground", _ground_points(), "--out", str(out)]) == 0
    assert "perspective from 4 ground points: a person 22-60 px tall" in capsys.readouterr().out
    ev = ["crowd", "eval", "--model", str(out), "--frames", str(folder / "frames"), "--labels", str(labels)]
    assert main([*ev, "--range", "81-120", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["mae"] < 1.5


def test_calibrate_takes_the_ground_points_of_a_configured_camera(dataset, tmp_path, capsys):
    """--camera reads the camera's crowd.ground, drawn on its 640x480 picture, scaled to the 320x240 frames; a camera
    without ground points is refused with the reason."""
    import shutil
    from pathlib import Path

    folder, labels, _ = dataset
    config = tmp_path / "config"
    shutil.copytree(Path(__file__).resolve().parents[2] / "configs" / "demo", config)
    devices = config / "devices.yaml"
    text = devices.read_text(encoding="utf-8")
    start = text.index("      ground:")
    end = text.index("    zones:", start)
    points = [(40, 60), (280, 60), (300, 230), (20, 230)]
    lines = "".join(
        f"        - {{pixel: [{2 * x}, {2 * y}], metres: [{gx:.4f}, {gy:.4f}]}}\n"
        for (x, y), (gx, gy) in ((p, synthetic_ground(*p)) for p in points)
    )
    text = text[:start] + "      ground:\n" + lines + text[end:]
    devices.write_text(text.replace("frame_size: [1920, 1080]", "frame_size: [640, 480]"), encoding="utf-8")
    args = ["--config", str(config), "crowd", "calibrate", "--frames", str(folder / "frames"), "--labels", str(labels)]
    args += ["--range", "1-40", "--out", str(tmp_path / "cam.model")]
    assert main([*args, "--camera", "lotus-cam-square"]) == 0
    assert "perspective from 4 ground points: a person 22-60 px tall" in capsys.readouterr().out
    without = text[:start] + text[text.index("    zones:", start) :]
    devices.write_text(without.replace("frame_size: [1920, 1080]", "frame_size: [640, 480]"), encoding="utf-8")
    assert main([*args, "--camera", "lotus-cam-square"]) == 2
    assert "has no ground points" in capsys.readouterr().err
    assert main([*args, "--camera", "lotus-cam-square", "--ground", _ground_points()]) == 2
    assert "give one or the other" in capsys.readouterr().err


def test_calibrate_refuses_two_perspectives_and_points_that_are_not_ground(dataset, tmp_path, capsys):
    """A perspective map and --ground together, too few points or a malformed one: exit 2 with the reason."""
    folder, labels, roi = dataset
    args = ["crowd", "calibrate", "--frames", str(folder / "frames"), "--labels", str(labels), "--range", "1-20"]
    args += ["--out", str(tmp_path / "x.model")]
    assert main([*args, "--roi", str(roi), "--ground", _ground_points()]) == 2
    assert "give one or the other" in capsys.readouterr().err
    for bad in ("1,2=0,0 3,4=1,1", "1,2=0,0 3,4=1,1 5,6=2,2 7,8"):
        with pytest.raises(SystemExit) as stopped:
            main([*args, "--ground", bad])
        assert stopped.value.code == 2
    assert main([*args, "--ground", "0,0=0,0 100,0=1,0 200,0=2,0 0,100=0,1"]) == 2
    assert "lie on one line" in capsys.readouterr().err


def test_eval_json_has_the_count_and_speed_keys(model, dataset, capsys):
    """eval --json prints one JSON object with mae, rmse and fps (decoding included) on the held-out range."""
    folder, labels, _ = dataset
    args = ["crowd", "eval", "--model", str(model), "--frames", str(folder / "frames"), "--labels", str(labels)]
    assert main([*args, "--range", "81-120", "--json"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1
    result = json.loads(out[0])
    assert {"mae", "rmse", "fps", "decode_fps"} <= result.keys()
    assert result["frames"] == 40 and result["fps"] > 0
    assert result["mae"] < 1.5


def test_eval_light_scales_the_frames_and_reports_frames_the_view_check_fails(model, dataset, capsys):
    """eval --light 0.7 counts dim frames as well; at 0.2 every frame fails the view check, as the JSON says."""
    folder, labels, _ = dataset
    args = ["crowd", "eval", "--model", str(model), "--frames", str(folder / "frames"), "--labels", str(labels)]
    assert main([*args, "--range", "81-120", "--json", "--light", "0.7"]) == 0
    dim = json.loads(capsys.readouterr().out)
    assert dim["mae"] < 1.5 and dim["view_failed"] == 0 and dim["view_problem"] is None
    assert main([*args, "--range", "81-120", "--json", "--light", "0.2"]) == 0
    dark = json.loads(capsys.readouterr().out)
    assert dark["view_failed"] == 40 and "too dark to count" in dark["view_problem"]
    assert main([*args, "--light", "0"]) == 2
    assert "--light must be above 0" in capsys.readouterr().err


def test_eval_with_a_zone_adds_gathering_scores_and_draws_the_plot(model, dataset, capsys, tmp_path):
    """With --zone/--threshold/--dwell the JSON also has precision, recall and f1, and --plot writes a PNG."""
    folder, labels, _ = dataset
    plot = tmp_path / "eval.png"
    args = ["crowd", "eval", "--model", str(model), "--frames", str(folder / "frames"), "--labels", str(labels)]
    args += ["--range", "81-120", "--zone", "0,0 160,0 160,240 0,240", "--threshold", "4", "--dwell", "3"]
    assert main([*args, "--json", "--plot", str(plot)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert {"mae", "rmse", "fps", "precision", "recall", "f1"} <= result.keys()
    assert all(0.0 <= result[k] <= 1.0 for k in ("precision", "recall", "f1"))
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_eval_prints_a_readable_report_without_json(model, dataset, capsys):
    """Without --json eval prints the figures as lines for a person."""
    folder, labels, _ = dataset
    args = ["crowd", "eval", "--model", str(model), "--frames", str(folder / "frames"), "--labels", str(labels)]
    assert main([*args, "--range", "81-90"]) == 0
    text = capsys.readouterr().out
    assert "MAE" in text and "RMSE" in text and "decode alone" in text


def test_grey_png_frames_calibrate_and_evaluate(dataset, tmp_path, capsys):
    """A dataset of grey PNG frames (as UCSD ships them) calibrates and counts, its labels naming the PNG files."""
    import cv2

    folder, labels, _ = dataset
    frames = tmp_path / "png"
    frames.mkdir()
    entries = json.loads(labels.read_text())["frames"][:60]
    for e in entries:
        grey = cv2.imread(str(folder / "frames" / e["frame"]), cv2.IMREAD_GRAYSCALE)
        e["frame"] = e["frame"].replace(".jpg", ".png")
        assert cv2.imwrite(str(frames / e["frame"]), grey)
    png_labels = tmp_path / "labels.json"
    png_labels.write_text(json.dumps({"frames": entries}))
    out = tmp_path / "grey.model"
    common = ["--frames", str(frames), "--labels", str(png_labels)]
    args = ["crowd", "calibrate", *common, "--range", "1-40", "--person-height", "60", "--out", str(out)]
    assert main([*args, "--method", "linear", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["first_frame"] == "seq_000001.png"
    assert main(["crowd", "eval", "--model", str(out), *common, "--range", "41-60", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["frames"] == 20 and result["mae"] < 1.5


def test_bad_inputs_exit_2_with_the_reason(model, dataset, tmp_path, capsys):
    """A missing folder, a corrupt frame, a range past the labels, a zone without threshold: exit 2 with the reason."""
    folder, labels, _ = dataset
    base = ["crowd", "eval", "--model", str(model), "--labels", str(labels)]
    assert main([*base, "--frames", str(tmp_path / "nowhere"), "--range", "1-5"]) == 2
    assert "nowhere" in capsys.readouterr().err
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("seq_000001.jpg", "seq_000002.jpg"):
        (broken / name).write_bytes((folder / "frames" / name).read_bytes()[:500])
    assert main([*base, "--frames", str(broken), "--range", "1-2"]) == 2
    assert "corrupt" in capsys.readouterr().err
    assert main([*base, "--frames", str(folder / "frames"), "--range", "500-600"]) == 2
    assert "only 120 frames" in capsys.readouterr().err
    assert main([*base, "--frames", str(folder / "frames"), "--zone", "0,0 10,0 10,10"]) == 2
    assert "--threshold" in capsys.readouterr().err
    assert main(["crowd", "eval", "--model", str(labels), "--frames", str(folder), "--labels", str(labels)]) == 2
    assert "not a camera model" in capsys.readouterr().err


@pytest.fixture(scope="module")
def big_camera(tmp_path_factory):
    """The synthetic sequence as a 1000x750 camera (not whole 16-pixel cells), with its labels and ROI file."""
    import cv2

    folder = tmp_path_factory.mktemp("big")
    small = syn.write_dataset(folder / "small", syn.video(120, seed=21, max_people=14))
    scale = 1000 / syn.WIDTH
    doc = json.loads(small.read_text())
    (folder / "frames").mkdir()
    for item in doc["frames"]:
        image = cv2.imread(str(folder / "small" / item["frame"]))
        cv2.imwrite(
            str(folder / "frames" / item["frame"]), cv2.resize(image, (1000, 750), interpolation=cv2.INTER_CUBIC)
        )
        item["heads"] = [[x * scale, y * scale] for x, y in item["heads"]]
    labels = folder / "labels.json"
    labels.write_text(json.dumps(doc))
    roi = folder / "roi.npz"
    with open(roi, "wb") as fh:
        np.savez(fh, roi_mask=np.ones((750, 1000), np.uint8), perspective=cv2.resize(syn.perspective(), (1000, 750)))
    return folder, labels, roi


def test_a_large_camera_is_calibrated_and_counted_at_the_working_size(big_camera, tmp_path, capsys):
    """1000x750 frames calibrate at 640x480 by default; eval takes the zone in the frames' pixels and scores it."""
    from detectors.crowd.camera import CameraModel

    folder, labels, roi = big_camera
    out = tmp_path / "big.model"
    args = ["crowd", "calibrate", "--frames", str(folder / "frames"), "--labels", str(labels), "--roi", str(roi)]
    assert main([*args, "--range", "1-80", "--person-height", str(60 * 1000 / syn.WIDTH), "--out", str(out)]) == 0
    capsys.readouterr()
    model = CameraModel.load(out)
    assert (model.width, model.height) == (640, 480) and model.fit["source_size"] == [1000, 750]
    ev = ["crowd", "eval", "--model", str(out), "--frames", str(folder / "frames"), "--labels", str(labels)]
    ev += ["--range", "81-120", "--zone", "0,0 500,0 500,750 0,750", "--threshold", "3", "--dwell", "3", "--json"]
    assert main(ev) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["frame_size"] == "1000x750" and result["counted_at"] == "640x480"
    assert result["method"] == model.fit["method"] and result["method"] in ("density trees", "linear density")
    assert result["linear_total"] is model.linear_total
    assert result["mae"] < 1.5 and result["zone_mae"] < 1.0


def test_calibrate_refuses_a_size_that_is_not_whole_cells(big_camera, tmp_path, capsys):
    """--size must be whole 16-pixel cells, and well formed: exit 2 with the reason, no model written."""
    folder, labels, roi = big_camera
    out = tmp_path / "odd.model"
    args = ["crowd", "calibrate", "--frames", str(folder / "frames"), "--labels", str(labels), "--out", str(out)]
    assert main([*args, "--range", "1-20", "--size", "650x480"]) == 2
    assert "650x480 is not a whole number of 16-pixel cells" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*args, "--size", "wide"])
    assert "WIDTHxHEIGHT" in capsys.readouterr().err
    assert not out.exists()


def _video(path, frames: int, fps: float = 10.0) -> None:
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (syn.WIDTH, syn.HEIGHT))
    assert writer.isOpened()
    for f in syn.video(frames, seed=2):
        writer.write(f.image)
    writer.release()


def test_grab_saves_frames_spread_over_the_video_and_a_second_grab_adds_after_them(tmp_path, capsys):
    """`crowd grab --every 1` on a 6 s video saves one frame a second as seq_NNNNNN.jpg; again, numbering goes on."""
    from detectors.crowd.capture import DirectorySource

    video, out = tmp_path / "cam.avi", tmp_path / "frames"
    _video(video, frames=60)
    assert main(["crowd", "grab", "--source", str(video), "--out", str(out), "--count", "4", "--every", "1"]) == 0
    assert "4 frames saved" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == [f"seq_{i:06d}.jpg" for i in range(1, 5)]
    assert [f.image.shape for f in DirectorySource(out)] == [(syn.HEIGHT, syn.WIDTH, 3)] * 4
    assert main(["crowd", "grab", "--source", str(video), "--out", str(out), "--count", "50", "--every", "2"]) == 0
    said = capsys.readouterr().out
    assert "3 frames saved" in said and "seq_000005.jpg .. seq_000007.jpg" in said and "the source ended" in said


def test_grab_says_why_when_there_is_nothing_to_save(tmp_path, capsys):
    """A missing file, a file that is not a video, or bad numbers exit 2 with the reason and save nothing."""
    out = tmp_path / "frames"
    assert main(["crowd", "grab", "--source", str(tmp_path / "none.mp4"), "--out", str(out)]) == 2
    assert "no such file" in capsys.readouterr().err
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all")
    assert main(["crowd", "grab", "--source", str(junk), "--out", str(out)]) == 2
    assert "cannot open" in capsys.readouterr().err
    assert main(["crowd", "grab", "--source", str(junk), "--out", str(out), "--count", "0"]) == 2
    assert "--count must be at least 1" in capsys.readouterr().err
    assert not any(out.iterdir())


def _picture() -> bytes:
    import cv2

    image = np.full((syn.HEIGHT, syn.WIDTH, 3), 90, np.uint8)
    cv2.circle(image, (80, 60), 12, (30, 30, 200), -1)
    return cv2.imencode(".jpg", image)[1].tobytes()


def test_grab_snapshot_fetches_a_still_image_url_with_the_cameras_digest_login(tmp_path, capsys):
    """`crowd grab --snapshot` fetches a picture URL (digest login from the URL) once per frame and saves it."""
    from detectors.crowd.capture import DirectorySource

    out = tmp_path / "frames"
    with SnapshotCamera(_picture) as camera:
        args = ["crowd", "grab", "--snapshot", "--source", camera.url(), "--out", str(out), "--count", "3"]
        assert main([*args, "--every", "0.05"]) == 0
        assert camera.requests == 3 and "Digest" in camera.schemes
    said = capsys.readouterr().out
    assert "3 frames saved" in said and "se@cret" not in said and "se%40cret" not in said
    import logging

    assert logging.getLogger("httpx").level == logging.WARNING  # not a log line per picture fetched
    assert [f.image.shape for f in DirectorySource(out)] == [(syn.HEIGHT, syn.WIDTH, 3)] * 3


def test_grab_snapshot_says_why_a_camera_gives_no_picture(tmp_path, capsys):
    """A refused password, a login page or a non-http source exit 2 with the camera's reason; nothing is saved."""
    out = tmp_path / "frames"
    with SnapshotCamera(_picture) as camera:
        wrong = camera.url(password="nope")
        assert main(["crowd", "grab", "--snapshot", "--source", wrong, "--out", str(out), "--every", "0.05"]) == 2
        err = capsys.readouterr().err
        assert "HTTP 401" in err and "check the user and password" in err and "nope" not in err
        assert main(["crowd", "grab", "--snapshot", "--source", camera.url("/html"), "--out", str(out)]) == 2
        assert "no frame" in capsys.readouterr().err
    assert main(["crowd", "grab", "--snapshot", "--source", "rtsp://cam/1", "--out", str(out)]) == 2
    assert "a snapshot URL is http:// or https://" in capsys.readouterr().err
    assert not any(out.iterdir())


def test_grab_of_a_still_image_url_without_snapshot_names_the_flag(tmp_path, capsys):
    """A picture URL grabbed as a stream (one picture per connection) stops after three, saying to use --snapshot."""
    out = tmp_path / "frames"
    with SnapshotCamera(_picture) as camera:
        args = ["crowd", "grab", "--source", camera.url("/open"), "--out", str(out), "--count", "10"]
        assert main([*args, "--every", "0.05"]) == 0
    said = capsys.readouterr().out
    assert "3 frames saved" in said and "grab it with --snapshot" in said and "crowd.snapshot" not in said
