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

# The consumer groups of each worker and the topics each reads. A worker's commands
# (verify-data; rollback, backup, restore) have a group, and a consumer loop, of their own,
# so a long one never holds up chunks.
CONSUMER_GROUPS: dict[str, dict[str, tuple[str, ...]]] = {
    "validator": {
        "tidegate-validator": (CHUNK_SUBMITTED,),
        "tidegate-validator-commands": (VERIFICATIONS,),
    },
    "loader": {
        "tidegate-loader": (CHUNK_VALIDATED,),
        "tidegate-loader-commands": (OPERATIONS,),
    },
    "auditor": {"tidegate-auditor": (CHUNK_SUBMITTED, CHUNK_VALIDATED, CHUNK_LOADED)},
}

# The groups an import's chunk events wait in, and the topics they wait on: an import with
# records still unconsumed there (on its key's partition) is queued, not lost.
CHUNK_GROUPS: dict[str, tuple[str, ...]] = {
    "tidegate-validator": (CHUNK_SUBMITTED,),
    "tidegate-loader": (CHUNK_VALIDATED,),
    "tidegate-auditor": (CHUNK_SUBMITTED, CHUNK_VALIDATED, CHUNK_LOADED),
}
