-- Access control and anti-abuse: API keys, per-key request log (rate limit shared by every
-- gateway replica), import ownership and concurrency slots, idempotency keys, audit log.

-- An API key: `tg_<lookup>_<secret>`. Only the SHA-256 of the secret is stored; `lookup` is
-- public (shown in listings, used to find the row). A rotation replaces the secret and may
-- keep the previous one valid until `previous_valid_until`.
CREATE TABLE tidegate.api_keys (
    id                   uuid PRIMARY KEY,
    lookup               text NOT NULL UNIQUE,
    secret_hash          bytea NOT NULL,
    previous_hash        bytea,
    previous_valid_until timestamptz,
    name                 text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    role                 text NOT NULL CHECK (role IN ('admin', 'data_manager', 'viewer', 'subscriber')),
    team                 text CHECK (length(team) BETWEEN 1 AND 200),
    tables               text[],            -- NULL: every table imports may write to
    requests_per_minute  integer CHECK (requests_per_minute > 0),  -- NULL: the default
    concurrent_imports   integer CHECK (concurrent_imports BETWEEN 1 AND 100),
    created_by           uuid REFERENCES tidegate.api_keys (id),
    created_at           timestamptz NOT NULL DEFAULT now(),
    rotated_at           timestamptz,
    revoked_at           timestamptz,
    last_used_at         timestamptz
);

-- One row per request a key made within the last window: every gateway counts here.
CREATE TABLE tidegate.key_requests (
    key_id uuid NOT NULL REFERENCES tidegate.api_keys (id) ON DELETE CASCADE,
    at     timestamptz NOT NULL
);
CREATE INDEX key_requests_key_at ON tidegate.key_requests (key_id, at);

-- Take one request from a key's budget of `lim` per `win` (a sliding window), atomically
-- across gateways. Returns whether it was allowed, what remains, and the seconds until the
-- oldest counted request leaves the window.
CREATE FUNCTION tidegate.take_request(k uuid, lim integer, win interval,
                                      OUT allowed boolean, OUT remaining integer,
                                      OUT reset_seconds double precision)
LANGUAGE plpgsql AS $$
DECLARE
    t      timestamptz := clock_timestamp();
    used   integer;
    oldest timestamptz;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended(k::text, 7));
    DELETE FROM tidegate.key_requests WHERE key_id = k AND at <= t - win;
    SELECT count(*), min(at) INTO used, oldest FROM tidegate.key_requests WHERE key_id = k;
    allowed := used < lim;
    IF allowed THEN
        INSERT INTO tidegate.key_requests (key_id, at) VALUES (k, t);
        used := used + 1;
        oldest := coalesce(oldest, t);
    END IF;
    -- last_used_at to the minute: one write a minute per busy key, not one per request
    UPDATE tidegate.api_keys SET last_used_at = t
     WHERE id = k AND (last_used_at IS NULL OR last_used_at < t - interval '1 minute');
    remaining := greatest(lim - used, 0);
    reset_seconds := greatest(extract(epoch FROM (oldest + win - t)), 0);
END
$$;

-- Who created an import, and the concurrency slot it holds until it is finished: at most
-- one running import per (key, slot); the gateway hands out slots below the key's limit.
ALTER TABLE tidegate.imports
    ADD COLUMN key_id uuid REFERENCES tidegate.api_keys (id),
    ADD COLUMN team text,
    ADD COLUMN slot smallint;
CREATE UNIQUE INDEX imports_running_slot ON tidegate.imports (key_id, slot)
    WHERE finished_at IS NULL AND slot IS NOT NULL;
CREATE INDEX imports_team ON tidegate.imports (team, created_at DESC) WHERE team IS NOT NULL;
CREATE INDEX imports_key ON tidegate.imports (key_id, created_at DESC);

-- `Idempotency-Key` of import requests: the first successful answer is replayed for 24 h.
CREATE TABLE tidegate.idempotency_keys (
    key_id      uuid NOT NULL REFERENCES tidegate.api_keys (id) ON DELETE CASCADE,
    idem_key    text NOT NULL,
    fingerprint bytea NOT NULL,           -- SHA-256 of the parameters and the body
    import_id   uuid NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (key_id, idem_key)
);

-- Every authenticated request (and every refused credential): who, what, when, outcome.
CREATE TABLE tidegate.audit_log (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    key_id      uuid,
    key_lookup  text,
    role        text,
    action      text NOT NULL,
    method      text NOT NULL,
    path        text NOT NULL,
    target      text,
    status      integer NOT NULL,
    outcome     text NOT NULL CHECK (outcome IN ('success', 'denied', 'rejected', 'error')),
    remote      text,
    request_id  text NOT NULL,
    detail      jsonb
);
CREATE INDEX audit_log_at ON tidegate.audit_log (at DESC, id DESC);
CREATE INDEX audit_log_key ON tidegate.audit_log (key_id, at DESC);
