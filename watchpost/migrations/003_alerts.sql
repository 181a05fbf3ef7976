-- Alerts, their lifecycle, 1-3-5 dispatch, hotlists, and the live feed.
-- Every timestamp is kept so compliance is a query. Times are server times (now()) unless
-- a column says it comes from a device.

-- Watch lists: plates and e-bike RFID tags. Entries from the configuration are seeded at
-- start (source 'config'); the API adds and edits the rest. Any change bumps the version the
-- rule detectors cache against.
CREATE TABLE hotlist_entries (
    entry_id   bigserial PRIMARY KEY,
    list       text NOT NULL CHECK (list IN ('plates', 'rfid_tags')),
    value      text NOT NULL,
    reason     text NOT NULL,
    owner      text NOT NULL DEFAULT '',
    note       text NOT NULL DEFAULT '',
    expires    date,
    source     text NOT NULL DEFAULT 'api',
    created_at timestamptz NOT NULL DEFAULT now(),
    created_by text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (list, value)
);

INSERT INTO watchpost_meta (key, value) VALUES ('hotlist_version', '0') ON CONFLICT DO NOTHING;

CREATE FUNCTION hotlist_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE watchpost_meta SET value = (value::bigint + 1)::text WHERE key = 'hotlist_version';
    RETURN NULL;
END $$;
CREATE TRIGGER hotlist_changed AFTER INSERT OR UPDATE OR DELETE ON hotlist_entries
    FOR EACH STATEMENT EXECUTE FUNCTION hotlist_bump();

-- Patrol units and fixed posts: configured ones are upserted at start; position and status
-- change over MQTT and the API.
CREATE TABLE units (
    unit_id         text PRIMARY KEY,
    name            text NOT NULL,
    kind            text NOT NULL,
    site_id         text,
    speed_kmh       double precision NOT NULL,
    tracker         text,
    home_lat        double precision NOT NULL,
    home_lon        double precision NOT NULL,
    status          text NOT NULL DEFAULT 'available',
    status_at       timestamptz NOT NULL DEFAULT now(),
    status_by       text NOT NULL DEFAULT 'config',
    configured      boolean NOT NULL DEFAULT true
);
CREATE INDEX units_tracker ON units (tracker) WHERE tracker IS NOT NULL;

-- Each unit's latest position (GPS tracker, terminal or API); written without the alert lock.
CREATE TABLE unit_fixes (
    unit_id text PRIMARY KEY,
    lat     double precision NOT NULL,
    lon     double precision NOT NULL,
    at      timestamptz NOT NULL,
    source  text NOT NULL
);

CREATE TABLE unit_positions (
    unit_id text NOT NULL,
    at      timestamptz NOT NULL,
    lat     double precision NOT NULL,
    lon     double precision NOT NULL,
    source  text NOT NULL
);
CREATE INDEX unit_positions_unit_at ON unit_positions (unit_id, at DESC);

