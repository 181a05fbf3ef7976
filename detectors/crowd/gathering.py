"""Gathering alarms per zone from a zone's people counts over time. Pure Python.

A :class:`GatheringDetector` takes one count per sample and says when a gathering starts and
ends:

- the count is smoothed (mean over ``smooth_s``);
- at or above the raise level for ``dwell_s`` raises (the level is ``threshold`` people, or
  ``density_per_m2`` times the zone's area, whichever is lower);
- a crowd growing by ``growth_factor`` within ``growth_window_s`` raises at once;
- once raised, only a smoothed count below the (lower) release level for ``release_s`` clears
  it: hysteresis, so a count wavering around the threshold gives one alarm, not a flurry;
- after clearing, no new alarm for ``cooldown_s``.

Times are seconds (any monotonic unit works: the evaluation uses frame numbers).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "AlarmReason",
    "GatheringAlarm",
    "GatheringCleared",
    "GatheringDetector",
    "GatheringEvent",
    "GatheringRule",
    "Trend",
]


class AlarmReason(StrEnum):
    """Which rule raised a gathering alarm."""

    THRESHOLD = "threshold"  # enough people for the dwell time
    DENSITY = "density"  # enough people per square metre for the dwell time
    GROWTH = "growth"  # the crowd grew by the configured factor within the window


@dataclass(frozen=True, slots=True)
class GatheringRule:
    """When a zone's crowd is a gathering. At least one of threshold, density or growth is needed."""

    threshold: float | None = None  # people (smoothed) at or above which a gathering starts
    release: float | None = None  # below this it may end; default 80 % of the raise level
    dwell_s: float = 30.0
    release_s: float = 30.0
    cooldown_s: float = 60.0
    smooth_s: float = 5.0  # moving-average window; 0 = the latest count alone
    growth_factor: float | None = None  # e.g. 2.0: the crowd doubled
    growth_window_s: float = 60.0
    growth_min_count: float = 5.0  # growth alarms only from this many people on (1 -> 2 is no crowd)
    density_per_m2: float | None = None  # needs the zone's area
    release_density_per_m2: float | None = None

    def __post_init__(self) -> None:
        if self.threshold is None and self.density_per_m2 is None and self.growth_factor is None:
            raise ValueError("a gathering rule needs a threshold, a density or a growth factor")
        for name in ("dwell_s", "release_s", "cooldown_s", "smooth_s", "growth_window_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if self.threshold is not None and self.threshold <= 0:
            raise ValueError("threshold must be positive")
        if self.release is not None and self.threshold is not None and self.release > self.threshold:
            raise ValueError("release must not exceed threshold (it is the lower level of the hysteresis)")
        if self.growth_factor is not None and self.growth_factor <= 1:
            raise ValueError("growth_factor must be above 1")


@dataclass(frozen=True, slots=True)
class Trend:
    """How the smoothed count moved over the last window: slope and the counts themselves."""

    slope_per_min: float
    window_s: float
    counts: tuple[float, ...]  # smoothed counts, oldest first (at most 12, evenly picked)


@dataclass(frozen=True, slots=True)
class GatheringAlarm:
    """A gathering started in ``zone``."""

    zone: str
    time: float
    count: float  # the latest count
    smoothed: float
    reason: AlarmReason
    trend: Trend
    since: float  # when the condition first held
    density_per_m2: float | None = None


@dataclass(frozen=True, slots=True)
class GatheringCleared:
    """The gathering in ``zone`` ended."""

    zone: str
    time: float
    count: float
    smoothed: float
    raised_at: float
    duration_s: float


GatheringEvent = GatheringAlarm | GatheringCleared


class GatheringDetector:
    """The gathering state of one zone; feed it with :meth:`update`."""

    def __init__(self, zone: str, rule: GatheringRule, *, area_m2: float | None = None) -> None:
        if rule.density_per_m2 is not None and not area_m2:
            raise ValueError(f"zone {zone!r}: a density rule needs the zone's area in square metres")
        self.zone = zone
        self.rule = rule
        self.area_m2 = area_m2
        levels = []
        if rule.threshold is not None:
            levels.append((rule.threshold, AlarmReason.THRESHOLD))
        if rule.density_per_m2 is not None and area_m2:
            levels.append((rule.density_per_m2 * area_m2, AlarmReason.DENSITY))
        self._raise = min(levels, key=lambda lv: lv[0]) if levels else None
        self._release = self._release_level()
        self._samples: deque[tuple[float, float]] = deque()
        self._history: deque[tuple[float, float]] = deque()
        self._above_since: float | None = None
        self._below_since: float | None = None
        self._raised_at: float | None = None
        self._cleared_at: float | None = None
        self._smoothed = 0.0

    def _release_level(self) -> float:
        r = self.rule
        candidates = []
        if r.release is not None:
            candidates.append(r.release)
        elif r.threshold is not None:
            candidates.append(0.8 * r.threshold)
        if r.density_per_m2 is not None and self.area_m2:
            density = r.release_density_per_m2 if r.release_density_per_m2 is not None else 0.8 * r.density_per_m2
            candidates.append(density * self.area_m2)
        return min(candidates) if candidates else r.growth_min_count

    @property
    def smoothed(self) -> float:
        """The latest smoothed count (0 before the first sample)."""
        return self._smoothed

    @property
    def active(self) -> bool:
        """Whether a gathering is in progress."""
        return self._raised_at is not None

    def update(self, time: float, count: float) -> GatheringEvent | None:
        """Take the zone's count at ``time``; return the alarm or clearance it causes, if any."""
        r = self.rule
        self._samples.append((time, count))
        while self._samples and self._samples[0][0] < time - r.smooth_s:
            self._samples.popleft()
        smoothed = sum(c for _, c in self._samples) / len(self._samples)
        self._smoothed = smoothed
        self._history.append((time, smoothed))
        keep = max(r.growth_window_s, r.dwell_s)
        while self._history and self._history[0][0] < time - keep:
            self._history.popleft()

        if self._raised_at is not None:
            if smoothed < self._release:
                if self._below_since is None:
                    self._below_since = time
                if time - self._below_since >= r.release_s:
                    return self._clear(time, count, smoothed)
            else:
                self._below_since = None
            return None

        if self._raise is not None and smoothed >= self._raise[0]:
            if self._above_since is None:
                self._above_since = time
        else:
            self._above_since = None
        if self._cleared_at is not None and time - self._cleared_at < r.cooldown_s:
            return None
        if self._above_since is not None and self._raise is not None and time - self._above_since >= r.dwell_s:
            return self._alarm(time, count, smoothed, self._raise[1], self._above_since)
        if r.growth_factor is not None and smoothed >= r.growth_min_count:
            window = [(t, s) for t, s in self._history if t >= time - r.growth_window_s]
            base_time, base = min(window, key=lambda ts: ts[1])
            if smoothed >= r.growth_factor * max(base, 1.0):
                return self._alarm(time, count, smoothed, AlarmReason.GROWTH, base_time)
        return None

    def _alarm(self, time: float, count: float, smoothed: float, reason: AlarmReason, since: float) -> GatheringAlarm:
        self._raised_at = time
        self._below_since = None
        self._above_since = None
        return GatheringAlarm(
            zone=self.zone,
            time=time,
            count=count,
            smoothed=smoothed,
            reason=reason,
            trend=self.trend(),
            since=since,
            density_per_m2=smoothed / self.area_m2 if self.area_m2 else None,
        )

    def _clear(self, time: float, count: float, smoothed: float) -> GatheringCleared:
        raised = self._raised_at if self._raised_at is not None else time
        self._raised_at = None
        self._below_since = None
        self._cleared_at = time
        return GatheringCleared(
            zone=self.zone, time=time, count=count, smoothed=smoothed, raised_at=raised, duration_s=time - raised
        )

    def trend(self) -> Trend:
        """Slope (least squares, people per minute) and counts of the smoothed count over the window."""
        pts = list(self._history)
        window = (pts[-1][0] - pts[0][0]) if pts else 0.0
        slope = 0.0
        if len(pts) >= 2 and window > 0:
            mt = sum(t for t, _ in pts) / len(pts)
            mc = sum(c for _, c in pts) / len(pts)
            var = sum((t - mt) ** 2 for t, _ in pts)
            if var > 0:
                slope = 60.0 * sum((t - mt) * (c - mc) for t, c in pts) / var
        step = max(1, -(-len(pts) // 12))
        picked = pts[::-1][::step][::-1]
        return Trend(slope_per_min=slope, window_s=window, counts=tuple(round(c, 2) for _, c in picked))
