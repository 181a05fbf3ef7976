"""``watchpost crowd grab``, ``calibrate`` and ``eval``: frames to label, fit a camera, and measure it.

``grab`` saves frames of a camera (a stream, a still-image URL or a video file) spread over time, for labelling
with ``watchpost crowd label`` (the entry point adds it, and ``crowd run``) and calibrating.

``eval`` is also the crowd benchmark: it prints MAE, RMSE and frames per second with JPEG
decoding included, beside the rate of decoding alone (the ceiling on the same machine), and
with a zone the gathering precision, recall and F1 against the alarms that the true zone
counts (from the labelled head positions) give under the same gathering rule.

OpenCV and the counting code are imported when a crowd command runs, not when the
``watchpost`` command line starts.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

from detectors.crowd.labels import LabelError, LabelledFrame, load_labels, parse_range, select_range

__all__ = ["parse_size", "register"]


def register(subparsers: argparse._SubParsersAction) -> argparse._SubParsersAction:
    """Add ``crowd calibrate`` and ``crowd eval`` to the ``watchpost`` command line; return the crowd
    subcommands so that the entry point can add ``crowd run`` (which needs its services)."""
    crowd = subparsers.add_parser("crowd", help="crowd counting: run the cameras, calibrate a camera, evaluate it")
    sub = crowd.add_subparsers(dest="crowd", required=True, metavar="WHAT")

    cal = sub.add_parser("calibrate", help="fit a camera model from labelled frames")
    _frame_args(cal)
    cal.add_argument("--roi", type=Path, help="npz with roi_mask and/or perspective (480x640 for Mall)")
    cal.add_argument(
        "--ground",
        type=parse_ground,
        help='4+ points on the ground, "x,y=X,Y ..." (pixels of the frames = metres on the ground, as the camera\'s'
        " crowd.ground): the perspective from them, where no perspective map is known",
    )
    cal.add_argument(
        "--camera",
        help="take --ground from this configured camera's crowd.ground (scaled from its frame_size to the frames')",
    )
    cal.add_argument(
        "--person-height",
        type=float,
        help="a person's height in pixels where the perspective weight is 1 (default 26%% of the frame height)",
    )
    cal.add_argument("--cell", type=int, default=16, help="feature cell size in pixels (default 16)")
    cal.add_argument(
        "--size",
        type=parse_size,
        help="WxH to count at, whole cells (default: the frames' size, at most 640 wide: 1920x1080 counts at 640x352)",
    )
    cal.add_argument("--ridge", type=float, default=1.0, help="ridge penalty of the linear count model (default 1)")
    cal.add_argument("--rounds", type=int, help="boosting rounds of the density model (default 150)")
    cal.add_argument(
        "--method",
        choices=("auto", "linear", "trees"),
        default="auto",
        help="density model: the better on held-out calibration frames (auto), linear, or trees",
    )
    cal.add_argument("--threads", type=int, default=0, help="threads to train with (default 0: every core)")
    cal.add_argument("--out", type=Path, required=True, help="camera model file to write")
    cal.add_argument("--json", action="store_true", help="print one JSON object")
    cal.set_defaults(handler=_cmd_calibrate)

    grab = sub.add_parser("grab", help="save frames of a camera (stream, snapshot URL or video file) to label")
    grab.add_argument("--source", required=True, help="rtsp:// or http(s):// stream URL, or a video file")
    grab.add_argument(
        "--snapshot",
        action="store_true",
        help="the source is a still-image URL fetched once per frame (as crowd.snapshot: true)",
    )
    grab.add_argument("--out", type=Path, required=True, help="folder to save the JPEG frames in (made if absent)")
    grab.add_argument("--count", type=int, default=30, help="frames to save (default 30)")
    grab.add_argument(
        "--every", type=float, default=10.0, help="seconds between saved frames (of the video's time for a file; 10)"
    )
    grab.set_defaults(handler=_cmd_grab)

    ev = sub.add_parser("eval", help="count errors, speed and gathering scores on labelled frames")
    ev.add_argument("--model", type=Path, required=True, help="camera model from 'crowd calibrate'")
    _frame_args(ev)
    ev.add_argument("--zone", help='polygon in the frames\' pixels: "x1,y1 x2,y2 x3,y3 ..."')
    ev.add_argument("--threshold", type=float, help="people in the zone that make a gathering")
    ev.add_argument("--dwell", type=float, default=5, help="frames at or above the threshold before raising (5)")
    ev.add_argument("--release-threshold", type=float, help="level below which it clears (default 80%% of threshold)")
    ev.add_argument("--release", type=float, help="frames below the release level before clearing (default: dwell)")
    ev.add_argument("--cooldown", type=float, default=0, help="frames after clearing before a new alarm (0)")
    ev.add_argument("--smooth", type=float, default=3, help="moving-average window in frames (3)")
    ev.add_argument("--growth", type=float, help="also raise when the zone count grows by this factor ...")
    ev.add_argument("--growth-window", type=float, default=60, help="... within this many frames (60)")
    ev.add_argument("--adapt-rate", type=float, default=0.1, help="background update rate (0 = frozen; 0.1)")
    ev.add_argument(
        "--light",
        type=float,
        default=1.0,
        help="scale every frame's brightness by this before counting: how the counts hold when the light changes (1)",
    )
    ev.add_argument("--json", action="store_true", help="print exactly one JSON object")
    ev.add_argument("--plot", type=Path, help="write predicted and true counts over time, and the alarms, as PNG")
    ev.set_defaults(handler=_cmd_eval)
    return sub


def _frame_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--frames", type=Path, required=True, help="folder of the frames (JPEG or PNG) named in the labels")
    p.add_argument("--labels", type=Path, required=True, help='labels.json: {"frames": [{"frame","count","heads"}]}')
    p.add_argument("--range", dest="span", type=parse_range, help="only labels at 1-based positions FIRST-LAST")


def parse_ground(text: str) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """``"x,y=X,Y x,y=X,Y ..."`` (picture pixels = ground metres) -> (pixels, metres)."""
    number = r"-?\d+(?:\.\d+)?"
    pixels, metres = [], []
    for token in text.split():
        m = re.fullmatch(rf"({number}),({number})=({number}),({number})", token)
        if not m:
            raise argparse.ArgumentTypeError(f"{token!r}: expected x,y=X,Y (pixels = metres), e.g. 120,1060=0,0")
        x, y, gx, gy = (float(v) for v in m.groups())
        pixels.append((x, y))
        metres.append((gx, gy))
    if len(pixels) < 4:
        raise argparse.ArgumentTypeError(f"{len(pixels)} ground point(s): at least 4 are needed")
    return pixels, metres


def parse_size(text: str) -> tuple[int, int]:
    """``"640x352"`` -> (640, 352)."""
    w, sep, h = text.lower().partition("x")
    if not (sep and w.isdigit() and h.isdigit() and int(w) > 0 and int(h) > 0):
        raise argparse.ArgumentTypeError(f"{text!r}: expected WIDTHxHEIGHT, e.g. 640x352")
    return int(w), int(h)


class _Progress:
    """A one-line progress meter on stderr, only when stderr is a terminal."""

    def __init__(self) -> None:
        self._on = sys.stderr.isatty()
        self._last = 0.0

    def __call__(self, stage: str, done: int, total: int) -> None:
        if not self._on:
            return
        now = time.monotonic()
        if done == total or now - self._last > 0.2:
            self._last = now
            end = "\n" if done == total else ""
            print(f"\r{stage}: {done}/{total}", end=end, file=sys.stderr, flush=True)


def _select(args: argparse.Namespace) -> tuple[LabelledFrame, ...]:
    frames = select_range(load_labels(args.labels), args.span)
    if not frames:
        raise LabelError(f"{args.labels}: no frames selected")
    return frames


def _camera_ground(
    args: argparse.Namespace, settings: Any, frame_size: tuple[int, int]
) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """The ground points of the configured camera ``args.camera``, in the calibration frames' pixels."""
    from watchpost.config import load_config

    config = load_config(getattr(args, "config", None) or settings.config_path)
    camera = config.device_index.get(args.camera)
    if camera is None or camera.crowd is None:
        raise ValueError(f"--camera {args.camera}: no counting camera of that id in the configuration")
    if camera.crowd.ground is None:
        raise ValueError(f"--camera {args.camera}: the camera has no ground points (crowd.ground)")
    width, height = frame_size
    picture = camera.crowd.frame_size or frame_size
    sx, sy = width / picture[0], height / picture[1]
    pixels = [(p.pixel[0] * sx, p.pixel[1] * sy) for p in camera.crowd.ground]
    return pixels, [p.metres for p in camera.crowd.ground]


