// Package app is an application as an administrator describes it in
// cairn.yaml: its repository, its components in the order they are taken
// (database, search index, file repository), and the hooks around them;
// and the backup and restore of all of it as one point in time.
//
// It sits between cmd/cairn, which parses flags and prints, and repo and
// sources, which do the work: it turns the config into components for the
// archiver and puts each component back to its live target on restore.
package app

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cairn-backup/cairn/snapshot"
	"go.yaml.in/yaml/v3"
)

// Config is a parsed cairn.yaml.
type Config struct {
	Path         string      `yaml:"-"`
	Repository   string      `yaml:"repository"`
	PasswordFile string      `yaml:"password_file"`
	App          string      `yaml:"app"`
	MaxSkew      Duration    `yaml:"max_skew"`
	Hooks        Hooks       `yaml:"hooks"`
	Components   []Component `yaml:"components"`
	// Replicate lists repositories each new snapshot is copied to after a
	// configured backup (offsite copies, typically S3).
	Replicate []Replica `yaml:"replicate"`
	// Retention is the forget policy `cairn forget --config` applies.
	Retention *Retention `yaml:"retention"`
	// Schedule is when `cairn daemon` runs the application; without it
	// the daemon refuses the config.
	Schedule *Schedule `yaml:"schedule"`
	// Drill is how `cairn drill` restores into a scratch area and probes.
	Drill *Drill `yaml:"drill"`
}

// Replica is a replication target.
type Replica struct {
	Repository   string `yaml:"repository"`
	PasswordFile string `yaml:"password_file"`
	// Retention is the replica's own forget policy (offsite usually keeps
	// longer); without it, forget --config leaves the replica alone.
	Retention *Retention `yaml:"retention"`
}

// Hooks are commands (argv) run around the whole application or one
// component, by phase: hooks.backup and hooks.restore. The flat
// before/after/on_failure keys are shorthand for hooks.backup (a
// "deactivate the space" step is rarely right for both phases, and a "drop
// the schema" step must never run before a backup).
type Hooks struct {
	PhaseHooks `yaml:",inline"`
	Backup     *PhaseHooks `yaml:"backup"`
	Restore    *PhaseHooks `yaml:"restore"`
}

// PhaseHooks are the hooks of one phase (backup or restore).
//
// Backup: before runs first; after runs whatever happened (a service
// stopped for the dump must come back); on_failure runs, before after,
// when the backup failed, and (after after) when replication of the
// written snapshot failed.
//
// Restore: before runs first; after runs only when everything was
// restored (so "activate the space" never follows a half-done restore);
// on_failure runs otherwise.
//
// Each hook sees CAIRN_PHASE, CAIRN_HOOK, CAIRN_APP, CAIRN_SNAPSHOT,
// CAIRN_COMPONENT (component hooks), CAIRN_RESTORED (restore: the
// components restored so far, comma-separated) and, in on_failure,
// CAIRN_ERROR and CAIRN_FAILED_COMPONENT.
type PhaseHooks struct {
	Before    []string `yaml:"before"`
	After     []string `yaml:"after"`
	OnFailure []string `yaml:"on_failure"`
}

func (h PhaseHooks) empty() bool {
	return len(h.Before) == 0 && len(h.After) == 0 && len(h.OnFailure) == 0
}

// Phase returns the hooks of phase "backup" or "restore".
func (h Hooks) Phase(phase string) PhaseHooks {
	switch phase {
	case "backup":
		if h.Backup != nil {
			return *h.Backup
		}
		return h.PhaseHooks
	case "restore":
		if h.Restore != nil {
			return *h.Restore
		}
	}
	return PhaseHooks{}
}

func (h Hooks) check(p *Problems, line int, where string) {
	if h.Backup != nil && !h.PhaseHooks.empty() {
		p.add(line, "%shooks: give the backup hooks either as hooks.backup or as the shorthand hooks.before/after/on_failure, not both", where)
	}
}

