#!/usr/bin/env bash
# Installs the MinIO server that store/s3's tests run against, built from
# source through the Go module proxy (no prebuilt binary is downloaded).
# Idempotent: when `minio` is already on PATH or in $(go env GOPATH)/bin it
# only prints where it is. The build takes a few minutes (3-6 on 2 cores).
set -euo pipefail

# The exact version the tests are written against; change it deliberately.
MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c

command -v go >/dev/null || { echo "install-minio: go is not on PATH" >&2; exit 1; }

gobin=$(go env GOBIN)
[ -n "$gobin" ] || gobin="$(go env GOPATH | cut -d: -f1)/bin"

if bin=$(command -v minio 2>/dev/null); then
	echo "$bin"
	exit 0
fi
if [ -x "$gobin/minio" ]; then
	echo "$gobin/minio"
	exit 0
fi

echo "install-minio: building github.com/minio/minio@$MINIO_VERSION (takes a few minutes)" >&2
go install "github.com/minio/minio@$MINIO_VERSION"
[ -x "$gobin/minio" ] || { echo "install-minio: go install succeeded but $gobin/minio is missing" >&2; exit 1; }
echo "$gobin/minio"
