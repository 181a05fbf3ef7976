-- Who looked up plates and face captures, when, why, and how many records they got. Append
-- only: a trigger refuses UPDATE, DELETE and TRUNCATE, and each row carries the SHA-256 of the
-- previous row's hash and its own content, so an edit made around the trigger (by a superuser
-- disabling it) breaks the chain where it was made.
CREATE TABLE audit_log (
    id           bigserial PRIMARY KEY,
    at           timestamptz NOT NULL,
    actor        text NOT NULL,
    role         text NOT NULL,
    action       text NOT NULL,
    query        jsonb NOT NULL,
    purpose      text NOT NULL,
    result_count integer NOT NULL,
    prev_hash    bytea NOT NULL,
    hash         bytea NOT NULL
);

CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP;
END $$;
CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