def _cmd_calibrate(args: argparse.Namespace, _settings: Any = None) -> int:
    from detectors.crowd.calibration import CalibrationError, calibrate
    from detectors.crowd.camera import ModelFileError, load_roi
    from detectors.crowd.capture import DirectorySource, FrameError
    from watchpost.ground import PERSON_HEIGHT_M, GroundPlane

    try:
        labels = _select(args)
        roi, perspective = load_roi(args.roi) if args.roi else (None, None)
        source = DirectorySource(args.frames)
        person_height = args.person_height
        ground_note = None
        if args.ground and args.camera:
            raise ValueError("--ground and --camera both give ground points: give one or the other")
        height, width = source.read(labels[0].frame).shape[:2] if labels and (args.ground or args.camera) else (0, 0)
        if args.camera:
            args.ground = _camera_ground(args, _settings, (width, height))
        if args.ground:
            if perspective is not None:
                raise ValueError(f"{args.roi} has a perspective map and --ground gives one: give one or the other")
            plane = GroundPlane.fit(*args.ground)
            perspective, reference = plane.perspective(width, height)
            person_height = person_height or PERSON_HEIGHT_M * reference
            tall = PERSON_HEIGHT_M * plane.row_scale(width, height)
            ground_note = (
                f"perspective from {len(args.ground[0])} ground points: a person {tall[tall > 0].min():.0f}-"
                f"{tall.max():.0f} px tall in the frames (worst point off by {plane.worst_miss_m:.2f} m)"
            )
        started = time.perf_counter()
        model = calibrate(
            labels,
            lambda lf: source.read(lf.frame),
            roi=roi,
            perspective=perspective,
            person_height_px=person_height,
            cell=args.cell,
            size=args.size,
            ridge=args.ridge,
            rounds=args.rounds,
            threads=args.threads,
            method=args.method,
            progress=_Progress(),
        )
        model.save(args.out)
    except (LabelError, FrameError, ModelFileError, CalibrationError, ValueError) as exc:
        print(f"crowd calibrate: {exc}", file=sys.stderr)
        return 2
    took = time.perf_counter() - started
    if ground_note and not args.json:
        print(ground_note)
    result = {**model.fit, "out": str(args.out), "seconds": round(took, 1)}
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"calibrated {args.out} from {model.fit['frames']} frames ({model.fit['first_frame']} .."
            f" {model.fit['last_frame']}) in {took:.1f} s ({model.fit['method']}"
            f"{', spreading the linear count' if model.linear_total else ''}):"
            f" in-sample MAE {model.fit['train_mae']:.2f},"
            f" RMSE {model.fit['train_rmse']:.2f}"
        )
        fit = model.fit
        if "held_out_trees" in fit:
            print(
                f"held out, a quarter at a time: linear density {fit['held_out_linear']:.2f},"
                f" density trees {fit['held_out_trees']:.2f}, the trees spreading the linear count"
                f" {fit['held_out_spread']:.2f} (count MAE + 4x4 region MAE)"
            )
        scored = fit.get("edge_weight_held_out")
        if isinstance(scored, dict):
            print(
                f"outline features weighted by the perspective weight {scored['weight']:.2f}, by its square root"
                f" {scored['sqrt']:.2f} held out: {'the square root' if model.edge_weight == 'sqrt' else 'the weight'}"
                " kept"
            )
        if model.row_profile is not None:
            p = model.row_profile
            print(f"row profile: the trees' rows of cells scaled {p.min():.2f}-{p.max():.2f}, each frame's count kept")
        if "held_out_trees" not in fit and fit.get("chosen_by") != "asked for":
            print(fit["chosen_by"])
    return 0


