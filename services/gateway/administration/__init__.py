"""The administration API: API keys (create, list, rotate, revoke), the calling key
(`/me`) and the audit log (`keys_admin`).

May use: the other API rooms, `access`, `intake`, the gateway's plumbing and `shared`."""
