-- Validation modes, duplicate policies, detected input format, and richer counts.
ALTER TABLE tidegate.imports
    ADD COLUMN mode text NOT NULL DEFAULT 'import'
        CHECK (mode IN ('import', 'validate_only', 'dry_run')),
    ADD COLUMN on_duplicate text CHECK (on_duplicate IN ('reject', 'skip', 'update')),
    ADD COLUMN encoding text,
    ADD COLUMN delimiter text,
    ADD COLUMN skipped_rows bigint NOT NULL DEFAULT 0,
    ADD COLUMN updated_rows bigint NOT NULL DEFAULT 0,
    ADD COLUMN duplicate_rows bigint NOT NULL DEFAULT 0,
    ADD COLUMN chunks_submitted integer NOT NULL DEFAULT 0;

ALTER TABLE tidegate.chunk_ledger
    ADD COLUMN updated_rows integer NOT NULL DEFAULT 0,
    ADD COLUMN skipped_rows integer NOT NULL DEFAULT 0,
    ADD COLUMN duplicate_rows integer NOT NULL DEFAULT 0;

ALTER TABLE tidegate.row_errors
    ADD COLUMN severity text NOT NULL DEFAULT 'error' CHECK (severity IN ('error', 'warning'));

-- The validator's key claims: per chunk and unique key of the target table, the digests of
-- the key values that chunk was the first in the file to use, and their lines. The
-- validator keeps them in memory and rebuilds from here after a restart. Removed when the
-- import finishes.
CREATE TABLE tidegate.import_key_chunks (
    import_id uuid NOT NULL,
    seq       integer NOT NULL,
    key_no    smallint NOT NULL,
    digests   bigint[] NOT NULL,
    lines     integer[] NOT NULL,
    PRIMARY KEY (import_id, seq, key_no)
);

-- Rows an import updated (on_duplicate=update), as they were before: with the lineage of
-- inserted keys, enough to undo the import.
CREATE TABLE tidegate.row_images (
    import_id    uuid NOT NULL,
    seq          integer NOT NULL,
    part         integer NOT NULL,
    target_table text NOT NULL,
    row_count    integer NOT NULL,
    before       jsonb NOT NULL,
    PRIMARY KEY (import_id, seq, part)
);