def _cmd_grab(args: argparse.Namespace, _settings: Any = None) -> int:
    from detectors.crowd.capture import FileSource, FrameError, SnapshotSource, StreamSource, redact_url
    from detectors.crowd.snapshot import encode_jpeg

    if args.count < 1 or not args.every > 0:
        print("crowd grab: --count must be at least 1 and --every above 0", file=sys.stderr)
        return 2
    is_file = "://" not in args.source or args.source.startswith("file://")
    path = Path(args.source.removeprefix("file://"))
    shown = str(path) if is_file else redact_url(args.source)
    source: Any
    if args.snapshot:
        try:
            # a person is waiting: three fetches 0.5 s and 1 s apart, then the camera's answer
            source = SnapshotSource(args.source, sample_fps=1 / args.every, max_attempts=3, backoff_initial=0.5)
        except ValueError as exc:
            print(f"crowd grab: {exc}", file=sys.stderr)
            return 2
    elif is_file:
        source = FileSource(path, sample_fps=1 / args.every)
    else:
        source = StreamSource(args.source, sample_fps=1 / args.every, max_attempts=5)
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"crowd grab: cannot make {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    numbers = [int(m.group(1)) for p in args.out.iterdir() if (m := re.fullmatch(r"seq_(\d+)\.jpg", p.name))]
    first = max(numbers, default=0) + 1  # grabbing again adds frames after the ones there
    progress = _Progress()
    saved: list[str] = []
    try:
        for frame in source:
            name = f"seq_{first + len(saved):06d}.jpg"
            (args.out / name).write_bytes(encode_jpeg(frame.image, quality=95))
            saved.append(name)
            progress("frames saved", len(saved), args.count)
            if len(saved) >= args.count:
                break
    except (FrameError, OSError) as exc:
        print(f"crowd grab: {shown}: {exc}", file=sys.stderr)
        return 2
    # the stream source names the camera setting; here the fix is the flag
    reason = (source.health.reason or "").replace("(set crowd.snapshot: true)", "(grab it with --snapshot)")
    if not saved:
        print(f"crowd grab: {shown}: no frame ({reason or 'the video is empty'})", file=sys.stderr)
        return 2
    note = "" if len(saved) >= args.count else f" (the source ended: {reason or 'end of the video'})"
    print(f"crowd grab: {len(saved)} frames saved to {args.out} ({saved[0]} .. {saved[-1]}){note}")
    print(
        "next: watchpost crowd label --frames "
        + str(args.out)
        + "  (the frames show people: delete them after calibrating)"
    )
    return 0


