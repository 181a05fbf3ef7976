"""Gathering alarms per zone: dwell, hysteresis, release, cooldown, growth and density rules."""

from __future__ import annotations

import random

import pytest

from detectors.crowd.gathering import (
    AlarmReason,
    GatheringAlarm,
    GatheringCleared,
    GatheringDetector,
    GatheringRule,
)


def _run(detector: GatheringDetector, counts: list[float], start: float = 0.0) -> list[tuple[float, object]]:
    events = []
    for i, c in enumerate(counts):
        event = detector.update(start + i, c)
        if event is not None:
            events.append((start + i, event))
    return events


def test_alarm_is_raised_only_after_the_dwell_time():
    """A crowd at the threshold raises once it has stayed for the dwell time, not before."""
    det = GatheringDetector("square", GatheringRule(threshold=20, dwell_s=30, smooth_s=0))
    events = _run(det, [5] * 10 + [25] * 60)
    assert len(events) == 1
    t, alarm = events[0]
    assert isinstance(alarm, GatheringAlarm)
    assert t == 10 + 30 and alarm.since == 10
    assert alarm.reason is AlarmReason.THRESHOLD and alarm.zone == "square" and alarm.count == 25


def test_a_short_crowd_shorter_than_the_dwell_raises_nothing():
    """A crowd that leaves before the dwell time has passed gives no alarm."""
    det = GatheringDetector("square", GatheringRule(threshold=20, dwell_s=30, smooth_s=0))
    assert _run(det, [5] * 10 + [25] * 29 + [5] * 30) == []


def test_alarm_clears_after_the_release_time_below_the_lower_level():
    """Once raised, the alarm clears only after the count stayed below the release level for the release time."""
    rule = GatheringRule(threshold=20, release=15, dwell_s=10, release_s=20, smooth_s=0)
    det = GatheringDetector("square", rule)
    events = _run(det, [25] * 30 + [17] * 40 + [10] * 40)
    assert [type(e) for _, e in events] == [GatheringAlarm, GatheringCleared]
    t_clear, cleared = events[1]
    assert t_clear == 70 + 20  # 17 is below 20 but not below the release level 15
    assert isinstance(cleared, GatheringCleared) and cleared.raised_at == 10 and cleared.duration_s == 80
    assert not det.active


def test_count_oscillating_around_the_threshold_gives_one_alarm():
    """A count wavering across the threshold (noise) raises one alarm and does not flap."""
    det = GatheringDetector("square", GatheringRule(threshold=20, dwell_s=10, release_s=10, smooth_s=4))
    rng = random.Random(3)
    counts = [round(20.5 + rng.gauss(0, 2.5)) for _ in range(600)]
    crossings = sum((a >= 20) != (b >= 20) for a, b in zip(counts, counts[1:], strict=False))
    assert crossings > 100  # the raw count really does cross the threshold all the time
    events = _run(det, counts)
    assert len(events) == 1 and isinstance(events[0][1], GatheringAlarm)
    assert det.active


def test_unsmoothed_flicker_between_release_and_threshold_does_not_re_alarm():
    """Even without smoothing, a count swinging between the release and raise levels keeps one alarm."""
    det = GatheringDetector("square", GatheringRule(threshold=20, dwell_s=5, release_s=5, smooth_s=0))
    counts = [25] * 10 + [17, 22] * 100
    events = _run(det, counts)
    assert len(events) == 1


def test_cooldown_delays_a_new_alarm_after_clearing():
    """After a clearance no alarm is raised within the cooldown, and one is raised after it."""
    rule = GatheringRule(threshold=20, dwell_s=5, release_s=5, cooldown_s=60, smooth_s=0)
    det = GatheringDetector("square", rule)
    events = _run(det, [25] * 10 + [5] * 10 + [25] * 100)
    kinds = [(t, type(e).__name__) for t, e in events]
    assert kinds[0] == (5, "GatheringAlarm")
    assert kinds[1] == (15, "GatheringCleared")
    assert kinds[2] == (75, "GatheringAlarm")  # cleared at 15, cooldown to 75, above since 20


def test_growth_rule_raises_when_the_crowd_doubles_within_the_window():
    """A crowd doubling within the growth window raises a growth alarm below the count threshold."""
    rule = GatheringRule(threshold=50, growth_factor=2.0, growth_window_s=60, dwell_s=30, smooth_s=0)
    det = GatheringDetector("street", rule)
    counts = [6.0] * 30 + [6.0 + i * 0.4 for i in range(40)]
    events = _run(det, counts)
    assert len(events) == 1
    t, alarm = events[0]
    assert isinstance(alarm, GatheringAlarm) and alarm.reason is AlarmReason.GROWTH
    assert alarm.smoothed >= 12 and alarm.trend.slope_per_min > 0
    assert alarm.trend.counts[0] <= alarm.trend.counts[-1]


def test_slow_growth_outside_the_window_is_not_a_growth_alarm():
    """Doubling over much longer than the window raises no growth alarm."""
    rule = GatheringRule(growth_factor=2.0, growth_window_s=60, smooth_s=0)
    det = GatheringDetector("street", rule)
    counts = [6.0 + i * 0.01 for i in range(700)]  # 6 -> 13 over 700 s
    assert _run(det, counts) == []


def test_density_rule_uses_the_zone_area():
    """With 2 people/m2 on a 10 m2 zone, 20 people raise a density alarm that reports the density."""
    rule = GatheringRule(density_per_m2=2.0, dwell_s=5, smooth_s=0)
    det = GatheringDetector("kiosk", rule, area_m2=10.0)
    events = _run(det, [15] * 10 + [21] * 10)
    assert len(events) == 1
    alarm = events[0][1]
    assert isinstance(alarm, GatheringAlarm) and alarm.reason is AlarmReason.DENSITY
    assert alarm.density_per_m2 == pytest.approx(2.1)


def test_rules_are_validated():
    """A rule without any trigger, an inverted hysteresis or a density rule without an area is refused."""
    with pytest.raises(ValueError, match="needs a threshold"):
        GatheringRule()
    with pytest.raises(ValueError, match="release must not exceed"):
        GatheringRule(threshold=10, release=12)
    with pytest.raises(ValueError, match="growth_factor"):
        GatheringRule(growth_factor=1.0)
    with pytest.raises(ValueError, match="area"):
        GatheringDetector("z", GatheringRule(density_per_m2=2.0))
