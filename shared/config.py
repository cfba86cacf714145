"""Settings parsed once from the environment into a frozen struct.

An error names the variable at fault. Nothing here opens connections.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import msgspec

from shared.errors import ConfigError


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Everything a tidegate process reads from its environment."""

    database_url: str
    kafka_bootstrap_servers: str
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    log_level: str = "info"
    topic_partitions: int = 6
    default_chunk_size: int = 1000
    max_chunk_size: int = 10_000
    load_batch_rows: int = 10_000  # the most rows the loader commits in one transaction
    allowed_schemas: tuple[str, ...] = ("public",)
    outbox_poll_seconds: float = 1.0
    max_file_bytes: int = 100 * 1024 * 1024
    max_records_per_import: int = 10_000
    requests_per_minute: int = 60  # per API key, unless the key has its own
    concurrent_imports: int = 1  # per API key, unless the key has its own
    audit_retention_days: int = 365  # 0: keep the audit log forever
    # What a finished import leaves behind, kept this many days (shared/retention.py; 0:
    # for ever): its chunk copies, its lineage (rollback), its errors and timeline.
    chunk_retention_days: int = 7
    lineage_retention_days: int = 30
    diagnostics_retention_days: int = 90
    rules_dir: str = "rules"
    service_name: str = "tidegate"
    # Self-healing (docs/architecture.md, "Faults and recovery").
    transient_retry_seconds: float = 300.0  # retry one event this long, then dead-letter it
    reconcile_seconds: float = 5.0  # how often the auditor's reconciler looks
    stall_seconds: float = 30.0  # an import without progress this long is re-driven
    give_up_seconds: float = 900.0  # ... and failed after this long without progress
    heartbeat_seconds: float = 5.0  # each instance reports itself; down after 3 missed beats
    # Recovery (docs/architecture.md): defaults of the per-import settings, and backups.
    auto_retry: int = 3  # attempts per chunk when the database refuses one for a passing reason
    retry_backoff_seconds: float = 1.0  # wait after the first refused attempt; doubles
    rollback_on_failure: bool = True  # undo what an import that failed had loaded
    lock_timeout_seconds: float = 60.0  # a statement waiting this long for a lock is refused
    backup_dir: str = "backups"
    backup_keep_last: int = 20  # completed backups kept ...
    backup_keep_days: int = 30  # ... and none older than this (0: no age limit)
    pg_bin_dir: str = ""  # pg_dump, pg_restore, psql; empty: the embedded server's, or PATH
    # Bounds on what a client can make the gateway hold (docs/architecture.md, "Bounds").
    db_acquire_seconds: float = 5.0  # wait for a pool connection, then 503 + Retry-After
    idle_transaction_seconds: float = 30.0  # the server ends a gateway transaction idle so long
    body_idle_seconds: float = 30.0  # an upload silent this long is answered 408
    max_uploads: int = 32  # uploads one gateway receives at once (503 beyond)
    upload_expiry_seconds: float = 86_400.0  # an unfinished resumable upload is deleted after
    max_record_bytes: int = 8 * 1024 * 1024  # longest CSV record (so field) accepted: 422
    shutdown_seconds: float = 10.0  # a graceful stop waits this long for requests in hand
    max_streams_per_key: int = 5  # open event streams per API key and gateway (429 beyond)
    slow_statement_seconds: float = 5.0  # a database statement this slow is logged


# Each default is written once, in Settings.
DEFAULTS: dict[str, Any] = {f.name: f.default for f in msgspec.structs.fields(Settings)}


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{name} must be > 0, got {value}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw == "":
        return default
    if raw in ("true", "1", "yes"):
        return True
    if raw in ("false", "0", "no"):
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise ConfigError(f"{name} is not set")
    return value


