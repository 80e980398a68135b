#!/usr/bin/env bash
# make demo: back up a small sample application (a file tree and a database
# dump stream) into a local repository, change it, back it up again, restore
# both snapshots and show they are byte-identical to what was backed up.
set -euo pipefail
cairn=$(realpath "${1:-bin/cairn}")
work=$(mktemp -d "${TMPDIR:-/tmp}/cairn-demo.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"
export CAIRN_REPOSITORY="$work/repo" CAIRN_PASSWORD="demo-password"
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

# A plain-SQL dump generator standing in for `pg_dump -Fp app`.
dump() {
	local version=$1
	echo "CREATE TABLE issues (id int PRIMARY KEY, title text, status text);"
	echo "COPY issues (id, title, status) FROM stdin;"
	for i in $(seq 1 40000); do
		status=open
		if [ "$version" = 2 ] && [ $((i % 500)) -eq 0 ]; then status=closed; fi
		printf '%d\tIssue number %d: the login page is slow on Mondays\t%s\n' "$i" "$i" "$status"
	done
	echo '\.'
}

say "a sample application: a file repository and a database"
mkdir -p app/storage/attachments app/storage/scripts
for i in $(seq 1 50); do head -c $((i * 4096)) /dev/urandom >"app/storage/attachments/file-$i.bin"; done
for i in $(seq 1 20); do printf 'echo "script %d"\n' "$i" >"app/storage/scripts/s$i.sh"; done
chmod 0750 app/storage/scripts/*.sh
ln -s attachments/file-1.bin app/storage/latest
du -sh app

say "cairn init"
"$cairn" init

say "first backup: database stream + file tree"
dump 1 >dump-1.sql
cp -a app snapshot-1
"$cairn" backup --stdin db --tree files=app/storage --tag demo <dump-1.sql

say "the application changes: rows updated, a file edited, one added, one removed"
dump 2 >dump-2.sql
echo 'echo "changed"' >>app/storage/scripts/s3.sh
head -c 100000 /dev/urandom >app/storage/attachments/new.bin
rm app/storage/attachments/file-7.bin
cp -a app snapshot-2

say "second backup (adds only what changed)"
"$cairn" backup --stdin db --tree files=app/storage --tag demo <dump-2.sql

say "cairn snapshots"
"$cairn" snapshots
first=$("$cairn" snapshots --json | sed -n 's/.*"short_id": "\([0-9a-f]*\)".*/\1/p' | head -n 1)

say "restore both snapshots and compare"
"$cairn" restore --snapshot "$first" --target restore-1 --verify
"$cairn" restore --snapshot latest --target restore-2 --verify
diff -r snapshot-1/storage restore-1/files
cmp dump-1.sql restore-1/db
diff -r snapshot-2/storage restore-2/files
cmp dump-2.sql restore-2/db
echo "both snapshots restored byte-identical (files and database dump)"

say "cairn dump latest db > dumped.sql (what you would pipe into psql)"
"$cairn" dump latest db >dumped.sql
head -n 3 dumped.sql

say "cairn check --read-data"
"$cairn" check --read-data

say "cairn stats"
"$cairn" stats
