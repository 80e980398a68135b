//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// The peers beyond Debian's restic and borg: a newer restic ($RESTIC_BIN,
// column "restic2") and kopia ($KOPIA_BIN). Neither is installed or
// downloaded by the benchmark; without the variable (or -restic2 / -kopia)
// the column is skipped with a message.

// allTools is every tool the benchmark knows, in the order they run.
var allTools = []string{"cairn", "restic", "borg", "restic2", "kopia"}

// peerEnv names the variable that points at a peer's binary.
var peerEnv = map[string]string{"restic2": "RESTIC_BIN", "kopia": "KOPIA_BIN"}

// kopia: a filesystem repository, zstd compression set as the global policy
// right after creation (kopia compresses nothing by default; zstd is what
// cairn and restic use), everything else default. Its config, cache and
// logs live in the tool's cache dir. src remembers what each data set
// backed up: kopia restores "the latest snapshot of a source path".
type kopiaTool struct {
	bin string
	src map[string]string // data set → path backed up
}

func (t *kopiaTool) name() string { return "kopia" }
func (t *kopiaTool) path() string { return t.bin }
func (t *kopiaTool) settings() string {
	return "filesystem repository, global policy --compression=zstd; backs up the dump file by path"
}

func (t *kopiaTool) version(ctx context.Context) (string, error) {
	return firstLine(ctx, t.bin, "--version")
}

func (t *kopiaTool) env(repo, cache string) []string {
	return []string{
		"KOPIA_PASSWORD=" + benchPassword,
		"KOPIA_CONFIG_PATH=" + filepath.Join(cache, "repository.config"),
		"KOPIA_CACHE_DIRECTORY=" + filepath.Join(cache, "cache"),
		"KOPIA_LOG_DIR=" + filepath.Join(cache, "logs"),
		"KOPIA_CHECK_FOR_UPDATES=false",
		"XDG_CACHE_HOME=" + cache,
	}
}

func (t *kopiaTool) initArgs(repo string) []string {
	return []string{"repository", "create", "filesystem", "--path", repo}
}

func (t *kopiaTool) postInit(string) [][]string {
	return [][]string{{"policy", "set", "--global", "--compression", "zstd"}}
}

func (t *kopiaTool) backup(_, ds, src string, _ int) ([]string, string) {
	t.src[ds] = src
	return []string{"snapshot", "create", src}, ""
}

// kopia restore PATH TARGET restores the latest snapshot of PATH; a file
// is written at TARGET itself, so a stream goes to TARGET/<its name>.
func (t *kopiaTool) restore(_, ds, target string) ([]string, string) {
	src := t.src[ds]
	if isStream(ds) {
		target = filepath.Join(target, filepath.Base(src))
	}
	return []string{"restore", src, target}, ""
}

func (t *kopiaTool) restored(ds, target, src string) string {
	if isStream(ds) {
		return filepath.Join(target, filepath.Base(src))
	}
	return target
}

// snapshot verify with 100% of the files read decrypts and decompresses
// every file of every snapshot.
func (t *kopiaTool) checkArgs(string) []string {
	return []string{"snapshot", "verify", "--verify-files-percent=100"}
}

// statWalkTool is the reference for the unchanged re-backup of the
// smallfiles data set: find printing every entry's size, mtime and inode
// (one lstat each, as a backup's change detection needs) to /dev/null, the
// least any tool must do to learn that nothing changed. It is timed as
// that data set's second backup, with the same input bytes, so its MB/s
// compares with the tools' as files/s would.
const statWalkTool = "stat walk"

// statWalkReference times the stat walk of the smallfiles tree.
func (b *bench) statWalkReference(ds *dataset, rep int) runResult {
	res := runResult{Rep: rep, Tool: statWalkTool, Dataset: ds.name}
	c := cmdSpec{Path: "sh", Args: []string{"-c", `find "$1" -printf '%s %T@ %i\n' >/dev/null`, "sh", ds.src}, Env: cleanEnv()}
	if _, err := b.timed(&res, stepBackup2, c, "", ds.v1Bytes); err != nil {
		res.Error = err.Error()
		b.logf("[%s/%s] FAILED: %v", statWalkTool, ds.name, err)
	}
	return res
}

// cpTool is the reference for tree restores: cp -a of the v2 tree, the
// fastest a restore of those files could be on this disk. It is measured
// like a tool's restore (through the spawner, after sync) and its copy is
// verified too. It has no backup or check.
const cpTool = "cp -a"

// cpReference copies the data set's v2 tree with cp -a into the restore
// area, timed as a restore step, and compares the copy with v2.
func (b *bench) cpReference(ds *dataset, rep int) runResult {
	res := runResult{Rep: rep, Tool: cpTool, Dataset: ds.name}
	err := func() error {
		target := b.l.restore("cp", ds.name)
		if err := discard(b.l, target); err != nil {
			return err
		}
		if err := os.MkdirAll(target, 0o755); err != nil {
			return err
		}
		dst := filepath.Join(target, "files")
		c := cmdSpec{Path: "cp", Args: []string{"-a", ds.v2Dir, dst}, Env: cleanEnv()}
		// No repository: "" charges the step with no growth.
		if _, err := b.timed(&res, stepRestore, c, "", ds.v2Bytes); err != nil {
			return err
		}
		if err := ds.verify(dst); err != nil {
			return fmt.Errorf("%w: %v", errRestoreWrong, err)
		}
		res.RestoreVerified = true
		return discard(b.l, target)
	}()
	if err != nil {
		res.Error = err.Error()
		res.RestoreWrong = errors.Is(err, errRestoreWrong)
		b.logf("[%s/%s] FAILED: %v", cpTool, ds.name, err)
	}
	return res
}
