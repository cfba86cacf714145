"""Intake: a file's way in. The request body read under bounds (`body`), parsed into chunks
(`csv_stream`, `upload`), spooled (`spool`), stored with the import and its chunks in one
transaction (`import_store`, `upload`), and the outbox relayed to the broker (`relay`);
`upload_gate` counts the uploads being received.

May use: the gateway's plumbing (problems, params, lifecycle, metrics), `access` (who is
uploading) and `shared`. Never an API room."""
