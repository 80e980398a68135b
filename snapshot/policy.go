package snapshot

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Policy says which snapshots of a group `forget` keeps. The rules mean
// what restic's forget means, so an operator's policy carries over:
//
//   - Last keeps the newest N snapshots.
//   - Hourly, Daily, Weekly, Monthly and Yearly keep the newest snapshot in
//     each of the N newest hours, days, ISO weeks, months or years that hold
//     a snapshot, counted back from the newest snapshot. While a rule still
//     has buckets left when it reaches the oldest snapshot, it keeps that one
//     too, so a young repository keeps its whole history span.
//   - Within keeps every snapshot taken within the duration before the
//     newest snapshot of the group (not before now: a group whose backups
//     stopped is not emptied by time passing).
//   - WithinHourly … WithinYearly keep the newest snapshot of each bucket
//     among the snapshots within that duration of the newest.
//   - Tags keeps every snapshot carrying all tags of any one entry.
//
// A count of -1 means unlimited. Buckets are taken in the location of each
// snapshot time the caller passes (local time unless --utc), so a day is a
// calendar day where the operator lives, also across DST changes.
type Policy struct {
	Last, Hourly, Daily, Weekly, Monthly, Yearly int
	Within                                       Duration
	WithinHourly, WithinDaily, WithinWeekly      Duration
	WithinMonthly, WithinYearly                  Duration
	Tags                                         [][]string

	// KeepMin is the guard: never leave fewer than KeepMin snapshots in a
	// group among those that recorded no unreadable files. The newest such
	// snapshots are kept in addition to what the rules keep. A week of
	// failing backups then cannot push the last good ones out.
	KeepMin int
}

// Empty reports whether the policy has no keep rule at all.
func (p Policy) Empty() bool {
	return p.Last == 0 && p.Hourly == 0 && p.Daily == 0 && p.Weekly == 0 && p.Monthly == 0 && p.Yearly == 0 &&
		p.Within.Zero() && p.WithinHourly.Zero() && p.WithinDaily.Zero() && p.WithinWeekly.Zero() &&
		p.WithinMonthly.Zero() && p.WithinYearly.Zero() && len(p.Tags) == 0
}

// ErrEmptyPolicy is returned for a policy with no keep rule and a keep-min
// guard: it would remove every snapshot, which is refused unless the
// guard is set to 0 on purpose.
var ErrEmptyPolicy = errors.New("snapshot: the policy keeps nothing; give a keep rule, or keep-min 0 to remove every snapshot of a group")

// Check validates the policy's numbers.
func (p Policy) Check() error {
	for _, n := range []struct {
		name string
		v    int
	}{{"keep-last", p.Last}, {"keep-hourly", p.Hourly}, {"keep-daily", p.Daily}, {"keep-weekly", p.Weekly},
		{"keep-monthly", p.Monthly}, {"keep-yearly", p.Yearly}} {
		if n.v < -1 {
			return fmt.Errorf("snapshot: %s %d: use a count, or -1 for unlimited", n.name, n.v)
		}
	}
	if p.KeepMin < 0 {
		return fmt.Errorf("snapshot: keep-min %d is negative", p.KeepMin)
	}
	if p.Empty() && p.KeepMin > 0 {
		return ErrEmptyPolicy
	}
	return nil
}

// Duration is a calendar duration as restic writes it: "1y2m3d4h" (years,
// months, days, hours; any subset, in that order). Months and years are
// calendar months and years, so "1m" before 31 March is 28 or 29 February.
type Duration struct {
	Years, Months, Days, Hours int
}

// Zero reports whether d is empty.
func (d Duration) Zero() bool { return d == Duration{} }

func (d Duration) String() string {
	if d.Zero() {
		return "0h"
	}
	var b strings.Builder
	for _, u := range []struct {
		v int
		c byte
	}{{d.Years, 'y'}, {d.Months, 'm'}, {d.Days, 'd'}, {d.Hours, 'h'}} {
		if u.v != 0 {
			b.WriteString(strconv.Itoa(u.v))
			b.WriteByte(u.c)
		}
	}
	return b.String()
}

// before returns t minus d.
func (d Duration) before(t time.Time) time.Time {
	return t.AddDate(-d.Years, -d.Months, -d.Days).Add(-time.Duration(d.Hours) * time.Hour)
}