def _cmd_eval(args: argparse.Namespace, _settings: Any = None) -> int:
    from detectors.crowd.camera import ModelFileError
    from detectors.crowd.capture import FrameError

    try:
        return _evaluate(args)
    except (LabelError, FrameError, ModelFileError, ValueError) as exc:
        print(f"crowd eval: {exc}", file=sys.stderr)
        return 2


def _evaluate(args: argparse.Namespace) -> int:
    import cv2

    from detectors.crowd.camera import CameraModel
    from detectors.crowd.capture import DirectorySource, FrameError, FrameErrorReason
    from detectors.crowd.counting import Counter, Zone
    from detectors.crowd.evaluation import count_errors, draw_plot, episodes, score_alarms
    from detectors.crowd.gathering import GatheringRule

    model = CameraModel.load(args.model)
    labels = _select(args)
    zone = Zone.parse(args.zone) if args.zone else None
    rule = None
    if zone is not None:
        if args.threshold is None:
            raise ValueError("--zone needs --threshold")
        rule = GatheringRule(
            threshold=args.threshold,
            release=args.release_threshold,
            dwell_s=args.dwell,
            release_s=args.dwell if args.release is None else args.release,
            cooldown_s=args.cooldown,
            smooth_s=max(args.smooth - 1, 0),  # a window of N frames spans N - 1 time units
            growth_factor=args.growth,
            growth_window_s=args.growth_window,
        )
    source = DirectorySource(args.frames)
    progress = _Progress()
    first = args.span[0] if args.span else 1
    times = [float(first + i) for i in range(len(labels))]

    # The ceiling: reading and decoding alone, after one untimed pass that warms the file cache.
    if not args.frames.is_dir():
        raise FrameError(FrameErrorReason.OPEN_FAILED, f"no such folder: {args.frames}")
    for lf in labels:
        try:
            (args.frames / lf.frame).read_bytes()
        except OSError:
            source.read(lf.frame)  # raises the FrameError that names the file and the reason
    started = time.perf_counter()
    for i, lf in enumerate(labels):
        image = source.read(lf.frame)
        progress("decode only", i + 1, len(labels))
    decode_fps = len(labels) / (time.perf_counter() - started)

    # The zone and the labels are in the frames' pixels; the counter works at the model's size.
    frame_w, frame_h = image.shape[1], image.shape[0]
    counted_zone = None
    if zone is not None:
        sx, sy = model.width / frame_w, model.height / frame_h
        counted_zone = Zone(name=zone.name, polygon=tuple((x * sx, y * sy) for x, y in zone.polygon))
    counter = Counter(model, [counted_zone] if counted_zone else [], adapt_rate=args.adapt_rate)
    if not args.light > 0:
        raise ValueError("--light must be above 0")
    predicted, zone_predicted = [], []
    wall, cpu = 0.0, 0.0
    problems: list[str] = []  # the frames whose view check failed: the worker would hold such counts
    for i, lf in enumerate(labels):
        w0, c0 = time.perf_counter(), time.process_time()
        image = source.read(lf.frame)
        if args.light != 1.0:  # not timed: a camera's frames come as they are
            w1, c1 = time.perf_counter(), time.process_time()
            image = cv2.convertScaleAbs(image, alpha=args.light)
            w0, c0 = w0 + time.perf_counter() - w1, c0 + time.process_time() - c1
        counted = counter.count(image, time=times[i])
        wall += time.perf_counter() - w0
        cpu += time.process_time() - c0
        if counted.view is not None and counted.view.problem:
            problems.append(counted.view.problem)
        predicted.append(counted.total)
        if zone is not None:
            zone_predicted.append(counted.zones[0].count)
        progress("counting", i + 1, len(labels))
    true = [float(lf.count) for lf in labels]
    mae, rmse, bias = count_errors(predicted, true)
    result: dict[str, Any] = {
        "mae": round(mae, 4),
        "rmse": round(rmse, 4),
        "fps": round(len(labels) / wall, 2),
        "bias": round(bias, 4),
        "frames": len(labels),
        "fps_cpu": round(len(labels) / cpu, 2) if cpu > 0 else None,
        "decode_fps": round(decode_fps, 2),
        "opencv_threads": cv2.getNumThreads(),
        "frame_size": f"{frame_w}x{frame_h}",
        "view_failed": len(problems),  # frames unlike the calibrated scene (the worker holds such counts)
        "view_problem": max(set(problems), key=problems.count) if problems else None,
        "counted_at": f"{model.width}x{model.height}",
        # the density model calibration chose: "density trees" or "linear density"
        "method": model.fit.get("method"),
        "linear_total": model.linear_total,  # the trees spread the linear density's count of each frame
        "edge_weight": model.edge_weight,  # outline features weighted by the perspective weight or its square root
    }
    true_eps, pred_eps, zone_true = [], [], None
    if zone is not None and rule is not None:
        missing = [lf.frame for lf in labels if lf.count and not lf.heads]
        if missing:
            raise LabelError(f"zone scores need head positions; {len(missing)} frames have none (e.g. {missing[0]})")
        zone_true = [float(sum(zone.contains(x, y) for x, y in lf.heads)) for lf in labels]
        zmae, zrmse, zbias = count_errors(zone_predicted, zone_true)
        true_eps = episodes(times, zone_true, rule)
        pred_eps = episodes(times, zone_predicted, rule)
        scores = score_alarms(pred_eps, true_eps, times, slack=args.dwell)
        result.update(
            precision=round(scores.precision, 4),
            recall=round(scores.recall, 4),
            f1=round(scores.f1, 4),
            zone_mae=round(zmae, 4),
            zone_rmse=round(zrmse, 4),
            zone_bias=round(zbias, 4),
            true_alarms=scores.true_episodes,
            predicted_alarms=scores.predicted_episodes,
            frame_precision=round(scores.frame_precision, 4),
            frame_recall=round(scores.frame_recall, 4),
            frame_f1=round(scores.frame_f1, 4),
        )
    if args.plot:
        title = f"{args.model.name} on {labels[0].frame} .. {labels[-1].frame}: MAE {mae:.2f}, RMSE {rmse:.2f}"
        image = draw_plot(
            true,
            predicted,
            title=title,
            zone_true=zone_true,
            zone_predicted=zone_predicted if zone is not None else None,
            true_episodes=true_eps,
            predicted_episodes=pred_eps,
            threshold=args.threshold if zone is not None else None,
            first_index=first,
        )
        if not cv2.imwrite(str(args.plot), image):
            raise ValueError(f"cannot write the plot to {args.plot}")
    if args.json:
        print(json.dumps(result))
    else:
        _print_report(result, labels)
    return 0


