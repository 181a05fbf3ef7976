"""Counting people on synthetic video: calibration, totals, zones, standing crowds, model files."""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest

from detectors.crowd import synthetic as syn
from detectors.crowd.calibration import CalibrationError, calibrate, working_size
from detectors.crowd.camera import CameraModel, ModelFileError, load_roi
from detectors.crowd.counting import Counter, Zone
from detectors.crowd.features import shrink
from detectors.crowd.labels import LabelledFrame


def _labelled(frames: list[syn.SyntheticFrame]) -> tuple[list[LabelledFrame], dict[str, np.ndarray]]:
    labels, images = [], {}
    for i, f in enumerate(frames):
        name = f"f{i:04d}"
        labels.append(LabelledFrame(frame=name, count=f.count, heads=f.heads))
        images[name] = f.image
    return labels, images


@pytest.fixture(scope="module")
def model() -> CameraModel:
    labels, images = _labelled(syn.video(160, seed=1, max_people=14))
    return calibrate(
        labels, lambda lf: images[lf.frame], perspective=syn.perspective(), person_height_px=syn.BOTTOM_HEIGHT
    )


def test_counts_within_tolerance_on_unseen_synthetic_video(model):
    """After calibration on labelled frames, counts on another sequence are within 1 person on average."""
    frames = syn.video(80, seed=2, max_people=14)
    counter = Counter(model)
    predicted = np.array([counter.count(f.image).total for f in frames])
    true = np.array([f.count for f in frames])
    assert true.max() >= 8, "the sequence should have real crowds in it"
    assert np.abs(predicted - true).mean() < 1.0
    assert abs(predicted.mean() - true.mean()) < 0.75


def test_zone_counts_follow_the_heads_inside_the_polygon(model):
    """Zone counts track the people whose heads are inside the zone and add up to the total."""
    # fillPoly includes the polygon's edges: the halves meet between columns 159 and 160
    left = Zone.parse("0,0 159,0 159,239 0,239", name="left")
    right = Zone.parse("160,0 319,0 319,239 160,239", name="right")
    counter = Counter(model, [left, right])
    errors = []
    for f in syn.video(60, seed=3, max_people=14):
        counted = counter.count(f.image)
        true_left = sum(left.contains(x, y) for x, y in f.heads)
        errors.append(counted.zone("left") - true_left)
        assert counted.zone("left") + counted.zone("right") == pytest.approx(counted.total, rel=1e-4, abs=1e-4)
    assert np.abs(errors).mean() < 1.0


def test_empty_scene_counts_about_zero(model):
    """A frame of the bare background counts (close to) nobody."""
    counter = Counter(model)
    rng = np.random.default_rng(5)
    counted = counter.count(syn.finish(syn.background(), rng))
    assert counted.total < 0.7


def test_a_standing_crowd_does_not_fade_from_the_count(model):
    """People who stand still for many frames stay counted while the background adapts."""
    rng = np.random.default_rng(11)
    people = [
        (float(x), float(y), int(g))
        for x, y, g in zip(
            rng.uniform(30, 290, 12), rng.uniform(20, 180, 12), rng.choice([40, 70, 210, 240], 12), strict=True
        )
    ]
    scene = syn.background()
    syn.draw_people(scene, people)
    counter = Counter(model, adapt_rate=0.2, adapt_every=1)  # adapt far faster than in service
    counts = [counter.count(syn.finish(scene, rng)).total for _ in range(150)]
    assert abs(np.mean(counts[:10]) - 12) < 2.0
    assert abs(np.mean(counts[-10:]) - np.mean(counts[:10])) < 1.0


def test_background_follows_a_slow_change_of_brightness(model):
    """A slow brightening of the empty scene is absorbed: the count stays near zero."""
    rng = np.random.default_rng(13)
    counter = Counter(model, adapt_rate=0.1, adapt_every=1)
    scene = syn.background()
    counts = [counter.count(syn.finish(scene, rng, gain=1.0 + 0.25 * i / 100)).total for i in range(100)]
    assert max(counts[-10:]) < 1.0


