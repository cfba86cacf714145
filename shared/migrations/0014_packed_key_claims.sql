-- The validator's key claims packed: each chunk's digests as big-endian 8-byte integers and
-- their lines as 4-byte ones, written and read as bytes (numpy at both ends) instead of
-- text arrays that PostgreSQL parses and Python formats number by number.
ALTER TABLE tidegate.import_key_chunks
    ADD COLUMN packed_digests bytea,
    ADD COLUMN packed_lines bytea;
UPDATE tidegate.import_key_chunks SET
    packed_digests = coalesce((SELECT string_agg(int8send(d), ''::bytea ORDER BY n)
                               FROM unnest(digests) WITH ORDINALITY AS x (d, n)), ''::bytea),
    packed_lines = coalesce((SELECT string_agg(int4send(l), ''::bytea ORDER BY n)
                             FROM unnest(lines) WITH ORDINALITY AS x (l, n)), ''::bytea);
ALTER TABLE tidegate.import_key_chunks
    DROP COLUMN digests,
    DROP COLUMN lines;
ALTER TABLE tidegate.import_key_chunks RENAME COLUMN packed_digests TO digests;
ALTER TABLE tidegate.import_key_chunks RENAME COLUMN packed_lines TO lines;
ALTER TABLE tidegate.import_key_chunks
    ALTER COLUMN digests SET NOT NULL,
    ALTER COLUMN lines SET NOT NULL;
