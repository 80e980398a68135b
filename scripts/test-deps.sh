#!/usr/bin/env bash
# Installs what `make test` needs on a fresh machine: PostgreSQL and MariaDB
# from Debian's packages (the dump-command tests start their own throwaway
# servers from these binaries) and a MinIO server built with `go install`
# (about 6 minutes the first time; the S3 tests start it on 127.0.0.1).
# Each step is quiet when already done.
set -euo pipefail
here=$(dirname "$0")
command -v go >/dev/null || { echo "test-deps: go is not on PATH" >&2; exit 1; }
bash "$here/install-databases.sh"
bash "$here/install-minio.sh" >/dev/null
