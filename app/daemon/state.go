package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// State is what the daemon knows about one application's runs, kept in
// STATE_DIR/APP.json so that `cairn status` can read it without the
// daemon running. It is rewritten (temporary file, then rename) after
// every run and whenever the next run is planned.
type State struct {
	App    string `json:"app"`
	Config string `json:"config"`
	// LastAttempt is when the last run started, LastDuration how long it
	// took, LastResult "ok" or "failed" with LastError.
	LastAttempt  time.Time     `json:"last_attempt"`
	LastDuration time.Duration `json:"last_duration_ns"`
	LastResult   string        `json:"last_result,omitempty"`
	LastError    string        `json:"last_error,omitempty"`
	// Failures counts failed runs since the last good one; it sets the
	// retry backoff.
	Failures int `json:"failures"`
	// LastSuccess is when the last good run started; the Outcome is its.
	LastSuccess time.Time `json:"last_success"`
	Outcome     Outcome   `json:"outcome"`
	LastPrune   time.Time `json:"last_prune"`
	LastDrill   time.Time `json:"last_drill"`
	NextRun     time.Time `json:"next_run"`
}

// Outcome is what a run reports for metrics and status.
type Outcome struct {
	Snapshot     string        `json:"snapshot,omitempty"`
	SnapshotTime time.Time     `json:"snapshot_time"`
	BytesRead    int64         `json:"bytes_read"`
	BytesAdded   int64         `json:"bytes_added"`
	Skew         time.Duration `json:"skew_ns"`
	// From StepStatus, not recorded in the state file: the app's snapshots
	// in its repository and each replica's lag behind its newest.
	Snapshots  int                      `json:"-"`
	ReplicaLag map[string]time.Duration `json:"-"`
	// RepositoryBytes is the size of the packs in the app's repository
	// (0: not read).
	RepositoryBytes int64 `json:"-"`
}

// maxStateFile bounds what ReadState reads: a state file is a few hundred
// bytes, and a damaged one must not be read whole.
const maxStateFile = 64 << 10

// StatePath is where app's state lives under dir.
func StatePath(dir, app string) string {
	return filepath.Join(dir, app+".json")
}

// ReadState reads app's state; a missing file is a zero State (the daemon
// never ran it), not an error.
func ReadState(dir, app string) (State, error) {
	st := State{App: app}
	if _, err := readJSON(StatePath(dir, app), &st); err != nil {
		return State{App: app}, err
	}
	return st, nil
}

// readJSON decodes the file at path into v; ok is false when the file
// does not exist or cannot be read.
func readJSON(path string, v any) (ok bool, err error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read state: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxStateFile+1))
	if err != nil {
		return false, fmt.Errorf("read state %s: %w", path, err)
	}
	if len(b) > maxStateFile {
		return true, fmt.Errorf("read state %s: larger than %d bytes", path, maxStateFile)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return true, fmt.Errorf("read state %s: %w", path, err)
	}
	return true, nil
}

// WriteState replaces app's state file atomically.
func WriteState(dir string, st State) error {
	return writeJSON(dir, StatePath(dir, st.App), st)
}

// writeJSON replaces the file at path (in dir) atomically: a temporary
// file, synced, then renamed over it.
func writeJSON(dir, path string, v any) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("write state %s: %w", path, err)
	}
	return nil
}

// Drill is the last drill's result, kept in STATE_DIR/APP.drill.json by
// `cairn drill` (run by hand or by the daemon).
type Drill struct {
	Time     time.Time `json:"time"`
	Snapshot string    `json:"snapshot"`
	OK       bool      `json:"ok"`
	Seconds  float64   `json:"seconds"`
	Error    string    `json:"error,omitempty"`
	// RestoreSeconds is each component's time-to-restore.
	RestoreSeconds map[string]float64 `json:"restore_seconds"`
}

// DrillPath is where app's last drill is recorded under dir.
func DrillPath(dir, app string) string {
	return filepath.Join(dir, app+".drill.json")
}

// ReadDrill reads app's last drill; nil if none was recorded.
func ReadDrill(dir, app string) (*Drill, error) {
	var d Drill
	ok, err := readJSON(DrillPath(dir, app), &d)
	if !ok {
		return nil, err
	}
	return &d, err
}

// WriteDrill records app's last drill.
func WriteDrill(dir, app string, d Drill) error {
	return writeJSON(dir, DrillPath(dir, app), d)
}
