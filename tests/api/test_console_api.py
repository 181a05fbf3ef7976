"""What the console needs of the API: its pages and assets, its settings, and the units it may send."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from api.routes.console import ASSETS, PAGES
from dispatch import actions
from tests.api.conftest import raise_manual
from watchpost import store
from watchpost.config import ConfigError, MapConfig


def test_a_browser_gets_the_console_page_and_an_api_client_the_index(api):
    """GET / answers a browser (Accept: text/html) with the console, without a credential; an API client still
    needs one and gets the JSON index, which links the console and the patrol view."""
    anonymous = api.client()
    page = anonymous.get("/", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="/assets/js/console.js">' in page.text
    assert page.headers["cache-control"] == "no-cache"
    assert anonymous.get("/").status_code == 401
    index = api.client("operator").get("/")
    assert index.status_code == 200 and index.json()["links"]["patrol"] == "/patrol"


def test_the_patrol_page_and_the_assets_are_served_from_the_repository(api):
    """/patrol is the phone page; /assets serves the scripts, styles and icon with their types; nothing else."""
    c = api.client()
    patrol = c.get("/patrol")
    assert patrol.status_code == 200 and "/assets/js/patrol.js" in patrol.text
    js = c.get("/assets/js/console.js")
    assert js.status_code == 200 and "javascript" in js.headers["content-type"]
    assert c.get("/assets/console.css").headers["content-type"].startswith("text/css")
    assert c.get("/assets/icon.svg").headers["content-type"].startswith("image/svg+xml")
    assert c.get("/assets/js/missing.js").status_code == 404
    assert c.get("/assets/../app.py").status_code == 404


def test_every_script_and_asset_a_page_names_exists_and_nothing_comes_from_elsewhere():
    """Each page's assets and each module's imports resolve to files of the repository; no page or script
    names a URL of another host (no CDN, nothing fetched at run time)."""
    for page in ("index.html", "patrol.html"):
        html = (PAGES / page).read_text(encoding="utf-8")
        for ref in re.findall(r'(?:src|href)="(/assets/[^"]+)"', html):
            assert (ASSETS / ref.removeprefix("/assets/")).is_file(), (page, ref)
        assert not re.search(r'(?:src|href)="(?:https?:)?//', html), page
    for script in (ASSETS / "js").glob("*.js"):
        text = script.read_text(encoding="utf-8")
        for ref in re.findall(r'from "(\./[^"]+)"', text):
            assert (script.parent / ref).resolve().is_file(), (script.name, ref)
        assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", text), script.name


def test_console_settings_give_the_policy_and_the_map(start_api, api_config):
    """/console/settings carries the time zone, the 1-3-5 deadlines and tiers, the outcomes, and the tile server
    only when one is configured."""
    settings = start_api().client("auditor").get("/console/settings").json()
    assert settings["timezone"] == "Asia/Shanghai"
    assert settings["tier_deadlines_s"] == [60, 180, 300]
    assert settings["severity_tiers"]["critical"] == [1, 2, 3]
    assert "false_alarm" in settings["outcomes"]
    assert settings["map"]["tile_url"] is None
    tiles = api_config.model_copy(update={"map": MapConfig(tile_url="http://tiles.local/{z}/{x}/{y}.png")})
    settings = start_api(config=tiles).client("patrol").get("/console/settings").json()
    assert settings["map"]["tile_url"] == "http://tiles.local/{z}/{x}/{y}.png"


def test_a_tile_url_without_its_placeholders_is_refused(tmp_path, demo_config):
    """map.tile_url must hold {z}, {x} and {y}; the configuration names the field when it does not."""
    from watchpost.config import load_config

    with pytest.raises(ValueError, match=r"\{z\}, \{x\} and \{y\}"):
        MapConfig(tile_url="http://tiles.local/tile.png")
    (tmp_path / "map.yaml").write_text("map:\n  tile_url: http://tiles.local/tile.png\n")
    for name in ("sites", "devices", "units"):
        (tmp_path / f"{name}.yaml").write_text(
            (PAGES.parent.parent / "configs" / "demo" / f"{name}.yaml").read_text(encoding="utf-8"), encoding="utf-8"
        )
    with pytest.raises(ConfigError, match="map.yaml:2: map.tile_url"):
        load_config(tmp_path)


def test_candidates_are_the_free_units_by_eta_with_the_tiers_they_can_still_make(api, api_config, db):
    """/alerts/{id}/candidates ranks free units as the dispatcher would (a post only at its own site), leaves out
    busy ones, and says which pending tiers each can reach before the deadline."""
    op = api.client("operator")
    alert = raise_manual(op)  # a theft at lotus, no dispatcher running: no tiers yet
    listed = op.get(f"/alerts/{alert['alert_id']}/candidates").json()
    ranked = store.rank_available(
        db, site_id="lotus", lat=alert["lat"], lon=alert["lon"], route_factor=api_config.dispatch.route_factor
    )
    assert [c["unit_id"] for c in listed] == [u.unit_id for u, _, _ in ranked]
    assert "bamboo-post-market" not in {c["unit_id"] for c in listed}
    assert listed[0]["site_id"] == "lotus" and listed[0]["eta_s"] == 0
    assert all(c["in_time_for"] == [] for c in listed)

    with db.transaction():
        sent = actions.dispatch_alert(db, config=api_config, alert_id=alert["alert_id"], now=datetime.now(UTC))
    assert sent  # tiers 1 and 2 of a major alert, each with a unit
    busy = {a["unit_id"] for a in op.get(f"/alerts/{alert['alert_id']}").json()["alert"]["assignments"]}
    listed = op.get(f"/alerts/{alert['alert_id']}/candidates", params={"limit": 2}).json()
    assert len(listed) <= 2 and not busy & {c["unit_id"] for c in listed}
    for c in listed:
        assert set(c["in_time_for"]) <= {1, 2}
        assert (c["eta_s"] <= 180) == (2 in c["in_time_for"])
    assert op.get("/alerts/999999/candidates").status_code == 404