// ParseDuration parses "1y2m3d4h" (each part optional, in that order).
func ParseDuration(s string) (Duration, error) {
	var d Duration
	rest := s
	last := -1
	if s == "" {
		return d, errors.New("snapshot: empty duration")
	}
	for rest != "" {
		i := 0
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		if i == 0 || i == len(rest) || i > 6 {
			return Duration{}, fmt.Errorf("snapshot: duration %q: want numbers with units y, m, d, h such as 1y2m3d4h", s)
		}
		n, _ := strconv.Atoi(rest[:i])
		unit := strings.IndexByte("ymdh", rest[i])
		if unit < 0 || unit <= last {
			return Duration{}, fmt.Errorf("snapshot: duration %q: units are y, m, d, h, each once, in that order", s)
		}
		last = unit
		switch unit {
		case 0:
			d.Years = n
		case 1:
			d.Months = n
		case 2:
			d.Days = n
		case 3:
			d.Hours = n
		}
		rest = rest[i+1:]
	}
	return d, nil
}

// GroupBy says which fields put snapshots in one retention group. The
// default is app and host: each application on each host is thinned on its
// own.
type GroupBy struct {
	App, Host, Tags bool
}

// ParseGroupBy parses "app,host,tags" (any subset; "" groups everything
// together).
func ParseGroupBy(s string) (GroupBy, error) {
	var g GroupBy
	for _, f := range strings.Split(s, ",") {
		switch strings.TrimSpace(f) {
		case "":
		case "app":
			g.App = true
		case "host":
			g.Host = true
		case "tags":
			g.Tags = true
		default:
			return GroupBy{}, fmt.Errorf("snapshot: group by %q: use app, host and tags, comma-separated", f)
		}
	}
	return g, nil
}

// GroupKey is the value of the grouping fields of one group.
type GroupKey struct {
	App  string   `json:"app,omitempty"`
	Host string   `json:"host,omitempty"`
	Tags []string `json:"tags,omitempty"`
}

func (k GroupKey) String() string {
	var parts []string
	if k.App != "" {
		parts = append(parts, "app "+k.App)
	}
	if k.Host != "" {
		parts = append(parts, "host "+k.Host)
	}
	if len(k.Tags) > 0 {
		parts = append(parts, "tags "+strings.Join(k.Tags, ","))
	}
	if len(parts) == 0 {
		return "all snapshots"
	}
	return strings.Join(parts, ", ")
}

func (g GroupBy) key(s *Snapshot) GroupKey {
	var k GroupKey
	if g.App {
		k.App = s.App
	}
	if g.Host {
		k.Host = s.Host
	}
	if g.Tags {
		k.Tags = slices.Clone(s.Tags)
		slices.Sort(k.Tags)
		k.Tags = slices.Compact(k.Tags)
	}
	return k
}

// Decision is what the policy decided about one snapshot.
type Decision struct {
	Index   int      // into the slice given to ApplyPolicy
	Keep    bool     // kept
	Reasons []string // the rules that keep it: "last", "daily", "oldest daily", "within 2d", "tag x", "keep-min"
}

// Group is one retention group, newest snapshot first.
type Group struct {
	Key       GroupKey
	Decisions []Decision
}

// Unreadable reports whether the snapshot recorded files it could not read.
func (s *Snapshot) Unreadable() bool {
	for _, c := range s.Components {
		if c.Errors > 0 {
			return true
		}
	}
	return false
}

// ApplyPolicy groups snaps and decides for each whether p keeps it. Bucket
// boundaries are taken in loc (time.Local, or time.UTC for --utc). Groups
// come in the order of their newest snapshot's first appearance in snaps
// sorted by time; snaps itself is not modified.
func ApplyPolicy(snaps []*Snapshot, p Policy, by GroupBy, loc *time.Location) ([]Group, error) {
	if err := p.Check(); err != nil {
		return nil, err
	}
	order := make([]int, len(snaps))
	for i := range order {
		order[i] = i
	}
	// Newest first; equal times keep input order, so the result does not
	// depend on map or listing order.
	slices.SortStableFunc(order, func(a, b int) int { return snaps[b].Time.Compare(snaps[a].Time) })
	var groups []Group
	var members [][]int
	for _, i := range order {
		k := by.key(snaps[i])
		g := slices.IndexFunc(groups, func(x Group) bool { return groupKeyEqual(x.Key, k) })
		if g < 0 {
			groups = append(groups, Group{Key: k})
			members = append(members, nil)
			g = len(groups) - 1
		}
		members[g] = append(members[g], i)
	}
	for g := range groups {
		groups[g].Decisions = applyGroup(snaps, members[g], p, loc)
	}
	return groups, nil
}

