package snapshot

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// berlin has both DST changes inside the test year (29 March and 25 October
// 2026) and is where a sysadmin's "daily" is not a UTC day.
func berlin(t *testing.T) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatalf("load Europe/Berlin: %v (needs tzdata)", err)
	}
	return loc
}

// yearOf4Hourly returns a snapshot every four hours from 25 December 2025
// to end (inclusive), at 03, 07, 11, 15, 19 and 23 UTC. 23:00 UTC is
// midnight in Berlin in winter, so the last snapshot of a UTC day is the
// first of the next Berlin day: UTC and local buckets differ.
func yearOf4Hourly(end time.Time) []*Snapshot {
	var out []*Snapshot
	for t := time.Date(2025, 12, 25, 3, 0, 0, 0, time.UTC); !t.After(end); t = t.Add(4 * time.Hour) {
		out = append(out, &Snapshot{Time: t, Host: "h", App: "a"})
	}
	return out
}

func kept(t *testing.T, snaps []*Snapshot, p Policy, loc *time.Location) []time.Time {
	t.Helper()
	groups, err := ApplyPolicy(snaps, p, GroupBy{App: true, Host: true}, loc)
	if err != nil {
		t.Fatalf("ApplyPolicy: %v", err)
	}
	if len(groups) != 1 {
		t.Fatalf("%d groups, want 1", len(groups))
	}
	var out []time.Time
	for _, d := range groups[0].Decisions {
		if d.Keep != (len(d.Reasons) > 0) {
			t.Fatalf("snapshot %s: keep=%v with reasons %v", snaps[d.Index].Time, d.Keep, d.Reasons)
		}
		if d.Keep {
			out = append(out, snaps[d.Index].Time)
		}
	}
	slices.SortFunc(out, func(a, b time.Time) int { return b.Compare(a) })
	return out
}

// The expected sets below are computed without the code under test:
// bucket names come from time.Format and, for ISO weeks, from the
// Thursday rule (a week belongs to the year its Thursday is in), not from
// ISOWeek.
func isoWeekName(t time.Time) string {
	y, m, d := t.Date()
	wd := (int(t.Weekday()) + 6) % 7 // Monday 0 … Sunday 6
	thu := time.Date(y, m, d+3-wd, 12, 0, 0, 0, time.UTC)
	return fmt.Sprintf("%d-W%02d", thu.Year(), (thu.YearDay()-1)/7+1)
}

var bucketNames = map[string]func(time.Time) string{
	"hourly":  func(t time.Time) string { return t.Format("2006-01-02 15") },
	"daily":   func(t time.Time) string { return t.Format("2006-01-02") },
	"weekly":  isoWeekName,
	"monthly": func(t time.Time) string { return t.Format("2006-01") },
	"yearly":  func(t time.Time) string { return t.Format("2006") },
}

// expectBuckets is the newest snapshot of each of the n newest buckets,
// plus the oldest snapshot when fewer than n buckets exist (n = -1: all).
func expectBuckets(snaps []*Snapshot, rule string, n int, loc *time.Location) map[time.Time]bool {
	times := make([]time.Time, len(snaps))
	for i, s := range snaps {
		times[i] = s.Time
	}
	slices.SortFunc(times, func(a, b time.Time) int { return b.Compare(a) })
	name := bucketNames[rule]
	out := map[time.Time]bool{}
	seen := map[string]bool{}
	for _, t := range times {
		b := name(t.In(loc))
		if !seen[b] && (n == -1 || len(seen) < n) {
			out[t] = true
		}
		seen[b] = true
	}
	if n == -1 || len(seen) < n {
		out[times[len(times)-1]] = true
	}
	return out
}

