package main

import (
	"context"
	"fmt"
	"time"

	"github.com/cairn-backup/cairn/repo"
	"github.com/spf13/cobra"
)

func newKeyCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "key",
		Short: "List, add and remove passwords (key files); change the password",
		Long: `Each password is a key file under keys/ wrapping the same master key.
cairn never leaves a repository without a working key: remove refuses the
last intact key and the key your password opened, and passwd writes and
checks the new key before it removes the old one.

New passwords come from --new-password-file, CAIRN_NEW_PASSWORD_FILE or
CAIRN_NEW_PASSWORD.`,
	}
	var newPasswordFile string
	newPassword := func() (string, error) {
		return readPassword(newPasswordFile, "CAIRN_NEW_PASSWORD_FILE", "CAIRN_NEW_PASSWORD", "--new-password-file")
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "List the key files",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withRepo(cmd, false, "key", func(ctx context.Context, r *repo.Repository) error {
				keys, err := r.Keys(ctx)
				if err != nil {
					return err
				}
				if g.json {
					return printJSON(g.stdout, keys)
				}
				for _, k := range keys {
					mark := " "
					if k.Current {
						mark = "*"
					}
					if k.Damaged != "" {
						fmt.Fprintf(g.stdout, "%s %s  damaged: %s\n", mark, k.ID, k.Damaged)
						continue
					}
					fmt.Fprintf(g.stdout, "%s %s  created %s on %s  %s n=%d r=%d p=%d\n", mark, k.ID, k.Created.Local().Format(time.DateTime), k.Host, k.KDF, k.N, k.R, k.P)
				}
				return nil
			})
		},
	}
	// add and passwd write a key for a new password; passwd then removes
	// the key in use (under the exclusive lock, see RemoveKey).
	newKey := func(cmd *cobra.Command, replace bool) error {
		pw, err := newPassword()
		if err != nil {
			return err
		}
		return g.withRepo(cmd, replace, "key", func(ctx context.Context, r *repo.Repository) error {
			write, verb := r.AddKey, "added key %s\n"
			if replace {
				write, verb = r.ChangePassword, "password changed: new key %s, old key removed\n"
			}
			id, err := write(ctx, pw, kdfFromEnv())
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(g.stdout, map[string]string{"key": id})
			}
			fmt.Fprintf(g.stdout, verb, id)
			return nil
		})
	}
	add := &cobra.Command{
		Use:   "add",
		Short: "Add a password",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return newKey(cmd, false) },
	}
	passwd := &cobra.Command{
		Use:   "passwd",
		Short: "Change the password: write a key for the new one, then remove the old key",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return newKey(cmd, true) },
	}
	remove := &cobra.Command{
		Use:   "remove ID",
		Short: "Remove a key file (not the last, not the one in use)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withRepo(cmd, true, "key", func(ctx context.Context, r *repo.Repository) error {
				if err := r.RemoveKey(ctx, args[0]); err != nil {
					return err
				}
				if g.json {
					return printJSON(g.stdout, map[string]string{"removed": args[0]})
				}
				fmt.Fprintf(g.stdout, "removed key %s\n", args[0])
				return nil
			})
		},
	}
	for _, c := range []*cobra.Command{add, passwd} {
		c.Flags().StringVar(&newPasswordFile, "new-password-file", "", "read the new password from this file (env CAIRN_NEW_PASSWORD_FILE, CAIRN_NEW_PASSWORD)")
	}
	cmd.AddCommand(list, add, remove, passwd)
	return cmd
}
