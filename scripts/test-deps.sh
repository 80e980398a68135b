#!/usr/bin/env bash
# Installs what `make test` needs on a fresh machine. Today that is only the Go
# toolchain, which the machine has; later components (PostgreSQL, MinIO) add
# their installs here.
set -euo pipefail
command -v go >/dev/null || { echo "test-deps: go is not on PATH" >&2; exit 1; }