func TestPolicyYearOfSnapshots(t *testing.T) {
	loc := berlin(t)
	ends := []time.Time{
		time.Date(2027, 1, 5, 23, 0, 0, 0, time.UTC),   // after a year end
		time.Date(2026, 10, 26, 3, 0, 0, 0, time.UTC),  // the day after DST ends
		time.Date(2026, 3, 30, 19, 0, 0, 0, time.UTC),  // the day after DST starts
		time.Date(2026, 1, 1, 23, 0, 0, 0, time.UTC),   // Berlin's 2 January, UTC's 1 January
		time.Date(2026, 6, 15, 11, 0, 0, 0, time.UTC),  // mid-year
		time.Date(2025, 12, 31, 23, 0, 0, 0, time.UTC), // young repository: a week of history
	}
	rules := []struct {
		rule string
		n    int
		set  func(*Policy, int)
	}{
		{"hourly", 30, func(p *Policy, n int) { p.Hourly = n }},
		{"daily", 7, func(p *Policy, n int) { p.Daily = n }},
		{"daily", 400, func(p *Policy, n int) { p.Daily = n }},
		{"weekly", 5, func(p *Policy, n int) { p.Weekly = n }},
		{"weekly", 60, func(p *Policy, n int) { p.Weekly = n }},
		{"monthly", 12, func(p *Policy, n int) { p.Monthly = n }},
		{"monthly", -1, func(p *Policy, n int) { p.Monthly = n }},
		{"yearly", 3, func(p *Policy, n int) { p.Yearly = n }},
	}
	for _, end := range ends {
		snaps := yearOf4Hourly(end)
		for _, l := range []*time.Location{loc, time.UTC} {
			for _, r := range rules {
				t.Run(fmt.Sprintf("%s/%s/%s-%d", end.Format("2006-01-02"), l, r.rule, r.n), func(t *testing.T) {
					var p Policy
					r.set(&p, r.n)
					want := expectBuckets(snaps, r.rule, r.n, l)
					got := kept(t, snaps, p, l)
					if len(got) != len(want) {
						t.Fatalf("kept %d snapshots, want %d", len(got), len(want))
					}
					for _, g := range got {
						if !want[g] {
							t.Fatalf("kept %s, which is not the newest of its %s bucket", g, r.rule)
						}
					}
				})
			}
		}
	}
}

func TestPolicyCombinedIsUnion(t *testing.T) {
	loc := berlin(t)
	snaps := yearOf4Hourly(time.Date(2027, 1, 5, 23, 0, 0, 0, time.UTC))
	want := map[time.Time]bool{}
	for _, r := range []struct {
		rule string
		n    int
	}{{"hourly", 6}, {"daily", 14}, {"weekly", 8}, {"monthly", 12}, {"yearly", 5}} {
		for t := range expectBuckets(snaps, r.rule, r.n, loc) {
			want[t] = true
		}
	}
	times := make([]time.Time, len(snaps))
	for i, s := range snaps {
		times[i] = s.Time
	}
	for _, t := range times[len(times)-3:] { // keep-last 3
		want[t] = true
	}
	got := kept(t, snaps, Policy{Last: 3, Hourly: 6, Daily: 14, Weekly: 8, Monthly: 12, Yearly: 5}, loc)
	if len(got) != len(want) {
		t.Fatalf("kept %d, want %d", len(got), len(want))
	}
	for _, g := range got {
		if !want[g] {
			t.Fatalf("kept %s, want not", g)
		}
	}
}

func utc(s string) time.Time {
	t, err := time.Parse(time.DateTime, s)
	if err != nil {
		panic(err)
	}
	return t
}

func times(s ...string) []time.Time {
	out := make([]time.Time, len(s))
	for i, x := range s {
		out[i] = utc(x)
	}
	return out
}

