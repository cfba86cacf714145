"""An import's states, in the order an import moves through them (the auditor's state
machine derives them; the API shows them; the CLI waits for a final one)."""

from __future__ import annotations

from typing import Final, Literal, get_args

State = Literal[
    "pending",
    "validating",
    "loading",
    "completed",
    "completed_with_errors",
    "failed",
    "cancelled",
    "rolled_back",
]
ORDER: Final[tuple[State, ...]] = get_args(State)
PENDING, VALIDATING, LOADING, COMPLETED, COMPLETED_WITH_ERRORS, FAILED, CANCELLED, ROLLED_BACK = (
    ORDER
)
TERMINAL: Final = frozenset({COMPLETED, COMPLETED_WITH_ERRORS, FAILED, CANCELLED, ROLLED_BACK})
