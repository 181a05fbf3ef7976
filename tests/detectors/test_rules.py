"""Rule detectors on stored events: what raises an alert, how severe, how repeats fold, and what does not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from detectors.rules import RuleEngine
from tests.conftest import FIXTURES
from tests.support import canonical_payload, events_from, ingest
from watchpost import store
from watchpost.config import NightWindow


@pytest.fixture
def engine(config):
    return RuleEngine(config)


def _alerts(db, type_=None):
    return store.list_alerts(db, type_=type_)


def test_an_emergency_button_is_always_critical_and_a_replay_raises_nothing(db, config, engine):
    """A button press raises one critical alert at the button's position; the same event again adds nothing."""
    events = events_from(config, "lotus-sos-1", canonical_payload("alarm_button", "press", ref="b-1"))
    (raised,) = ingest(db, engine, events)
    assert raised.created
    (alert,) = _alerts(db)
    button = config.device_index["lotus-sos-1"]
    assert alert["type"] == "emergency_button" and alert["severity"] == "critical" and alert["state"] == "new"
    assert (alert["lat"], alert["lon"]) == (button.position.lat, button.position.lon)
    assert alert["site_id"] == "lotus" and alert["count"] == 1
    assert ingest(db, engine, events) == []
    assert len(_alerts(db)) == 1


def test_the_end_of_an_alarm_raises_nothing(db, config, engine):
    """A button's 'stop' state is the end of an alarm, not a new one."""
    events = events_from(config, "lotus-sos-1", canonical_payload("alarm_button", "press", ref="b-2", state="stop"))
    assert ingest(db, engine, events) == []


def test_a_forced_gate_is_major_by_day_and_critical_at_night(db, config):
    """The same forced door takes the rule's night severity inside the configured night hours."""
    local = datetime.now(ZoneInfo(config.timezone))
    inside = NightWindow(
        start=(local - timedelta(hours=1)).strftime("%H:%M"),
        end=(local + timedelta(hours=1)).strftime("%H:%M"),
        severity="critical",
    )
    outside = NightWindow(
        start=(local + timedelta(hours=2)).strftime("%H:%M"),
        end=(local + timedelta(hours=3)).strftime("%H:%M"),
        severity="critical",
    )
    for night, device, expected in ((outside, "lotus-gate-s", "major"), (inside, "bamboo-gate-main", "critical")):
        rules = [r.model_copy(update={"night": night}) if r.name == "gate-forced" else r for r in config.rules]
        engine = RuleEngine(config.model_copy(update={"rules": rules}))
        events = events_from(config, device, canonical_payload("access", "forced_open", ref=f"f-{device}"))
        (raised,) = ingest(db, engine, events)
        alert = store.get_alert_row(db, raised.alert_id)
        assert (alert["type"], alert["severity"]) == ("gate_forced", expected)


def test_a_repeat_within_the_window_updates_the_open_alert_and_a_later_one_raises_anew(db, config, engine):
    """Same type, same source: inside the dedup window it counts up the open alert; past it, a new alert."""
    now = datetime.now(UTC)
    first = events_from(
        config, "lotus-gate-s", canonical_payload("access", "forced_open", at=now - timedelta(minutes=20))
    )
    ingest(db, engine, first)
    second = events_from(
        config, "lotus-gate-s", canonical_payload("access", "forced_open", at=now - timedelta(minutes=18))
    )
    (again,) = ingest(db, engine, second)
    assert not again.created and again.count == 2
    third = events_from(config, "lotus-gate-s", canonical_payload("access", "forced_open", at=now))
    (late,) = ingest(db, engine, third)
    assert late.created
    alerts = {a["alert_id"]: a for a in _alerts(db, "gate_forced")}
    assert sorted(a["count"] for a in alerts.values()) == [1, 2]
    repeated = alerts[again.alert_id]
    assert repeated["last_seen"] > repeated["first_seen"]
    sources = store.alert_sources(db, again.alert_id)
    assert len(sources) == 2


