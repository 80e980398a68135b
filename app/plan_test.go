package app

import (
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/chunk"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
)

func TestPlanRestore(t *testing.T) {
	sn := repo.SnapshotEntry{ID: chunk.ObjectID([]byte("s")), Snapshot: &snapshot.Snapshot{Components: []snapshot.Component{
		{Name: "db", Kind: snapshot.KindStream, Size: 10},
		{Name: "search", Kind: snapshot.KindTree, Size: 20},
		{Name: "logs", Kind: snapshot.KindStream, Size: 40},
		{Name: "files", Kind: snapshot.KindTree, Size: 30},
	}}}
	for _, tc := range []struct {
		name      string
		req       RestoreRequest
		piped     []string
		rest      string
		bytes     uint64
		wantError string
	}{
		{name: "everything into a target", req: RestoreRequest{Target: "/t"}, rest: "db,search,logs,files", bytes: 100},
		{name: "piped in backup order, whatever the flag order", req: RestoreRequest{Target: "/t", Commands: map[string][]string{"logs": {"x"}, "db": {"y"}}},
			piped: []string{"db", "logs"}, rest: "search,files", bytes: 50},
		{name: "only piped: no target needed", req: RestoreRequest{Components: []string{"db"}, Commands: map[string][]string{"db": {"y"}}}, piped: []string{"db"}},
		{name: "selected components", req: RestoreRequest{Components: []string{"files", "db"}, Target: "/t"}, rest: "db,files", bytes: 40},
		{name: "unknown component", req: RestoreRequest{Components: []string{"nope"}, Target: "/t"}, wantError: `has no component "nope"`},
		{name: "unknown command target", req: RestoreRequest{Commands: map[string][]string{"nope": {"x"}}, Target: "/t"}, wantError: `--command nope: the snapshot has no component`},
		{name: "a tree cannot be piped", req: RestoreRequest{Commands: map[string][]string{"files": {"x"}}, Target: "/t"}, wantError: "only a stream can be piped"},
		{name: "target missing", req: RestoreRequest{Commands: map[string][]string{"db": {"x"}}}, wantError: "restore needs --target for components search, logs, files"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := PlanRestore(sn, tc.req)
			if tc.wantError != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantError) {
					t.Fatalf("got %v, want an error saying %q", err, tc.wantError)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var piped []string
			for _, c := range p.Piped {
				piped = append(piped, c.Name)
			}
			if strings.Join(piped, ",") != strings.Join(tc.piped, ",") || strings.Join(p.Rest, ",") != tc.rest || p.Bytes != tc.bytes {
				t.Errorf("plan: piped %v, rest %v, %d bytes; want %v, %s, %d", piped, p.Rest, p.Bytes, tc.piped, tc.rest, tc.bytes)
			}
		})
	}
}

func TestSelectionMatch(t *testing.T) {
	at := func(app, host string) repo.SnapshotEntry {
		return repo.SnapshotEntry{Snapshot: &snapshot.Snapshot{App: app, Host: host, Time: time.Now()}}
	}
	for _, tc := range []struct {
		sel  Selection
		sn   repo.SnapshotEntry
		want bool
	}{
		{Selection{}, at("web", "a"), true},
		{Selection{Hosts: []string{"a", "b"}}, at("web", "b"), true},
		{Selection{Hosts: []string{"a"}}, at("web", "b"), false},
		{Selection{App: "web"}, at("web", "b"), true},
		{Selection{App: "web", Hosts: []string{"a"}}, at("db", "a"), false},
	} {
		if got := tc.sel.Match(tc.sn); got != tc.want {
			t.Errorf("%+v matches %s@%s: %v, want %v", tc.sel, tc.sn.App, tc.sn.Host, got, tc.want)
		}
	}
}