// Literal cases, worked out by hand with a calendar.
func TestPolicyLiteral(t *testing.T) {
	loc := berlin(t)
	yearEnd := yearOf4Hourly(utc("2027-01-05 23:00:00"))
	dstEnd := yearOf4Hourly(utc("2026-10-26 03:00:00"))
	// Hourly snapshots across the night DST ends: 00:30 UTC is 02:30
	// CEST and 01:30 UTC is 02:30 CET, one local hour bucket.
	var night []*Snapshot
	for _, s := range []string{"2026-10-24 23:30:00", "2026-10-25 00:30:00", "2026-10-25 01:30:00", "2026-10-25 02:30:00"} {
		night = append(night, &Snapshot{Time: utc(s)})
	}
	for _, tc := range []struct {
		name  string
		snaps []*Snapshot
		p     Policy
		loc   *time.Location
		want  []time.Time
	}{
		// ISO 2026-W53 runs Monday 28 December to Sunday 3 January. Berlin's
		// Monday 4 January starts at 23:00 UTC on the 3rd.
		{"weekly across the year end, Berlin", yearEnd, Policy{Weekly: 3}, loc,
			times("2027-01-05 23:00:00", "2027-01-03 19:00:00", "2026-12-27 19:00:00")},
		{"weekly across the year end, UTC", yearEnd, Policy{Weekly: 3}, time.UTC,
			times("2027-01-05 23:00:00", "2027-01-03 23:00:00", "2026-12-27 23:00:00")},
		{"yearly, Berlin", yearEnd, Policy{Yearly: 2}, loc,
			times("2027-01-05 23:00:00", "2026-12-31 19:00:00")},
		{"yearly, UTC", yearEnd, Policy{Yearly: 2}, time.UTC,
			times("2027-01-05 23:00:00", "2026-12-31 23:00:00")},
		// Berlin's 25 October has 25 hours: 22:00 UTC on the 24th to
		// 23:00 UTC on the 25th.
		{"daily across DST end, Berlin", dstEnd, Policy{Daily: 3}, loc,
			times("2026-10-26 03:00:00", "2026-10-25 19:00:00", "2026-10-24 19:00:00")},
		{"daily across DST end, UTC", dstEnd, Policy{Daily: 3}, time.UTC,
			times("2026-10-26 03:00:00", "2026-10-25 23:00:00", "2026-10-24 23:00:00")},
		{"hourly in the repeated hour, Berlin", night, Policy{Hourly: 10}, loc,
			times("2026-10-25 02:30:00", "2026-10-25 01:30:00", "2026-10-24 23:30:00")},
		{"hourly in the repeated hour, UTC", night, Policy{Hourly: 10}, time.UTC,
			times("2026-10-25 02:30:00", "2026-10-25 01:30:00", "2026-10-25 00:30:00", "2026-10-24 23:30:00")},
		{"last", dstEnd, Policy{Last: 2}, loc, times("2026-10-26 03:00:00", "2026-10-25 23:00:00")},
		// within counts back from the newest snapshot, not from now.
		{"within 1d", dstEnd, Policy{Within: Duration{Days: 1}}, loc,
			times("2026-10-26 03:00:00", "2026-10-25 23:00:00", "2026-10-25 19:00:00", "2026-10-25 15:00:00",
				"2026-10-25 11:00:00", "2026-10-25 07:00:00")},
		{"within 12h", dstEnd, Policy{Within: Duration{Hours: 12}}, loc,
			times("2026-10-26 03:00:00", "2026-10-25 23:00:00", "2026-10-25 19:00:00")},
		{"daily within 2d", dstEnd, Policy{WithinDaily: Duration{Days: 2}}, loc,
			times("2026-10-26 03:00:00", "2026-10-25 19:00:00", "2026-10-24 19:00:00")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := kept(t, tc.snaps, tc.p, tc.loc)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("kept %v\nwant %v", got, tc.want)
			}
		})
	}
}