def test_a_hotlisted_plate_with_one_ocr_confusion_raises_and_a_clean_plate_does_not(db, config, engine):
    """浙A1234S (5 read as S) hits stolen 浙A12345 with the match quality on the alert; 浙A99999 raises nothing."""
    clean = events_from(config, "bamboo-checkpoint", canonical_payload("plate_read", "plate", plate="浙A99999"))
    assert ingest(db, engine, clean) == []
    confused = events_from(
        config, "bamboo-checkpoint", canonical_payload("plate_read", "plate", plate="浙A1234S", confidence=0.88)
    )
    (raised,) = ingest(db, engine, confused)
    alert = store.alert_snapshot(db, raised.alert_id)
    assert alert["type"] == "hotlist_plate" and alert["severity"] == "critical"  # stolen
    detail = alert["detail"]
    assert detail["listed"] == "浙A12345" and detail["read"] == "浙A1234S"
    assert detail["match_quality"] == "ocr_confusion" and detail["confusions"] == [
        {"position": 6, "read": "S", "listed": "5"}
    ]
    assert detail["reason"] == "stolen" and detail["confidence"] == pytest.approx(0.88)


def test_a_hotlist_entry_added_at_run_time_is_matched_without_a_restart(db, config, engine):
    """An entry added through the store (as the API does) is used by a running engine at its next read."""
    read = canonical_payload("plate_read", "plate", plate="沪C77777")
    assert ingest(db, engine, events_from(config, "bamboo-checkpoint", read)) == []
    store.add_hotlist_entry(
        db, list_name="plates", value="沪C77777", reason="wanted", owner="test", note="", expires=None, actor="test"
    )
    again = canonical_payload("plate_read", "plate", plate="沪C77777", ref="second-read")
    (raised,) = ingest(db, engine, events_from(config, "bamboo-checkpoint", again))
    assert store.get_alert_row(db, raised.alert_id)["severity"] == "critical"


def test_a_hotlisted_rfid_tag_raises(db, config, engine):
    """An e-bike tag on the stolen list raises a hotlist_rfid alert; another tag does not."""
    other = canonical_payload("rfid_read", "tag", attributes={"tag": "E28011606000000000000001"})
    assert ingest(db, engine, events_from(config, "lotus-rfid-1", other)) == []
    stolen = canonical_payload("rfid_read", "tag", attributes={"tag": "e2801160600002084a6b3c1d"})
    (raised,) = ingest(db, engine, events_from(config, "lotus-rfid-1", stolen))
    assert store.get_alert_row(db, raised.alert_id)["type"] == "hotlist_rfid"


def test_repeated_failed_verifications_raise_at_the_configured_count(db, config, engine):
    """Four denied verifications in two minutes raise nothing; the fifth raises one alert."""
    now = datetime.now(UTC)
    for i in range(4):
        payload = canonical_payload(
            "access", "card_invalid", at=now - timedelta(seconds=50 - i), attributes={"access_result": "denied"}
        )
        assert ingest(db, engine, events_from(config, "lotus-gate-s", payload)) == []
    fifth = canonical_payload("access", "card_invalid", at=now, attributes={"access_result": "denied"})
    (raised,) = ingest(db, engine, events_from(config, "lotus-gate-s", fifth))
    alert = store.get_alert_row(db, raised.alert_id)
    assert alert["type"] == "gate_failed_verifications" and alert["detail"]["count_in_window"] == 5


def test_a_tracker_leaving_its_geofence_raises_and_inside_it_does_not(db, config, engine):
    """A position inside the fence is quiet; one outside raises tracker_geofence_exit at that position."""
    inside = canonical_payload("gps_position", "position", lat=30.2746, lon=120.1558)
    assert ingest(db, engine, events_from(config, "lotus-tracker-ebike-7", inside)) == []
    outside = canonical_payload("gps_position", "position", lat=30.2800, lon=120.1600)
    (raised,) = ingest(db, engine, events_from(config, "lotus-tracker-ebike-7", outside))
    alert = store.get_alert_row(db, raised.alert_id)
    assert alert["type"] == "tracker_geofence_exit" and (alert["lat"], alert["lon"]) == (30.2800, 120.1600)


