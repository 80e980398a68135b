#!/usr/bin/env bash
# make demo, second part: one application of three parts backed up and
# restored together through a cairn.yaml:
#   db      a throwaway PostgreSQL this script starts (pg_dump / pg_restore)
#   search  the Elasticsearch emulator (cmd/esemu), snapshots into path.repo
#   files   a directory tree
# It backs the application up, changes all three parts, backs up again,
# restores the first snapshot onto the live targets and proves that the
# database, the indices and the tree are exactly as they were at the first
# backup. Any mismatch exits non-zero.
#
# usage: scripts/demo-app.sh [BIN_CAIRN]    (default bin/cairn)
#   GO=go          the Go command used to build bin/esemu
#   ESEMU=PATH     use this esemu binary instead of building bin/esemu
#   KEEP=1         keep the temporary directory (printed at the end)
#   DEMO_COMMENTS=N comments in the database (default 40000; more makes
#                  the dump, and the skew figures, larger)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cairn_bin=$(realpath "${1:-$root/bin/cairn}")
[ -x "$cairn_bin" ] || { echo "demo-app: $cairn_bin is not an executable (run make build)" >&2; exit 1; }
unset "${!PG@}" # no PGHOST, PGDATABASE, PGSERVICE… from the caller's environment

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
die() { printf '\033[1;31mdemo-app: %s\033[0m\n' "$*" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/cairn-demo-app.XXXXXX")
pg_started=0 es_pid=
cleanup() {
	local rc=$?
	set +e
	if [ -n "$es_pid" ]; then
		kill -TERM "$es_pid" 2>/dev/null && wait "$es_pid" 2>/dev/null
	fi
	if [ "$pg_started" = 1 ]; then
		as_pg "$pgbin/pg_ctl" stop -D "$pgdata" -m fast -w -t 30 >/dev/null
	fi
	if [ "$rc" -ne 0 ]; then
		for log in "$work/pg/postgres.log" "$work/esemu.log"; do
			[ -s "$log" ] && { echo "--- tail of $log" >&2; tail -n 20 "$log" >&2; }
		done
	fi
	if [ "${KEEP:-}" = 1 ]; then
		echo "kept $work" >&2
	else
		rm -rf "$work"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
cd "$work"

# ---------------------------------------------------------------- programs

# pg_bindir: the newest PostgreSQL installation with everything we run.
pg_bindir() {
	local d p ok
	for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k4,4nr); do
		ok=1
		for p in initdb postgres pg_ctl pg_dump pg_restore psql; do
			[ -x "$d/$p" ] || ok=0
		done
		[ "$ok" = 1 ] && { echo "$d"; return 0; }
	done
	command -v initdb >/dev/null && dirname "$(command -v initdb)" && return 0
	return 1
}
pgbin=$(pg_bindir) || { bash "$root/scripts/install-databases.sh" && pgbin=$(pg_bindir); } ||
	die "PostgreSQL not found (scripts/install-databases.sh installs it)"

# PostgreSQL refuses to run as root: as root, the server runs as the
# system user cairntest (the one the tests use), created if missing.
pg_user=$(id -un)
if [ "$(id -u)" -eq 0 ]; then
	pg_user=cairntest
	id cairntest >/dev/null 2>&1 || useradd --system --user-group --no-create-home \
		--home-dir /nonexistent --shell /usr/sbin/nologin cairntest
	chmod 0711 "$work" # cairntest must reach $work/pg
fi
as_pg() {
	if [ "$(id -u)" -ne 0 ]; then
		"$@"
	elif command -v runuser >/dev/null; then
		runuser -u "$pg_user" -- "$@"
	else
		setpriv --reuid="$pg_user" --regid="$pg_user" --clear-groups -- "$@"
	fi
}

if [ -n "${ESEMU:-}" ]; then
	esemu=$(realpath "$ESEMU")
else
	(cd "$root" && "${GO:-go}" build -o bin/esemu ./cmd/esemu)
	esemu=$root/bin/esemu
fi

# ------------------------------------------------------------------ db

say "db: a throwaway PostgreSQL ($pgbin, as $pg_user, 127.0.0.1 only)"
pgdata=$work/pg/data
mkdir -p "$work/pg"
[ "$pg_user" = "$(id -un)" ] || chown "$pg_user:" "$work/pg"
as_pg "$pgbin/initdb" -D "$pgdata" -U postgres -A trust -E UTF8 --locale=C --no-sync >"$work/pg/initdb.log" 2>&1 ||
	{ cat "$work/pg/initdb.log" >&2; die "initdb failed"; }
free_port() {
	local p
	for _ in $(seq 1 50); do
		p=$((20000 + RANDOM % 30000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return 0
		fi
	done
	return 1
}
for attempt in 1 2 3; do
	pgport=$(free_port) || die "no free port"
	if as_pg "$pgbin/pg_ctl" start -D "$pgdata" -l "$work/pg/postgres.log" -w -t 60 -o \
		"-p $pgport -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c shared_buffers=16MB" >/dev/null; then
		pg_started=1
		break
	fi
	grep -q 'already in use' "$work/pg/postgres.log" || die "PostgreSQL did not start"
done
[ "$pg_started" = 1 ] || die "PostgreSQL did not start (port races)"
echo "PostgreSQL $("$pgbin/postgres" --version | awk '{print $3}') on 127.0.0.1:$pgport"
sql() { PGHOST=127.0.0.1 PGPORT=$pgport PGUSER=postgres "$pgbin/psql" -X -q -A -t -v ON_ERROR_STOP=1 "$@"; }

sql -d postgres -c 'CREATE DATABASE alm'
sql -d alm -v comments="${DEMO_COMMENTS:-40000}" <<'EOF'
CREATE TABLE issues (
	id       serial PRIMARY KEY,
	key      text NOT NULL UNIQUE,
	title    text NOT NULL,
	status   text NOT NULL,
	priority int NOT NULL,
	updated  timestamptz NOT NULL
);
CREATE TABLE comments (
	id       serial PRIMARY KEY,
	issue_id int NOT NULL REFERENCES issues,
	author   text NOT NULL,
	body     text NOT NULL
);
INSERT INTO issues (key, title, status, priority, updated)
SELECT 'ISSUE-' || g, 'Issue ' || g || ': ' || md5(g::text),
       (ARRAY['open', 'in_progress', 'review', 'resolved', 'closed'])[g % 5 + 1], g % 4,
       timestamptz '2025-03-03 08:00:00+00' + g * interval '7 minutes'
FROM generate_series(1, 20000) g;
INSERT INTO comments (issue_id, author, body)
SELECT g % 20000 + 1, 'user' || lpad((g % 17)::text, 2, '0'),
       'Comment ' || g || ' — ' || md5(g::text) || md5((g * 7)::text)
FROM generate_series(1, :comments) g;
EOF
# db_proof: row counts, an MD5 over every row in key order, the sequences.
db_proof() {
	sql -d alm -F ' ' -c "
	SELECT 'issues', count(*), md5(string_agg(t::text, '|' ORDER BY id)) FROM issues t
	UNION ALL SELECT 'comments', count(*), md5(string_agg(t::text, '|' ORDER BY id)) FROM comments t
	UNION ALL SELECT 'sequences', (SELECT last_value FROM issues_id_seq), (SELECT last_value FROM comments_id_seq)::text"
}
db_proof

# -------------------------------------------------------------- search

say "search: the Elasticsearch emulator (cmd/esemu), path.repo in the demo directory"
"$esemu" -seed -path-repo "$work/es-path-repo" -url-file "$work/esemu.url" >/dev/null 2>"$work/esemu.log" &
es_pid=$!
for _ in $(seq 1 300); do
	[ -s "$work/esemu.url" ] && break
	kill -0 "$es_pid" 2>/dev/null || die "esemu exited"
	sleep 0.1
done
[ -s "$work/esemu.url" ] || die "esemu did not start"
esurl=$(cat "$work/esemu.url")

# es METHOD PATH [BODY]: one REST call, failing on an HTTP error.
if command -v curl >/dev/null; then
	es() { curl -sS --fail-with-body -X "$1" -H 'Content-Type: application/json' ${3:+--data-binary "$3"} "$esurl$2"; }
else
	es() { "$esemu" -do "$1" "$esurl$2" ${3:+"$3"}; }
fi
es GET / | head -c 300
echo
# es_counts: documents per index.
es_counts() { es GET '/_cat/indices/mqm_*?h=index,docs.count' | sort; }
# es_digest: SHA-256 of every document of the two mqm_sp1001 indices as GET
# returns it (source, version, seq_no; "found":false for absent IDs), over
# the seeded IDs and those the demo adds.
es_digest() {
	if command -v curl >/dev/null; then
		curl -sS "$esurl/mqm_sp1001_issues/_doc/ISSUE-[1-320]" "$esurl/mqm_sp1001_comments/_doc/C-[1-470]"
	else
		local i
		for i in $(seq 1 320); do "$esemu" -do GET "$esurl/mqm_sp1001_issues/_doc/ISSUE-$i" || true; done
		for i in $(seq 1 470); do "$esemu" -do GET "$esurl/mqm_sp1001_comments/_doc/C-$i" || true; done
	fi 2>/dev/null | sha256sum | cut -c1-64
}
echo "Elasticsearch emulator at $esurl"
es_counts

# ---------------------------------------------------------------- files

say "files: a sample directory tree"
mkdir -p storage/attachments/2025 storage/templates
for i in $(seq 1 40); do head -c $((i * 3000)) /dev/urandom >"storage/attachments/2025/att-$i.bin"; done
for i in $(seq 1 15); do printf 'Template %d\nDear {{customer}},\n' "$i" >"storage/templates/t$i.txt"; done
ln -s attachments/2025/att-1.bin storage/latest
du -sh storage

# ---------------------------------------------------------------- config

printf %s "demo-app-password" >password
chmod 0600 password
cat >cairn.yaml <<EOF
repository: $work/repo
password_file: $work/password
app: alm-sp1001
max_skew: 10m
hooks:
  backup:
    before: [sh, -c, "echo stopping worker >>$work/hooks.log"]
    after: [sh, -c, "echo starting worker >>$work/hooks.log"]
  restore:
    before: [sh, -c, "echo deactivating space sp1001 >>$work/hooks.log"]
    after: [sh, -c, "echo activating space sp1001 >>$work/hooks.log"]
    on_failure: [sh, -c, "echo \"restore failed at \$CAIRN_FAILED_COMPONENT, restored: \$CAIRN_RESTORED\" >>$work/hooks.log"]
components:
  - name: db
    command: [$pgbin/pg_dump, --format=custom, -Z0, --dbname=alm]
    env: [PGHOST=127.0.0.1, PGPORT=$pgport, PGUSER=postgres]
    restore: [$pgbin/pg_restore, --clean, --if-exists, --single-transaction, --exit-on-error, --dbname=alm]
    start_next: ${START_NEXT_DB:-on_first_byte}
  - name: search
    elasticsearch:
      url: $esurl
      repository: cairn
      location: $work/es-path-repo/cairn
      indices: "mqm_sp1001*"
    start_next: ${START_NEXT_ES:-on_snapshot}
  - name: files
    tree: $work/storage
    delete: true
EOF
say "cairn.yaml"
cat cairn.yaml

# ---------------------------------------------------------------- cairn

# Every cairn call goes through here and is echoed.
cairn() {
	printf '\033[2m$ cairn %s\033[0m\n' "$*"
	"$cairn_bin" "$@"
}
# show_hooks: what the before/after hooks wrote during the last backup (cairn
# keeps a hook's own output to itself unless the hook fails).
show_hooks() {
	[ "$(cat hooks.log 2>/dev/null)" = $'stopping worker\nstarting worker' ] ||
		die "the hooks did not run as before, after: $(cat hooks.log 2>/dev/null)"
	echo "hooks ran: $(paste -sd, hooks.log | sed 's/,/, then /')"
	rm hooks.log
}

say "cairn init (the repository and password file come from cairn.yaml)"
cairn --config cairn.yaml init

say "cairn config check"
cairn config check --config cairn.yaml

# What the application looks like at the first backup.
db1=$(db_proof)
es1=$(es_counts)
esd1=$(es_digest)
cp -a storage files-at-backup-1

say "first backup: db, search and files in one snapshot"
cairn backup --config cairn.yaml
show_hooks

say "the skew: the same unchanged application backed up twice more, with and without start_next"
echo "sequential.yaml is cairn.yaml without start_next: each component waits until the one before it has finished"
sed '/start_next:/d' cairn.yaml >sequential.yaml
cairn backup --config sequential.yaml -q
show_hooks
echo "cairn.yaml: search starts at pg_dump's first byte, files when the Elasticsearch snapshot call has returned"
cairn backup --config cairn.yaml -q
show_hooks
say "cairn snapshots (Skew: how far apart the components' points in time are / from the first start to the last end)"
cairn --config cairn.yaml snapshots
first=$("$cairn_bin" --config cairn.yaml snapshots --json | sed -n 's/.*"short_id": *"\([0-9a-f]*\)".*/\1/p' | head -n 1)
[ -n "$first" ] || die "no snapshot ID in cairn snapshots --json"
echo "first snapshot: $first"

say "the application changes"
echo "db:     51 issues closed, 25 issues added, 21 comments deleted"
sql -d alm <<'EOF'
UPDATE issues SET status = 'closed', updated = updated + interval '1 day' WHERE id BETWEEN 100 AND 150;
INSERT INTO issues (key, title, status, priority, updated)
SELECT 'ISSUE-' || g, 'Issue ' || g || ': added after the first backup', 'open', 1, timestamptz '2025-06-01 00:00:00+00'
FROM generate_series(20001, 20025) g;
DELETE FROM comments WHERE id BETWEEN 1000 AND 1020;
EOF
echo "search: 10 issues indexed, ISSUE-1 updated, ISSUE-5/ISSUE-6 and C-1…C-3 deleted; another tenant's index gets a document"
for i in $(seq 301 310); do
	es PUT "/mqm_sp1001_issues/_doc/ISSUE-$i" "{\"key\":\"ISSUE-$i\",\"project\":\"sp1001\",\"title\":\"Added after the first backup\",\"status\":\"open\"}" >/dev/null
done
es PUT /mqm_sp1001_issues/_doc/ISSUE-1 '{"key":"ISSUE-1","project":"sp1001","title":"Rewritten","status":"closed"}' >/dev/null
for id in ISSUE-5 ISSUE-6; do es DELETE "/mqm_sp1001_issues/_doc/$id" >/dev/null; done
for id in C-1 C-2 C-3; do es DELETE "/mqm_sp1001_comments/_doc/$id" >/dev/null; done
es PUT /mqm_sp1002_issues/_doc/ISSUE-41 '{"key":"ISSUE-41","project":"sp1002","title":"Not ours to restore"}' >/dev/null
es POST /_refresh >/dev/null
echo "files:  one attachment rewritten, one added, one removed, a new directory"
head -c 50000 /dev/urandom >storage/attachments/2025/att-3.bin
head -c 70000 /dev/urandom >storage/attachments/2025/att-new.bin
rm storage/attachments/2025/att-9.bin
mkdir -p storage/attachments/2026 && echo "new year" >storage/attachments/2026/readme.txt
db2=$(db_proof)
es2=$(es_counts)
esd2=$(es_digest)
[ "$db2" != "$db1" ] && [ "$es2" != "$es1" ] && [ "$esd2" != "$esd1" ] || die "the changes did not change the application?"
! diff -rq files-at-backup-1 storage >/dev/null || die "the changes did not change the tree?"
es_counts

say "second backup (the 'added' column: what each part cost beyond the first snapshot)"
cairn backup --config cairn.yaml
show_hooks
cairn --config cairn.yaml snapshots

say "one folder of the first snapshot as a tar (cairn dump of a directory), without restoring anything"
printf '\033[2m$ cairn --config cairn.yaml dump %s files/templates | tar -tv\033[0m\n' "$first"
"$cairn_bin" --config cairn.yaml dump "$first" files/templates | tar -tvf - >templates.lst
head -n 4 templates.lst
echo "… $(wc -l <templates.lst) entries"

say "the restore plan: each step, what it destroys, checked without changing anything"
cairn restore --config cairn.yaml --snapshot "$first" --dry-run

say "restore the first snapshot ($first) onto the live database, indices and tree"
cairn restore --config cairn.yaml --snapshot "$first"
[ "$(cat hooks.log 2>/dev/null)" = $'deactivating space sp1001\nactivating space sp1001' ] ||
	die "the restore hooks did not run as deactivate, activate: $(cat hooks.log 2>/dev/null)"
echo "restore hooks ran: $(paste -sd, hooks.log | sed 's/,/, then /')"
rm hooks.log

# ---------------------------------------------------------------- proof

say "proof: the application is exactly as it was at the first backup"
fail=0
check() { # check WHAT EXPECTED ACTUAL
	if [ "$2" = "$3" ]; then
		printf '\033[32mOK\033[0m   %s\n' "$1"
	else
		printf '\033[31mFAIL\033[0m %s\n  expected: %s\n  actual:   %s\n' "$1" "${2//$'\n'/ | }" "${3//$'\n'/ | }"
		fail=1
	fi
}
db3=$(db_proof)
echo "db at the first backup:"
sed 's/^/  /' <<<"$db1"
echo "db now:"
sed 's/^/  /' <<<"$db3"
check "db: row counts, MD5 of every row and sequences equal the first backup's" "$db1" "$db3"

es3=$(es_counts)
esd3=$(es_digest)
echo "indices at the first backup:"
sed 's/^/  /' <<<"$es1"
echo "indices now:"
sed 's/^/  /' <<<"$es3"
check "search: mqm_sp1001_* document counts equal the first backup's" \
	"$(grep sp1001 <<<"$es1")" "$(grep sp1001 <<<"$es3")"
check "search: every mqm_sp1001_* document (GET, SHA-256 $esd1) equals the first backup's" "$esd1" "$esd3"
check "search: the other tenant's mqm_sp1002_issues was left alone (41 documents)" \
	"mqm_sp1002_issues 41" "$(grep sp1002 <<<"$es3")"
if diff -r files-at-backup-1 storage; then
	check "files: diff -r against the copy taken at the first backup is empty" same same
else
	check "files: diff -r against the copy taken at the first backup is empty" empty "differences (above)"
fi
[ "$fail" = 0 ] || die "the restored application differs from the first backup"
echo
echo "the first snapshot restored db, search and files to exactly their state at the first backup"
