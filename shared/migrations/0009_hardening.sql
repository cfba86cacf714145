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

-- The live stream's change feed: the transaction that last changed each import. A change
-- is found by its transaction id against the oldest transaction still running when the
-- watcher last looked, so one committed long after it began is never missed.
ALTER TABLE tidegate.imports ADD COLUMN changed_xid xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX imports_changed_xid ON tidegate.imports (changed_xid);
CREATE FUNCTION tidegate.stamp_import_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.changed_xid := pg_current_xact_id();
    RETURN NEW;
END $$;
CREATE TRIGGER imports_changed BEFORE UPDATE ON tidegate.imports
    FOR EACH ROW EXECUTE FUNCTION tidegate.stamp_import_change();

-- Retention (docs/architecture.md, "Retention"): what of a finished import tidegate has
-- forgotten, and the indexes the retention job and the status endpoint read.
ALTER TABLE tidegate.imports
    ADD COLUMN chunks_purged_at timestamptz,
    ADD COLUMN diagnostics_purged_at timestamptz;
CREATE INDEX imports_chunks_kept ON tidegate.imports (finished_at)
    WHERE finished_at IS NOT NULL AND chunks_purged_at IS NULL;
CREATE INDEX imports_lineage_kept ON tidegate.imports (finished_at)
    WHERE finished_at IS NOT NULL AND lineage_purged_at IS NULL;
CREATE INDEX imports_diagnostics_kept ON tidegate.imports (finished_at)
    WHERE finished_at IS NOT NULL AND diagnostics_purged_at IS NULL;
CREATE INDEX imports_target_table ON tidegate.imports (target_table, created_at);
CREATE INDEX import_journal_dead_letters ON tidegate.import_journal (at)
    WHERE kind = 'dead_lettered';
CREATE INDEX operations_finished ON tidegate.operations (finished_at)
    WHERE finished_at IS NOT NULL;
CREATE INDEX verifications_finished ON tidegate.verifications (finished_at)
    WHERE finished_at IS NOT NULL;
-- A record's history finds the row errors about its key by column and value.
CREATE INDEX row_errors_value ON tidegate.row_errors (column_name, value)
    WHERE column_name IS NOT NULL;
