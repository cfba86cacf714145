-- Recovery: undo an import, cancel it, retry its failed rows, automatic retry and rollback,
-- and backups that can be restored.

-- Two more terminal states: an import undone after it committed, and one cancelled while
-- it ran (what it had loaded is rolled back).
ALTER TABLE tidegate.imports DROP CONSTRAINT imports_status_check;
ALTER TABLE tidegate.imports ADD CONSTRAINT imports_status_check CHECK (status IN
    ('pending', 'validating', 'loading', 'completed', 'completed_with_errors', 'failed',
     'rolled_back', 'cancelled'));

-- `header`: the file's header as written (the failed-rows export gives it back).
-- `parent_id`: the import this one retries. `auto_retry`: attempts per chunk at a transient
-- failure. `rollback_on_failure`: undo what a failed import loaded. `atomic`: any rejected
-- row fails the whole import. `backup_id`: the backup taken before the first chunk loaded.
-- `chunks_failed`: chunks that could not be loaded at all.
ALTER TABLE tidegate.imports
    ADD COLUMN header text[],
    ADD COLUMN parent_id uuid REFERENCES tidegate.imports (id),
    ADD COLUMN auto_retry smallint NOT NULL DEFAULT 3 CHECK (auto_retry BETWEEN 1 AND 10),
    ADD COLUMN rollback_on_failure boolean NOT NULL DEFAULT true,
    ADD COLUMN atomic boolean NOT NULL DEFAULT false,
    ADD COLUMN backup_id uuid,
    ADD COLUMN chunks_failed integer NOT NULL DEFAULT 0;
CREATE INDEX imports_parent ON tidegate.imports (parent_id) WHERE parent_id IS NOT NULL;
CREATE INDEX imports_table_unfinished ON tidegate.imports (target_table, created_at)
    WHERE finished_at IS NULL;

-- Which line of the parent's file each line of a retry stands for.
CREATE TABLE tidegate.retried_lines (
    import_id   uuid NOT NULL,
    line        integer NOT NULL,
    parent_line integer NOT NULL,
    PRIMARY KEY (import_id, line)
);

-- A digest (hashtextextended of the row's text) of every row as the loader wrote it, in
-- the order of `keys`: a rollback finds the rows changed since. Row images get the keys
-- and the digests of the rows as updated.
ALTER TABLE tidegate.load_lineage ADD COLUMN digests bigint[];
ALTER TABLE tidegate.row_images ADD COLUMN keys jsonb, ADD COLUMN digests bigint[];

-- Work for the loader that is not a chunk: undo an import, back up or restore tables,
-- delete a backup. Requested through the outbox (a command event), done once: the loader
-- records the outcome in the same transaction as the effect.
CREATE TABLE tidegate.operations (
    id          uuid PRIMARY KEY,
    kind        text NOT NULL CHECK (kind IN ('rollback', 'backup', 'restore', 'delete_backup')),
    trigger     text NOT NULL CHECK (trigger IN ('request', 'cancel', 'failure', 'pre_import')),
    import_id   uuid REFERENCES tidegate.imports (id),
    backup_id   uuid,
    force       boolean NOT NULL DEFAULT false,
    dry_run     boolean NOT NULL DEFAULT false,
    status      text NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'completed', 'refused', 'failed')),
    result      jsonb,
    error       text,
    attempts    integer NOT NULL DEFAULT 0,
    key_id      uuid,
    team        text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);
CREATE INDEX operations_pending ON tidegate.operations (updated_at) WHERE status = 'pending';
CREATE INDEX operations_import ON tidegate.operations (import_id, created_at DESC);
CREATE INDEX operations_created ON tidegate.operations (created_at DESC, id);
CREATE INDEX operations_backup ON tidegate.operations (backup_id) WHERE backup_id IS NOT NULL;

-- Backups: a pg_dump custom-format file per backup, under the backup directory, with what
-- a restore verifies (SHA-256 of the file, row counts and a content hash per table).
CREATE TABLE tidegate.backups (
    id             uuid PRIMARY KEY,
    tables         text[] NOT NULL,
    status         text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'completed', 'failed', 'deleted')),
    reason         text,
    import_id      uuid,
    file_name      text,
    size_bytes     bigint,
    sha256         text,
    server_version text,
    row_counts     jsonb,
    content_hashes jsonb,
    error          text,
    key_id         uuid,
    team           text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    completed_at   timestamptz,
    deleted_at     timestamptz
);
CREATE INDEX backups_created ON tidegate.backups (created_at DESC, id);

-- Idempotency-Key on requests that start an operation (rollback, backup, restore, delete):
-- a key remembers either the import or the operation its first request created.
ALTER TABLE tidegate.idempotency_keys
    ALTER COLUMN import_id DROP NOT NULL,
    ADD COLUMN operation_id uuid,
    ADD CONSTRAINT idempotency_keys_one_answer CHECK ((import_id IS NULL) <> (operation_id IS NULL));