def test_a_unit_trackers_position_moves_the_unit_and_raises_nothing(db, config, engine):
    """A patrol unit's GPS tracker updates that unit's position; vibration from it is not an alarm."""
    fix = canonical_payload("gps_position", "position", lat=30.2760, lon=120.1560)
    assert ingest(db, engine, events_from(config, "lotus-gps-1", fix)) == []
    unit = store.get_unit(db, "lotus-ebike-1")
    assert (unit["lat"], unit["lon"], unit["fix_source"]) == (30.2760, 120.1560, "tracker:lotus-gps-1")
    shake = canonical_payload("device_status", "vibration")
    assert ingest(db, engine, events_from(config, "lotus-gps-1", shake)) == []


def test_a_crowd_alarm_start_raises_and_its_stop_does_not(db, config, engine):
    """A device-reported gathering raises crowd_gathering with its count; the stop of the alarm does not."""
    stop = canonical_payload("crowd_alarm", "gathering", state="stop", count=3, zone="market")
    assert ingest(db, engine, events_from(config, "lotus-sos-1", stop)) == []
    start = canonical_payload("crowd_alarm", "gathering", state="start", count=27, zone="market")
    (raised,) = ingest(db, engine, events_from(config, "lotus-sos-1", start))
    alert = store.get_alert_row(db, raised.alert_id)
    assert alert["type"] == "crowd_gathering" and alert["zone"] == "market" and alert["detail"]["count"] == 27


def test_a_surge_of_face_captures_is_judged_against_the_entrances_own_baseline(db, config, engine):
    """With a quiet three-hour history, 40 captures in five minutes raise a surge; without history nothing does."""
    now = datetime.now(UTC).replace(second=30, microsecond=0)
    burst = [
        canonical_payload("face_capture", "capture", at=now - timedelta(seconds=i), ref=f"f{i}") for i in range(40)
    ]
    events = [e for p in burst for e in events_from(config, "lotus-face-n", p)]
    assert ingest(db, engine, events) == []  # no baseline on record: no judgement
    history = [
        ("lotus-face-n", "face_capture", (now - timedelta(minutes=m)).replace(second=0), 1) for m in range(10, 180, 2)
    ]
    store.bump_rates(db, counts=history)
    more = [canonical_payload("face_capture", "capture", at=now, ref="f-last")]
    (raised,) = ingest(db, engine, [e for p in more for e in events_from(config, "lotus-face-n", p)])
    alert = store.get_alert_row(db, raised.alert_id)
    assert alert["type"] == "face_capture_surge" and alert["detail"]["in_window"] == 41


def test_repeats_within_one_batch_are_one_alert_with_their_count(db, config, engine):
    """Three forced-door reports of one gate in one batch raise one alert counting 3, with all three events."""
    now = datetime.now(UTC)
    events = [
        e
        for i in range(3)
        for e in events_from(
            config, "lotus-gate-s", canonical_payload("access", "forced_open", at=now + timedelta(milliseconds=10 * i))
        )
    ]
    (raised,) = ingest(db, engine, events)
    alert = store.get_alert_row(db, raised.alert_id)
    assert raised.created and alert["count"] == 3 and alert["last_seen"] > alert["first_seen"]
    assert len(store.alert_sources(db, raised.alert_id)) == 3


def _counting(config, **rule):
    """An engine with this device_count rule instead of the demo's (and the demo's other rules)."""
    from watchpost.config import DeviceCountRule

    count_rule = DeviceCountRule(name="device-crowd", alert="crowd_gathering", **rule)
    others = [r for r in config.rules if not isinstance(r, DeviceCountRule)]
    return RuleEngine(config.model_copy(update={"rules": [*others, count_rule]}))


def _report(db, config, engine, at, people, zone="gate-square"):
    payload = canonical_payload("crowd_count", "periodic", at=at, count=people, zone=zone)
    return ingest(db, engine, events_from(config, "lotus-cam-square", payload))


