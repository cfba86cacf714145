"""Topic names. One event type per topic, except `chunk.loaded`, which is per-chunk outcome."""

CHUNK_SUBMITTED = "tidegate.chunk.submitted"
CHUNK_VALIDATED = "tidegate.chunk.validated"
CHUNK_LOADED = "tidegate.chunk.loaded"
IMPORT_STATUS = "tidegate.import.status"
DEAD_LETTER = "tidegate.deadletter"
OPERATIONS = "tidegate.operations"  # commands for the loader: rollback, backup, restore
OPERATION_FINISHED = "tidegate.operation.finished"
VERIFICATIONS = "tidegate.verifications"  # commands for the validator: verify-data

ALL = (
    CHUNK_SUBMITTED,
    CHUNK_VALIDATED,
    CHUNK_LOADED,
    IMPORT_STATUS,
    DEAD_LETTER,
    OPERATIONS,
    OPERATION_FINISHED,
    VERIFICATIONS,
)

# The topics each worker's consumer group reads (group `tidegate-<service>`).
CONSUMED_BY: dict[str, tuple[str, ...]] = {
    "validator": (CHUNK_SUBMITTED, VERIFICATIONS),
    "loader": (CHUNK_VALIDATED, OPERATIONS),
    "auditor": (CHUNK_SUBMITTED, CHUNK_VALIDATED, CHUNK_LOADED),
}
