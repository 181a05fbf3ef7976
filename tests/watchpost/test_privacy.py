"""Privacy: plates pseudonymised after their window with per-period keys then destroyed; hotlist hits kept;
face captures deleted after theirs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from detectors.rules import RuleEngine
from tests.support import canonical_payload, events_from, ingest
from watchpost import store
from watchpost.config import PrivacyConfig

PRIVACY = PrivacyConfig(plate_readable_days=7, key_period="month", face_capture_retention_days=30)


def _plates(db):
    return dict(db.execute("SELECT ref, plate FROM events WHERE plate IS NOT NULL").fetchall())


def _read(db, config, ref: str, plate: str, at: datetime, device: str = "bamboo-checkpoint"):
    payload = canonical_payload("plate_read", "plate", plate=plate, at=at, ref=ref)
    ingest(db, RuleEngine(config), events_from(config, device, payload))


def test_old_plates_become_keyed_hashes_and_recent_and_hotlisted_ones_stay_readable(db, config):
    """A 10-day-old read is hashed, the same plate read today is not; an old hotlist hit stays as evidence."""
    now = datetime.now(UTC)
    _read(db, config, "old", "苏B11111", now - timedelta(days=10))
    _read(db, config, "old-same", "苏B11111", now - timedelta(days=10, minutes=5))
    _read(db, config, "new", "苏B11111", now - timedelta(hours=1))
    _read(db, config, "old-hit", "浙A12345", now - timedelta(days=10))  # stolen: raises an alert
    done = store.enforce_privacy(db, privacy=PRIVACY, now=now)
    plates = _plates(db)
    assert done["plates_hashed"] == 2 and done["keys_created"] >= 1
    assert plates["new"] == "苏B11111" and plates["old-hit"] == "浙A12345"
    assert plates["old"].startswith("#") and len(plates["old"]) == 33
    assert plates["old"] == plates["old-same"]  # within a period the same plate links to itself...
    assert "苏B11111" not in plates["old"]
    assert store.enforce_privacy(db, privacy=PRIVACY, now=now)["plates_hashed"] == 0  # ...and is done once


def test_the_database_hash_is_hmac_sha256_with_the_periods_key(db, config):
    """The stored pseudonym equals HMAC-SHA-256 of the plate under the period's key, while the key lives."""
    now = datetime.now(UTC)
    _read(db, config, "r", "沪C00001", now - timedelta(days=8))
    store.enforce_privacy(db, privacy=PRIVACY, now=now)
    inner, outer = db.execute("SELECT inner_pad, outer_pad FROM privacy_keys").fetchone()
    key = bytes(b ^ 0x36 for b in inner)[:32]
    assert bytes(b ^ 0x5C for b in outer)[:32] == key
    assert _plates(db)["r"] == store.pseudonym(key, "沪C00001")


def test_a_periods_key_is_destroyed_once_its_plates_are_past_the_window(db, config):
    """Keys of months that ended before the readable window are destroyed; a late read of such a month still
    loses its plate, to a hash that links to nothing."""
    now = datetime(2026, 12, 20, tzinfo=UTC)
    _read(db, config, "nov", "苏B22222", datetime(2026, 11, 28, tzinfo=UTC))
    _read(db, config, "dec", "苏B22222", datetime(2026, 12, 5, tzinfo=UTC))
    done = store.enforce_privacy(db, privacy=PRIVACY, now=now)
    assert done["keys_destroyed"] == 1
    keys = dict(db.execute("SELECT period, inner_pad IS NULL FROM privacy_keys").fetchall())
    assert keys == {"2026-11": True, "2026-12": False}
    plates = _plates(db)
    assert plates["nov"] != plates["dec"]  # another period, another key: not linkable
    _read(db, config, "nov-late", "苏B22222", datetime(2026, 11, 29, tzinfo=UTC))
    store.enforce_privacy(db, privacy=PRIVACY, now=now)
    late = _plates(db)["nov-late"]
    assert late.startswith("#") and late != plates["nov"]


def test_face_captures_are_deleted_after_their_retention(db, config):
    """Face-capture events older than their retention (10 days here) go; newer ones and other events stay."""
    now = datetime.now(UTC)
    engine = RuleEngine(config)
    for ref, days in (("f-old", 20), ("f-new", 2)):
        payload = canonical_payload("face_capture", "capture", at=now - timedelta(days=days), ref=ref)
        ingest(db, engine, events_from(config, "lotus-face-n", payload))
    _read(db, config, "plate-old", "苏B33333", now - timedelta(days=20))
    short = PRIVACY.model_copy(update={"face_capture_retention_days": 10})
    assert store.enforce_privacy(db, privacy=short, now=now)["face_captures_deleted"] == 1
    refs = {r[0] for r in db.execute("SELECT ref FROM events").fetchall()}
    assert refs == {"f-new", "plate-old"}


def test_dead_letters_go_with_the_plate_window_since_their_raw_bytes_cannot_be_hashed(db):
    """A dead letter last seen 8 days ago is deleted under a 7-day plate window; yesterday's stays."""
    from watchpost.model import DeadLetter, DeadReason

    now = datetime.now(UTC)
    letters = [
        DeadLetter(
            topic=f"t/{age}",
            payload=b"<plate>\xe6\xb5\x99A1</plate",
            reason=DeadReason.MALFORMED_XML,
            detail="truncated",
            received_at=now - timedelta(days=age),
        )
        for age in (8, 1)
    ]
    store.insert_dead_letters(db, letters=letters)
    assert store.enforce_privacy(db, privacy=PRIVACY, now=now)["dead_letters_deleted"] == 1
    assert [r[0] for r in db.execute("SELECT topic FROM dead_letters").fetchall()] == ["t/1"]
