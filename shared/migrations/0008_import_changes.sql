-- The console's live stream reads the imports changed since a moment.
CREATE INDEX imports_updated_at ON tidegate.imports (updated_at);

-- What the gateway left out of a file: columns the table does not have (?extra_columns=
-- ignore), and rows whose every field was empty (passed over like blank lines).
ALTER TABLE tidegate.imports
    ADD COLUMN ignored_columns text[] NOT NULL DEFAULT '{}',
    ADD COLUMN empty_rows bigint NOT NULL DEFAULT 0;
