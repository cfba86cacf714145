"""Access: who may do what, how often. API keys (`keys`: tokens and roles; `keystore`: their
SQL), the middleware that authenticates every request and checks its permission and table
scope (`guard`), per-key limits (`limits`, `streams` for live streams), `idempotency` of
retried requests, the `audit` log and the `retention` of what access keeps.

May use: the gateway's plumbing, `intake` and `shared`. Never an API room."""
