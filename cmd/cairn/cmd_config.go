package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/cairn-backup/cairn/app"
	"github.com/spf13/cobra"
)

// loadConfig reads --config. Its repository and password file apply when
// -r/CAIRN_REPOSITORY and the password flags and variables are not given.
func (g *globals) loadConfig() error {
	if g.configPath == "" {
		if len(g.sets) > 0 {
			return errors.New("--set overrides keys of the config file: give --config too")
		}
		return nil
	}
	cfg, err := app.Load(g.configPath, g.sets...)
	if err != nil {
		return err
	}
	g.config = cfg
	if g.repo == "" {
		g.repo = cfg.Repository
	}
	if g.passwordFile == "" && cfg.PasswordFile != "" && os.Getenv("CAIRN_PASSWORD_FILE") == "" && os.Getenv("CAIRN_PASSWORD") == "" {
		g.passwordFile = cfg.PasswordFile
	}
	return nil
}

func newConfigCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Work with the application config file",
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "check [FILE]",
		Short: "Check a config file and report every problem with its line",
		Long: `Check a config file and report every problem at once, each with its line:
what the file says (unknown keys, missing or contradictory settings, bad
durations and URLs), and what can be checked on this host without changing
anything or connecting anywhere: programs of dump and restore commands and
hooks on PATH, password and CA files readable, tree directories present.
Whether Elasticsearch answers is checked by restore --dry-run.`,
		Args: cobra.MaximumNArgs(1),
		// The file is loaded here, not by the root's pre-run, so that all
		// its problems are printed as a list.
		PersistentPreRunE: func(*cobra.Command, []string) error {
			if g.quiet && !g.json {
				g.stdout = io.Discard
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			path := g.configPath
			if len(args) == 1 {
				path = args[0]
			}
			if path == "" {
				return errors.New("config check needs a file: give it, or --config, or CAIRN_CONFIG")
			}
			cfg, err := app.CheckFile(path, g.sets...)
			var probs *app.Problems
			if errors.As(err, &probs) {
				if g.json {
					_ = printJSON(g.stdout, configCheckJSON{File: path, OK: false, Problems: probs.List})
				} else {
					for _, p := range probs.List {
						fmt.Fprintln(g.stdout, p)
					}
				}
				return fmt.Errorf("%s has %d problems", path, len(probs.List))
			}
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(g.stdout, configCheckJSON{File: path, OK: true, Problems: []string{}})
			}
			fmt.Fprintf(g.stdout, "%s: ok: app %q, %d components:", path, cfg.App, len(cfg.Components))
			for _, c := range cfg.Components {
				fmt.Fprintf(g.stdout, " %s (%s)", c.Name, c.Kind())
			}
			fmt.Fprintln(g.stdout)
			return nil
		},
	})
	return cmd
}
