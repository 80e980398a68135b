package app

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/snapshot"
)

// FuzzParse feeds arbitrary text to the cairn.yaml parser. An accepted
// config has at least one component, each with a valid unique name and
// exactly one kind; a refused one is a *Problems or an error naming the
// file; parsing is deterministic.
//
//	go test -run '^$' -fuzz FuzzParse -fuzztime 30s ./app
func FuzzParse(f *testing.F) {
	f.Add([]byte("repository: /r\ncomponents:\n  - name: db\n    command: [pg_dump]\n    restore: [pg_restore]\n  - name: files\n    tree: /srv\n"))
	f.Add([]byte("components:\n  - name: s\n    elasticsearch:\n      url: http://127.0.0.1:9200\n      repository: r\n      location: /l\nmax_skew: 15m\nretention:\n  keep_last: 3\n"))
	f.Add([]byte("components:\n  - name: a\n    tree: /x\n    delet: true\n"))
	f.Add([]byte("a: &a [x, x, x, x]\nb: &b [*a, *a, *a, *a]\nc: [*b, *b, *b, *b]\n"))
	f.Add([]byte("components: [{name: a, tree: /x}, {name: a, tree: /y}]\n"))
	f.Add([]byte("\t"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("cairn.yaml", data)
		cfg2, err2 := Parse("cairn.yaml", data)
		if (err == nil) != (err2 == nil) || (err != nil && err.Error() != err2.Error()) || !reflect.DeepEqual(cfg, cfg2) {
			t.Fatalf("Parse is not deterministic: %v / %v", err, err2)
		}
		if err != nil {
			var p *Problems
			if cfg != nil || (!errors.As(err, &p) && !strings.HasPrefix(err.Error(), "cairn.yaml")) {
				t.Fatalf("refusal without the file's name, or with a config: %v", err)
			}
			return
		}
		if len(cfg.Components) == 0 {
			t.Fatal("accepted a config without components")
		}
		seen := map[string]bool{}
		for _, c := range cfg.Components {
			if snapshot.ValidComponentName(c.Name) != nil || seen[c.Name] {
				t.Fatalf("accepted component name %q", c.Name)
			}
			seen[c.Name] = true
			kinds := 0
			for _, set := range []bool{len(c.Command) > 0, c.Elasticsearch != nil, c.Tree != ""} {
				if set {
					kinds++
				}
			}
			if kinds != 1 {
				t.Fatalf("component %q has %d kinds", c.Name, kinds)
			}
		}
	})
}

func TestLoadBounded(t *testing.T) {
	if _, err := Load("/dev/zero"); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("Load(/dev/zero) = %v", err)
	}
}
