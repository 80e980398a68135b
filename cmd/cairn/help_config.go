package main

import "github.com/spf13/cobra"

// configHelp is `cairn help cairn.yaml`: every key of the config file.
// TestConfigHelpCoversEveryKey keeps it complete.
const configHelp = `cairn.yaml describes one application: its repository, its components in the
order they are taken, hooks, replication, retention, the daemon's schedule and
restore drills. Paths are absolute; argv lists run without a shell unless
shell: true. 'cairn config check --config F' reports every problem with its
line; --set KEY=VALUE overrides a key for one run.

Top level
  repository: LOC          the repository: a directory, or s3:https://host/bucket/prefix
  password_file: FILE      its password (else CAIRN_PASSWORD_FILE, CAIRN_PASSWORD)
  app: NAME                the application's name, recorded in each snapshot; latest,
                           forget, status and the daemon see only this app's snapshots
  max_skew: 15m            fail the backup (no snapshot) if the components' points in
                           time are further apart than this
  hooks:                   commands around the whole application, by phase:
    backup: / restore:       before: [argv]  after: [argv]  on_failure: [argv]
                             (before/after/on_failure at the top of hooks: = backup);
                             after runs only on success, on_failure otherwise, with
                             CAIRN_ERROR (and CAIRN_RESTORED on restore)
  components: [...]        the parts, taken in this order (below)
  replicate: [...]         copy each new snapshot to these repositories after a backup:
    - repository: LOC
      password_file: FILE
      retention: {...}       the replica's own forget policy (below)
  retention: {...}         the forget policy of 'forget --config' and the daemon
  schedule: {...}          when 'cairn daemon' runs the application (below)
  drill: {...}             how 'cairn drill' proves a snapshot restores (below)

components: each has a name: and exactly one of command:, elasticsearch:, tree:
  name: NAME               1-64 letters, digits, '.', '_' or '-'
  hooks: {backup: {...}, restore: {...}}   around this component only
  start_next: when_done    when the next component starts: when_done (default),
                           on_first_byte (a dump that fixes its snapshot first: pg_dump),
                           on_snapshot (elasticsearch, once the snapshot call returned)

  A dump command:
  command: [argv]          the dump; its stdout is stored (exit status checked)
  mode: stream             stream (stdout), pipe (writes the named pipe {path}),
                           dir (fills a fresh directory {dir}, stored as a tree)
  dir: DIR                 mode dir: the fresh directories are made inside DIR
  clean: false             mode dir: remove what the command left in dir
  shell: false             run command through sh -c
  env: [NAME=VALUE]        added to the command's environment
  allow_empty: false       accept an empty dump (refused by default)
  restore: [argv]          reads the dump on stdin to put it back (restore --config)
  restore_via_file: false  write the dump to a file and pass it as {path} (impdp)

  Elasticsearch:
  elasticsearch:
    url: URL               the cluster
    repository: NAME       an fs snapshot repository dedicated to cairn
    location: DIR          its directory, as Elasticsearch and cairn both see it
    indices: PATTERN       the indices to snapshot ("mqm_sp1001*")
    allow_partial: false   accept a PARTIAL snapshot
    allow_foreign_repository: false   take over a repository another cluster wrote
    delete_older: false    delete older ES snapshots once cairn's is written
    rename_pattern: RE     restore under other names (with rename_replacement: "$1")
    rename_replacement: S
    username: U            basic auth
    password: P
    cacert: FILE           PEM CA certificates for https

  A directory:
  tree: DIR                the directory, with metadata, symlinks and hard links
  delete: false            restore empties DIR first (files added since do not stay)

retention: counts of -1 mean unlimited (see cairn help forget)
  keep_last: N   keep_hourly: N   keep_daily: N   keep_weekly: N   keep_monthly: N
  keep_yearly: N
  keep_within: 2d          every snapshot within this of the newest
  keep_within_hourly: D  keep_within_daily: D  keep_within_weekly: D
  keep_within_monthly: D  keep_within_yearly: D
  keep_tag: [release]      snapshots with all of these (comma-separated) tags
  keep_min: 1              never fewer than this many good snapshots per group
  group_by: app,host       group snapshots by these fields before thinning

schedule: (cairn help daemon)
  every: 4h                the interval between runs; or
  cron: "0 */4 * * *"      a five-field cron expression
  jitter: 10m              a fixed offset per application in [0, jitter)
  rpo: 6h                  newest snapshot older than this: status exits 5
                           (default 1.5 x the interval + jitter)
  prune: 168h              prune after a run when this long has passed (default never)

drill: (cairn help drill)
  every: 168h              the daemon drills the new snapshot this often (default never)
  scratch: DIR             where the scratch directory is made (default $TMPDIR)
  components:              dumps restored into a scratch database instead of a file:
    NAME:
      setup: [argv]          makes it
      restore: [argv]        reads the dump on stdin
      cleanup: [argv]        drops it, whatever happened
  probes:                  checks of the restored data, each must exit 0:
    - name: NAME
      command: [argv]        {scratch} is the scratch directory
      require_output: false  must also print something (a query that returns rows)
  elasticsearch:           restore ES components' indices into a cluster, renamed:
    index_prefix: cairn-drill-  put before each restored index's name; the drill
                             refuses to start if such an index exists and deletes
                             every one afterwards
    url: URL                 a scratch cluster (default the component's own url)
`

func newConfigHelpTopic() *cobra.Command {
	return &cobra.Command{
		Use:   "cairn.yaml",
		Short: "Every key of the application config file",
		Long:  configHelp,
	}
}
