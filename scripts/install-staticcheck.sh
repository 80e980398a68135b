#!/usr/bin/env bash
# Installs the staticcheck that `make lint` runs, at the pinned version, with
# go install through the Go module proxy. Idempotent: when the pinned version
# is already installed it only prints where it is. Prints the binary's path.
set -euo pipefail

# The exact version make lint is written against (supports this module's Go
# version); change it deliberately and fix what the new one reports.
STATICCHECK_VERSION=v0.8.2

command -v go >/dev/null || { echo "install-staticcheck: go is not on PATH" >&2; exit 1; }

gobin=$(go env GOBIN)
[ -n "$gobin" ] || gobin="$(go env GOPATH | cut -d: -f1)/bin"
bin="$gobin/staticcheck"

# staticcheck -version prints e.g. "staticcheck 2026.2.2 (0.8.2)".
if [ -x "$bin" ] && "$bin" -version 2>/dev/null | grep -qF "(${STATICCHECK_VERSION#v})"; then
	echo "$bin"
	exit 0
fi
echo "install-staticcheck: go install honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION" >&2
go install "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION"
[ -x "$bin" ] || { echo "install-staticcheck: go install succeeded but $bin is missing" >&2; exit 1; }
echo "$bin"