def test_model_file_round_trip_gives_the_same_counts(model, tmp_path):
    """A saved and reloaded model counts exactly like the original."""
    path = tmp_path / "camera.model"
    model.save(path)
    loaded = CameraModel.load(path)
    frame = syn.video(5, seed=4)[-1].image
    assert Counter(loaded).count(frame).total == pytest.approx(Counter(model).count(frame).total)
    assert loaded.fit["frames"] == 160


def test_a_file_that_is_not_a_model_is_refused_with_the_reason(tmp_path):
    """Loading garbage or an npz without the model's parts raises ModelFileError, not a crash."""
    junk = tmp_path / "junk.model"
    junk.write_bytes(b"not a model")
    with pytest.raises(ModelFileError, match="not a camera model"):
        CameraModel.load(junk)
    partial = tmp_path / "partial.model"
    with open(partial, "wb") as fh:
        np.savez(fh, background=np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ModelFileError, match="incomplete"):
        CameraModel.load(partial)


def test_roi_file_gives_mask_and_perspective(tmp_path):
    """An npz in the Mall layout yields its ROI mask and perspective map; a bad one is refused."""
    path = tmp_path / "roi.npz"
    with open(path, "wb") as fh:
        np.savez(fh, roi_mask=np.ones((8, 8), np.uint8), perspective=np.full((8, 8), 2.0, np.float32))
    roi, weight = load_roi(path)
    assert roi is not None and roi.shape == (8, 8) and weight is not None and float(weight[0, 0]) == 2.0
    bad = tmp_path / "bad.npz"
    with open(bad, "wb") as fh:
        np.savez(fh, perspective=np.zeros((8, 8), np.float32))
    with pytest.raises(ModelFileError, match="positive"):
        load_roi(bad)