CREATE TABLE alerts (
    alert_id         bigserial PRIMARY KEY,
    type             text NOT NULL,
    severity         text NOT NULL,
    state            text NOT NULL DEFAULT 'new',
    rule             text,
    title            text NOT NULL,
    site_id          text,
    zone             text,
    device_id        text,
    lat              double precision,
    lon              double precision,
    dedup_key        text NOT NULL,
    count            integer NOT NULL DEFAULT 1,
    first_seen       timestamptz NOT NULL,
    last_seen        timestamptz NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    created_by       text NOT NULL,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    dispatched_at    timestamptz,
    acknowledged_at  timestamptz,
    acknowledged_by  text,
    on_scene_at      timestamptz,
    resolved_at      timestamptz,
    resolved_by      text,
    outcome          text,
    resolution_note  text,
    escalations      integer NOT NULL DEFAULT 0,
    detail           jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX alerts_open_dedup ON alerts (dedup_key, last_seen DESC) WHERE state NOT IN ('resolved', 'cancelled');
CREATE INDEX alerts_open ON alerts (created_at) WHERE state NOT IN ('resolved', 'cancelled');
CREATE INDEX alerts_created ON alerts (created_at DESC);
CREATE INDEX alerts_site_created ON alerts (site_id, created_at DESC);
CREATE INDEX alerts_type_created ON alerts (type, created_at DESC);

-- The events an alert was raised from (a repeat adds its event here too).
CREATE TABLE alert_events (
    alert_id    bigint NOT NULL REFERENCES alerts ON DELETE CASCADE,
    event_id    uuid NOT NULL,
    occurred_at timestamptz NOT NULL,
    PRIMARY KEY (alert_id, event_id)
);

-- Every change of an alert, with who did it.
CREATE TABLE alert_transitions (
    transition_id bigserial PRIMARY KEY,
    alert_id      bigint NOT NULL REFERENCES alerts ON DELETE CASCADE,
    at            timestamptz NOT NULL DEFAULT now(),
    action        text NOT NULL,
    from_state    text,
    to_state      text NOT NULL,
    actor         text NOT NULL,
    detail        jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX alert_transitions_alert ON alert_transitions (alert_id, transition_id);

-- The tiers an alert requested and their clocks. A tier is met when enough units are on
-- scene by its deadline; a missed tier keeps escalating (next_check_at) until a unit arrives
-- or escalations run out.
CREATE TABLE alert_tiers (
    alert_id      bigint NOT NULL REFERENCES alerts ON DELETE CASCADE,
    tier          smallint NOT NULL,
    needed        smallint NOT NULL,
    deadline_at   timestamptz NOT NULL,
    state         text NOT NULL DEFAULT 'pending',
    met_at        timestamptz,
    missed_at     timestamptz,
    arrived_at    timestamptz,
    escalations   integer NOT NULL DEFAULT 0,
    next_check_at timestamptz,
    PRIMARY KEY (alert_id, tier)
);
CREATE INDEX alert_tiers_due ON alert_tiers (next_check_at) WHERE next_check_at IS NOT NULL;

CREATE TABLE assignments (
    assignment_id bigserial PRIMARY KEY,
    alert_id      bigint NOT NULL REFERENCES alerts ON DELETE CASCADE,
    unit_id       text NOT NULL REFERENCES units,
    tier          smallint,
    reason        text NOT NULL,
    state         text NOT NULL DEFAULT 'assigned',
    eta_s         real,
    distance_m    real,
    assigned_at   timestamptz NOT NULL DEFAULT now(),
    assigned_by   text NOT NULL,
    accepted_at   timestamptz,
    on_scene_at   timestamptz,
    on_scene_by   text,
    cleared_at    timestamptz,
    outcome       text,
    note          text
);
-- A unit works one alert at a time.
CREATE UNIQUE INDEX assignments_active_unit ON assignments (unit_id) WHERE state IN ('assigned', 'accepted', 'on_scene');
CREATE INDEX assignments_alert ON assignments (alert_id);
CREATE INDEX assignments_unit ON assignments (unit_id, assigned_at DESC);

-- The live feed: one row per change the console and units must see, in commit order
-- (appended under an advisory lock, so ids become visible in order and a reader resuming
-- from its last id misses nothing).
CREATE TABLE feed (
    id       bigserial PRIMARY KEY,
    at       timestamptz NOT NULL DEFAULT now(),
    kind     text NOT NULL,
    alert_id bigint,
    unit_ids text[] NOT NULL DEFAULT '{}',
    body     jsonb NOT NULL
);
CREATE INDEX feed_at ON feed (at);

-- Messages to patrol terminals, published over MQTT after commit by the dispatcher.
CREATE TABLE outbox (
    id         bigserial PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now(),
    unit_id    text NOT NULL,
    topic      text NOT NULL,
    payload    jsonb NOT NULL,
    sent_at    timestamptz
);
CREATE INDEX outbox_unsent ON outbox (id) WHERE sent_at IS NULL;

-- When each device was last heard from (kept by ingest; the offline rule reads it).
CREATE TABLE device_seen (
    device_id     text PRIMARY KEY,
    last_received timestamptz NOT NULL
);

-- Door state per gate and door, for the held-open rule.
CREATE TABLE door_states (
    device_id text NOT NULL,
    door      integer NOT NULL,
    state     text NOT NULL,
    since     timestamptz NOT NULL,
    PRIMARY KEY (device_id, door)
);

-- Events per device, kind and minute, for rate rules (surges against a baseline).
CREATE TABLE event_rates (
    device_id text NOT NULL,
    kind      text NOT NULL,
    minute    timestamptz NOT NULL,
    n         integer NOT NULL,
    PRIMARY KEY (device_id, kind, minute)
);

-- Site response levels (0 normal, 2, 1 highest) and their history.
CREATE TABLE site_levels (
    site_id    text PRIMARY KEY,
    level      smallint NOT NULL DEFAULT 0,
    since      timestamptz NOT NULL DEFAULT now(),
    until      timestamptz,
    reason     text NOT NULL DEFAULT '',
    detail     jsonb NOT NULL DEFAULT '{}'
);
CREATE TABLE site_level_changes (
    change_id  bigserial PRIMARY KEY,
    site_id    text NOT NULL,
    at         timestamptz NOT NULL DEFAULT now(),
    from_level smallint NOT NULL,
    to_level   smallint NOT NULL,
    reason     text NOT NULL,
    detail     jsonb NOT NULL DEFAULT '{}'
);
