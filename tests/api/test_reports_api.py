"""Hotlists, sites, the alert catalogue, statistics and the OpenAPI document, over real HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from api.routes.reports import period_bounds
from tests.api.conftest import raise_manual
from watchpost import store


def test_hotlist_entries_are_normalised_added_changed_and_removed(api, db):
    """Plates lose separators and case but keep the province; tags become upper-case hex; PATCH and DELETE work."""
    c = api.client("supervisor")
    r = c.post("/hotlists/plates", json={"value": " 浙a·b1 23-4 ", "reason": "stolen", "owner": "城东派出所"})
    assert r.status_code == 201, r.text
    plate = r.json()
    assert plate["value"] == "浙AB1234" and plate["source"] == "api" and plate["created_by"] == "key-supervisor"
    r = c.post("/hotlists/rfid_tags", json={"value": "e2:80:11:60:60:00:02:08", "reason": "stolen"})
    assert r.status_code == 201 and r.json()["value"] == "E280116060000208"
    version = store.hotlist_version(db)

    r = c.patch(f"/hotlists/entries/{plate['entry_id']}", json={"expires": "2027-01-31", "note": "until end of case"})
    assert r.status_code == 200 and r.json()["expires"] == "2027-01-31" and r.json()["note"] == "until end of case"
    assert store.hotlist_version(db) > version  # the rule detectors reload on this
    values = [e["value"] for e in c.get("/hotlists/plates").json()]
    assert "浙AB1234" in values and set(values) >= {p.value for p in api.config.hotlists.plates}

    assert c.delete(f"/hotlists/entries/{plate['entry_id']}").status_code == 204
    assert c.delete(f"/hotlists/entries/{plate['entry_id']}").status_code == 404
    assert c.patch(f"/hotlists/entries/{plate['entry_id']}", json={"note": "x"}).status_code == 404


def test_bad_hotlist_values_and_duplicates_are_refused_with_the_reason(api):
    """No-plate placeholders, non-plates, non-hex tags, unknown lists and fields are 422; a duplicate is 409."""
    c = api.client("admin")
    for path, body, reason in [
        ("/hotlists/plates", {"value": "unknown", "reason": "stolen"}, "no plate was read"),
        ("/hotlists/plates", {"value": "浙A1", "reason": "stolen"}, "is not a plate"),
        ("/hotlists/plates", {"value": "浙A12345", "reason": "nosy"}, "body.reason"),
        ("/hotlists/rfid_tags", {"value": "E28011XYZ", "reason": "stolen"}, "hexadecimal"),
        ("/hotlists/bicycles", {"value": "X", "reason": "stolen"}, "path.list_name"),
        ("/hotlists/plates", {"value": "浙A12346", "reason": "stolen", "colour": "red"}, "unknown field"),
    ]:
        r = c.post(path, json=body)
        assert r.status_code == 422 and reason in r.json()["detail"], (body, r.text)
    r = c.post("/hotlists/plates", json={"value": "浙a-12345", "reason": "wanted"})  # configured as 浙A12345
    assert r.status_code == 409 and "already on the plates hotlist" in r.json()["detail"]
    entry = c.get("/hotlists/plates").json()[0]
    r = c.patch(f"/hotlists/entries/{entry['entry_id']}", json={"reason": None})
    assert r.status_code == 422 and "reason cannot be null" in r.json()["detail"]


def test_sites_carry_zones_and_their_current_response_level(api, db):
    """/sites lists the configured sites with zones, counts and the response level the rule declared."""
    with db.transaction():
        store.set_site_level(db, site_id="lotus", level=2, reason="thefts this week", detail={}, until=None)
    sites = {s["id"]: s for s in api.client("operator").get("/sites").json()}
    assert set(sites) == {s.id for s in api.config.sites}
    lotus = sites["lotus"]
    assert lotus["response_level"]["level"] == 2 and lotus["response_level"]["reason"] == "thefts this week"
    assert sites["bamboo"]["response_level"]["level"] == 0
    configured = api.config.site_index["lotus"]
    assert [z["id"] for z in lotus["zones"]] == [z.id for z in configured.zones]
    assert lotus["devices"] == sum(1 for d in api.config.devices if d.site == "lotus")


def test_the_alert_catalogue_is_served_for_the_console(api):
    """/alert-types lists every configured type with severity, titles and case category."""
    types = {t["type"]: t for t in api.client("auditor").get("/alert-types").json()}
    assert set(types) == set(api.config.alerts.types)
    assert types["theft"]["case"] == "theft" and types["emergency_button"]["severity"] == "critical"


def test_alert_counts_and_zero_case_board(api):
    """/stats/alerts counts alerts per type per day; the zero-case board shows who had a case this month."""
    op = api.client("operator")
    raise_manual(op, type="theft", site_id="lotus")
    raise_manual(op, type="theft", site_id="lotus")
    raise_manual(op, type="intrusion", site_id="bamboo")
    auditor = api.client("auditor")
    rows = auditor.get("/stats/alerts").json()
    counts = {(r["site_id"], r["type"]): r["alerts"] for r in rows}
    assert counts == {("lotus", "theft"): 2, ("bamboo", "intrusion"): 1}
    board = {r["site_id"]: r for r in auditor.get("/stats/zero-case").json()}
    assert board["lotus"]["zero_case"] is False and board["lotus"]["cases_in_period"] == 2
    assert board["lotus"]["days_since_case"] == 0 and board["lotus"]["last_case_type"] == "theft"
    assert board["bamboo"]["zero_case"] is True  # an intrusion is not a case type
    assert auditor.get("/stats/zero-case", params={"case": "fraud"}).json()[0]["zero_case"] is True
    r = auditor.get("/stats/zero-case", params={"case": "jaywalking"})
    assert r.status_code == 422 and "jaywalking" in r.json()["detail"]


def test_statistics_refuse_bad_periods(api):
    """since after until, naive times and unknown buckets are 422 with the reason."""
    c = api.client("auditor")
    now = datetime.now(UTC)
    r = c.get("/stats/compliance", params={"since": now.isoformat(), "until": (now - timedelta(days=1)).isoformat()})
    assert r.status_code == 422 and "must be before until" in r.json()["detail"]
    r = c.get("/stats/compliance", params={"since": "2026-01-01T00:00:00"})
    assert r.status_code == 422 and "time zone" in r.json()["detail"]
    r = c.get("/stats/alerts", params={"bucket": "fortnight"})
    assert r.status_code == 422 and "query.bucket" in r.json()["detail"]
    assert c.get("/stats/compliance", params={"bucket": "quarter", "by_site": "false"}).status_code == 200
    devices = c.get("/stats/devices").json()
    assert {d["device_id"] for d in devices} == {d.id for d in api.config.devices}


@pytest.mark.parametrize(
    ("now", "period", "start", "end"),
    [
        ("2026-11-25T02:00:00+00:00", "week", "2026-11-23", "2026-11-30"),  # a Wednesday in Shanghai
        ("2026-11-29T17:00:00+00:00", "week", "2026-11-30", "2026-12-07"),  # Monday 01:00 in Shanghai
        ("2026-12-31T20:00:00+00:00", "month", "2027-01-01", "2027-02-01"),
        ("2026-12-15T00:00:00+00:00", "quarter", "2026-10-01", "2027-01-01"),
        ("2026-05-15T00:00:00+00:00", "quarter", "2026-04-01", "2026-07-01"),
        ("2026-05-15T00:00:00+00:00", "year", "2026-01-01", "2027-01-01"),
    ],
)
def test_periods_are_local_calendar_periods(now, period, start, end):
    """Statistics periods start at local midnight in the configured zone: weeks on Monday."""
    zone = ZoneInfo("Asia/Shanghai")
    since, until = period_bounds(datetime.fromisoformat(now), period, zone)
    assert (since.date().isoformat(), until.date().isoformat()) == (start, end)
    assert since.tzinfo is zone and since.hour == 0


def test_openapi_documents_every_operation_with_summary_security_and_errors(api):
    """Every operation has a summary, a response model or media type, and (but the open ones) the bearer scheme."""
    doc = api.client().get("/openapi.json").json()
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    for path, operations in doc["paths"].items():
        for method, op in operations.items():
            assert op.get("summary"), (method, path)
            if (method, path) in {("get", "/health"), ("post", "/auth/token")}:
                continue
            assert op.get("security") == [{"bearer": []}], (method, path)
            assert "401" in op["responses"], (method, path)
    body = doc["paths"]["/alerts/{alert_id}/resolve"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    resolve = doc["components"]["schemas"][body["$ref"].split("/")[-1]]
    assert resolve["additionalProperties"] is False
