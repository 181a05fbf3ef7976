"""Scores of a camera model against labelled frames: count errors and gathering alarms."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from detectors.crowd.gathering import GatheringAlarm, GatheringCleared, GatheringDetector, GatheringRule

__all__ = ["AlarmScores", "Episode", "count_errors", "draw_plot", "episodes", "score_alarms"]


@dataclass(frozen=True, slots=True)
class Episode:
    """A gathering from its alarm to its clearance (``end`` is the last sample when never cleared)."""

    start: float
    end: float


@dataclass(frozen=True, slots=True)
class AlarmScores:
    """Predicted against true gathering episodes, by episode and by frame."""

    precision: float
    recall: float
    f1: float
    frame_precision: float
    frame_recall: float
    frame_f1: float
    true_episodes: int
    predicted_episodes: int


def count_errors(predicted: Sequence[float], true: Sequence[float]) -> tuple[float, float, float]:
    """``(mae, rmse, bias)`` of predicted counts."""
    e = np.asarray(predicted, np.float64) - np.asarray(true, np.float64)
    if e.size == 0:
        return math.nan, math.nan, math.nan
    return float(np.abs(e).mean()), float(np.sqrt((e**2).mean())), float(e.mean())


def episodes(times: Sequence[float], counts: Sequence[float], rule: GatheringRule, zone: str = "zone") -> list[Episode]:
    """Run the gathering logic over a count series; the episodes it raises."""
    detector = GatheringDetector(zone, rule)
    out: list[Episode] = []
    start: float | None = None
    for t, c in zip(times, counts, strict=True):
        event = detector.update(t, c)
        if isinstance(event, GatheringAlarm):
            start = t
        elif isinstance(event, GatheringCleared) and start is not None:
            out.append(Episode(start, t))
            start = None
    if start is not None and times:
        out.append(Episode(start, times[-1]))
    return out


def _overlaps(a: Episode, b: Episode, slack: float) -> bool:
    return a.start <= b.end + slack and b.start <= a.end + slack


def _f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r > 0 else 0.0


def score_alarms(
    predicted: Sequence[Episode], true: Sequence[Episode], times: Sequence[float], *, slack: float
) -> AlarmScores:
    """Episode scores and frame scores of predicted against true gathering episodes.

    Episodes are matched one to one, in time order: a true episode is found by the first
    unmatched predicted episode that overlaps it (``slack`` allows for the one starting a
    little after the other ended). One long alarm over two true gatherings finds one of them.
    With no true and no predicted episode, precision and recall are 1: nothing to find, nothing false.
    """
    used: set[int] = set()
    matched = 0
    for t in sorted(true, key=lambda e: e.start):
        for i, p in enumerate(predicted):
            if i not in used and _overlaps(p, t, slack):
                used.add(i)
                matched += 1
                break
    precision = matched / len(predicted) if predicted else (1.0 if not true else 0.0)
    recall = matched / len(true) if true else 1.0
    t_arr = np.asarray(times, np.float64)

    def on(eps: Sequence[Episode]) -> np.ndarray:
        mask = np.zeros(t_arr.shape, bool)
        for e in eps:
            mask |= (t_arr >= e.start) & (t_arr < e.end if e.end > e.start else t_arr <= e.end)
        return mask

    mp, mt = on(predicted), on(true)
    tp = int((mp & mt).sum())
    fp_ = tp / int(mp.sum()) if mp.any() else (1.0 if not mt.any() else 0.0)
    fr = tp / int(mt.sum()) if mt.any() else 1.0
    return AlarmScores(
        precision=precision,
        recall=recall,
        f1=_f1(precision, recall),
        frame_precision=fp_,
        frame_recall=fr,
        frame_f1=_f1(fp_, fr),
        true_episodes=len(true),
        predicted_episodes=len(predicted),
    )


def draw_plot(
    true: Sequence[float],
    predicted: Sequence[float],
    *,
    title: str,
    zone_true: Sequence[float] | None = None,
    zone_predicted: Sequence[float] | None = None,
    true_episodes: Sequence[Episode] = (),
    predicted_episodes: Sequence[Episode] = (),
    threshold: float | None = None,
    first_index: int = 1,
    size: tuple[int, int] = (1200, 500),
) -> np.ndarray:
    """Counts over frames as an image: true black, predicted blue, zone counts and alarm bands below."""
    width, height = size
    img = np.full((height, width, 3), 255, np.uint8)
    left, right, top, bottom = 50, 15, 30, 70
    series = [np.asarray(true, float), np.asarray(predicted, float)]
    if zone_true is not None and zone_predicted is not None:
        series += [np.asarray(zone_true, float), np.asarray(zone_predicted, float)]
    n = len(series[0])
    ymax = max(1.0, max(float(s.max()) for s in series if s.size)) * 1.05
    pw, ph = width - left - right, height - top - bottom

    def xy(i: float, v: float) -> tuple[int, int]:
        return int(left + pw * i / max(n - 1, 1)), int(top + ph * (1 - v / ymax))

    for v in np.arange(0, ymax, 10 if ymax > 30 else 5):
        cv2.line(img, xy(0, v), xy(n - 1, v), (225, 225, 225), 1)
        cv2.putText(img, f"{v:.0f}", (5, xy(0, v)[1] + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (90, 90, 90), 1, cv2.LINE_AA)
    if threshold is not None:
        cv2.line(img, xy(0, threshold), xy(n - 1, threshold), (0, 0, 200), 1, cv2.LINE_AA)
    colours = [(0, 0, 0), (200, 90, 0), (90, 90, 90), (0, 160, 255)]
    for s, colour in zip(series, colours, strict=False):
        pts = np.array([xy(i, v) for i, v in enumerate(s)], np.int32).reshape(-1, 1, 2)
        cv2.polylines(img, [pts], False, colour, 1, cv2.LINE_AA)
    for row, (eps, colour) in enumerate(((true_episodes, (0, 0, 0)), (predicted_episodes, (0, 0, 220)))):
        y0 = height - bottom + 18 + row * 14
        for e in eps:
            x0 = xy(e.start - first_index, 0)[0]
            x1 = max(xy(e.end - first_index, 0)[0], x0 + 1)
            cv2.rectangle(img, (x0, y0), (x1, y0 + 9), colour, -1)
    legend = "black: true   blue: predicted   grey/orange: zone true/predicted   bands: true / predicted alarms"
    cv2.putText(img, title, (left, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, legend, (left, height - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (60, 60, 60), 1, cv2.LINE_AA)
    label = f"frame {first_index} .. {first_index + n - 1}"
    cv2.putText(img, label, (width - 200, height - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (60, 60, 60), 1, cv2.LINE_AA)
    return img
