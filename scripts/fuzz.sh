#!/usr/bin/env bash
# Runs every fuzz test of a decoder of stored data, one at a time, for
# FUZZTIME each (default 30s), and prints the executions per decoder.
# `go test` runs the same tests on their seeds (f.Add and testdata/fuzz) as
# unit tests; this is the long run (make fuzz, make soak).
set -euo pipefail
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-30s}
# Go minimizes every new interesting input for up to 60 s by default,
# executions that the counter does not show and that stall the search: a
# 30 s run of pack's FuzzDecode made 6,556 counted executions, all in its
# first 3 s; with 1 s of minimization 15 s made 139,234.
FUZZMINIMIZE=${FUZZMINIMIZE:-1s}
targets=(
	pack:FuzzReadHeader        # pack header and trailer
	pack:FuzzDecode            # stored blobs: AEAD + zstd
	pack:FuzzPackRoundTrip     # writer -> header reader -> blob decoder
	index:FuzzDecode           # index files
	snapshot:FuzzDecodeTree    # tree blobs
	snapshot:FuzzTreeCodec     # tree blobs: the hand-written parser against encoding/json
	snapshot:FuzzDecodeManifest # snapshot manifests
	repo:FuzzParseKeyFile      # keys/*
	repo:FuzzParseConfig       # config
	repo:FuzzParseSecretConfig # config, its sealed part (chunker sets)
	chunk:FuzzChunkerMatchesRestic # cut points: cairn's search against restic/chunker
	repo:FuzzReadLock          # locks/*
	app:FuzzParse              # cairn.yaml
)
summary=()
for t in "${targets[@]}"; do
	pkg=${t%%:*} fn=${t##*:}
	echo "== ./$pkg $fn ($FUZZTIME)" >&2
	log=$(mktemp)
	if ! $GO test -run '^$' -fuzz "^${fn}\$" -fuzztime "$FUZZTIME" -fuzzminimizetime "$FUZZMINIMIZE" "./$pkg" 2>&1 | tee "$log" >&2; then
		echo "FAIL: ./$pkg $fn (the failing input is in $pkg/testdata/fuzz/$fn)" >&2
		rm -f "$log"
		exit 1
	fi
	execs=$(grep -o 'execs: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
	rm -f "$log"
	summary+=("$(printf '%-10s %-22s %12s' "$pkg" "$fn" "${execs:-?}")")
done
echo
printf '%-10s %-22s %12s\n' package fuzz-test executions
printf '%s\n' "${summary[@]}"
