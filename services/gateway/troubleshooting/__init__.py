"""The troubleshooting API: a record's history (`records`), an import's timeline
(`timeline`, live as Server-Sent Events) and the system's status (`status`).

May use: the other API rooms, `access`, `intake`, the gateway's plumbing and `shared`."""
