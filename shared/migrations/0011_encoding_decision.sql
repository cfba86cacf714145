-- How an import's encoding was decided: declared (?encoding=), the Content-Type's charset,
-- a byte-order mark, or detected (with the share of plausible non-ASCII characters).
ALTER TABLE tidegate.imports ADD COLUMN encoding_decided_by text;
ALTER TABLE tidegate.imports ADD COLUMN encoding_confidence real;