func TestPolicyKeepMin(t *testing.T) {
	var snaps []*Snapshot
	base := utc("2026-05-01 00:00:00")
	for i := range 10 {
		s := &Snapshot{Time: base.Add(time.Duration(i) * 4 * time.Hour), Components: []Component{{Name: "files"}}}
		if i >= 4 { // the newest six could not read some files
			s.Components[0].Errors = 3
		}
		snaps = append(snaps, s)
	}
	for _, tc := range []struct {
		name    string
		p       Policy
		want    []int // indices kept
		reasons map[int]string
	}{
		{"guard keeps the newest good one", Policy{Last: 3, KeepMin: 1}, []int{9, 8, 7, 3}, map[int]string{3: "keep-min"}},
		{"guard of two", Policy{Last: 3, KeepMin: 2}, []int{9, 8, 7, 3, 2}, map[int]string{2: "keep-min"}},
		{"rules already keep enough good ones", Policy{Last: 8, KeepMin: 2}, []int{9, 8, 7, 6, 5, 4, 3, 2}, nil},
		{"no guard", Policy{Last: 3}, []int{9, 8, 7}, nil},
		{"keep-min 0 with no rule removes everything", Policy{}, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			groups, err := ApplyPolicy(snaps, tc.p, GroupBy{}, time.UTC)
			if err != nil {
				t.Fatal(err)
			}
			var got []int
			for _, d := range groups[0].Decisions {
				if d.Keep {
					got = append(got, d.Index)
				}
				if r, ok := tc.reasons[d.Index]; ok && !slices.Contains(d.Reasons, r) {
					t.Errorf("snapshot %d kept for %v, want %q", d.Index, d.Reasons, r)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("kept %v, want %v", got, tc.want)
			}
		})
	}
	if _, err := ApplyPolicy(snaps, Policy{KeepMin: 1}, GroupBy{}, time.UTC); !errors.Is(err, ErrEmptyPolicy) {
		t.Fatalf("empty policy with keep-min 1: %v, want ErrEmptyPolicy", err)
	}
}

func TestPolicyGroupsAndTags(t *testing.T) {
	base := utc("2026-05-01 00:00:00")
	var snaps []*Snapshot
	for i := range 12 {
		s := &Snapshot{Time: base.Add(time.Duration(i) * time.Hour), App: []string{"alm", "pcb"}[i%2], Host: []string{"x", "y", "z"}[i%3]}
		if i == 1 {
			s.Tags = []string{"release", "v1"}
		}
		snaps = append(snaps, s)
	}
	groups, err := ApplyPolicy(snaps, Policy{Last: 1, Tags: [][]string{{"release", "v1"}, {"nope"}}}, GroupBy{App: true, Host: true}, time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	if len(groups) != 6 {
		t.Fatalf("%d groups, want 6 (2 apps × 3 hosts)", len(groups))
	}
	var keptIdx []int
	for _, g := range groups {
		for _, d := range g.Decisions {
			if snaps[d.Index].App != g.Key.App || snaps[d.Index].Host != g.Key.Host {
				t.Fatalf("snapshot %d in group %s", d.Index, g.Key)
			}
			if d.Keep {
				keptIdx = append(keptIdx, d.Index)
				if d.Index == 1 && !slices.Contains(d.Reasons, "tag release,v1") {
					t.Errorf("snapshot 1 kept for %v, want its tags", d.Reasons)
				}
			}
		}
	}
	slices.Sort(keptIdx)
	if want := []int{1, 6, 7, 8, 9, 10, 11}; !slices.Equal(keptIdx, want) {
		t.Fatalf("kept %v, want %v", keptIdx, want)
	}
	g, err := ParseGroupBy("host")
	if err != nil {
		t.Fatal(err)
	}
	groups, _ = ApplyPolicy(snaps, Policy{Last: 1}, g, time.UTC)
	if len(groups) != 3 || !strings.Contains(groups[0].Key.String(), "host") {
		t.Fatalf("group by host: %d groups (%v)", len(groups), groups[0].Key)
	}
	if _, err := ParseGroupBy("app,colour"); err == nil {
		t.Fatal("ParseGroupBy accepted an unknown field")
	}
}

func TestParseDuration(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Duration
		ok   bool
	}{
		{"1y2m3d4h", Duration{1, 2, 3, 4}, true},
		{"36h", Duration{Hours: 36}, true},
		{"2d", Duration{Days: 2}, true},
		{"1y", Duration{Years: 1}, true},
		{"", Duration{}, false},
		{"3", Duration{}, false},
		{"d", Duration{}, false},
		{"1h2d", Duration{}, false},
		{"1d1d", Duration{}, false},
		{"1w", Duration{}, false},
		{"-1d", Duration{}, false},
		{"99999999d", Duration{}, false},
	} {
		got, err := ParseDuration(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
		if tc.ok && got.String() != tc.in {
			t.Errorf("%v.String() = %q, want %q", got, got.String(), tc.in)
		}
	}
}
