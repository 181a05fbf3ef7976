"""Plates and face captures behind a stated purpose; every such look in a hash-chained, append-only audit log
that only the auditor reads, and that read audited too."""

from __future__ import annotations

import psycopg
import pytest

from detectors.rules import RuleEngine
from tests.support import canonical_payload, events_from, ingest
from watchpost import store


@pytest.fixture
def sightings(db, api_config):
    """Two plate reads (one a hotlist hit) and a face capture, stored as ingest stores them."""
    engine = RuleEngine(api_config)
    for device, payload in (
        ("bamboo-checkpoint", canonical_payload("plate_read", "plate", plate="苏E12345", ref="p1")),
        ("bamboo-checkpoint", canonical_payload("plate_read", "plate", plate="浙A12345", ref="p2")),
        ("lotus-face-n", canonical_payload("face_capture", "capture", ref="f1")),
    ):
        ingest(db, engine, events_from(api_config, device, payload))


@pytest.fixture(autouse=True)
def _log_start(db):
    """The audit log is append-only across the whole test session: each test reads only its own rows."""
    global _START
    _START = db.execute("SELECT coalesce(max(id), 0) FROM audit_log").fetchone()[0]


_START = 0


def _audit(db):
    return db.execute(
        "SELECT actor, role, action, purpose, result_count FROM audit_log WHERE id > %s ORDER BY id", (_START,)
    ).fetchall()


def test_without_a_purpose_events_come_without_plates_or_face_captures_and_nothing_is_audited(api, db, sightings):
    """/events with no purpose: plate reads with their plate withheld, no face captures, no audit row."""
    rows = api.client("operator").get("/events").json()
    assert {r["kind"] for r in rows} == {"plate_read"} and all(r["plate"] is None for r in rows)
    assert _audit(db) == []


def test_with_a_purpose_events_show_plates_and_face_captures_and_the_look_is_audited(api, db, sightings):
    """/events?purpose=… returns plates and face captures, and one audit row says who, why and how many."""
    r = api.client("operator").get("/events", params={"purpose": "case 2026-117: stolen e-bike"})
    rows = r.json()
    assert {r["plate"] for r in rows if r["plate"]} == {"苏E12345", "浙A12345"}
    assert any(r["kind"] == "face_capture" for r in rows)
    assert _audit(db) == [("key-operator", "operator", "events", "case 2026-117: stolen e-bike", 3)]


def test_plate_sightings_need_a_purpose_and_are_audited(api, db, sightings):
    """/plates/{plate}/sightings without a purpose is 422 naming it; with one, the reads and an audit row."""
    c = api.client("supervisor")
    r = c.get("/plates/苏e-12345/sightings")
    assert r.status_code == 422 and "purpose" in r.text
    r = c.get("/plates/苏e-12345/sightings", params={"purpose": "hit-and-run report 88"})
    assert r.status_code == 200 and [x["plate"] for x in r.json()] == ["苏E12345"]
    assert _audit(db)[-1][2:] == ("plate sightings", "hit-and-run report 88", 1)


def test_an_alerts_source_plates_are_withheld_without_a_purpose(api, db, sightings):
    """The hotlist alert's detail names the hit; its source event's plate is shown only with a purpose."""
    c = api.client("operator")
    (alert,) = c.get("/alerts", params={"type": "hotlist_plate"}).json()
    assert alert["detail"]["listed"] == "浙A12345"
    plain = c.get(f"/alerts/{alert['alert_id']}").json()
    assert [s["plate"] for s in plain["sources"]] == [None]
    full = c.get(f"/alerts/{alert['alert_id']}", params={"purpose": "handling the stolen car"}).json()
    assert [s["plate"] for s in full["sources"]] == ["浙A12345"]
    assert _audit(db)[-1][2:] == ("alert source events", "handling the stolen car", 1)


def test_only_the_auditor_reads_the_log_and_that_read_is_audited_with_the_chain_checked(api, db, sightings):
    """The auditor sees every look, newest first, with an intact chain; the read adds its own row."""
    api.client("operator").get("/events", params={"purpose": "case 1 of the week"})
    api.client("admin").get("/plates/苏E12345/sightings", params={"purpose": "case 2 of the week"})
    assert api.client("admin").get("/audit").status_code == 403
    body = api.client("auditor").get("/audit", params={"purpose": "monthly review", "limit": 2}).json()
    assert [e["purpose"] for e in body["entries"]] == ["case 2 of the week", "case 1 of the week"]
    total = db.execute("SELECT count(*) FROM audit_log").fetchone()[0] - 1  # less the auditor's own read
    assert body["chain"] == {"ok": True, "rows": total, "first_broken_id": None, "reason": ""}
    assert body["entries"][0]["prev_hash"] == body["entries"][1]["hash"]
    assert _audit(db)[-1] == ("key-auditor", "auditor", "read audit log", "monthly review", 2)


def test_the_log_refuses_changes_and_an_edit_around_the_trigger_breaks_the_chain(db):
    """UPDATE and DELETE are refused; a superuser who disables the trigger and edits a row is found out."""
    for i in range(3):
        store.append_audit(
            db, actor="duty", role="operator", action="events", query={"n": i}, purpose=f"case {i}", result_count=i
        )
    with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
        db.execute("UPDATE audit_log SET purpose = 'nothing to see' WHERE purpose = 'case 1'")
    with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
        db.execute("DELETE FROM audit_log")
    assert store.verify_audit(db)["ok"]
    with db.transaction():
        db.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_change")
        db.execute("UPDATE audit_log SET result_count = 0 WHERE purpose = 'case 1' AND id > %s", (_START,))
        db.execute("ALTER TABLE audit_log ENABLE TRIGGER audit_log_no_change")
    second = db.execute("SELECT id FROM audit_log WHERE purpose = 'case 1' AND id > %s", (_START,)).fetchone()[0]
    verdict = store.verify_audit(db)
    assert (verdict["ok"], verdict["first_broken_id"], verdict["reason"]) == (
        False,
        second,
        "content does not match hash",
    )
    with db.transaction():  # put the row back: the session's log must stay intact for the other tests
        db.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_change")
        db.execute("UPDATE audit_log SET result_count = 1 WHERE id = %s", (second,))
        db.execute("ALTER TABLE audit_log ENABLE TRIGGER audit_log_no_change")
    assert store.verify_audit(db)["ok"]
