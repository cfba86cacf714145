-- A key's own limit of records per import (NULL: TIDEGATE_MAX_RECORDS_PER_IMPORT), set by an
-- admin for a migration, like its request and concurrency limits.
ALTER TABLE tidegate.api_keys ADD COLUMN max_records_per_import integer
    CHECK (max_records_per_import > 0);
