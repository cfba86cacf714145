"""The recovery API: roll back, cancel or retry an import (`rollbacks`), an admin's
escape hatches (`interventions`), backups and their restore (`backups`), purging a table's
import history (`purge`).

May use: the other API rooms, `access`, `intake`, the gateway's plumbing and `shared`."""
