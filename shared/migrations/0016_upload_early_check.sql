-- Where the early check of a resumable upload's bytes stands (the record count, and the
-- parser's state between PATCHes: intake/upload.py's EarlyCheck), written with each part,
-- so that a file over the record limit, with a header that does not fit or bytes that are
-- not CSV is refused as soon as its bytes show it, whichever replica takes the PATCH.
ALTER TABLE tidegate.uploads ADD COLUMN checked bytea;
