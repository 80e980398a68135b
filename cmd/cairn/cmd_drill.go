package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/cairn-backup/cairn/app"
	"github.com/cairn-backup/cairn/app/daemon"
	"github.com/spf13/cobra"
)

type drillFlags struct {
	snapshot string
	stateDir string
}

const drillLong = `Prove that a snapshot can be restored, without touching the live application:
restore it into a scratch area, check every byte against the snapshot's blob
IDs, run the probes, report the time-to-restore of each component, and clean
up whatever happens.

Trees, Elasticsearch repository files and dumps are restored into a fresh
directory under drill.scratch (default the temporary directory) and re-read.
A dump named under drill.components goes instead through its setup and
restore commands into a scratch database; its cleanup command runs at the
end in every case. Probes are commands that must exit 0; with
require_output they must also print something (a query that must return
rows). {scratch} in any of these commands is the scratch directory.
With drill.elasticsearch, an Elasticsearch component's indices are also
restored into the cluster (or drill.elasticsearch.url) under
index_prefix (default cairn-drill-), counted, and deleted afterwards.

  drill:
    every: 168h                    # cairn daemon drills weekly
    components:
      db:
        setup:   [createdb, alm_drill]
        restore: [pg_restore, --no-owner, --exit-on-error, --dbname=alm_drill]
        cleanup: [dropdb, --if-exists, alm_drill]
    probes:
      - name: issues are there
        command: [psql, -d, alm_drill, -tAc, "SELECT 1 FROM issues LIMIT 1"]
        require_output: true
      - name: attachments
        command: [test, -s, "{scratch}/files/attachments/1.bin"]

The result is recorded in the state directory (APP.drill.json), where
'cairn status' and the daemon's metrics find it. Exit code 1 when the drill
failed.`

func newDrillCmd(g *globals) *cobra.Command {
	var f drillFlags
	cmd := &cobra.Command{
		Use:     "drill",
		Short:   "Restore a snapshot into a scratch area, verify it and run probes",
		Long:    drillLong,
		Example: `  cairn drill --config /etc/cairn/alm.yaml`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDrill(cmd, g, f)
		},
	}
	cmd.Flags().StringVar(&f.snapshot, "snapshot", "latest", "the snapshot to drill")
	cmd.Flags().StringVar(&f.stateDir, "state-dir", "", "where the result is recorded (default as for cairn daemon)")
	return cmd
}

func runDrill(cmd *cobra.Command, g *globals, f drillFlags) error {
	ctx := cmd.Context()
	if g.config == nil {
		return errors.New("drill needs --config: it restores an application as its cairn.yaml describes")
	}
	if _, err := g.useMemory(restoreMemory); err != nil {
		return err
	}
	r, release, err := g.openRepo(ctx, false, "drill")
	if err != nil {
		return err
	}
	defer release()
	sn, err := app.FindSnapshot(ctx, r, f.snapshot, app.Selection{App: g.config.App})
	if err != nil {
		return err
	}
	rep, err := app.RunDrill(ctx, r, g.config, sn)
	out := toDrillJSON(rep, err)
	if g.config.App != "" {
		if dir, derr := stateDir(f.stateDir); derr == nil {
			if werr := daemon.WriteDrill(dir, g.config.App, out.record()); werr != nil {
				g.log.Warn(werr.Error(), "err", werr)
			}
		}
	}
	for _, c := range rep.Cleanup {
		g.log.Warn("cleanup: "+c, "cleanup", c)
	}
	if g.json {
		if perr := printJSON(g.stdout, out); perr != nil {
			return perr
		}
	} else {
		fmt.Fprintf(g.stdout, "drill of snapshot %s (%s): %s in %s\n", sn.ID.Short(), sn.Time.Local().Format(time.DateTime),
			map[bool]string{true: "ok", false: "FAILED"}[out.OK], rep.Took.Round(time.Millisecond))
		for _, c := range out.Components {
			fmt.Fprintf(g.stdout, "  %-12s %-6s %10s  restored in %-8s into %s\n", c.Name, c.Kind, humanBytes(c.Bytes),
				secs(c.Seconds).Round(time.Millisecond), c.Into)
			if c.Error != "" {
				fmt.Fprintf(g.stdout, "    ! %s\n", c.Error)
			}
		}
		for _, p := range out.Probes {
			res := "ok"
			if p.Error != "" {
				res = "FAILED: " + p.Error
			}
			fmt.Fprintf(g.stdout, "  probe %-20s %s (%s)\n", p.Name, res, secs(p.Seconds).Round(time.Millisecond))
		}
	}
	return err
}

// record is what the state directory keeps of a drill.
func (d drillJSON) record() daemon.Drill {
	rec := daemon.Drill{Time: time.Now(), Snapshot: d.Snapshot, OK: d.OK, Seconds: d.Seconds, Error: d.Error,
		RestoreSeconds: map[string]float64{}}
	for _, c := range d.Components {
		rec.RestoreSeconds[c.Name] = c.Seconds
	}
	return rec
}
