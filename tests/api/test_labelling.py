"""``watchpost crowd label`` over real HTTP: clicked heads become labels.json that calibration reads."""

from __future__ import annotations

import json

import httpx
import pytest

from api.labelling import LabelBook
from detectors.crowd import synthetic as syn
from detectors.crowd.labels import LabelError, load_labels
from watchpost.cli import main


@pytest.fixture
def scene(tmp_path):
    """Twenty-four synthetic frames with their true heads (the truth a person would click), and no labels yet."""
    truth = syn.write_dataset(tmp_path / "frames", syn.video(24, seed=5, max_people=10))
    return tmp_path / "frames", load_labels(truth), tmp_path / "labels.json"


def test_heads_put_through_the_page_are_saved_as_labels_that_calibration_fits(start_labelling, scene, capsys):
    """Each PUT rewrites labels.json in the calibration format (count = heads); `crowd calibrate` fits from it."""
    frames, truth, labels = scene
    server = start_labelling(frames, labels)
    with httpx.Client(base_url=server.url) as c:
        listing = c.get("/api/frames").json()
        assert [f["frame"] for f in listing["frames"]] == [t.frame for t in truth]  # labels.json in the folder: no
        assert not any(f["labelled"] for f in listing["frames"])
        one = c.get(f"/api/frames/{truth[0].frame}").json()
        assert (one["width"], one["height"]) == (syn.WIDTH, syn.HEIGHT) and one["labelled"] is False
        for t in truth:
            r = c.put(f"/api/frames/{t.frame}", json={"heads": [list(h) for h in t.heads]})
            assert r.status_code == 200 and r.json()["count"] == t.count, r.text
        assert c.get(f"/api/frames/{truth[3].frame}/image").content == (frames / truth[3].frame).read_bytes()
        assert "Label heads" in c.get("/").text
    saved = load_labels(labels)
    assert [(s.frame, s.count) for s in saved] == [(t.frame, t.count) for t in truth]
    for s, t in zip(saved, truth, strict=True):
        for a, b in zip(s.heads, t.heads, strict=True):
            assert abs(a[0] - b[0]) <= 0.05 and abs(a[1] - b[1]) <= 0.05, (s.frame, a, b)
    out = labels.parent / "camera.model"
    args = ["crowd", "calibrate", "--frames", str(frames), "--labels", str(labels), "--out", str(out), "--json"]
    assert main([*args, "--person-height", "60"]) == 0
    assert json.loads(capsys.readouterr().out)["frames"] == len(truth) and out.is_file()


def test_labelling_resumes_from_the_file_and_keeps_frames_the_folder_does_not_have(start_labelling, scene):
    """An existing labels.json is loaded (its frames shown labelled); unlabelling one and relabelling keeps the rest."""
    frames, truth, labels = scene
    elsewhere = {"frame": "other_000001.jpg", "count": 3, "heads": [[1, 1], [2, 2], [3, 3]]}
    first = {"frame": truth[0].frame, "count": truth[0].count, "heads": [list(h) for h in truth[0].heads]}
    labels.write_text(json.dumps({"frames": [elsewhere, first]}))
    server = start_labelling(frames, labels)
    with httpx.Client(base_url=server.url) as c:
        listing = c.get("/api/frames").json()["frames"]
        assert listing[0]["labelled"] and listing[0]["count"] == truth[0].count and not listing[1]["labelled"]
        assert c.get(f"/api/frames/{truth[0].frame}").json()["heads"] == first["heads"]
        assert c.put(f"/api/frames/{truth[1].frame}", json={"heads": []}).json() == {
            "frame": truth[1].frame,
            "count": 0,
            "labelled": 3,
        }
        assert c.delete(f"/api/frames/{truth[0].frame}").json()["labelled"] == 2
    saved = {s.frame: s for s in load_labels(labels)}
    assert set(saved) == {truth[1].frame, "other_000001.jpg"}  # folder frames first, the others kept
    assert saved[truth[1].frame].count == 0 and saved["other_000001.jpg"].count == 3


def test_bad_labels_are_refused_with_the_reason_and_the_file_is_left_as_it_was(start_labelling, scene, tmp_path):
    """A head outside the frame, an unknown or escaping frame name, a malformed body: 4xx with why, file unchanged."""
    frames, truth, labels = scene
    server = start_labelling(frames, labels)
    name = truth[0].frame
    with httpx.Client(base_url=server.url) as c:
        assert c.put(f"/api/frames/{name}", json={"heads": [[10, 10]]}).status_code == 200
        before = labels.read_bytes()
        r = c.put(f"/api/frames/{name}", json={"heads": [[10, 10], [syn.WIDTH + 5, 10]]})
        assert r.status_code == 422 and "heads[1]" in r.text and "outside the" in r.text
        r = c.get("/api/frames/nope.jpg")
        assert r.status_code == 404 and "no frame 'nope.jpg'" in r.text
        assert c.get("/api/frames/..%2Flabels.json/image").status_code == 404
        assert c.put(f"/api/frames/{name}", json={"heads": [["a", 1]]}).status_code == 422
        assert c.put(f"/api/frames/{name}", json={"points": []}).status_code == 422
        assert labels.read_bytes() == before
    (frames / "broken.jpg").write_bytes(b"\xff\xd8 not really")
    with httpx.Client(base_url=start_labelling(frames, tmp_path / "b.json").url) as c:
        r = c.get("/api/frames/broken.jpg")
        assert r.status_code == 422 and "cannot be used" in r.text
    damaged = tmp_path / "damaged.json"
    damaged.write_text("{not json")
    with pytest.raises(LabelError, match="cannot read labels"):
        LabelBook(frames, damaged)
    assert damaged.read_text() == "{not json"  # never overwritten
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no frames"):
        LabelBook(tmp_path / "empty", tmp_path / "x.json")


def test_png_frames_are_listed_and_served_as_png(start_labelling, tmp_path):
    """A folder of PNG frames (as public datasets ship them) is labelled like JPEGs; each is served as image/png."""
    import cv2

    folder = tmp_path / "png"
    folder.mkdir()
    for i, f in enumerate(syn.video(3, seed=2)):
        assert cv2.imwrite(str(folder / f"frame_{i:03d}.png"), f.image)
    with httpx.Client(base_url=start_labelling(folder, tmp_path / "labels.json").url) as c:
        names = [f["frame"] for f in c.get("/api/frames").json()["frames"]]
        assert names == ["frame_000.png", "frame_001.png", "frame_002.png"]
        assert c.get("/api/frames/frame_001.png").json()["width"] == syn.WIDTH
        r = c.get("/api/frames/frame_001.png/image")
        assert r.headers["content-type"] == "image/png" and r.content == (folder / "frame_001.png").read_bytes()
