package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/cairn-backup/cairn/repo"
	"github.com/spf13/cobra"
)

func newInitCmd(g *globals) *cobra.Command {
	var (
		replicaOf, fromPassword string
		sameKey                 bool
	)
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create a new repository",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if g.repo == "" {
				return errors.New("no repository: pass -r/--repo or set CAIRN_REPOSITORY")
			}
			pw, err := g.password()
			if err != nil {
				return err
			}
			st, err := g.openStore(cmd.Context(), true)
			if err != nil {
				return err
			}
			defer st.Close()
			opts := repo.InitOptions{KDF: kdfFromEnv()}
			if replicaOf != "" {
				src, release, err := g.openRepoAt(cmd.Context(), replicaOf, func() (string, error) {
					if fromPassword == "" && os.Getenv("CAIRN_FROM_PASSWORD_FILE") == "" && os.Getenv("CAIRN_FROM_PASSWORD") == "" {
						return pw, nil // the same password as the new repository
					}
					// A password source that was named but cannot be read
					// is an error, not a reason to try another password.
					return readPassword(fromPassword, "CAIRN_FROM_PASSWORD_FILE", "CAIRN_FROM_PASSWORD", "--from-password-file")
				}, false, "init replica")
				if err != nil {
					return fmt.Errorf("--replica-of %s: %w", replicaOf, err)
				}
				defer release()
				opts.Replica = &repo.ReplicaOf{Source: src, ShareDataKey: sameKey}
			}
			r, err := repo.Init(cmd.Context(), st, pw, opts)
			if err != nil {
				return err
			}
			id := r.Config().ID
			if g.json {
				return printJSON(g.stdout, initJSON{ID: id.String(), Repository: g.repo})
			}
			fmt.Fprintf(g.stdout, "created repository %s at %s\n", id.Short(), g.repo)
			fmt.Fprintln(g.stdout, "keep the password safe: without it the data cannot be read")
			return nil
		},
	}
	cmd.Flags().BoolVar(&g.createBucket, "create-bucket", false, "create the S3 bucket if it does not exist")
	cmd.Flags().StringVar(&replicaOf, "replica-of", "", "make a replica of this repository: same chunker and blob-ID key, so copy sends only what is missing")
	cmd.Flags().StringVar(&fromPassword, "from-password-file", "", "password of the --replica-of repository (default: CAIRN_FROM_PASSWORD(_FILE), else this repository's)")
	cmd.Flags().BoolVar(&sameKey, "same-data-key", false, "with --replica-of: share the data key too, so copy moves packs without decrypting them")
	return cmd
}

// kdfFromEnv lets tests and demos choose a cheaper scrypt cost with
// CAIRN_KDF_N (a power of two); production repositories keep the default.
func kdfFromEnv() repo.KDFParams {
	var n int
	if s := os.Getenv("CAIRN_KDF_N"); s != "" {
		if _, err := fmt.Sscan(s, &n); err == nil && n >= 1024 && n&(n-1) == 0 {
			return repo.KDFParams{N: n, R: 8, P: 1}
		}
	}
	return repo.KDFParams{}
}
