"""``watchpost bench crowd``: how many cameras one crowd worker counts, beside what decoding alone allows.

In one run, on a synthetic clip (the generated scene of people-sized figures, enlarged to the
camera's resolution and written as H.264 (or H.265) where PyAV is installed, else as MPEG-4
part 2: no real footage) and a camera model calibrated
on the same scene as a real camera's would be (the density trees, at the working size):

1. the ceilings, in CPU time on this machine: decoding alone (every frame of a stream must be
   decoded, sampled or not), converting a sampled frame to a picture, and counting one; from
   them the cameras one core could serve if it did nothing else (``predicted_cameras_per_core``)
   and if it only decoded (``decode_only_cameras_per_core``, the physical limit);
2. crowd workers as deployed (one thread per camera, the clip played at its own frame rate as a
   live stream, every sample's zone counts written to a scratch database) with 1, 2, 4, ...
   cameras until they no longer keep up (at least 98 % of the offered frames decoded and of the
   offered samples counted), then between the last that did and the first that did not: the
   most cameras this machine keeps up with, and the CPU each one takes; in one worker process,
   and split over one process per core as ``crowd run --processes`` splits them.

A camera's cost is its stream's frame rate times the decoding cost plus ``sample_fps`` times
the counting cost: a camera's sub-stream (640x360 or so) decodes several times cheaper than its
1080p main stream and counts the same (the counter works at 640 wide), so ``--size`` shows both.
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from detectors.crowd import synthetic as syn
from detectors.crowd.camera import CameraModel
from detectors.crowd.counting import Counter
from detectors.crowd.service import CrowdWorker, counting_cameras, partition_cameras, usable_cores
from watchpost import store
from watchpost.config import WatchpostConfig
from watchpost.model import TOTAL_ZONE

__all__ = ["Ceilings", "Step", "run_crowd_bench"]

_CODECS = {"h264": "H.264", "h265": "H.265", "mp4v": "MPEG-4 part 2"}
_KEEP_UP = 0.98  # share of the offered frames and samples a worker must handle to keep up (a live stream
# read slower than it sends falls further behind every second)
_MAX_CAMERAS = 128
_ZONES_PICTURE = (1920, 1080)  # the bench cameras' zone is drawn on a 1080p picture, as the demo camera's


@dataclass(frozen=True, slots=True)
class Ceilings:
    """CPU cost per frame on this machine, each measured alone, and what they allow one core."""

    grab_ms: float  # decoding a frame (every frame of a stream)
    retrieve_ms: float  # converting a decoded frame to a BGR picture (sampled frames only)
    count_ms: float  # counting a picture: scaling to the working size, the features, the density model
    decode_fps_per_core: float  # frames a core decodes and converts when it does nothing else
    decode_only_cameras_per_core: float  # the physical limit: cameras a core could only decode
    predicted_cameras_per_core: float  # decoding every frame, converting and counting the sampled ones
    two_threads_count_speedup: float  # two threads counting at once against one: the interpreter lock's toll
    two_threads_samples_per_s: float  # what two counting threads of one process counted together


@dataclass(frozen=True, slots=True)
class Step:
    """One crowd worker with ``cameras`` cameras, measured over ``seconds`` after a warm-up."""

    cameras: int
    processes: int  # worker processes the cameras were split over
    seconds: float
    decoded_per_s: float
    offered_frames_per_s: float
    counted_per_s: float
    offered_samples_per_s: float
    observations: int  # whole-frame counts stored for the samples taken while measuring
    cpu_cores: float  # the worker's process CPU over the step, in cores
    behind_s: float  # at the end, the most a camera's reading lagged its stream's clock
    keeps_up: bool

    @property
    def cpu_per_camera(self) -> float:
        return self.cpu_cores / self.cameras


def run_crowd_bench(
    *,
    config: WatchpostConfig,
    database_url: str,
    size: tuple[int, int] = (1920, 1080),
    clip_fps: float = 25.0,
    sample_fps: float = 2.0,
    seconds: float = 10.0,
    warmup_s: float = 4.0,
    cameras: Sequence[int] | None = None,
    processes: Sequence[int] | None = None,
    model_path: Path | None = None,
    method: str = "trees",
    codec: str = "auto",
    as_json: bool = False,
) -> dict[str, object]:
    """Run the measurements and print them (or one JSON object); return the figures.

    ``cameras`` gives the worker sizes to measure (default: doubling until they fall behind,
    then halving the gap), for each number of worker ``processes`` (default: 1, and one per
    core); ``model_path`` counts with that camera model instead of one calibrated on the
    synthetic scene (``method`` ``trees`` as a real camera's, or ``linear``, cheaper).
    """
    out = (lambda _line: None) if as_json else (lambda line: print(line, flush=True))
    cores = usable_cores()
    processes = list(processes or sorted({1, cores}))
    width, height = size
    with tempfile.TemporaryDirectory(prefix="watchpost-bench-crowd-") as tmp:
        clip_s = warmup_s + seconds + 6.0  # longer than a step: a file that ends is reopened after a pause
        clip = Path(tmp) / "clip.mp4"
        started = time.monotonic()
        written = _write_clip(clip, size, clip_fps, clip_s, codec)
        mbit_s = clip.stat().st_size * 8 / clip_s / 1e6  # what the stream carries, the decoder's work
        out(
            f"bench crowd: a synthetic {width}x{height} clip at {clip_fps:g} fps ({_CODECS[written]}, {mbit_s:.2f}"
            f" Mbit/s, {clip_s:.0f} s, written in {time.monotonic() - started:.1f} s), sampled at {sample_fps:g} fps,"
            f" {cores} core(s)"
        )
        if written == "mp4v" and codec == "auto":
            out(
                "note: PyAV is not installed (pip install 'watchpost[bench]'), so the clip is MPEG-4 part 2, which"
                " decodes several times cheaper than a camera's H.264: the camera figures below overstate"
            )
        started = time.monotonic()
        if model_path is not None:
            model = CameraModel.load(model_path)
            out(f"model: {model_path} ({model.fit.get('method', '?')}, counting at {model.width}x{model.height})")
        else:
            model = syn.demo_model(size=size, method=method, frames=120)
            model_path = Path(tmp) / "bench.model"
            model.save(model_path)
            out(
                f"model: calibrated on the synthetic scene at {width}x{height} in {time.monotonic() - started:.0f} s"
                f" ({model.fit.get('method')}, counting at {model.width}x{model.height})"
            )
        ceilings = measure_ceilings(clip, model, clip_fps=clip_fps, sample_fps=sample_fps)
        out(
            f"ceilings, CPU per frame alone: decoding {ceilings.grab_ms:.2f} ms, converting a sampled frame"
            f" {ceilings.retrieve_ms:.2f} ms, counting it {ceilings.count_ms:.1f} ms; one core could decode"
            f" {ceilings.decode_only_cameras_per_core:.1f} such cameras, or decode and count"
            f" {ceilings.predicted_cameras_per_core:.1f}; two threads of one process count"
            f" {ceilings.two_threads_count_speedup:.2f}x as fast as one ({ceilings.two_threads_samples_per_s:.0f}"
            f" samples a second: counting holds the interpreter lock about"
            f" {100 / max(ceilings.two_threads_count_speedup, 1.0):.0f} % of its time)"
        )
        steps: list[Step] = []
        with store.scratch_database(database_url, config=config, prefix="watchpost_bench_crowd") as db_url:
            out("")
            out(
                "processes  cameras  decoded/s (offered)  counted/s (offered)  observations"
                "  CPU cores  per camera  behind  keeps up"
            )
            for p in processes:
                measure = lambda n, p=p: _step(  # noqa: E731
                    n, p, config, db_url, model_path, clip, clip_fps, sample_fps, seconds=seconds, warmup_s=warmup_s
                )
                steps += _ladder(cameras, measure, out, start=p)
    kept: dict[int, Step] = {}
    for st in steps:
        if st.keeps_up and st.cameras > getattr(kept.get(st.processes), "cameras", 0):
            kept[st.processes] = st
    figures: dict[str, object] = {
        "size": f"{width}x{height}",
        "clip_fps": clip_fps,
        "sample_fps": sample_fps,
        "codec": written,
        "clip_mbit_s": round(mbit_s, 3),
        "model_method": model.fit.get("method"),
        "working_size": f"{model.width}x{model.height}",
        "cores": cores,
        **asdict(ceilings),
        "steps": [{**asdict(st), "cpu_per_camera": round(st.cpu_per_camera, 4)} for st in steps],
        "cameras_kept_up": {str(p): kept[p].cameras if p in kept else 0 for p in processes},
        "cpu_per_camera": {str(p): round(kept[p].cpu_per_camera, 4) for p in processes if p in kept},
    }
    out("")
    for p in processes:
        best = kept.get(p)
        workers = f"{p} worker process{'es' if p > 1 else ''}"
        if best is None:
            out(f"{workers}: did not keep up with {min(st.cameras for st in steps if st.processes == p)} camera(s)")
            continue
        out(
            f"{workers} kept up with {best.cameras} camera(s) ({width}x{height} at {clip_fps:g} fps, counting"
            f" {sample_fps:g} a second): {100 * best.cpu_per_camera:.1f} % of a core per camera, {best.cpu_cores:.2f}"
            f" of {cores} cores busy"
        )
    out(
        f"ceiling: {ceilings.predicted_cameras_per_core:.1f} cameras per core decoding and counting,"
        f" {ceilings.decode_only_cameras_per_core:.1f} decoding alone"
    )
    if as_json:
        print(json.dumps(figures))
    return figures


# --- the clip and the ceilings --------------------------------------------------------------------


def _write_clip(path: Path, size: tuple[int, int], fps: float, seconds: float, codec: str = "auto") -> str:
    """The synthetic scene (people walking and standing), enlarged to ``size``, as a video file; the codec
    written: H.264 or H.265 as cameras send (x264 and x265 through PyAV, the ``av`` package, when it is
    installed: the OpenCV wheel writes neither), else MPEG-4 part 2 (``mp4v``). ``auto`` is H.264 where
    it can be written."""
    scene = syn.video(int(round(fps * seconds)), seed=3, max_people=16)
    frames = [cv2.resize(f.image, size, interpolation=cv2.INTER_LINEAR) for f in scene]
    if codec in ("auto", "h264", "h265"):
        try:
            import av  # optional: the bench's H.264/H.265 writer (the bench and test extras)
        except ImportError:
            if codec != "auto":
                raise RuntimeError(
                    f"cannot write {_CODECS[codec]} here: PyAV is needed (pip install av, or the bench extra:"
                    " pip install 'watchpost[bench]')"
                ) from None
        else:
            written = "h264" if codec == "auto" else codec
            write_camera_video(av, path, frames, fps, written)
            return written
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    if not writer.isOpened():
        raise RuntimeError("OpenCV cannot write an MPEG-4 file here (its FFmpeg lacks the mp4v encoder)")
    try:
        for image in frames:
            writer.write(image)
    finally:
        writer.release()
    return "mp4v"


def write_camera_video(av: Any, path: Path, frames: Sequence[np.ndarray], fps: float, codec: str) -> None:
    """``frames`` (BGR) as an MP4 file of ``codec`` ("h264" or "h265") encoded as an IP camera's stream is:
    4 Mbit/s at 1080p (scaled by the picture's area), a key frame every second, no B-frames (cameras
    send none, so that a late joiner decodes at once); H.265 tagged ``hvc1``, as RTP payloaders take it."""
    height, width = frames[0].shape[:2]
    with av.open(str(path), "w") as out:
        stream = out.add_stream({"h264": "libx264", "h265": "libx265"}[codec], rate=round(fps))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.bit_rate = max(250_000, round(4_000_000 * width * height / (1920 * 1080)))
        keyint = max(1, round(fps))
        if codec == "h264":
            stream.options = {"preset": "veryfast", "profile": "main", "g": str(keyint), "bf": "0"}
        else:
            stream.codec_tag = "hvc1"
            stream.options = {"preset": "veryfast", "x265-params": f"log-level=error:keyint={keyint}:bframes=0"}
        for image in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def _cpu_per_item(work: Callable[[], int]) -> float:
    """CPU seconds (the whole process, every thread) per item that ``work`` handled."""
    before = time.process_time()
    n = work()
    return (time.process_time() - before) / max(n, 1)


def measure_ceilings(clip: Path, model: CameraModel, *, clip_fps: float, sample_fps: float) -> Ceilings:
    """Decoding, converting and counting costs of ``clip``'s frames, each alone, in CPU time, and the
    cameras of that frame rate, counted ``sample_fps`` times a second, that one core could serve."""
    sample_every = max(1, round(clip_fps / sample_fps))

    def grab_all() -> int:
        cap = cv2.VideoCapture(str(clip))
        n = 0
        while cap.grab():
            n += 1
        cap.release()
        return n

    pictures: list[np.ndarray] = []

    def read_all() -> int:
        cap = cv2.VideoCapture(str(clip))
        n = 0
        while True:
            ok, image = cap.read()
            if not ok:
                break
            if n % sample_every == 0 and len(pictures) < 40:
                pictures.append(image)
            n += 1
        cap.release()
        return n

    grab_all()  # the file in the page cache, the decoder's libraries loaded
    grab = _cpu_per_item(grab_all)
    read = _cpu_per_item(read_all)
    counter = Counter(model)
    counter.count(pictures[0])  # the trees' first prediction sets up LightGBM

    def count_all() -> int:
        for p in pictures:
            counter.count(p)
        return len(pictures)

    count = _cpu_per_item(count_all)
    # The same pictures counted by two threads at once (a worker's cameras share one interpreter):
    # how much of counting runs outside the interpreter lock, so how far one process can go.
    counters = [Counter(model), Counter(model)]
    for c in counters:
        c.count(pictures[0])
    started = time.perf_counter()
    count_all()
    one = time.perf_counter() - started
    threads = [threading.Thread(target=lambda c=c: [c.count(p) for p in pictures]) for c in counters]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    two = time.perf_counter() - started
    retrieve = max(read - grab, 0.0)
    per_camera_s = clip_fps * grab + sample_fps * (retrieve + count)
    return Ceilings(
        grab_ms=round(grab * 1000, 3),
        retrieve_ms=round(retrieve * 1000, 3),
        count_ms=round(count * 1000, 3),
        decode_fps_per_core=round(1 / read, 1),
        decode_only_cameras_per_core=round(1 / (clip_fps * grab), 1),
        predicted_cameras_per_core=round(1 / per_camera_s, 1),
        two_threads_count_speedup=round(2 * one / two, 2),
        two_threads_samples_per_s=round(2 / two * len(pictures), 1),
    )


# --- the worker --------------------------------------------------------------------------------------


def _bench_config(config: WatchpostConfig, n: int, clip: Path, sample_fps: float, tag: str) -> WatchpostConfig:
    """``config`` with ``n`` cameras reading ``clip`` as a live stream, each with one zone and a gathering rule."""
    doc = config.model_dump(mode="json")
    site = doc["sites"][0]["id"]
    w, h = _ZONES_PICTURE
    doc["devices"] = [d for d in doc["devices"] if d.get("crowd") is None] + [
        {
            "id": f"bench-{tag}-cam-{i:03d}",
            "kind": "camera",
            "site": site,
            "crowd": {
                "source": str(clip),
                "sample_fps": sample_fps,
                "model": "synthetic",  # replaced by the bench's model (CrowdWorker(models=...))
                "frame_size": [w, h],
                "picture": False,
            },
            "zones": [
                {
                    "id": "square",
                    "polygon": [[w // 16, h // 5], [w - w // 16, h // 5], [w - w // 16, h - 20], [w // 16, h - 20]],
                    "gathering": {"threshold": 12, "dwell_s": 5, "release_s": 5, "smooth_s": 2},
                }
            ],
        }
        for i in range(n)
    ]
    return WatchpostConfig.model_validate(doc)


def _step(
    n: int,
    processes: int,
    config: WatchpostConfig,
    db_url: str,
    model_file: Path,
    clip: Path,
    clip_fps: float,
    sample_fps: float,
    *,
    seconds: float,
    warmup_s: float,
) -> Step:
    """``n`` cameras over ``processes`` worker processes (as ``crowd run --processes`` splits them),
    measured together after a warm-up."""
    tag = uuid.uuid4().hex[:6]
    cfg = _bench_config(config, n, clip, sample_fps, tag)
    groups = partition_cameras(counting_cameras(cfg), processes)
    with store.connect(db_url) as conn:
        store.sync_configuration(conn, config=cfg)
    ctx = mp.get_context("spawn")  # a fresh interpreter each, as a worker process of its own
    go, results = ctx.Event(), ctx.Queue()
    doc = cfg.model_dump(mode="json")
    children = [
        ctx.Process(
            target=_worker_process,
            args=(doc, db_url, str(model_file), ids, f"bench-{tag}-{i}", go, results, warmup_s, seconds),
            daemon=True,
        )
        for i, ids in enumerate(groups)
    ]
    for child in children:
        child.start()
    try:
        for _ in children:
            ready = results.get(timeout=120)
            if ready[0] != "ready":
                raise RuntimeError(f"a bench worker process failed: {ready[1]}")
        go.set()
        done = [results.get(timeout=warmup_s + seconds + 60) for _ in children]
    finally:
        for child in children:
            child.join(15)
            if child.is_alive():
                child.kill()
    failed = [d[1] for d in done if d[0] != "done"]
    if failed:
        raise RuntimeError(f"a bench worker process failed: {failed[0]}")
    observations = 0
    with store.connect(db_url) as conn:
        for _kind, ids, *_counts, w0, w1, _behind_s in done:
            row = conn.execute(
                "SELECT count(*) FROM observations WHERE device_id = ANY(%s) AND zone = %s"
                " AND at >= to_timestamp(%s) AND at < to_timestamp(%s)",
                (ids, TOTAL_ZONE, w0, w1),
            ).fetchone()
            observations += int(row[0]) if row else 0
    elapsed = max(d[5] for d in done)
    decoded = sum(d[2] / d[5] for d in done)
    counted = sum(d[3] / d[5] for d in done)
    cpu = sum(d[4] / d[5] for d in done)
    offered_frames, offered_samples = n * clip_fps, n * sample_fps
    return Step(
        cameras=n,
        processes=len(groups),
        seconds=round(elapsed, 2),
        decoded_per_s=round(decoded, 1),
        offered_frames_per_s=offered_frames,
        counted_per_s=round(counted, 2),
        offered_samples_per_s=offered_samples,
        observations=observations,
        cpu_cores=round(cpu, 3),
        behind_s=round(max(d[8] for d in done), 2),
        keeps_up=decoded >= _KEEP_UP * offered_frames and counted >= _KEEP_UP * offered_samples,
    )


def _worker_process(
    doc: dict[str, object],
    db_url: str,
    model_file: str,
    ids: list[str],
    name: str,
    go: Any,
    results: Any,
    warmup_s: float,
    seconds: float,
) -> None:
    """One crowd worker process of a step: start, wait for the others, warm up, measure, report."""
    try:
        logging.getLogger("watchpost.crowd").setLevel(logging.ERROR)  # "falling behind" is the table's column
        model = CameraModel.load(Path(model_file))
        worker = CrowdWorker(
            config=WatchpostConfig.model_validate(doc),
            database_url=db_url,
            broker=None,
            name=name,
            cameras=ids,
            models=dict.fromkeys(ids, model),
        ).start()
    except Exception as exc:  # the process boundary: say why to the bench
        results.put(("failed", f"{type(exc).__name__}: {exc}"))
        return
    try:
        results.put(("ready", name))
        go.wait(120)
        time.sleep(warmup_s)
        d0, c0, cpu0, t0, w0 = *_totals(worker), time.process_time(), time.monotonic(), time.time()
        time.sleep(seconds)
        d1, c1, cpu1, t1, w1 = *_totals(worker), time.process_time(), time.monotonic(), time.time()
        behind = _behind(worker)
    except Exception as exc:  # the process boundary: say why to the bench
        results.put(("failed", f"{type(exc).__name__}: {exc}"))
        return
    finally:
        worker.stop()  # writes what it still holds
    results.put(("done", ids, d1 - d0, c1 - c0, cpu1 - cpu0, t1 - t0, w0, w1, behind))


def _totals(worker: CrowdWorker) -> tuple[int, int]:
    """Frames decoded and frames given out to counting, over the worker's cameras."""
    healths = [h for h in (c.source_health for c in worker.cameras) if h is not None]
    return sum(h.decoded for h in healths), sum(h.frames for h in healths)


def _behind(worker: CrowdWorker) -> float:
    """The most any of the worker's cameras is behind its stream now (seconds)."""
    return max((h.behind_s for h in (c.source_health for c in worker.cameras) if h is not None), default=0.0)


def _ladder(
    given: Sequence[int] | None, measure: Callable[[int], Step], out: Callable[[str], None], *, start: int = 1
) -> Iterator[Step]:
    """Measure the given sizes, or double from ``start`` until the workers fall behind, then bisect the gap."""

    def run(n: int) -> Step:
        s = measure(n)
        out(
            f"{s.processes:9d}  {s.cameras:7d}  {s.decoded_per_s:8.1f} ({s.offered_frames_per_s:7.1f})"
            f"  {s.counted_per_s:9.2f} ({s.offered_samples_per_s:6.1f})  {s.observations:12d}"
            f"  {s.cpu_cores:9.2f}  {100 * s.cpu_per_camera:8.1f} %  {s.behind_s:4.1f} s"
            f"  {'yes' if s.keeps_up else 'no'}"
        )
        return s

    if given:
        for n in given:
            yield run(n)
        return
    good, bad = 0, None
    n = start
    while n <= _MAX_CAMERAS:
        s = run(n)
        yield s
        if not s.keeps_up:
            bad = n
            break
        good, n = n, n * 2
    while bad is not None and bad - good > 1 and (bad - good) / max(good, 1) > 0.15:
        n = (good + bad) // 2
        s = run(n)
        yield s
        good, bad = (n, bad) if s.keeps_up else (good, n)
