#!/usr/bin/env sh
# Set up, lint, type-check and run the whole test suite against the embedded PostgreSQL
# and broker (or DATABASE_URL / KAFKA_BOOTSTRAP_SERVERS when set).
set -eu
cd "$(dirname "$0")/.."
sh scripts/setup.sh
sh scripts/system-deps.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/lint-imports
exec .venv/bin/python -m pytest "$@"
