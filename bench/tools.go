//go:build linux

package main

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// benchPassword encrypts every tool's repository. Encryption is on for all
// tools alike, since cairn always encrypts.
const benchPassword = "cairn-bench-password"

// Dataset names; they also name the snapshot components and archives.
const (
	dsDump       = "dump"
	dsTree       = "tree"
	dsPGDump     = "pgdump"     // a real pg_dump of a throwaway PostgreSQL (pgdump.go)
	dsSmallFiles = "smallfiles" // many small files, backed up twice unchanged (smallfiles.go)
)

// isStream says whether a data set is one file that cairn reads on stdin, as
// behind pg_dump; the other data sets are directory trees.
func isStream(ds string) bool { return ds == dsDump || ds == dsPGDump }

// tool adapts one backup program to the protocol. gen is 1 for the first
// backup and 2 for the second; restores always restore generation 2.
type tool interface {
	name() string
	path() string
	// settings says how the tool is configured, for the report.
	settings() string
	version(ctx context.Context) (string, error)
	// env is the tool's own variables, added to a cleaned environment.
	env(repo, cache string) []string
	initArgs(repo string) []string
	// backup returns the arguments, and the file to feed as stdin if any.
	backup(repo, ds, src string, gen int) (args []string, stdin string)
	// restore returns the arguments and the working directory.
	restore(repo, ds, target string) (args []string, dir string)
	// restored is where the restore puts the data backed up from src.
	restored(ds, target, src string) string
	// checkArgs verifies every byte of the repository: cairn and restic
	// check --read-data, borg check --verify-data.
	checkArgs(repo string) []string
}

// postIniter is a tool that needs more commands after init (not timed).
type postIniter interface {
	postInit(repo string) [][]string
}

// newTool returns the adapter for a tool name and its binary.
func newTool(name, bin string) (tool, error) {
	switch name {
	case "cairn":
		return cairnTool{bin}, nil
	case "restic":
		return resticTool{bin: bin}, nil
	case "borg":
		return &borgTool{bin: bin}, nil
	case "restic2":
		return resticTool{bin: bin, label: name}, nil
	case "kopia":
		return &kopiaTool{bin: bin, src: map[string]string{}}, nil
	}
	return nil, fmt.Errorf("unknown tool %q (want one of %s)", name, strings.Join(allTools, ", "))
}

// firstLine runs bin args and returns the first line of its output.
func firstLine(ctx context.Context, bin string, args ...string) (string, error) {
	u, err := runCmd(ctx, cmdSpec{Path: bin, Args: args, Env: cleanEnv()})
	if err != nil {
		return "", err
	}
	line, _, _ := strings.Cut(strings.TrimSpace(u.Stdout), "\n")
	return line, nil
}

