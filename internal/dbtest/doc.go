// Package dbtest starts throwaway database servers — PostgreSQL and MariaDB,
// the real binaries from the machine's packages — for tests of the dump
// sources. It is imported by tests, and by the benchmark (bench/), which
// takes real pg_dump output from a server it starts with LaunchPostgres.
//
// Each server lives in a temporary directory, listens on a free port on
// 127.0.0.1 with its socket next to its data, and is stopped when the test
// (or the Shared set, for a whole package) is done. The system services on
// 5432 and 3306 are never touched.
//
// Both servers refuse to run as root, and CI runs the tests as root: the
// servers then run as an unprivileged system user (UnprivilegedUser), which
// is created with useradd the first time it is needed. Clients (psql,
// pg_dump, mariadb, …) run as the calling user and connect over TCP: trust
// authentication for PostgreSQL, a password user for MariaDB.
//
// A missing binary fails the test with "run scripts/install-databases.sh";
// it never skips, so a machine without the databases cannot pass silently.
package dbtest