func groupKeyEqual(a, b GroupKey) bool {
	return a.App == b.App && a.Host == b.Host && slices.Equal(a.Tags, b.Tags)
}

// bucket functions map a time to the bucket it falls into.
func hourKey(t time.Time) int {
	return t.Year()*1_000_000 + int(t.Month())*10_000 + t.Day()*100 + t.Hour()
}
func dayKey(t time.Time) int   { return t.Year()*10_000 + int(t.Month())*100 + t.Day() }
func monthKey(t time.Time) int { return t.Year()*100 + int(t.Month()) }
func yearKey(t time.Time) int  { return t.Year() }
func weekKey(t time.Time) int {
	y, w := t.ISOWeek()
	return y*100 + w
}

type bucketRule struct {
	name   string
	count  int // remaining; -1 unlimited
	within Duration
	key    func(time.Time) int
	last   int
	seen   bool
}

// applyGroup decides for the members of one group (indices, newest first).
func applyGroup(snaps []*Snapshot, idx []int, p Policy, loc *time.Location) []Decision {
	out := make([]Decision, len(idx))
	if len(idx) == 0 {
		return out
	}
	newest := snaps[idx[0]].Time
	names := []string{"hourly", "daily", "weekly", "monthly", "yearly"}
	keys := []func(time.Time) int{hourKey, dayKey, weekKey, monthKey, yearKey}
	counts := []int{p.Hourly, p.Daily, p.Weekly, p.Monthly, p.Yearly}
	withins := []Duration{p.WithinHourly, p.WithinDaily, p.WithinWeekly, p.WithinMonthly, p.WithinYearly}
	var counted, within []*bucketRule
	for i, name := range names {
		counted = append(counted, &bucketRule{name: name, count: counts[i], key: keys[i]})
		within = append(within, &bucketRule{name: name, within: withins[i], key: keys[i]})
	}
	for nr, i := range idx {
		s := snaps[i]
		t := s.Time.In(loc)
		oldest := nr == len(idx)-1
		d := Decision{Index: i}
		if p.Last == -1 || nr < p.Last {
			d.Reasons = append(d.Reasons, "last")
		}
		for _, b := range counted {
			if b.count == 0 {
				continue
			}
			k := b.key(t)
			switch {
			case !b.seen || k != b.last:
				d.Reasons = append(d.Reasons, b.name)
			case oldest:
				d.Reasons = append(d.Reasons, "oldest "+b.name)
			default:
				continue
			}
			b.seen, b.last = true, k
			if b.count > 0 {
				b.count--
			}
		}
		if !p.Within.Zero() && s.Time.After(p.Within.before(newest)) {
			d.Reasons = append(d.Reasons, "within "+p.Within.String())
		}
		for _, b := range within {
			if b.within.Zero() || !s.Time.After(b.within.before(newest)) {
				continue
			}
			k := b.key(t)
			if !b.seen || k != b.last {
				d.Reasons = append(d.Reasons, b.name+" within "+b.within.String())
			}
			b.seen, b.last = true, k
		}
		for _, tags := range p.Tags {
			if hasAll(s.Tags, tags) {
				d.Reasons = append(d.Reasons, "tag "+strings.Join(tags, ","))
			}
		}
		d.Keep = len(d.Reasons) > 0
		out[nr] = d
	}
	// The keep-min guard: count the kept snapshots without unreadable
	// files, and keep the newest further good ones until there are enough.
	good := 0
	for _, d := range out {
		if d.Keep && !snaps[d.Index].Unreadable() {
			good++
		}
	}
	for nr := 0; nr < len(out) && good < p.KeepMin; nr++ {
		if d := &out[nr]; !d.Keep && !snaps[d.Index].Unreadable() {
			d.Keep = true
			d.Reasons = append(d.Reasons, "keep-min")
			good++
		}
	}
	return out
}

func hasAll(have, want []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return len(want) > 0
}
