-- A chunk that failed as a whole keeps its reason in the ledger, so the outcome rebuilt from
-- it (a redelivery, or the reconciler after a lost event) still fails the chunk's import.
ALTER TABLE tidegate.chunk_ledger ADD COLUMN chunk_error text;

-- Lineage (row_images and the chunk lineage) of an import is kept for a configurable time
-- after it finished; once purged, the import can no longer be rolled back.
ALTER TABLE tidegate.imports ADD COLUMN lineage_purged_at timestamptz;

-- Files of deleted backups are removed after the commit that deleted them.
CREATE INDEX backups_deleted_files ON tidegate.backups (id)
    WHERE status = 'deleted' AND file_name IS NOT NULL;

-- What each verdict counted, so the auditor counts a chunk.validated event only if it is the
-- validator's (a forged one with invalid_rows = total would fail the import).
ALTER TABLE tidegate.chunk_verdicts
    ADD COLUMN total_rows integer,
    ADD COLUMN invalid_rows integer,
    ADD COLUMN skipped_rows integer,
    ADD COLUMN duplicate_rows integer,
    ADD COLUMN error_count integer,
    ADD COLUMN chunk_error text;
