#!/usr/bin/env bash
# Installs the database programs the dump-source tests run for real —
# PostgreSQL and MariaDB, from Debian's packages — when they are missing.
# Idempotent, and silent when everything is there.
#
# It never starts, stops or reconfigures the system's database services:
# the tests start throwaway servers of their own (internal/dbtest). While
# it installs, a policy-rc.d keeps the packages' scripts from starting the
# services, and PostgreSQL's package is told not to create its "main"
# cluster.
set -euo pipefail

# have_postgres: initdb, postgres and the clients of one installation
# (Debian keeps them in /usr/lib/postgresql/N/bin; /usr/bin has only
# client wrappers).
have_postgres() {
	local d p ok
	for d in /usr/lib/postgresql/*/bin; do
		ok=1
		for p in initdb postgres pg_ctl pg_isready pg_dump pg_restore psql; do
			[ -x "$d/$p" ] || ok=0
		done
		[ "$ok" = 1 ] && return 0
	done
	for p in initdb postgres pg_ctl pg_isready pg_dump pg_restore psql; do
		command -v "$p" >/dev/null || return 1
	done
}

# found NAME...: one of the names is a program, in PATH or in an sbin
# directory (a non-root PATH often lacks /usr/sbin, where mariadbd is).
found() {
	local n d
	for n in "$@"; do
		command -v "$n" >/dev/null && return 0
		for d in /usr/sbin /usr/local/sbin /usr/bin /usr/local/bin; do
			[ -x "$d/$n" ] && return 0
		done
	done
	return 1
}

have_mariadb() {
	found mariadbd mysqld && found mariadb-install-db mysql_install_db &&
		found mariadb mysql && found mariadb-dump mysqldump
}

missing=()
have_postgres || missing+=(postgresql)
have_mariadb || missing+=(mariadb-server mariadb-client)
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null; then
		exec sudo -- "$0" "$@"
	fi
	echo "install-databases: ${missing[*]} missing; run this script as root" >&2
	exit 1
fi
command -v apt-get >/dev/null || {
	echo "install-databases: ${missing[*]} missing and there is no apt-get; install PostgreSQL and MariaDB by hand" >&2
	exit 1
}

echo "install-databases: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive

# Exit status 101 forbids invoke-rc.d and deb-systemd-invoke from starting
# services. A policy already in place (containers have one) stays as it is.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\nexit 101\n' >"$policy"
	chmod 0755 "$policy"
	trap 'rm -f "$policy"' EXIT
fi

apt-get update -qq
apt_install() {
	apt-get install -y -qq --no-install-recommends \
		-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@" >/dev/null
}
if [[ " ${missing[*]} " == *" postgresql "* ]]; then
	# The server package creates and starts a "main" cluster unless
	# postgresql-common says not to; say so only on a fresh install
	# (an administrator's existing setting is theirs).
	conf=/etc/postgresql-common/createcluster.conf
	fresh=0
	[ -e "$conf" ] || fresh=1
	apt_install postgresql-common
	if [ "$fresh" = 1 ] && [ -e "$conf" ]; then
		sed -ri 's/^#?[[:space:]]*create_main_cluster[[:space:]]*=.*$/create_main_cluster = false/' "$conf"
	fi
fi
apt_install "${missing[@]}"

if ! have_postgres || ! have_mariadb; then
	echo "install-databases: installed ${missing[*]}, but programs are still missing" >&2
	exit 1
fi