// Component is one part of the application: exactly one of Command,
// Elasticsearch or Tree is set.
type Component struct {
	Line int    `yaml:"-"`
	Name string `yaml:"name"`

	// A dump command, and how to put its output back.
	Command []string `yaml:"command"`
	// Mode: "stream" (stdout, the default), "pipe" (the command writes to
	// the named pipe {path}) or "dir" (the command fills {dir}, a fresh
	// directory inside Dir for each run, archived as a tree and removed
	// afterwards).
	Mode string `yaml:"mode"`
	Dir  string `yaml:"dir"`
	// Clean is accepted for configs written before each run had a
	// directory of its own; it changes nothing.
	Clean      bool     `yaml:"clean"`
	Shell      bool     `yaml:"shell"`
	Env        []string `yaml:"env"`
	AllowEmpty bool     `yaml:"allow_empty"`
	Restore    []string `yaml:"restore"`
	// RestoreViaFile writes the dump to a file and passes it as {path}, for
	// tools that cannot read stdin (impdp).
	RestoreViaFile bool `yaml:"restore_via_file"`

	Elasticsearch *Elasticsearch `yaml:"elasticsearch"`

	Tree string `yaml:"tree"`
	// Delete empties the tree's directory before restoring into it, as the
	// vendor procedures do, so files added after the snapshot do not stay.
	Delete bool `yaml:"delete"`

	Hooks Hooks `yaml:"hooks"`

	// StartNext lets the next component start before this one has been
	// read to the end, once its source has fixed its point in time:
	// "on_first_byte" for a dump command whose tool takes its snapshot
	// before it writes anything (pg_dump; not mysqldump, whose header
	// comes first), "on_snapshot" for Elasticsearch (the snapshot call has
	// returned). Default "when_done": the next starts after this one.
	StartNext string `yaml:"start_next"`

	unknown []string // "line N: unknown key K", found by UnmarshalYAML
}

// Elasticsearch configures an Elasticsearch component.
type Elasticsearch struct {
	URL          string `yaml:"url"`
	Repository   string `yaml:"repository"`
	Location     string `yaml:"location"`
	Indices      string `yaml:"indices"`
	AllowPartial bool   `yaml:"allow_partial"`
	// AllowForeignRepository takes over a repository another cluster
	// wrote (after a cluster rebuild).
	AllowForeignRepository bool `yaml:"allow_foreign_repository"`
	DeleteOlder            bool `yaml:"delete_older"`
	// RenamePattern and RenameReplacement restore the indices under other
	// names (Elasticsearch's rename_pattern / rename_replacement, "$1" for
	// a group), e.g. to look at old data beside the live indices.
	RenamePattern     string `yaml:"rename_pattern"`
	RenameReplacement string `yaml:"rename_replacement"`
	Username          string `yaml:"username"`
	Password          string `yaml:"password"`
	CACert            string `yaml:"cacert"`
}

// Kind returns "command", "elasticsearch" or "tree".
func (c *Component) Kind() string {
	switch {
	case len(c.Command) > 0:
		return "command"
	case c.Elasticsearch != nil:
		return "elasticsearch"
	default:
		return "tree"
	}
}

// UnmarshalYAML records the component's line for error messages. A
// custom unmarshaler loses the decoder's strictness, so unknown keys (a
// typo such as "delet: true" would silently keep files) are found here.
func (c *Component) UnmarshalYAML(n *yaml.Node) error {
	type plain Component
	var p plain
	if err := n.Decode(&p); err != nil {
		return err
	}
	*c = Component(p)
	c.Line = n.Line
	c.unknown = unknownKeys(n, reflect.TypeFor[Component](), "")
	return nil
}

// unknownKeys lists the keys of mapping n that t has no yaml field for,
// descending into nested structs.
func unknownKeys(n *yaml.Node, t reflect.Type, path string) []string {
	if n.Kind != yaml.MappingNode {
		return nil
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	fields := map[string]reflect.Type{}
	yamlFields(t, fields)
	var out []string
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		ft, ok := fields[k.Value]
		if !ok {
			out = append(out, fmt.Sprintf("%d:unknown key %q", k.Line, path+k.Value))
			continue
		}
		if ft.Kind() == reflect.Struct || (ft.Kind() == reflect.Pointer && ft.Elem().Kind() == reflect.Struct) {
			out = append(out, unknownKeys(v, ft, path+k.Value+".")...)
		}
	}
	return out
}

// yamlFields adds t's yaml keys and their types to fields, with the keys
// of inlined structs.
func yamlFields(t reflect.Type, fields map[string]reflect.Type) {
	for i := range t.NumField() {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		switch {
		case opts == "inline" && f.Type.Kind() == reflect.Struct:
			yamlFields(f.Type, fields)
		case name != "" && name != "-":
			fields[name] = f.Type
		}
	}
}

// Duration is a time.Duration written as "10m", "90s".
type Duration time.Duration

// UnmarshalYAML parses a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil || n.Kind != yaml.ScalarNode {
		// A *yaml.TypeError lets the decoder go on, so the file's other
		// problems are reported with this one.
		what := fmt.Sprintf("%q", n.Value)
		if n.Kind != yaml.ScalarNode {
			what = "a list or mapping"
		}
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %s is not a duration (use e.g. 90s, 10m, 1h)", n.Line, what)}}
	}
	*d = Duration(v)
	return nil
}

// Problems is every problem found in a config file, each with its line.
type Problems struct {
	Path string
	List []string
}

func (p *Problems) Error() string {
	return fmt.Sprintf("%s: %d problems:\n  %s", p.Path, len(p.List), strings.Join(p.List, "\n  "))
}

func (p *Problems) add(line int, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if line > 0 {
		msg = fmt.Sprintf("%s:%d: %s", p.Path, line, msg)
	} else {
		msg = p.Path + ": " + msg
	}
	p.List = append(p.List, msg)
}

// Load reads and checks a config file. All problems are reported at once,
// each with its line, in a *Problems error.
func Load(path string, sets ...string) (*Config, error) {
	data, err := readConfig(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data, sets...)
}

// CheckFile is config check: Load's checks and, in the same pass, what
// can be checked on this host without side effects (see hostCheck). All
// problems come in one *Problems.
func CheckFile(path string, sets ...string) (*Config, error) {
	data, err := readConfig(path)
	if err != nil {
		return nil, err
	}
	cfg, p, err := parse(path, data, sets)
	if err != nil {
		return nil, err
	}
	cfg.hostCheck(p)
	if len(p.List) > 0 {
		return nil, p
	}
	return cfg, nil
}

func readConfig(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxConfigFile+1))
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	if len(data) > maxConfigFile {
		return nil, fmt.Errorf("read config: %s is larger than %d bytes (a cairn.yaml is a few KiB)", path, maxConfigFile)
	}
	return data, nil
}

// maxConfigFile bounds what Load reads: a path given by mistake (a dump,
// /dev/zero) must not be read into memory whole.
const maxConfigFile = 1 << 20

// Parse parses config text; path is used in messages and to resolve
// relative paths. sets are --set KEY=VALUE overrides (see applySets),
// applied before the checks, so an override is checked like the file.
func Parse(path string, data []byte, sets ...string) (*Config, error) {
	cfg, p, err := parse(path, data, sets)
	if err != nil {
		return nil, err
	}
	if len(p.List) > 0 {
		return nil, p
	}
	return cfg, nil
}

// parse decodes and checks; cfg is as much as could be decoded, p every
// problem found, err a failure to read the YAML at all.
func parse(path string, data []byte, sets []string) (*Config, *Problems, error) {
	cfg := &Config{Path: path}
	if len(sets) > 0 {
		var root yaml.Node
		if err := yaml.Unmarshal(data, &root); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", path, err)
		}
		if root.Kind == 0 {
			root = yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{{Kind: yaml.MappingNode, Tag: "!!map"}}}
		}
		if err := applySets(&root, sets); err != nil {
			return nil, nil, err
		}
		// Encoded back, the overridden tree goes through the strict
		// decoder (Node.Decode does not report unknown keys).
		b, err := yaml.Marshal(&root)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: --set: %w", path, err)
		}
		data = b
	}
	var list []string
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			return nil, nil, fmt.Errorf("%s: %w", path, err)
		}
		// The decoder goes on past type errors: check the rest too, so
		// every problem is reported in one pass.
		list = prefix(path, te.Errors)
	}
	p := cfg.check()
	p.List = append(list, p.List...)
	return cfg, p, nil
}

func prefix(path string, errs []string) []string {
	out := make([]string, len(errs))
	for i, e := range errs {
		out[i] = path + ":" + strings.TrimPrefix(e, "line ")
	}
	return out
}

// check validates what the YAML decoder cannot.
func (cfg *Config) check() *Problems {
	p := &Problems{Path: cfg.Path}
	if len(cfg.Components) == 0 {
		p.add(0, "no components: list the database, search index and file tree to back up")
	}
	if cfg.App != "" && snapshot.ValidComponentName(cfg.App) != nil {
		p.add(0, "app %q: use letters, digits, '.', '_' or '-'", cfg.App)
	}
	for i, rp := range cfg.Replicate {
		if rp.Repository == "" {
			p.add(0, "replicate[%d]: repository is missing", i)
		}
		if rp.Repository != "" && rp.Repository == cfg.Repository {
			p.add(0, "replicate[%d]: %s is the repository itself", i, rp.Repository)
		}
		if rp.Retention != nil {
			if _, _, err := rp.Retention.Policy(); err != nil {
				p.add(0, "replicate[%d]: retention: %v", i, err)
			}
		}
	}
	if cfg.Retention != nil {
		if _, _, err := cfg.Retention.Policy(); err != nil {
			p.add(0, "retention: %v", err)
		}
	}
	cfg.Hooks.check(p, 0, "")
	if cfg.Schedule != nil {
		if err := cfg.Schedule.check(); err != nil {
			p.add(0, "schedule: %v", err)
		}
	}
	if cfg.Drill != nil {
		cfg.Drill.check(cfg, p)
	}
	seen := map[string]int{}
	for i := range cfg.Components {
		c := &cfg.Components[i]
		for _, u := range c.unknown {
			line, msg, _ := strings.Cut(u, ":")
			n, _ := strconv.Atoi(line)
			p.add(n, "component %q: %s", c.Name, msg)
		}
		if err := snapshot.ValidComponentName(c.Name); err != nil {
			p.add(c.Line, "component name %q: use 1-64 letters, digits, '.', '_' or '-'", c.Name)
		}
		if first, dup := seen[c.Name]; dup {
			p.add(c.Line, "component %q is also defined at line %d", c.Name, first)
		}
		seen[c.Name] = c.Line
		c.Hooks.check(p, c.Line, fmt.Sprintf("component %q: ", c.Name))
		kinds := 0
		if len(c.Command) > 0 {
			kinds++
		}
		if c.Elasticsearch != nil {
			kinds++
		}
		if c.Tree != "" {
			kinds++
		}
		if kinds != 1 {
			p.add(c.Line, "component %q: give exactly one of command, elasticsearch or tree", c.Name)
			continue
		}
		switch c.Kind() {
		case "command":
			cfg.checkCommand(p, c)
		case "elasticsearch":
			e := c.Elasticsearch
			if e.URL == "" || e.Repository == "" || e.Location == "" || e.Indices == "" {
				p.add(c.Line, "component %q: elasticsearch needs url, repository, location and indices", c.Name)
			}
			if e.URL != "" {
				if msg := checkURL(e.URL); msg != "" {
					p.add(c.Line, "component %q: elasticsearch url %q: %s", c.Name, e.URL, msg)
				}
			}
			if e.Location != "" && !filepath.IsAbs(e.Location) {
				p.add(c.Line, "component %q: elasticsearch location %q must be an absolute path, as Elasticsearch sees it", c.Name, e.Location)
			}
		case "tree":
			if !filepath.IsAbs(c.Tree) {
				p.add(c.Line, "component %q: tree %q must be an absolute path", c.Name, c.Tree)
			} else if filepath.Clean(c.Tree) == "/" {
				p.add(c.Line, "component %q: tree / cannot be a component (restore with delete would empty the root)", c.Name)
			}
		}
		if c.Kind() != "command" && (c.Mode != "" || c.Dir != "" || len(c.Restore) > 0 || c.Shell || len(c.Env) > 0) {
			p.add(c.Line, "component %q: mode, dir, restore, shell and env apply only to a command", c.Name)
		}
		if c.Kind() != "tree" && c.Delete {
			p.add(c.Line, "component %q: delete applies only to a tree", c.Name)
		}
		switch c.StartNext {
		case "", "when_done":
		case "on_first_byte":
			if c.Kind() != "command" || c.Mode == "dir" {
				p.add(c.Line, "component %q: start_next: on_first_byte applies only to a command in mode stream or pipe", c.Name)
			}
		case "on_snapshot":
			if c.Kind() != "elasticsearch" {
				p.add(c.Line, "component %q: start_next: on_snapshot applies only to elasticsearch", c.Name)
			}
		default:
			p.add(c.Line, "component %q: start_next %q: use when_done, on_first_byte (a dump command) or on_snapshot (elasticsearch)", c.Name, c.StartNext)
		}
	}
	return p
}

func (cfg *Config) checkCommand(p *Problems, c *Component) {
	joined := strings.Join(c.Command, " ")
	switch c.Mode {
	case "", "stream":
	case "pipe":
		if !strings.Contains(joined, "{path}") {
			p.add(c.Line, "component %q: mode pipe needs {path} in the command, where the dump is written", c.Name)
		}
		if !c.Shell && filepath.Base(c.Command[0]) == "pg_dump" && !slices.Contains(c.Command, "--no-sync") {
			// Measured with PostgreSQL 15: pg_dump -Fc -f FIFO writes the
			// whole dump, then fails "could not fsync file" (EINVAL).
			p.add(c.Line, "component %q: mode pipe: pg_dump fsyncs the file it writes, which fails on the named pipe {path} after the whole dump went through; add --no-sync (or use mode stream: pg_dump writes to stdout)", c.Name)
		}
	case "dir":
		if c.Dir == "" || !filepath.IsAbs(c.Dir) {
			p.add(c.Line, "component %q: mode dir needs dir, an absolute path in which each run gets a fresh directory {dir} to fill", c.Name)
		}
	default:
		p.add(c.Line, "component %q: mode %q: use stream, pipe or dir", c.Name, c.Mode)
	}
	if c.Mode != "dir" && c.Dir != "" {
		p.add(c.Line, "component %q: dir applies only to mode dir", c.Name)
	}
	if c.RestoreViaFile && !strings.Contains(strings.Join(c.Restore, " "), "{path}") {
		p.add(c.Line, "component %q: restore_via_file needs {path} in the restore command", c.Name)
	}
	for _, kv := range c.Env {
		if !strings.Contains(kv, "=") {
			p.add(c.Line, "component %q: env %q: want NAME=VALUE", c.Name, kv)
		}
	}
}

// Component returns the component called name, or nil.
func (cfg *Config) Component(name string) *Component {
	for i := range cfg.Components {
		if cfg.Components[i].Name == name {
			return &cfg.Components[i]
		}
	}
	return nil
}
