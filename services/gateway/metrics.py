"""Gateway metrics (Prometheus naming: tidegate_gateway_*)."""

from prometheus_client import Counter, Gauge, Histogram

HTTP_REQUESTS = Counter(
    "tidegate_gateway_http_requests_total",
    "HTTP requests answered, by route and status code.",
    ["method", "route", "status"],
)
HTTP_SECONDS = Histogram(
    "tidegate_gateway_http_request_duration_seconds",
    "Time to answer an HTTP request.",
    ["method", "route"],
)
IMPORT_BYTES = Counter(
    "tidegate_gateway_received_bytes_total", "CSV bytes received in accepted imports."
)
ROWS_RECEIVED = Counter("tidegate_gateway_rows_received_total", "Data rows in accepted imports.")
CHUNKS_SUBMITTED = Counter(
    "tidegate_gateway_chunks_submitted_total", "Chunk events written to the outbox."
)
OUTBOX_PUBLISHED = Counter(
    "tidegate_outbox_published_total", "Outbox events acknowledged by the broker."
)
OUTBOX_PENDING = Gauge(
    "tidegate_outbox_pending_events", "Outbox events not yet acknowledged by the broker."
)
UPLOAD_BYTES = Counter(
    "tidegate_gateway_upload_bytes_stored_total",
    "Bytes of resumable uploads stored (PATCH bodies, in parts).",
)
UPLOAD_OUTCOMES = Counter(
    "tidegate_gateway_uploads_total",
    "Resumable uploads by what became of them: created, completed (an import), refused"
    " (422: the file cannot be one import), terminated (DELETE), expired (unfinished).",
    ["outcome"],
)
IMPORTS_CANCELLED = Counter("tidegate_gateway_imports_cancelled_total", "Imports cancelled.")
STREAMS_OPEN = Gauge("tidegate_gateway_open_streams", "Server-Sent Event streams open.")
STREAM_POLLS = Counter(
    "tidegate_gateway_stream_polls_total",
    "Looks of the stream watcher at the imports table (one per interval, for all streams).",
)