def test_roi_mask_excludes_people_outside_it():
    """With an ROI over the left half, people on the right are not counted."""
    labels, images = _labelled(syn.video(120, seed=6, max_people=12))
    roi = np.zeros((syn.HEIGHT, syn.WIDTH), np.uint8)
    roi[:, : syn.WIDTH // 2] = 1
    inside = [
        LabelledFrame(lf.frame, sum(x < syn.WIDTH // 2 for x, _ in lf.heads), tuple(h for h in lf.heads if h[0] < 160))
        for lf in labels
    ]
    m = calibrate(inside, lambda lf: images[lf.frame], roi=roi, perspective=syn.perspective(), person_height_px=60)
    scene = syn.background()
    syn.draw_people(scene, [(240.0, 100.0, 40), (270.0, 60.0, 220), (220.0, 150.0, 60)])
    assert Counter(m).count(scene).total < 0.7


def test_calibration_needs_enough_frames():
    """Fewer than 10 labelled frames is refused with a clear reason."""
    labels, images = _labelled(syn.video(5, seed=8))
    with pytest.raises(CalibrationError, match="at least 10"):
        calibrate(labels, lambda lf: images[lf.frame])


def test_zone_text_is_parsed_and_checked():
    """'x,y x,y x,y' becomes a polygon; fewer than 3 points or junk is refused."""
    zone = Zone.parse("1,2 30,2 30,40", name="gate")
    assert zone.polygon == ((1.0, 2.0), (30.0, 2.0), (30.0, 40.0)) and zone.contains(20, 10)
    with pytest.raises(ValueError, match="3 points"):
        Zone.parse("1,2 3,4")
    with pytest.raises(ValueError, match="not x,y"):
        Zone.parse("1,2 3;4 5,6")


def test_counts_only_labels_still_calibrate():
    """Labels with counts but no head positions calibrate (plain median background, spread like the count)."""
    frames = syn.video(120, seed=9, max_people=12)
    labels, images = _labelled(frames)
    counts_only = [LabelledFrame(lf.frame, lf.count, ()) for lf in labels]
    m = calibrate(counts_only, lambda lf: images[lf.frame], perspective=syn.perspective(), person_height_px=60)
    test = syn.video(40, seed=10, max_people=12)
    counter = Counter(m)
    errors = [counter.count(f.image).total - f.count for f in test]
    assert np.abs(errors).mean() < 1.5


def test_background_leaves_out_a_person_who_sat_through_most_calibration_frames():
    """Someone sitting still in 60 % of the calibration frames is not learnt as background, so is counted later."""
    rng = np.random.default_rng(17)
    moving = syn.video(100, seed=12, max_people=10)
    sitter = (60.0, 120.0, 40)
    labels, images = [], {}
    for i, f in enumerate(moving):
        image = f.image.copy()
        heads = f.heads + (syn.draw_people(image, [sitter]) if i % 5 < 3 else ())
        labels.append(LabelledFrame(f"s{i}", len(heads), heads))
        images[f"s{i}"] = syn.finish(image, rng)
    m = calibrate(labels, lambda lf: images[lf.frame], perspective=syn.perspective(), person_height_px=60)
    body = (slice(140, 150), slice(57, 63))  # the sitter's dark body
    assert np.abs(m.background[body].astype(int) - syn.background()[body].astype(int)).mean() < 12
    alone = syn.background()
    syn.draw_people(alone, [sitter])
    assert Counter(m).count(syn.finish(alone, rng)).total > 0.6


@pytest.fixture(scope="module")
def tree_model() -> CameraModel:
    labels, images = _labelled(syn.video(160, seed=1, max_people=14))
    return calibrate(
        labels,
        lambda lf: images[lf.frame],
        perspective=syn.perspective(),
        person_height_px=syn.BOTTOM_HEIGHT,
        method="trees",
        rounds=100,
    )


def test_calibration_picks_the_density_model_with_the_lower_held_out_error(model):
    """Auto calibration scores the linear density, the trees and the trees spreading the linear count on each quarter
    of the frames held out in turn and keeps the best."""
    fit = model.fit
    assert {"held_out_linear", "held_out_trees", "held_out_spread", "chosen_by"} <= fit.keys()
    assert "each quarter of the 160 frames with heads held out in turn" in fit["chosen_by"]
    scores = {"linear": fit["held_out_linear"], "trees": fit["held_out_trees"], "spread": fit["held_out_spread"]}
    best = min(scores, key=scores.get)
    assert fit["method"] == ("linear density" if best == "linear" else "density trees")
    assert (model.density is None) == (best == "linear")
    assert model.linear_total == (best == "spread")


def test_calibration_weighs_the_outline_features_as_the_held_out_quarters_prefer(model, tmp_path):
    """The held-out quarters score the outline features weighted by the perspective weight and by its square root;
    the model keeps the lower, says so, keeps it through its file, and a sqrt model counts with sqrt weights."""
    fit = model.fit
    scored = fit["edge_weight_held_out"]
    assert set(scored) == {"weight", "sqrt"} and fit["edge_weight"] == model.edge_weight
    assert model.edge_weight == ("sqrt" if scored["sqrt"] < scored["weight"] else "weight")
    best = min(fit[k] for k in ("held_out_linear", "held_out_trees", "held_out_spread"))
    assert best == pytest.approx(scored[model.edge_weight], abs=1e-4), "the scores shown are the weighting's own"
    other = replace(model, edge_weight="sqrt" if model.edge_weight == "weight" else "weight")
    path = tmp_path / "other.model"
    other.save(path)
    loaded = CameraModel.load(path)
    assert loaded.edge_weight == other.edge_weight
    frame = syn.video(6, seed=12, max_people=10)[-1].image
    assert Counter(loaded).count(frame).total == pytest.approx(Counter(other).count(frame).total, abs=1e-6)
    assert Counter(other).count(frame).total != pytest.approx(Counter(model).count(frame).total, abs=1e-3)


def test_outline_features_take_the_edge_weight_and_area_features_the_cell_weight():
    """Given an edge weight, only the outline features (after the first AREA_FEATURES) are weighted by it."""
    from detectors.crowd.counting import cell_weights
    from detectors.crowd.features import AREA_FEATURES, Background, extract_features

    frames = syn.video(3, seed=2, max_people=8)
    background = Background(syn.background())
    roi = np.ones((syn.HEIGHT, syn.WIDTH), np.uint8)
    cw = cell_weights(roi, syn.perspective(), 16)
    plain = extract_features(frames[-1].image, background, roi, cw, 16)
    rooted = extract_features(frames[-1].image, background, roi, cw, 16, edge_weight=np.sqrt(cw))
    np.testing.assert_allclose(rooted.values[:, :, :AREA_FEATURES], plain.values[:, :, :AREA_FEATURES])
    ratio = np.sqrt(cw) / cw
    expected = plain.values[:, :, AREA_FEATURES:] * ratio[:, :, None]
    np.testing.assert_allclose(rooted.values[:, :, AREA_FEATURES:], expected, rtol=1e-5, atol=1e-7)


def test_a_model_file_with_an_unknown_edge_weight_is_refused(model, tmp_path):
    """An edge_weight other than 'weight' or 'sqrt' in a model file is an error naming it."""
    path = tmp_path / "odd.model"
    replace(model, edge_weight="cube").save(path)
    with pytest.raises(ModelFileError, match="edge_weight 'cube'"):
        CameraModel.load(path)


def test_a_handful_of_calibration_frames_has_the_trees_spread_the_linear_density_total(tmp_path):
    """Auto calibration from 10-19 frames with heads holds none out: each frame counts the linear density's total,
    spread over the cells as the trees place people (kept through the model file); fewer than 10 keep the linear."""
    labels, images = _labelled(syn.video(15, seed=3, max_people=10))
    read = lambda lf: images[lf.frame]  # noqa: E731
    kw = {"perspective": syn.perspective(), "person_height_px": syn.BOTTOM_HEIGHT}
    m = calibrate(labels, read, **kw)
    assert m.density is not None and m.linear_total and m.fit["method"] == "density trees"
    assert "15 frames with heads, too few to hold some out" in m.fit["chosen_by"]
    m.save(tmp_path / "m.model")
    loaded = CameraModel.load(tmp_path / "m.model")
    assert loaded.linear_total
    linear = CameraModel.load(tmp_path / "m.model")
    object.__setattr__(linear, "density", None)  # the same camera counted by its linear density alone
    half = syn.HEIGHT // 2
    zones = [Zone("top", ((0, 0), (syn.WIDTH, 0), (syn.WIDTH, half), (0, half)))]
    spread, plain = Counter(loaded, zones, adapt_rate=0), Counter(linear, zones, adapt_rate=0)
    differ = 0
    for f in syn.video(20, seed=8, max_people=10):
        a, b = spread.count(f.image), plain.count(f.image)
        if a.total >= 1.0:
            assert a.total == pytest.approx(b.total, rel=1e-4, abs=1e-3)
            differ += abs(a.zones[0].count - b.zones[0].count) > 1e-3
    assert differ > 0  # the trees, not the linear density, decide where in the frame the people are
    few = calibrate(labels[:9] + [replace(lf, heads=()) for lf in labels[9:]], read, **kw)
    assert few.density is None and few.fit["method"] == "linear density"
    assert "too few frames with heads (9)" in few.fit["chosen_by"]


def test_density_trees_count_unseen_video_and_zones_follow_the_heads(tree_model):
    """A model with density trees counts unseen synthetic video within 1.5 people, its zones adding up to the total."""
    assert tree_model.density is not None and tree_model.fit["method"] == "density trees"
    frames = syn.video(60, seed=2, max_people=14)
    half = syn.HEIGHT // 2
    top = Zone.parse(f"0,0 {syn.WIDTH},0 {syn.WIDTH},{half - 1} 0,{half - 1}", name="top")  # rows 0 .. half - 1
    bottom = Zone.parse(f"0,{syn.HEIGHT // 2} {syn.WIDTH},{syn.HEIGHT // 2} {syn.WIDTH},{syn.HEIGHT} 0,{syn.HEIGHT}")
    counter = Counter(tree_model, [top, bottom])
    errors, zone_errors = [], []
    for f in frames:
        counted = counter.count(f.image)
        errors.append(counted.total - f.count)
        upper = sum(1 for x, y in f.heads if top.contains(x, y))
        zone_errors.append(counted.zones[0].count - upper)
        assert counted.zones[0].count + counted.zones[1].count == pytest.approx(counted.total, abs=1e-3)
    assert np.abs(errors).mean() < 1.5
    assert np.abs(zone_errors).mean() < 1.5


def test_density_trees_survive_the_model_file(tree_model, tmp_path):
    """Trees are saved as text in the npz (no pickle) and the reloaded model counts exactly the same."""
    path = tmp_path / "trees.model"
    tree_model.save(path)
    with np.load(path, allow_pickle=False) as z:
        assert "density" in z.files and str(z["density"]).startswith("tree")
    loaded = CameraModel.load(path)
    frame = syn.video(5, seed=4)[-1].image
    assert Counter(loaded).count(frame).total == pytest.approx(Counter(tree_model).count(frame).total, abs=1e-6)


def test_the_row_profile_moves_people_to_the_rows_the_trees_undercount_keeping_each_total():
    """row_profile raises rows the held-out frames undercount and lowers the others (at most a quarter, the
    held-out total kept); spread_by_rows moves a frame's people by it without changing its total, and leaves a
    frame whose people stand in one row, or an empty one, as it was."""
    from detectors.crowd.density import row_profile, spread_by_rows

    rng = np.random.default_rng(3)
    heads = rng.poisson(0.3, (40, 6, 8)).astype(np.float32)
    predicted = heads.copy()
    predicted[:, 1] *= 0.5  # row 1 counted at half
    predicted[:, 4] *= 1.6  # row 4 counted high
    profile = row_profile(predicted, heads)
    assert profile.shape == (6,) and profile[1] > 1.1 and profile[4] < 0.95
    assert 0.75 <= profile.min() and profile.max() <= 1.3  # a quarter either way, then scaled back to the total
    assert float((predicted * profile[None, :, None]).sum()) == pytest.approx(float(predicted.sum()), rel=1e-4)
    frame = np.zeros((6, 8), np.float32)
    frame[1, 2], frame[4, 5], frame[0, 0] = 3.0, 3.0, -0.2
    spread = spread_by_rows(frame, profile)
    assert float(spread.sum()) == pytest.approx(float(frame.sum()), abs=1e-5)
    assert spread[1, 2] > 3.0 > spread[4, 5] and spread[0, 0] == pytest.approx(-0.2)
    one_row = np.zeros((6, 8), np.float32)
    one_row[4, 1:6] = 2.0  # a single gathering
    assert np.allclose(spread_by_rows(one_row, profile), one_row)
    assert np.array_equal(spread_by_rows(np.zeros((6, 8), np.float32), profile), np.zeros((6, 8), np.float32))


def test_density_trees_carry_their_row_profile_and_it_keeps_the_frame_count(tree_model, tmp_path):
    """Calibrated trees (asked for, too) come with a row profile from their held-out frames; it survives the model
    file, leaves every frame's total as the trees counted it, and a profile of the wrong size is refused."""
    import dataclasses

    profile = tree_model.row_profile
    assert profile is not None and profile.shape == (tree_model.height // tree_model.cell,)
    assert tree_model.fit["row_profile"] == [round(float(v), 3) for v in profile]
    assert {"held_out_linear", "held_out_trees"} <= tree_model.fit.keys()
    path = tmp_path / "profiled.model"
    tree_model.save(path)
    assert np.array_equal(CameraModel.load(path).row_profile, profile)
    plain = Counter(dataclasses.replace(tree_model, row_profile=None))
    profiled = Counter(tree_model)
    for f in syn.video(8, seed=9, max_people=14):
        a, b = plain.count(f.image), profiled.count(f.image)
        assert b.total == pytest.approx(a.total, abs=1e-3)
    dataclasses.replace(tree_model, row_profile=np.ones(3, np.float32)).save(path)
    with pytest.raises(ModelFileError, match="row_profile"):
        CameraModel.load(path)


def test_a_model_file_of_the_old_format_asks_for_a_new_calibration(model, tmp_path):
    """A version-1 model file (linear spread, before density trees) is refused with the command that fixes it."""
    import json

    path = tmp_path / "old.model"
    model.save(path)
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays["meta"]))
    arrays["meta"] = np.array(json.dumps({**meta, "version": 1}))
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)
    with pytest.raises(ModelFileError, match="v1.*calibrate the camera again"):
        CameraModel.load(path)


def test_an_unknown_calibration_method_is_refused():
    """method must be auto, linear or trees; trees without head positions is refused with the reason."""
    labels, images = _labelled(syn.video(12, seed=3))
    with pytest.raises(CalibrationError, match="method 'deep'"):
        calibrate(labels, lambda lf: images[lf.frame], method="deep")
    counts_only = [LabelledFrame(frame=lf.frame, count=lf.count, heads=()) for lf in labels]
    with pytest.raises(CalibrationError, match="head positions"):
        calibrate(counts_only, lambda lf: images[lf.frame], method="trees")


def test_damaged_density_trees_are_refused_with_the_reason(tree_model):
    """A model whose trees text is damaged raises ValueError naming the density model when a counter is built."""
    import dataclasses

    damaged = dataclasses.replace(tree_model, density="tree\nversion=v4\nnot a model")
    with pytest.raises(ValueError, match="density model"):
        Counter(damaged)


def test_working_size_keeps_small_frames_and_shrinks_large_ones_to_whole_cells():
    """Frames up to 640 wide keep their size (rounded to whole cells); wider ones count at 640 wide, aspect kept."""
    assert working_size(640, 480, 16) == (640, 480)
    assert working_size(320, 240, 16) == (320, 240)
    assert working_size(238, 158, 16) == (240, 160)
    assert working_size(1920, 1080, 16) == (640, 352)
    assert working_size(2560, 1440, 16) == (640, 352)
    assert working_size(704, 576, 16) == (640, 528)


def test_a_camera_frame_is_shrunk_to_the_working_size_as_one_area_average_would():
    """A camera's frame (1080p, 720p, 1440p, D1, 960x540) reaches the working size by a whole factor first, and
    stays within a grey level of OpenCV's one-step area average of it; a frame of that size is left as it is."""
    scene = syn.video(1, seed=5)[0].image
    for w, h in ((1920, 1080), (1280, 720), (2560, 1440), (704, 576), (960, 540)):
        frame = cv2.resize(scene, (w, h), interpolation=cv2.INTER_CUBIC)
        size = working_size(w, h, 16)
        shrunk = shrink(frame, size)
        one_step = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
        assert shrunk.shape == one_step.shape == (size[1], size[0], 3)
        assert float(np.abs(shrunk.astype(int) - one_step.astype(int)).mean()) < 1.0, (w, h)
    assert shrink(scene, scene.shape[1::-1]) is scene


def _scaled(image: np.ndarray, factor: float) -> np.ndarray:
    return np.clip(image.astype(np.float32) * factor, 0, 255).astype(np.uint8)


def test_a_sudden_change_of_brightness_keeps_the_count(tree_model):
    """A cloud or the lights dimming (the picture at 0.55x or 0.7x at once, no time to adapt) keeps the trees' count."""
    frames = syn.video(40, seed=2, max_people=14)
    true = np.array([f.count for f in frames])
    for factor in (0.55, 0.7, 1.0):
        counter = Counter(tree_model, adapt_rate=0)
        counted = [counter.count(_scaled(f.image, factor)) for f in frames]
        assert np.abs(np.array([c.total for c in counted]) - true).mean() < 1.0, factor
        assert all(c.view.problem is None for c in counted), factor


def test_the_view_check_names_a_turned_covered_dark_or_colourless_picture(model):
    """Frames of the calibrated scene pass; a turned camera, a covered or defocused lens, night darkness and a
    picture that lost its colour (infrared) each fail with the reason, against the calibration's own figure."""
    import cv2

    kept = model.fit["view"]["outlines_kept_p5"]
    assert 0.6 < kept <= 1.0
    counter = Counter(model, adapt_rate=0)
    frame = syn.video(12, seed=2, max_people=10)[-1].image
    assert counter.count(frame).view.problem is None
    grey = cv2.cvtColor(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    failing = {
        "turned": (np.roll(frame, 30, axis=1), "the camera moved"),
        "covered": (np.full_like(frame, 200), "the camera moved, or its lens is covered"),
        "defocused": (cv2.GaussianBlur(frame, (0, 0), 3), "out of focus"),
        "night": (_scaled(frame, 0.25), "too dark to count"),
        "infrared": (grey, "lost its colour"),
    }
    for name, (image, said) in failing.items():
        view = counter.count(image).view
        assert view.problem is not None and said in view.problem, (name, view)


def test_a_picture_unlike_the_scene_is_not_blended_into_the_background(model):
    """While the camera looks elsewhere the background keeps the calibrated scene: back, the empty scene counts 0."""
    rng = np.random.default_rng(17)
    counter = Counter(model, adapt_rate=0.5, adapt_every=1)  # would absorb the turned view within a few frames
    turned = np.roll(syn.background(), 40, axis=1)
    for _ in range(30):
        assert counter.count(syn.finish(turned, rng)).view.problem is not None
    assert counter.count(syn.finish(syn.background(), rng)).total < 0.7


def test_a_night_model_counts_night_pictures_and_refuses_day_ones(model):
    """A model calibrated on infrared night pictures counts them (the day model refuses them: no colour), and says
    a colour day picture is not its scene."""
    labels, images = _labelled(syn.video(160, seed=1, max_people=14))
    night = calibrate(
        labels,
        lambda lf: syn.night_picture(images[lf.frame]),
        perspective=syn.perspective(),
        person_height_px=syn.BOTTOM_HEIGHT,
        method="linear",  # what auto chooses on this scene (see demo_model), without the trees it fits to decide
    )
    counter = Counter(night, adapt_rate=0)
    frames = syn.video(30, seed=2, max_people=14)
    counted = [counter.count(syn.night_picture(f.image)) for f in frames]
    assert all(c.view.problem is None for c in counted)
    # half the contrast and no colour: within a person and a half on average (the day model: within one)
    assert np.abs(np.array([c.total for c in counted]) - np.array([f.count for f in frames])).mean() < 1.5
    day = counter.count(frames[0].image).view
    assert day.problem is not None and "has colour and the calibration frames had none" in day.problem
    refused = Counter(model, adapt_rate=0).count(syn.night_picture(frames[0].image)).view
    assert refused.problem is not None and "lost its colour" in refused.problem


def test_calibration_refuses_night_frames_among_day_ones():
    """Infrared or dark frames mixed into a day camera's calibration frames are refused, naming them and the fix."""
    frames = syn.video(40, seed=1, max_people=8)
    labels, images = _labelled(frames)
    for look, said in ((syn.night_picture, "have no colour"), (lambda im: (im * 0.3).astype(np.uint8), "brightness")):
        night = {lf.frame for lf in labels[30:]}

        def read(lf, look=look, night=night):
            return look(images[lf.frame]) if lf.frame in night else images[lf.frame]

        with pytest.raises(CalibrationError, match="crowd.night_model") as err:
            calibrate(labels, read, perspective=syn.perspective(), person_height_px=syn.BOTTOM_HEIGHT)
        assert said in str(err.value) and "f0030" in str(err.value) and "10 of the 40 frames" in str(err.value)