// cleanEnv is our environment without any variable that could point a tool
// at another repository, password, cache or S3 account (AWS_*: the S3 steps
// add the bench MinIO's credentials themselves).
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "RESTIC_") || strings.HasPrefix(k, "BORG_") || strings.HasPrefix(k, "CAIRN_") || strings.HasPrefix(k, "AWS_") || strings.HasPrefix(k, "KOPIA_") || k == "XDG_CACHE_HOME" {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// cairn: the stream is fed on stdin, which is how cairn backs up pg_dump
// output; the tree is a named component.
type cairnTool struct{ bin string }

func (t cairnTool) name() string { return "cairn" }
func (t cairnTool) path() string { return t.bin }
func (t cairnTool) settings() string {
	return "defaults; dump fed on stdin (--stdin db), tree as --tree files=DIR"
}

func (t cairnTool) version(ctx context.Context) (string, error) {
	if v, err := firstLine(ctx, t.bin, "version"); err == nil && v != "" {
		return v, nil
	}
	// No version command: identify the build by its hash instead.
	sum, _, err := hashFile(t.bin)
	if err != nil {
		return "", err
	}
	return "cairn (binary sha256 " + sum[:12] + ")", nil
}

func (t cairnTool) env(repo, cache string) []string {
	return []string{"CAIRN_REPOSITORY=" + repo, "CAIRN_PASSWORD=" + benchPassword, "XDG_CACHE_HOME=" + cache}
}

func (t cairnTool) initArgs(string) []string { return []string{"init"} }

func (t cairnTool) backup(_, ds, src string, _ int) ([]string, string) {
	if isStream(ds) {
		return []string{"backup", "--stdin", "db"}, src
	}
	return []string{"backup", "--tree", "files=" + src}, ""
}

func (t cairnTool) restore(_, _, target string) ([]string, string) {
	return []string{"restore", "--snapshot", "latest", "--target", target}, ""
}

func (t cairnTool) restored(ds, target, _ string) string {
	if isStream(ds) {
		return filepath.Join(target, "db")
	}
	return filepath.Join(target, "files")
}

func (t cairnTool) checkArgs(string) []string { return []string{"check", "--read-data"} }

// restic: defaults (repository format 2, compression "auto", i.e. zstd at its
// default level). label is "restic2" for the second, newer restic of
// $RESTIC_BIN, shown as a column of its own; "" for Debian's.
type resticTool struct {
	bin   string
	label string
}

func (t resticTool) name() string { return cmp.Or(t.label, "restic") }
func (t resticTool) path() string { return t.bin }
func (t resticTool) settings() string {
	return "defaults (compression auto = zstd default level); backs up the dump file by path"
}

func (t resticTool) version(ctx context.Context) (string, error) {
	return firstLine(ctx, t.bin, "version")
}

func (t resticTool) env(repo, cache string) []string {
	return []string{"RESTIC_REPOSITORY=" + repo, "RESTIC_PASSWORD=" + benchPassword, "RESTIC_CACHE_DIR=" + cache, "XDG_CACHE_HOME=" + cache}
}

func (t resticTool) initArgs(string) []string { return []string{"init"} }

func (t resticTool) backup(_, _, src string, _ int) ([]string, string) {
	return []string{"backup", src}, ""
}

func (t resticTool) restore(_, _, target string) ([]string, string) {
	return []string{"restore", "latest", "--target", target}, ""
}

// restic recreates the absolute path below the target.
func (t resticTool) restored(_, target, src string) string { return filepath.Join(target, src) }

func (t resticTool) checkArgs(string) []string { return []string{"check", "--read-data"} }

// borg: zstd level 3 (borg's default is lz4; zstd,3 is close to what restic
// and cairn use), repokey-blake2 encryption.
type borgTool struct {
	bin string
	enc string // set by version
}

func (t *borgTool) name() string { return "borg" }
func (t *borgTool) path() string { return t.bin }
func (t *borgTool) settings() string {
	return "--compression zstd,3, --encryption=" + t.encryption() + "; backs up the dump file by path"
}

func (t *borgTool) version(ctx context.Context) (string, error) {
	v, err := firstLine(ctx, t.bin, "--version")
	if err != nil {
		return "", err
	}
	// repokey-blake2 exists since borg 1.1; older ones only know repokey.
	if major, minor, ok := parseMajorMinor(strings.TrimPrefix(v, "borg ")); ok && (major < 1 || major == 1 && minor < 1) {
		t.enc = "repokey"
	}
	return v, nil
}

func (t *borgTool) encryption() string {
	if t.enc == "" {
		return "repokey-blake2"
	}
	return t.enc
}

func (t *borgTool) env(repo, cache string) []string {
	return []string{
		"BORG_PASSPHRASE=" + benchPassword, "BORG_BASE_DIR=" + cache, "XDG_CACHE_HOME=" + cache,
		"BORG_RELOCATED_REPO_ACCESS_IS_OK=yes", "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes",
		"BORG_DISPLAY_PASSPHRASE=no",
	}
}

func (t *borgTool) initArgs(repo string) []string {
	return []string{"init", "--encryption=" + t.encryption(), repo}
}

func (t *borgTool) backup(repo, ds, src string, gen int) ([]string, string) {
	return []string{"create", "--compression", "zstd,3", fmt.Sprintf("%s::%s-%d", repo, ds, gen), src}, ""
}

// borg extracts relative to the working directory.
func (t *borgTool) restore(repo, ds, target string) ([]string, string) {
	return []string{"extract", fmt.Sprintf("%s::%s-2", repo, ds)}, target
}

// borg stores paths without the leading slash.
func (t *borgTool) restored(_, target, src string) string {
	return filepath.Join(target, strings.TrimPrefix(src, "/"))
}

// borg's --verify-data decrypts and checks every chunk, like --read-data.
func (t *borgTool) checkArgs(repo string) []string { return []string{"check", "--verify-data", repo} }

// parseMajorMinor parses "1.2.4"-like versions.
func parseMajorMinor(v string) (int, int, bool) {
	parts := strings.SplitN(strings.TrimSpace(v), ".", 3)
	if len(parts) < 2 {
		return 0, 0, false
	}
	major, err1 := strconv.Atoi(parts[0])
	minor, err2 := strconv.Atoi(parts[1])
	return major, minor, err1 == nil && err2 == nil
}
