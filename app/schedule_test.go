package app

import (
	"testing"
	"time"
)

func TestSchedule(t *testing.T) {
	last := time.Date(2026, 11, 30, 12, 0, 0, 0, time.Local)
	for _, tc := range []struct {
		name, yaml string
		err        string
		interval   time.Duration
		next       time.Time
		rpo        time.Duration
	}{
		{name: "every", yaml: "{every: 4h}", interval: 4 * time.Hour, next: last.Add(4 * time.Hour), rpo: 6 * time.Hour},
		{name: "every with rpo", yaml: "{every: 4h, jitter: 10m, rpo: 5h}", interval: 4 * time.Hour, next: last.Add(4 * time.Hour), rpo: 5 * time.Hour},
		{name: "cron", yaml: `{cron: "30 */4 * * *"}`, interval: 4 * time.Hour, next: last.Add(30 * time.Minute), rpo: 6 * time.Hour},
		{name: "cron with jitter", yaml: `{cron: "0 */4 * * *", jitter: 10m}`, interval: 4 * time.Hour, rpo: 6*time.Hour + 10*time.Minute},
		{name: "both", yaml: `{every: 4h, cron: "0 * * * *"}`, err: "not both"},
		{name: "neither", yaml: "{jitter: 1m}", err: "give every"},
		{name: "too often", yaml: "{every: 100ms}", err: "at least 1s"},
		{name: "bad cron", yaml: `{cron: "every day"}`, err: "cron"},
		{name: "jitter too long", yaml: "{every: 1h, jitter: 2h}", err: "shorter than the interval"},
		{name: "unknown key", yaml: "{every: 1h, jiter: 1m}", err: "jiter"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := parseBlock(t, "schedule: "+tc.yaml, tc.err)
			if cfg == nil {
				return
			}
			s := cfg.Schedule
			if got := s.Interval(); got != tc.interval {
				t.Errorf("interval %s, want %s", got, tc.interval)
			}
			if got := s.RPOLimit(); got != tc.rpo {
				t.Errorf("rpo %s, want %s", got, tc.rpo)
			}
			off := s.Offset("alm")
			if off < 0 || off >= max(time.Duration(s.Jitter), 1) {
				t.Errorf("offset %s outside the jitter %s", off, time.Duration(s.Jitter))
			}
			next := s.Next("alm", last)
			if !tc.next.IsZero() && !next.Equal(tc.next) {
				t.Errorf("next %s, want %s", next, tc.next)
			}
			if !next.After(last) || !s.Next("alm", time.Time{}).IsZero() {
				t.Errorf("next %s after %s; never ran must be due at once", next, last)
			}
		})
	}
}

// TestContribExample keeps the example config under contrib/ valid.
func TestContribExample(t *testing.T) {
	cfg, err := Load("../contrib/cairn.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Schedule == nil || cfg.Drill == nil || cfg.Retention == nil || len(cfg.Replicate) != 1 {
		t.Errorf("the example lost a block: %+v", cfg)
	}
}
