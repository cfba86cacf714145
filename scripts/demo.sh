#!/usr/bin/env sh
# Set up, then start the stack (embedded PostgreSQL and broker unless DATABASE_URL /
# KAFKA_BOOTSTRAP_SERVERS are set), import the bundled sample through the HTTP API,
# print the outcome and stop.
set -eu
cd "$(dirname "$0")/.."
sh scripts/setup.sh
exec .venv/bin/tidegate demo "$@"
