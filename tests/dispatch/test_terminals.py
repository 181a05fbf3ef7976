"""The patrol-terminal simulator against a real API, dispatcher, broker and database."""

from __future__ import annotations

import dataclasses
import uuid

import pytest

from api.app import create_app
from dispatch.service import Dispatcher
from dispatch.terminals import Crew, PatrolTerminals, demo_key, demo_keys, plan
from ingest.mqtt import BrokerAddress
from tests.api.conftest import Server
from tests.support import wait_for

QUICK = Crew(
    accept_after_s=(0.2, 0.4),
    dwell_s=(0.5, 0.8),
    report_on_scene_after_s=(0.3, 0.5),
    no_show_share=0.0,
    give_up_after_s=1.5,
    speed_factor=40.0,
    tick_s=0.1,
    reconcile_s=1.0,
)
NORTH_OF_LOTUS = {"lat": 30.2768, "lon": 120.1551}  # 300 m north of the community's centre


@pytest.fixture
def scene(config, database_url, broker_url, db):
    """A running API, dispatcher and simulated terminals (quick crews); yields a starter for the terminals."""
    tag = uuid.uuid4().hex[:6]
    dispatch = config.dispatch.model_copy(
        update={
            "tick_s": 0.05,
            "escalation_grace_s": 1,
            "unit_topic": f"p{tag}/units/{{unit}}/assignments",
            "unit_position_topic": f"p{tag}/units/{{unit}}/position",
            "unit_status_topic": f"p{tag}/units/{{unit}}/status",
        }
    )
    made = []

    def start(crew: Crew, **dispatch_changes):
        cfg = config.model_copy(update={"dispatch": dispatch.model_copy(update=dispatch_changes)})
        app = create_app(config=cfg, database_url=database_url, jwt_secret="t" * 32)
        server = Server(app).start()
        broker = BrokerAddress.parse(broker_url)
        dispatcher = Dispatcher(config=cfg, database_url=database_url, broker=broker, name=f"d-{tag}").start()
        assert dispatcher.leading.wait(15)
        terminals = PatrolTerminals(config=cfg, broker=broker, api_url=server.url, seed=7, crew=crew).start()
        made.append((server, dispatcher, terminals))
        return server, terminals

    yield start
    for server, dispatcher, terminals in made:
        terminals.stop()
        dispatcher.stop()
        server.stop()


def _raise(server, **fields):
    import httpx

    body = {"type": "theft", "site_id": "lotus", "note": "test", **NORTH_OF_LOTUS, **fields}
    r = httpx.post(f"{server.url}/alerts", json=body, headers={"Authorization": "Bearer wp_demo_console_wall"})
    assert r.status_code == 201, r.text
    return r.json()["alert_id"]


def test_every_demo_unit_has_a_terminal_key(demo_config):
    """The demo configuration holds a terminal key for every unit, so the simulator plays them all."""
    keys = demo_keys(demo_config)
    assert sorted(keys) == sorted(u.id for u in demo_config.units)
    assert keys["lotus-car-1"] == demo_key("lotus-car-1") == "wp_demo_terminal_lotus_car_1"


def test_a_crews_behaviour_is_fixed_by_the_seed_and_a_share_never_arrives():
    """The same seed and assignment give the same plan; over many assignments about the configured share are
    no-shows and the outcomes are mostly handled."""
    crew = Crew()
    assert plan(3, 41, crew) == plan(3, 41, crew)
    assert [plan(3, i, crew) for i in range(50)] != [plan(4, i, crew) for i in range(50)]
    plans = [plan(1, i, crew) for i in range(2000)]
    share = sum(p.no_show for p in plans) / len(plans)
    assert 0.12 < share < 0.18
    assert sum(p.outcome == "handled" for p in plans) / len(plans) > 0.7
    assert all(crew.accept_after_s[0] <= p.accept_after_s <= crew.accept_after_s[1] for p in plans)


def test_crews_accept_drive_there_arrive_by_gps_and_clear(scene, db):
    """Dispatched to an alert 300 m away, a moving unit accepts over HTTP, drives there publishing GPS over MQTT,
    is put on scene by the dispatcher from its fix, and clears; a fixed post reports on scene over HTTP; the last
    to clear resolves the alert, and every unit is free again."""
    server, terminals = scene(QUICK)
    alert_id = _raise(server)

    def resolved():
        row = db.execute("SELECT state, outcome FROM alerts WHERE alert_id = %s", (alert_id,)).fetchone()
        return row if row[0] == "resolved" else None

    assert wait_for(resolved, timeout=40), terminals.stats
    rows = db.execute(
        "SELECT unit_id, state, accepted_at IS NOT NULL, on_scene_by, outcome, note FROM assignments"
        " WHERE alert_id = %s ORDER BY assignment_id",
        (alert_id,),
    ).fetchall()
    assert len(rows) == 2  # a major alert: tiers 1 and 2
    assert all(
        state == "cleared" and accepted and note == "cleared by the crew" for _, state, accepted, _, _, note in rows
    )
    by = {unit: on_scene_by for unit, _, _, on_scene_by, _, _ in rows}
    assert by.get("lotus-post-n") == "api"
    movers = [unit for unit in by if unit != "lotus-post-n"]
    assert movers and all(by[u] == "gps" for u in movers)
    fixes = db.execute(
        "SELECT count(*) FROM unit_positions WHERE unit_id = %s AND source = 'terminal'", (movers[0],)
    ).fetchone()[0]
    assert fixes >= 2
    tiers = db.execute("SELECT state FROM alert_tiers WHERE alert_id = %s", (alert_id,)).fetchall()
    assert {t[0] for t in tiers} == {"met"}
    assert not terminals.stats.errors
    assert wait_for(
        lambda: db.execute("SELECT bool_and(status = 'available') FROM units WHERE configured").fetchone()[0], 10
    )


def test_a_crew_that_never_arrives_lets_the_deadline_pass_and_escalation_show(scene, db):
    """No-show crews accept and stay put: the tier deadlines pass, the dispatcher escalates, and the crews later
    clear with no_action, saying they could not reach the scene."""
    no_shows = dataclasses.replace(QUICK, no_show_share=1.0, give_up_after_s=4.0)
    server, terminals = scene(no_shows, tier_deadlines_s=[2, 4, 6])
    alert_id = _raise(server)
    assert wait_for(
        lambda: db.execute("SELECT escalations FROM alerts WHERE alert_id = %s", (alert_id,)).fetchone()[0] > 0, 20
    )
    assert wait_for(
        lambda: db.execute(
            "SELECT count(*) FROM assignments WHERE alert_id = %s AND outcome = 'no_action'"
            " AND note = 'could not reach the scene'",
            (alert_id,),
        ).fetchone()[0],
        20,
    )
    missed = db.execute(
        "SELECT count(*) FROM alert_tiers WHERE alert_id = %s AND state = 'missed'", (alert_id,)
    ).fetchone()[0]
    assert missed >= 1
    assert terminals.stats.no_shows >= 1
