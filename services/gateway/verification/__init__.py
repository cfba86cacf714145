"""The verification API (verify-data): ask for a verification and read its report.

May use: the other API rooms, `access`, `intake`, the gateway's plumbing and `shared`."""
