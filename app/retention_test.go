package app

import (
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/snapshot"
)

func TestRetentionConfig(t *testing.T) {
	base := "repository: /r\ncomponents:\n  - name: files\n    tree: /srv\n"
	cfg, err := Parse("c.yaml", []byte(base+"retention:\n  keep_hourly: 6\n  keep_daily: 14\n  keep_within: 2d\n  keep_tag: [release]\n  group_by: host\n"+
		"replicate:\n  - repository: /offsite\n    retention:\n      keep_monthly: -1\n      keep_min: 3\n"))
	if err != nil {
		t.Fatal(err)
	}
	p, by, err := cfg.Retention.Policy()
	if err != nil {
		t.Fatal(err)
	}
	if p.Hourly != 6 || p.Daily != 14 || p.Within != (snapshot.Duration{Days: 2}) || len(p.Tags) != 1 || p.KeepMin != 1 || by != (snapshot.GroupBy{Host: true}) {
		t.Fatalf("policy %+v grouped %+v", p, by)
	}
	rp, by, err := cfg.Replicate[0].Retention.Policy()
	if err != nil || rp.Monthly != -1 || rp.KeepMin != 3 || by != (snapshot.GroupBy{App: true, Host: true}) {
		t.Fatalf("replica policy %+v %+v %v", rp, by, err)
	}
	for _, bad := range []struct{ yaml, want string }{
		{"retention:\n  keep_within: 2w\n", "keep_within"},
		{"retention:\n  keep_dayly: 3\n", "keep_dayly"},
		{"retention:\n  group_by: colour\n", "group_by"},
		{"retention:\n  keep_min: 2\n", "keeps nothing"},
		{"replicate:\n  - repository: /o\n    retention:\n      keep_last: -5\n", "replicate[0]"},
	} {
		_, err := Parse("c.yaml", []byte(base+bad.yaml))
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%q: %v, want an error naming %s", bad.yaml, err, bad.want)
		}
	}
}
