-- Self-healing: who produced an upstream import, the reconciler's re-drives, and the
-- validator's verdicts (so the loader applies only chunks the validator produced).

-- `producer`: the CloudEvents source of the first chunk.submitted of an import produced
-- straight onto the topics. `redrives`: how many times the auditor's reconciler re-drove
-- the import's missing steps; `last_redrive_at`: when it last did.
ALTER TABLE tidegate.imports
    ADD COLUMN producer text,
    ADD COLUMN redrives integer NOT NULL DEFAULT 0,
    ADD COLUMN last_redrive_at timestamptz;
CREATE INDEX imports_unfinished ON tidegate.imports (updated_at) WHERE finished_at IS NULL;

-- The digest of the last chunk.validated event the validator produced for each chunk.
-- The loader loads a chunk only if the event it holds has this digest.
CREATE TABLE tidegate.chunk_verdicts (
    import_id    uuid NOT NULL,
    seq          integer NOT NULL,
    digest       bytea NOT NULL,
    validated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (import_id, seq)
);
