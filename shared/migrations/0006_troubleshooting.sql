-- Troubleshooting: find the imports that wrote a row by its key (debug record).
CREATE INDEX load_lineage_keys ON tidegate.load_lineage USING gin (keys jsonb_path_ops);
CREATE INDEX row_images_keys ON tidegate.row_images USING gin (keys jsonb_path_ops);
CREATE INDEX load_lineage_table ON tidegate.load_lineage (target_table);

-- An import's journal: what its timeline shows besides the chunk facts (chunk_progress) and
-- operations: state changes, re-drives, refused attempts, dead-lettered events.
CREATE TABLE tidegate.import_journal (
    id        bigserial PRIMARY KEY,
    import_id uuid NOT NULL,
    at        timestamptz NOT NULL DEFAULT clock_timestamp(),
    service   text NOT NULL,
    kind      text NOT NULL,
    seq       integer,
    detail    jsonb
);
CREATE INDEX import_journal_import ON tidegate.import_journal (import_id, at);

-- Every running service instance, as it last reported itself (sync status): up while its
-- heartbeat is recent; `detail` holds its readiness (consumers, lag, stalls).
CREATE TABLE tidegate.service_heartbeats (
    instance   text PRIMARY KEY,          -- service@host:pid
    service    text NOT NULL,
    version    text NOT NULL,
    host       text NOT NULL,
    pid        integer NOT NULL,
    started_at timestamptz NOT NULL,
    last_seen  timestamptz NOT NULL,
    detail     jsonb
);

-- verify-data: a check of tables' current rows against the import rules, done by the
-- validator; `result` per table (the seed's metrics, per-check counts, a sample of rows).
CREATE TABLE tidegate.verifications (
    id          uuid PRIMARY KEY,
    tables      text[] NOT NULL,
    status      text NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'completed', 'failed')),
    passed      boolean,
    result      jsonb,
    error       text,
    key_id      uuid,
    team        text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);
CREATE INDEX verifications_created ON tidegate.verifications (created_at DESC, id);
CREATE INDEX verifications_tables ON tidegate.verifications USING gin (tables);
