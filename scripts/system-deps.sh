#!/usr/bin/env sh
# Debian programs the test suite uses: promtool (package prometheus) checks and unit-tests
# the alert rules; dot (graphviz) renders the diagrams; chromium runs the console's browser
# tests. With `bench`: pgloader instead, the peer `make bench` compares against (apart, so
# that the tests never wait on it). Installed when missing and this machine can (root, apt);
# otherwise the tests (or the bench) that need them say what is missing.
set -eu
missing=""
command -v promtool >/dev/null 2>&1 || missing="$missing prometheus"
command -v dot >/dev/null 2>&1 || missing="$missing graphviz"
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
if [ "${1:-}" = "bench" ]; then
    missing=""
    command -v pgloader >/dev/null 2>&1 || missing="pgloader"
fi
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "not installed (needs root and apt):$missing" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing >/dev/null 2>&1 || {
    apt-get update -q >/dev/null 2>&1
    apt-get install -y -q --no-install-recommends $missing >/dev/null 2>&1
} || echo "could not install:$missing" >&2
