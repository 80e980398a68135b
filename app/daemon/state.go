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
	NextRun     time.Time `json:"next_run"`
}

// Outcome is what a run reports for metrics and status.
type Outcome struct {
	Snapshot     string        `json:"snapshot,omitempty"`
	SnapshotTime time.Time     `json:"snapshot_time"`
	BytesRead    int64         `json:"bytes_read"`
	BytesAdded   int64         `json:"bytes_added"`
	Skew         time.Duration `json:"skew_ns"`
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
	f, err := os.Open(StatePath(dir, app))
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("read state: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxStateFile+1))
	if err != nil {
		return st, fmt.Errorf("read state %s: %w", f.Name(), err)
	}
	if len(b) > maxStateFile {
		return st, fmt.Errorf("read state %s: larger than %d bytes", f.Name(), maxStateFile)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return State{App: app}, fmt.Errorf("read state %s: %w", f.Name(), err)
	}
	return st, nil
}

// WriteState replaces app's state file atomically.
func WriteState(dir string, st State) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	f, err := os.CreateTemp(dir, "."+st.App+".*.tmp")
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
		err = os.Rename(f.Name(), StatePath(dir, st.App))
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("write state %s: %w", st.App, err)
	}
	return nil
}
