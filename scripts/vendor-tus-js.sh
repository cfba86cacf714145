#!/usr/bin/env sh
# The console's one third-party script, tus-js-client (the tus project's browser client,
# MIT), copied from its npm package into services/gateway/console/static/vendor/ so the
# console runs with no build step and no network. The package is checked against the
# integrity npm publishes for it before anything is copied. Run to move to another version
# (edit VERSION and INTEGRITY from `npm view tus-js-client@X dist`), then commit the result.
set -eu
VERSION=4.3.1
INTEGRITY=sha512-ZLeYmjrkaU1fUsKbIi8JML52uAocjEZtBx4DKjRrqzrZa0O4MYwT6db+oqePlspV+FxXJAyFBc/L5gwUi2OFsg==
into="$(dirname "$0")/../services/gateway/console/static/vendor"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
curl -fsSL -o "$work/package.tgz" "https://registry.npmjs.org/tus-js-client/-/tus-js-client-$VERSION.tgz"
actual="sha512-$(openssl dgst -sha512 -binary "$work/package.tgz" | base64 -w0)"
[ "$actual" = "$INTEGRITY" ] || { echo "tus-js-client $VERSION: integrity $actual, expected $INTEGRITY" >&2; exit 1; }
tar -xzf "$work/package.tgz" -C "$work"
mkdir -p "$into"
cp "$work/package/dist/tus.min.js" "$into/tus.min.js"
cp "$work/package/LICENSE" "$into/tus-js-client.LICENSE"
echo "tus-js-client $VERSION → $into"