def test_device_counts_above_the_threshold_for_the_dwell_raise_and_a_low_report_notes_the_end(db, config):
    """Reports of 20 or more for 30 s raise crowd_gathering with the stretch's start and peak; more fold into it;
    the first report under the release level notes gathering_cleared once, the alert stays open, and a crowd
    back while it is open folds into it again, no longer cleared."""
    engine = _counting(config, threshold=20, dwell_s=30)
    t = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    assert _report(db, config, engine, t, 12) == []
    assert _report(db, config, engine, t + timedelta(seconds=40), 25) == [], "one report is no stay of 30 s"
    (raised,) = _report(db, config, engine, t + timedelta(seconds=80), 26)
    alert = store.get_alert_row(db, raised.alert_id)
    assert alert["type"] == "crowd_gathering" and alert["zone"] == "gate-square" and alert["rule"] == "device-crowd"
    detail = alert["detail"]
    assert detail["people"] == 26 and detail["peak_people"] == 26 and detail["reports"] == 2
    assert detail["since"] == store.jsonable(t + timedelta(seconds=40)) and detail["counted_by"] == "device"
    (again,) = _report(db, config, engine, t + timedelta(seconds=100), 31)
    assert again.alert_id == raised.alert_id and again.count == 2
    assert _report(db, config, engine, t + timedelta(seconds=120), 17) == []  # under 20, above the release (16)
    assert _report(db, config, engine, t + timedelta(seconds=140), 10) == []
    assert _report(db, config, engine, t + timedelta(seconds=160), 9) == []
    notes = [n for n in store.alert_timeline(db, raised.alert_id) if n["action"] == "gathering_cleared"]
    assert len(notes) == 1 and notes[0]["detail"]["people_at_clear"] == 10
    after = store.get_alert_row(db, raised.alert_id)
    assert after["state"] not in ("resolved", "cancelled") and after["detail"]["cleared_at"]
    _report(db, config, engine, t + timedelta(seconds=180), 24)
    (back,) = _report(db, config, engine, t + timedelta(seconds=220), 24)  # the crowd is back: the same open alert
    assert back.alert_id == raised.alert_id and store.get_alert_row(db, raised.alert_id)["detail"]["cleared_at"] is None


def test_a_report_under_the_threshold_or_a_long_silence_breaks_the_stretch(db, config):
    """A report under the threshold starts the stay again; so does a gap longer than max_gap_s between reports;
    another zone of the device is a stretch of its own."""
    engine = _counting(config, threshold=20, dwell_s=30, max_gap_s=60)
    t = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    for offset, people in ((0, 25), (30, 12), (50, 25)):
        assert _report(db, config, engine, t + timedelta(seconds=offset), people) == []
    assert _report(db, config, engine, t + timedelta(seconds=70), 25, zone="north") == [], "another zone"
    assert _report(db, config, engine, t + timedelta(seconds=200), 25) == [], "after 130 s of silence"
    assert _report(db, config, engine, t + timedelta(seconds=220), 25) == []
    (raised,) = _report(db, config, engine, t + timedelta(seconds=230), 25)
    assert store.get_alert_row(db, raised.alert_id)["detail"]["since"] == store.jsonable(t + timedelta(seconds=200))


def test_a_hikvision_cameras_own_people_count_raises_through_a_device_count_rule(db, config):
    """The PDC count of a real Hikvision payload (4 people in Area1) raises at a threshold of 4 with no dwell."""
    engine = _counting(config, threshold=4)
    payload = (FIXTURES / "formats" / "hikvision_person_density_pdc.json").read_bytes()
    (raised,) = ingest(db, engine, events_from(config, "lotus-cam-square", payload))
    alert = store.get_alert_row(db, raised.alert_id)
    assert alert["zone"] == "Area1" and alert["detail"]["people"] == 4
    assert alert["detail"]["source_format"] == "hikvision"
    assert _counting(config, threshold=5).config.rules[-1].release == 4.0


def test_a_device_count_rule_with_its_release_above_its_threshold_is_refused():
    """The release level is the hysteresis's lower one: above the threshold it is a configuration error."""
    from pydantic import ValidationError

    from watchpost.config import DeviceCountRule

    with pytest.raises(ValidationError, match="release_threshold must not exceed threshold"):
        DeviceCountRule(name="x", alert="crowd_gathering", threshold=10, release_threshold=12)