def load_settings(
    service_name: str, env: Mapping[str, str] | None = None, *, default_port: int = 8080
) -> Settings:
    """Read the settings of one service; `TIDEGATE_<SERVICE>_PORT` overrides `PORT`."""
    env = os.environ if env is None else env
    port_var = f"TIDEGATE_{service_name.upper()}_PORT"
    port = _int(env, port_var, _int(env, "PORT", default_port), minimum=0)
    # checkpoint_interval is the seed's name for the chunk size: the unit committed at once.
    chunk_default = _int(
        env,
        "TIDEGATE_DEFAULT_CHUNK_SIZE",
        _int(env, "TIDEGATE_CHECKPOINT_INTERVAL", DEFAULTS["default_chunk_size"], minimum=1),
        minimum=1,
    )
    chunk_max = _int(env, "TIDEGATE_MAX_CHUNK_SIZE", DEFAULTS["max_chunk_size"], minimum=1)
    if chunk_default > chunk_max:
        raise ConfigError("TIDEGATE_DEFAULT_CHUNK_SIZE must not exceed TIDEGATE_MAX_CHUNK_SIZE")
    schemas = tuple(
        s.strip()
        for s in env.get("TIDEGATE_ALLOWED_SCHEMAS", ",".join(DEFAULTS["allowed_schemas"])).split(
            ","
        )
        if s.strip()
    )
    if not schemas:
        raise ConfigError("TIDEGATE_ALLOWED_SCHEMAS must name at least one schema")
    if "tidegate" in schemas:
        raise ConfigError("TIDEGATE_ALLOWED_SCHEMAS must not include tidegate's own schema")
    return Settings(
        database_url=_required(env, "DATABASE_URL"),
        kafka_bootstrap_servers=_required(env, "KAFKA_BOOTSTRAP_SERVERS"),
        http_host=env.get("TIDEGATE_HTTP_HOST", DEFAULTS["http_host"]),
        http_port=port,
        log_level=env.get("LOG_LEVEL", DEFAULTS["log_level"]).lower(),
        topic_partitions=_int(
            env, "TIDEGATE_TOPIC_PARTITIONS", DEFAULTS["topic_partitions"], minimum=1
        ),
        default_chunk_size=chunk_default,
        max_chunk_size=chunk_max,
        load_batch_rows=_int(
            env, "TIDEGATE_LOAD_BATCH_ROWS", DEFAULTS["load_batch_rows"], minimum=1
        ),
        allowed_schemas=schemas,
        outbox_poll_seconds=_float(
            env, "TIDEGATE_OUTBOX_POLL_SECONDS", DEFAULTS["outbox_poll_seconds"]
        ),
        max_file_bytes=_int(env, "TIDEGATE_MAX_FILE_BYTES", DEFAULTS["max_file_bytes"], minimum=1),
        max_records_per_import=_int(
            env, "TIDEGATE_MAX_RECORDS_PER_IMPORT", DEFAULTS["max_records_per_import"], minimum=1
        ),
        requests_per_minute=_int(
            env, "TIDEGATE_REQUESTS_PER_MINUTE", DEFAULTS["requests_per_minute"], minimum=1
        ),
        concurrent_imports=_int(
            env, "TIDEGATE_CONCURRENT_IMPORTS", DEFAULTS["concurrent_imports"], minimum=1
        ),
        audit_retention_days=_int(
            env, "TIDEGATE_AUDIT_RETENTION_DAYS", DEFAULTS["audit_retention_days"], minimum=0
        ),
        chunk_retention_days=_int(
            env, "TIDEGATE_CHUNK_RETENTION_DAYS", DEFAULTS["chunk_retention_days"]
        ),
        lineage_retention_days=_int(
            env, "TIDEGATE_LINEAGE_RETENTION_DAYS", DEFAULTS["lineage_retention_days"]
        ),
        diagnostics_retention_days=_int(
            env, "TIDEGATE_DIAGNOSTICS_RETENTION_DAYS", DEFAULTS["diagnostics_retention_days"]
        ),
        rules_dir=env.get("TIDEGATE_RULES_DIR", "") or DEFAULTS["rules_dir"],
        auto_retry=_int(env, "TIDEGATE_AUTO_RETRY", DEFAULTS["auto_retry"], minimum=1),
        rollback_on_failure=_bool(
            env, "TIDEGATE_ROLLBACK_ON_FAILURE", DEFAULTS["rollback_on_failure"]
        ),
        backup_dir=env.get("TIDEGATE_BACKUP_DIR", "") or DEFAULTS["backup_dir"],
        backup_keep_last=_int(
            env, "TIDEGATE_BACKUP_KEEP_LAST", DEFAULTS["backup_keep_last"], minimum=1
        ),
        backup_keep_days=_int(
            env, "TIDEGATE_BACKUP_KEEP_DAYS", DEFAULTS["backup_keep_days"], minimum=0
        ),
        pg_bin_dir=env.get("TIDEGATE_PG_BIN_DIR", DEFAULTS["pg_bin_dir"]),
        max_uploads=_int(env, "TIDEGATE_MAX_UPLOADS", DEFAULTS["max_uploads"], minimum=1),
        max_streams_per_key=_int(
            env, "TIDEGATE_MAX_STREAMS_PER_KEY", DEFAULTS["max_streams_per_key"], minimum=1
        ),
        max_record_bytes=_int(
            env, "TIDEGATE_MAX_RECORD_BYTES", DEFAULTS["max_record_bytes"], minimum=1024
        ),
        service_name=service_name,
        **{
            name: _float(env, f"TIDEGATE_{name.upper()}", DEFAULTS[name])
            for name in (
                "transient_retry_seconds",
                "reconcile_seconds",
                "stall_seconds",
                "give_up_seconds",
                "heartbeat_seconds",
                "retry_backoff_seconds",
                "lock_timeout_seconds",
                "db_acquire_seconds",
                "idle_transaction_seconds",
                "body_idle_seconds",
                "upload_expiry_seconds",
                "shutdown_seconds",
                "slow_statement_seconds",
            )
        },
    )
