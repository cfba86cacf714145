-- Resumable uploads (tus 1.0, /api/v1/database/uploads): an upload's declared length, the
-- import options it was created with, and its bytes, stored in parts as they arrive so that
-- every gateway replica sees them and a gateway killed mid-PATCH keeps what it acknowledged.
-- When the last byte arrives the upload becomes one import (import_id, set once) and its
-- parts are deleted; an unfinished upload is deleted with its parts once it expires.
CREATE TABLE tidegate.uploads (
    id           uuid PRIMARY KEY,
    key_id       uuid NOT NULL,
    team         text,
    target_table text NOT NULL,
    params       jsonb NOT NULL,          -- the import's parameters, as POST /import takes them
    filename     text,
    length       bigint NOT NULL CHECK (length >= 0),
    received     bigint NOT NULL DEFAULT 0 CHECK (received >= 0 AND received <= length),
    import_id    uuid,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL
);
CREATE INDEX uploads_expires_at ON tidegate.uploads (expires_at) WHERE import_id IS NULL;

CREATE TABLE tidegate.upload_parts (
    upload_id uuid NOT NULL REFERENCES tidegate.uploads (id) ON DELETE CASCADE,
    start     bigint NOT NULL,
    data      bytea NOT NULL,
    PRIMARY KEY (upload_id, start)
);
-- Parts are written once and read once, in order: not worth compressing.
ALTER TABLE tidegate.upload_parts ALTER COLUMN data SET STORAGE EXTERNAL;
