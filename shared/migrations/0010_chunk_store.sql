-- The chunk store (claim check): each chunk's rows are written once, by whoever receives
-- them first (the gateway for an upload, the validator for an upstream producer's inline
-- chunk). Events on the broker carry (import, seq), counts and verdicts, never the rows
-- again. `payload` is the chunk.submitted event as received, MessagePack.
CREATE TABLE tidegate.chunks (
    import_id  uuid NOT NULL,
    seq        integer NOT NULL,
    row_count  integer,   -- NULL: copied from the outbox by this migration
    last       boolean,
    payload    bytea NOT NULL,
    stored_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (import_id, seq)
);
ALTER TABLE tidegate.chunks ALTER COLUMN payload SET STORAGE EXTERNAL;  -- already compact

-- Chunks stored before: their copies move from the outbox to the store. The ones the relay
-- has not published yet stay in the outbox too (consumers still accept inline chunks).
INSERT INTO tidegate.chunks (import_id, seq, payload, stored_at)
SELECT import_id, split_part(event_id, ':', 2)::integer, payload, created_at
FROM tidegate.outbox
WHERE topic = 'tidegate.chunk.submitted' AND import_id IS NOT NULL
ON CONFLICT DO NOTHING;
DELETE FROM tidegate.outbox
WHERE topic = 'tidegate.chunk.submitted' AND published_at IS NOT NULL;

-- Lineage per chunk: a chunk loaded with COPY in its own transaction records the keys it
-- inserted and that transaction's id; a row of it is unchanged while its xmin is that id.
ALTER TABLE tidegate.load_lineage ADD COLUMN xid xid8;
