package app

import (
	"fmt"
	"hash/fnv"
	"time"

	"github.com/robfig/cron/v3"
)

// Schedule is a `schedule:` block: when `cairn daemon` takes the
// application's snapshots (backup, replication, retention), how old the
// newest snapshot may be before `cairn status` calls it overdue, and how
// often the repository is pruned.
type Schedule struct {
	// Every is the interval between runs (4h); Cron a five-field cron
	// expression ("0 */4 * * *") instead. Exactly one is given.
	Every Duration `yaml:"every"`
	Cron  string   `yaml:"cron"`
	// Jitter delays each run by a fixed offset in [0, jitter) derived from
	// the application's name: tenants sharing a daemon and a store spread
	// out, and a restart does not move an application's runs.
	Jitter Duration `yaml:"jitter"`
	// RPO is the age past which the newest snapshot is overdue; default
	// 1.5 × the interval plus the jitter, so one slow run is not an alarm
	// and one missed run is.
	RPO Duration `yaml:"rpo"`
	// Prune runs `prune` after a run when this long has passed since the
	// last prune; zero: never (prune by hand or from a timer).
	Prune Duration `yaml:"prune"`

	cron cron.Schedule
}

// minInterval bounds how often a schedule may fire: a daemon that runs
// backups back to back is a misconfiguration, and tests need no less.
const minInterval = time.Second

// check parses the cron expression and validates the block.
func (s *Schedule) check() error {
	switch {
	case s.Every != 0 && s.Cron != "":
		return fmt.Errorf("give every or cron, not both")
	case s.Every == 0 && s.Cron == "":
		return fmt.Errorf("give every (e.g. 4h) or cron (e.g. \"0 */4 * * *\")")
	case s.Every != 0 && time.Duration(s.Every) < minInterval:
		return fmt.Errorf("every %s: at least %s", time.Duration(s.Every), minInterval)
	case s.Jitter < 0 || s.RPO < 0 || s.Prune < 0:
		return fmt.Errorf("jitter, rpo and prune cannot be negative")
	}
	if s.Cron != "" {
		c, err := cron.ParseStandard(s.Cron)
		if err != nil {
			return fmt.Errorf("cron %q: %w", s.Cron, err)
		}
		s.cron = c
	}
	if s.Jitter != 0 && time.Duration(s.Jitter) >= s.Interval() {
		return fmt.Errorf("jitter %s must be shorter than the interval %s", time.Duration(s.Jitter), s.Interval())
	}
	return nil
}

// Interval is the time between two runs: Every, or for a cron expression
// the gap between its next two firings after a fixed reference time.
func (s *Schedule) Interval() time.Duration {
	if s.cron == nil {
		return time.Duration(s.Every)
	}
	ref := time.Date(2026, 1, 5, 0, 0, 0, 0, time.Local)
	a := s.cron.Next(ref)
	return s.cron.Next(a).Sub(a)
}

// Offset is the application's fixed share of the jitter.
func (s *Schedule) Offset(app string) time.Duration {
	if s.Jitter <= 0 {
		return 0
	}
	h := fnv.New64a()
	h.Write([]byte(app))
	return time.Duration(h.Sum64() % uint64(s.Jitter))
}

// Next is when the run after one that started at last is due. A zero last
// (never ran) is due at once.
func (s *Schedule) Next(app string, last time.Time) time.Time {
	if last.IsZero() {
		return last
	}
	if s.cron != nil {
		return s.cron.Next(last.Add(-s.Offset(app))).Add(s.Offset(app))
	}
	return last.Add(time.Duration(s.Every))
}

// RPOLimit is the age past which the newest snapshot is overdue.
func (s *Schedule) RPOLimit() time.Duration {
	if s.RPO > 0 {
		return time.Duration(s.RPO)
	}
	return s.Interval()*3/2 + time.Duration(s.Jitter)
}
