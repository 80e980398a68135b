#!/usr/bin/env bash
# Installs the peers the benchmark compares against, from Debian's packages.
set -euo pipefail
missing=()
command -v restic >/dev/null || missing+=(restic)
command -v borg >/dev/null || missing+=(borgbackup)
if [ ${#missing[@]} -gt 0 ]; then
	echo "bench-deps: installing ${missing[*]}" >&2
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi
