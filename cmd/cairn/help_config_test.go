package main

import (
	"reflect"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/app"
)

// TestConfigHelpCoversEveryKey: every key cairn.yaml accepts is explained
// by cairn help cairn.yaml, so a new key cannot ship undocumented.
func TestConfigHelpCoversEveryKey(t *testing.T) {
	seen := map[reflect.Type]bool{}
	var walk func(reflect.Type)
	walk = func(rt reflect.Type) {
		for rt.Kind() == reflect.Pointer || rt.Kind() == reflect.Slice || rt.Kind() == reflect.Map {
			rt = rt.Elem()
		}
		if rt.Kind() != reflect.Struct || seen[rt] {
			return
		}
		seen[rt] = true
		for i := range rt.NumField() {
			f := rt.Field(i)
			name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if name == "-" || !f.IsExported() {
				continue
			}
			if name != "" && !strings.Contains(configHelp, name+":") {
				t.Errorf("key %s (%s.%s) is not in cairn help cairn.yaml", name, rt.Name(), f.Name)
			}
			if name != "" || opts == "inline" {
				walk(f.Type)
			}
		}
	}
	walk(reflect.TypeFor[app.Config]())
	r := mustCairn(t, nil, "help", "cairn.yaml")
	if !strings.Contains(r.stdout, "require_output:") {
		t.Errorf("cairn help cairn.yaml:\n%s", r.stdout)
	}
}
