-- Privacy: plates that hit no hotlist are readable only for a configured window, then replaced
-- by a keyed hash (HMAC-SHA-256 with a key per period). A period's key is destroyed once every
-- plate of the period is pseudonymised, so no one (this service included) can link the hashes
-- back to plates, nor across periods. The key is kept as its HMAC inner and outer pads.
CREATE TABLE privacy_keys (
    period       text PRIMARY KEY,         -- e.g. '2026-12' (the UTC month of the events)
    ends_at      timestamptz NOT NULL,     -- the period's end: its key is destroyed once plates of it must all be hashed
    inner_pad    bytea,                    -- key XOR 0x36...; NULL once destroyed
    outer_pad    bytea,                    -- key XOR 0x5c...; NULL once destroyed
    created_at   timestamptz NOT NULL DEFAULT now(),
    destroyed_at timestamptz
);

-- Which events' plates are pseudonymised (a hash in place of the plate starts with '#').
CREATE INDEX events_readable_plate ON events (occurred_at) WHERE plate IS NOT NULL AND plate NOT LIKE '#%';
