-- verify-data of one row (debug record: does it pass verification now?): the row's
-- primary key, {column: value as text}; NULL for whole tables.
ALTER TABLE tidegate.verifications ADD COLUMN row_key jsonb;

-- How far a running verification is (written beside its row, which the validator holds
-- locked until the result): rows checked of the table in hand, of about how many.
CREATE TABLE tidegate.verification_progress (
    verification_id uuid PRIMARY KEY REFERENCES tidegate.verifications (id) ON DELETE CASCADE,
    table_name      text NOT NULL,
    tables_done     integer NOT NULL,
    rows_checked    bigint NOT NULL,
    rows_estimated  bigint NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
