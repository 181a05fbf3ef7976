"""Dispatch tests run at any hour: the rules' night hours are moved away from now (night severities are
tested where the hour is chosen, in tests/test_scenarios.py and the rule tests)."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from watchpost.config import WatchpostConfig


@pytest.fixture
def config(config: WatchpostConfig) -> WatchpostConfig:
    """The test configuration with every rule's night window two to three hours from now, in every site's zone."""
    local = datetime.now(ZoneInfo(config.timezone))
    assert all(s.timezone in (None, config.timezone) for s in config.sites), "sites in another zone: move them too"
    start, end = (local + timedelta(hours=2)).strftime("%H:%M"), (local + timedelta(hours=3)).strftime("%H:%M")
    rules = [
        r.model_copy(update={"night": r.night.model_copy(update={"start": start, "end": end})}) if r.night else r
        for r in config.rules
    ]
    return config.model_copy(update={"rules": rules})
