#!/usr/bin/env bash
# Installs the peers the benchmark compares against, from Debian's packages,
# and the MinIO server for its S3 rows.
set -euo pipefail
missing=()
command -v restic >/dev/null || missing+=(restic)
command -v borg >/dev/null || missing+=(borgbackup)
if [ ${#missing[@]} -gt 0 ]; then
	echo "bench-deps: installing ${missing[*]}" >&2
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi
# The S3 rows run cairn and restic against a MinIO the bench starts itself.
bash "$(dirname "$0")/install-minio.sh" >/dev/null
