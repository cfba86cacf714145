-- tidegate's own state lives in schema "tidegate"; target tables live elsewhere.
CREATE SCHEMA IF NOT EXISTS tidegate;

-- One row per import. Inserted by the gateway (or by the auditor for imports produced
-- straight onto the topics); state and counts are written by the auditor alone.
CREATE TABLE tidegate.imports (
    id              uuid PRIMARY KEY,
    target_table    text NOT NULL,
    columns         text[] NOT NULL,
    chunk_size      integer NOT NULL CHECK (chunk_size > 0),
    source          text NOT NULL CHECK (source IN ('http', 'kafka')),
    filename        text,
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN
                      ('pending', 'validating', 'loading', 'completed',
                       'completed_with_errors', 'failed')),
    version         integer NOT NULL DEFAULT 0,
    file_rows       bigint,                 -- data rows the gateway read from the file
    total_rows      bigint NOT NULL DEFAULT 0,
    valid_rows      bigint NOT NULL DEFAULT 0,
    loaded_rows     bigint NOT NULL DEFAULT 0,
    failed_rows     bigint NOT NULL DEFAULT 0,
    chunks_total    integer,
    chunks_validated integer NOT NULL DEFAULT 0,
    chunks_loaded   integer NOT NULL DEFAULT 0,
    error           text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz
);
CREATE INDEX imports_created_at ON tidegate.imports (created_at DESC, id);

-- Transactional outbox: events written with the state that caused them, published by a
-- relay, marked when the broker acknowledged them.
CREATE TABLE tidegate.outbox (
    id           bigserial PRIMARY KEY,
    event_id     text NOT NULL UNIQUE,
    event_type   text NOT NULL,
    topic        text NOT NULL,
    key          text NOT NULL,
    payload      bytea NOT NULL,
    import_id    uuid,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
ALTER TABLE tidegate.outbox ALTER COLUMN payload SET STORAGE EXTERNAL;  -- already compact
CREATE INDEX outbox_unpublished ON tidegate.outbox (id) WHERE published_at IS NULL;
CREATE INDEX outbox_import ON tidegate.outbox (import_id);

-- The loader's chunk ledger: a chunk is applied at most once, in the same transaction
-- as its rows.
CREATE TABLE tidegate.chunk_ledger (
    import_id    uuid NOT NULL,
    seq          integer NOT NULL,
    loaded_rows  integer NOT NULL,
    failed_rows  integer NOT NULL,
    errors       bytea,
    loaded_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (import_id, seq)
);

-- Lineage: which target rows each chunk inserted (primary-key values), to undo an import.
CREATE TABLE tidegate.load_lineage (
    import_id    uuid NOT NULL,
    seq          integer NOT NULL,
    part         integer NOT NULL,
    target_table text NOT NULL,
    row_count    integer NOT NULL,
    keys         jsonb,
    PRIMARY KEY (import_id, seq, part)
);

-- The auditor's inbox: each (chunk, stage) fact is counted once.
CREATE TABLE tidegate.chunk_progress (
    import_id    uuid NOT NULL,
    seq          integer NOT NULL,
    stage        text NOT NULL CHECK (stage IN ('submitted', 'validated', 'loaded')),
    rows_in      integer NOT NULL,
    rows_ok      integer NOT NULL,
    rows_failed  integer NOT NULL,
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (import_id, seq, stage)
);

-- Every rejected row, cell by cell, recorded by the auditor.
CREATE TABLE tidegate.row_errors (
    import_id    uuid NOT NULL,
    seq          integer NOT NULL,
    stage        text NOT NULL,
    line         integer NOT NULL,
    column_name  text,
    code         text NOT NULL,
    message      text NOT NULL,
    value        text
);
CREATE INDEX row_errors_import ON tidegate.row_errors (import_id, line);
