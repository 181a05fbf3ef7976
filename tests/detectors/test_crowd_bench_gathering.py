"""`watchpost bench gathering`: a crowd worker and the API in their own processes time a crowd's alert on the
console's stream and its clearing, beside what the rule itself implies."""

from __future__ import annotations

import json

import pytest

from detectors.crowd.bench_gathering import run_gathering_bench
from watchpost.cli import main


def test_each_gathering_reaches_the_console_after_the_dwell_and_clears_after_the_release(
    config, server_url, broker_url, capsys
):
    """Two crowds of twelve: each raised on the stream no sooner than the dwell, each cleared after it left, the
    stored zone counts either side of the threshold, and the JSON printed is the figures returned."""
    figures = run_gathering_bench(
        config=config,
        database_url=server_url,
        broker_url=broker_url,
        dwell_s=1.0,
        release_s=1.0,
        smooth_s=0.5,
        sample_fps=5.0,
        trials=2,
        as_json=True,
    )
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed == figures
    assert len(figures["trials"]) == 2
    for trial in figures["trials"]:
        assert trial["raised_s"] >= 1.0, "a 'for 1 s' rule raised sooner than 1 s after the crowd formed"
        assert trial["reason"] == "threshold"
        assert trial["cleared_s"] is not None and trial["cleared_s"] >= 1.0
        assert 0 < trial["stream_ms"] < trial["raised_s"] * 1000
    assert figures["zone_people_quiet"] < 6 < 9 < figures["zone_people_crowd"]
    assert figures["rule_raise_s"] >= figures["dwell_s"] and figures["rule_clear_s"] >= figures["release_s"]
    assert min(t["raised_s"] for t in figures["trials"]) <= figures["raised_median_s"] <= figures["raised_max_s"]


def test_with_a_growth_rule_a_crowd_that_forms_at_once_is_raised_before_the_dwell(config, server_url, broker_url):
    """Twelve people joining two: the growth alarm (2x within a minute) raises before a 5 s dwell has passed."""
    figures = run_gathering_bench(
        config=config,
        database_url=server_url,
        broker_url=broker_url,
        dwell_s=5.0,
        release_s=1.0,
        smooth_s=0.5,
        sample_fps=5.0,
        trials=1,
        growth=2.0,
        as_json=True,
    )
    (trial,) = figures["trials"]
    assert trial["reason"] == "growth" and trial["raised_s"] < 5.0
    assert figures["rule_raise_s"] < figures["dwell_s"] and figures["growth"] == 2.0


def test_bench_gathering_refuses_what_cannot_be_timed():
    """No trial, a negative smoothing, a zero dwell or a growth factor of 1 stops before anything starts."""
    for args in (["--trials", "0"], ["--smooth", "-1"], ["--dwell", "0"], ["--growth", "1"]):
        with pytest.raises(SystemExit) as stopped:
            main(["bench", "gathering", *args])
        assert stopped.value.code != 0
