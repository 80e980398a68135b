package app

import (
	"fmt"
	"strings"

	"github.com/cairn-backup/cairn/snapshot"
)

// Retention is a `retention:` block: the forget policy for the
// application's repository, or for one replica (offsite usually keeps
// longer). Counts of -1 mean unlimited; KeepMin defaults to 1.
type Retention struct {
	KeepLast          int      `yaml:"keep_last"`
	KeepHourly        int      `yaml:"keep_hourly"`
	KeepDaily         int      `yaml:"keep_daily"`
	KeepWeekly        int      `yaml:"keep_weekly"`
	KeepMonthly       int      `yaml:"keep_monthly"`
	KeepYearly        int      `yaml:"keep_yearly"`
	KeepWithin        string   `yaml:"keep_within"`
	KeepWithinHourly  string   `yaml:"keep_within_hourly"`
	KeepWithinDaily   string   `yaml:"keep_within_daily"`
	KeepWithinWeekly  string   `yaml:"keep_within_weekly"`
	KeepWithinMonthly string   `yaml:"keep_within_monthly"`
	KeepWithinYearly  string   `yaml:"keep_within_yearly"`
	KeepTag           []string `yaml:"keep_tag"` // each entry: comma-separated tags a snapshot must all carry
	KeepMin           *int     `yaml:"keep_min"`
	GroupBy           *string  `yaml:"group_by"` // default "app,host"
}

// Policy converts the block into a snapshot.Policy and its grouping.
func (r *Retention) Policy() (snapshot.Policy, snapshot.GroupBy, error) {
	p := snapshot.Policy{
		Last: r.KeepLast, Hourly: r.KeepHourly, Daily: r.KeepDaily, Weekly: r.KeepWeekly,
		Monthly: r.KeepMonthly, Yearly: r.KeepYearly, KeepMin: 1,
	}
	if r.KeepMin != nil {
		p.KeepMin = *r.KeepMin
	}
	for _, d := range []struct {
		key string
		s   string
		dst *snapshot.Duration
	}{
		{"keep_within", r.KeepWithin, &p.Within},
		{"keep_within_hourly", r.KeepWithinHourly, &p.WithinHourly},
		{"keep_within_daily", r.KeepWithinDaily, &p.WithinDaily},
		{"keep_within_weekly", r.KeepWithinWeekly, &p.WithinWeekly},
		{"keep_within_monthly", r.KeepWithinMonthly, &p.WithinMonthly},
		{"keep_within_yearly", r.KeepWithinYearly, &p.WithinYearly},
	} {
		if d.s == "" {
			continue
		}
		v, err := snapshot.ParseDuration(d.s)
		if err != nil {
			return p, snapshot.GroupBy{}, fmt.Errorf("%s: %w", d.key, err)
		}
		*d.dst = v
	}
	for _, t := range r.KeepTag {
		p.Tags = append(p.Tags, strings.Split(t, ","))
	}
	gb := "app,host"
	if r.GroupBy != nil {
		gb = *r.GroupBy
	}
	by, err := snapshot.ParseGroupBy(gb)
	if err != nil {
		return p, by, fmt.Errorf("group_by: %w", err)
	}
	return p, by, p.Check()
}