def _print_report(r: dict[str, Any], labels: tuple[LabelledFrame, ...]) -> None:
    print(f"frames        {r['frames']} ({labels[0].frame} .. {labels[-1].frame})")
    print(f"model         {r['method'] or 'unknown'}{', spreading the linear count' if r['linear_total'] else ''}")
    print(f"MAE           {r['mae']:.3f}")
    print(f"RMSE          {r['rmse']:.3f}")
    print(f"bias          {r['bias']:+.3f}")
    print(f"fps           {r['fps']:.1f} (decode + count, wall clock; {r['fps_cpu']} per CPU-second)")
    print(f"decode alone  {r['decode_fps']:.1f} fps (read + decode: the ceiling)")
    if r["frame_size"] != r["counted_at"]:
        print(f"size          frames {r['frame_size']}, counted at {r['counted_at']}")
    if r["view_failed"]:
        print(f"view check    {r['view_failed']} frames failed (a worker holds such counts): {r['view_problem']}")
    if "f1" in r:
        print(f"zone MAE      {r['zone_mae']:.3f} (RMSE {r['zone_rmse']:.3f}, bias {r['zone_bias']:+.3f})")
        print(f"gathering     precision {r['precision']:.3f}  recall {r['recall']:.3f}  F1 {r['f1']:.3f}")
        print(f"              alarms true {r['true_alarms']}, predicted {r['predicted_alarms']}")
        frame = f"precision {r['frame_precision']:.3f}  recall {r['frame_recall']:.3f}  F1 {r['frame_f1']:.3f}"
        print(f"by frame      {frame}")
