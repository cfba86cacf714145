-- A chunk that failed as a whole keeps its reason in the ledger, so the outcome rebuilt from
-- it (a redelivery, or the reconciler after a lost event) still fails the chunk's import.
ALTER TABLE tidegate.chunk_ledger ADD COLUMN chunk_error text;
