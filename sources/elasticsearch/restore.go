package elasticsearch

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/elastic/go-elasticsearch/v8/esapi"
)

// RestoreOptions say what to restore and from where.
type RestoreOptions struct {
	// Dir is a fresh directory, below the cluster's path.repo, that the
	// caller has already filled with the repository files restored from
	// cairn. It must not be (or lie inside, or contain) the directory of
	// any registered repository: ES would then see files change under a
	// registered repository.
	Dir string
	// RepoName is the new name Dir is registered under, read-only, for the
	// restore; it must not be registered yet. It is unregistered at the end.
	RepoName string
	// Snapshot is the ES snapshot to restore (the capture's Meta
	// "snapshot").
	Snapshot string
	// Indices selects indices of the snapshot (names, '*' wildcards, "-x"
	// exclusions); "" restores every index in it.
	Indices string
	// RenamePattern and RenameReplacement restore under other names (Java
	// regex replaceAll semantics: "$1" is group 1).
	RenamePattern, RenameReplacement string
	// Partial restores a PARTIAL snapshot; failed shards come back empty.
	Partial bool
	// HealthTimeout bounds the wait for the restored indices to become at
	// least yellow (default 60s).
	HealthTimeout time.Duration
}

// RestoreResult is what Restore did.
type RestoreResult struct {
	Snapshot string
	Indices  []string // restored, under their target names
	Closed   []string // existing indices closed so they could be restored over
	Shards   int
	// Extra are existing indices that match Indices but are not in the
	// snapshot (created after it). They are left as they are; delete them
	// to get the state of backup time. Only computed without renaming.
	Extra []string
}

// javaReplaceAll is Java's String.replaceAll, which Elasticsearch applies
// to each index name with rename_pattern and rename_replacement: the
// replacement is expanded as Matcher.appendReplacement does. "\x" is a
// literal x; "$" starts a group reference: "${name}", or a number that
// takes as many digits as still name a group ("$10" is group 1 and a "0"
// when there are fewer than ten groups). Anything Java would reject
// (a trailing "\", a "$" without a group, a group the pattern lacks) is an
// error, so cairn never restores under a name Elasticsearch would not
// have chosen.
//
// Go skips an empty match right after a non-empty one where Java replaces
// it too ("abc" with b* and X: Java XaXXcX, Go XaXcX), so a pattern that
// matches the empty string is refused.
func javaReplaceAll(re *regexp.Regexp, s, repl string) (string, error) {
	if re.MatchString("") {
		return "", fmt.Errorf("rename pattern %s matches the empty string; cairn cannot rename with it as Elasticsearch would", re)
	}
	var out strings.Builder
	last := 0
	for _, m := range re.FindAllStringSubmatchIndex(s, -1) {
		out.WriteString(s[last:m[0]])
		if err := appendReplacement(&out, re, s, m, repl); err != nil {
			return "", err
		}
		last = m[1]
	}
	out.WriteString(s[last:])
	return out.String(), nil
}

// appendReplacement expands repl for one match m (submatch indexes).
func appendReplacement(out *strings.Builder, re *regexp.Regexp, s string, m []int, repl string) error {
	groups := re.NumSubexp()
	r := []rune(repl)
	for i := 0; i < len(r); i++ {
		switch r[i] {
		case '\\':
			i++
			if i == len(r) {
				return fmt.Errorf("rename replacement %q: character to be escaped is missing", repl)
			}
			out.WriteRune(r[i])
			continue
		case '$':
		default:
			out.WriteRune(r[i])
			continue
		}
		i++
		if i == len(r) {
			return fmt.Errorf("rename replacement %q: illegal group reference: group index is missing", repl)
		}
		var ref int
		switch {
		case r[i] == '{':
			j := i + 1
			for j < len(r) && (r[j] >= 'a' && r[j] <= 'z' || r[j] >= 'A' && r[j] <= 'Z' || r[j] >= '0' && r[j] <= '9') {
				j++
			}
			name := string(r[i+1 : j])
			switch {
			case name == "":
				return fmt.Errorf("rename replacement %q: named capturing group has 0 length name", repl)
			case j == len(r) || r[j] != '}':
				return fmt.Errorf("rename replacement %q: named capturing group is missing trailing '}'", repl)
			case name[0] >= '0' && name[0] <= '9':
				return fmt.Errorf("rename replacement %q: capturing group name {%s} starts with digit character", repl, name)
			}
			ref = re.SubexpIndex(name)
			if ref < 0 {
				return fmt.Errorf("rename replacement %q: no group with name {%s}", repl, name)
			}
			i = j
		case r[i] >= '0' && r[i] <= '9':
			ref = int(r[i] - '0')
			for i+1 < len(r) && r[i+1] >= '0' && r[i+1] <= '9' && ref*10+int(r[i+1]-'0') <= groups {
				i++
				ref = ref*10 + int(r[i]-'0')
			}
			if ref > groups {
				return fmt.Errorf("rename replacement %q: no group %d in pattern %s", repl, ref, re)
			}
		default:
			return fmt.Errorf("rename replacement %q: illegal group reference", repl)
		}
		if lo, hi := m[2*ref], m[2*ref+1]; lo >= 0 {
			out.WriteString(s[lo:hi])
		}
	}
	return nil
}

// wildcardMatch is ES simple matching: '*' matches any run of characters.
func wildcardMatch(pattern, s string) bool {
	parts := strings.Split(pattern, "*")
	if len(parts) == 1 {
		return pattern == s
	}
	if !strings.HasPrefix(s, parts[0]) {
		return false
	}
	s = s[len(parts[0]):]
	for _, p := range parts[1 : len(parts)-1] {
		i := strings.Index(s, p)
		if i < 0 {
			return false
		}
		s = s[i+len(p):]
	}
	return strings.HasSuffix(s, parts[len(parts)-1])
}

// selectIndices applies a pattern ("a,b*,-b2") to the snapshot's indices.
// Without a pattern every index is taken except dot-prefixed (system or
// hidden) ones.
func selectIndices(all []string, pattern string) ([]string, error) {
	if strings.TrimSpace(pattern) == "" {
		var out []string
		for _, n := range all {
			if !strings.HasPrefix(n, ".") {
				out = append(out, n)
			}
		}
		return out, nil
	}
	set := map[string]bool{}
	for i, p := range strings.Split(pattern, ",") {
		p = strings.TrimSpace(p)
		if ex, ok := strings.CutPrefix(p, "-"); ok && i > 0 {
			for n := range set {
				if wildcardMatch(ex, n) {
					delete(set, n)
				}
			}
			continue
		}
		if !strings.Contains(p, "*") && !slices.Contains(all, p) {
			return nil, fmt.Errorf("elasticsearch: index %s is not in the snapshot (it holds %s)", p, strings.Join(all, ", "))
		}
		for _, n := range all {
			if wildcardMatch(p, n) {
				set[n] = true
			}
		}
	}
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	sort.Strings(out)
	return out, nil
}

// within reports whether a and b are the same directory or one contains
// the other.
func within(a, b string) bool {
	if a == b {
		return true
	}
	sep := string(filepath.Separator)
	return strings.HasPrefix(a, strings.TrimSuffix(b, sep)+sep) || strings.HasPrefix(b, strings.TrimSuffix(a, sep)+sep)
}

func realPath(p string) string {
	p = filepath.Clean(p)
	if r, err := filepath.EvalSymlinks(p); err == nil {
		return r
	}
	return p
}

// Restore restores indices of a snapshot from repository files written back
// into opts.Dir (docs/ELASTICSEARCH.md §7): it registers Dir read-only under opts.RepoName,
// checks the snapshot, closes the existing indices it will restore over (by
// concrete name), restores with wait_for_completion, checks every shard
// restored, waits for the indices to be at least yellow, and unregisters
// the repository again. If ES refuses the restore, the indices it closed
// are reopened.
//
// cfg supplies the connection; cfg.Repository and cfg.Location, when set,
// are refused as RepoName and Dir.
func Restore(ctx context.Context, cfg Config, opts RestoreOptions) (res *RestoreResult, err error) {
	if err := validName("repository name", opts.RepoName, false); err != nil {
		return nil, err
	}
	if opts.Snapshot == "" || strings.ContainsAny(opts.Snapshot, "\\/*?\"<>|,# \t\n") || strings.HasPrefix(opts.Snapshot, "_") {
		return nil, fmt.Errorf("elasticsearch: invalid snapshot name %q", opts.Snapshot)
	}
	if !filepath.IsAbs(opts.Dir) {
		return nil, fmt.Errorf("elasticsearch: restore directory %q must be an absolute path", opts.Dir)
	}
	dir := filepath.Clean(opts.Dir)
	if fi, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("elasticsearch: restore directory: %w", err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("elasticsearch: restore directory %s is not a directory", dir)
	}
	if _, highest, err := readGeneration(dir); err != nil {
		return nil, err
	} else if highest < 0 {
		return nil, fmt.Errorf("elasticsearch: %s holds no index-N file: restore the repository files from cairn into it first", dir)
	}
	if opts.HealthTimeout <= 0 {
		opts.HealthTimeout = 60 * time.Second
	}
	if cfg.Repository != "" && opts.RepoName == cfg.Repository {
		return nil, fmt.Errorf("elasticsearch: restore repository name %s is the backup repository's; choose a new name", opts.RepoName)
	}
	if cfg.Location != "" && within(realPath(cfg.Location), realPath(dir)) {
		return nil, fmt.Errorf("%w: %s and the backup repository location %s overlap; restore into a fresh directory", ErrDirInUse, dir, cfg.Location)
	}
	c, err := newClient(cfg)
	if err != nil {
		return nil, err
	}
	if _, err := c.info(ctx); err != nil {
		return nil, err
	}
	repos, err := c.repositories(ctx, "")
	if err != nil {
		return nil, err
	}
	if r, ok := repos[opts.RepoName]; ok {
		return nil, fmt.Errorf("elasticsearch: repository %s is already registered (location %q); choose a name that is not in use", opts.RepoName, r.location())
	}
	for name, r := range repos {
		loc := r.location()
		if loc != "" && filepath.IsAbs(loc) && within(realPath(loc), realPath(dir)) {
			return nil, fmt.Errorf("%w: %s overlaps the location %s of registered repository %s; restore into a fresh directory", ErrDirInUse, dir, loc, name)
		}
	}
	// Registered only now, after every file is in place, and read-only: ES
	// never writes to it and re-reads it on every access.
	if err := c.registerRepository(ctx, opts.RepoName, dir, true); err != nil {
		return nil, err
	}
	defer func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if uerr := c.unregisterRepository(uctx, opts.RepoName); uerr != nil {
			err = errors.Join(err, uerr)
		}
	}()
	list, err := c.getSnapshots(ctx, opts.RepoName, []string{opts.Snapshot}, false)
	if err != nil {
		return nil, err
	}
	if len(list) != 1 {
		return nil, fmt.Errorf("elasticsearch: snapshot %s not found in %s", opts.Snapshot, dir)
	}
	sn := list[0]
	switch {
	case sn.State == "SUCCESS":
	case sn.State == "PARTIAL" && opts.Partial:
	case sn.State == "PARTIAL":
		return nil, fmt.Errorf("%w: snapshot %s is PARTIAL (%d of %d shards failed); set Partial to restore it with empty failed shards",
			ErrSnapshotPartial, opts.Snapshot, sn.Shards.Failed, sn.Shards.Total)
	default:
		return nil, fmt.Errorf("%w: snapshot %s is %s and cannot be restored", ErrSnapshotFailed, opts.Snapshot, sn.State)
	}
	sources, err := selectIndices(sn.Indices, opts.Indices)
	if err != nil {
		return nil, err
	}
	if len(sources) == 0 {
		return nil, fmt.Errorf("elasticsearch: no index of snapshot %s matches %q (it holds %s)", opts.Snapshot, opts.Indices, strings.Join(sn.Indices, ", "))
	}
	targets := slices.Clone(sources)
	if opts.RenamePattern != "" {
		re, err := regexp.Compile(opts.RenamePattern)
		if err != nil {
			return nil, fmt.Errorf("elasticsearch: rename pattern: %w", err)
		}
		seen := map[string]string{}
		for i, s := range sources {
			if targets[i], err = javaReplaceAll(re, s, opts.RenameReplacement); err != nil {
				return nil, fmt.Errorf("elasticsearch: %w", err)
			}
			if other, dup := seen[targets[i]]; dup {
				return nil, fmt.Errorf("elasticsearch: indices %s and %s would both be restored as %s", other, s, targets[i])
			}
			seen[targets[i]] = s
		}
		sort.Strings(targets)
	}
	// Close the existing targets, by concrete name (8.x refuses wildcards).
	existing, err := c.resolve(ctx, targets, true)
	if err != nil {
		return nil, err
	}
	var toClose []string
	for _, ix := range existing.Indices {
		if !slices.Contains(targets, ix.Name) {
			continue
		}
		if ix.DataStream != "" {
			return nil, fmt.Errorf("elasticsearch: %s belongs to data stream %s; delete the data stream or restore under another name", ix.Name, ix.DataStream)
		}
		if !slices.Contains(ix.Attributes, "closed") {
			toClose = append(toClose, ix.Name)
		}
	}
	for _, ds := range existing.DataStreams {
		if slices.Contains(targets, ds.Name) {
			return nil, fmt.Errorf("elasticsearch: data stream %s exists; delete it or restore under another name", ds.Name)
		}
	}
	sort.Strings(toClose)
	if len(toClose) > 0 {
		if err := c.do(ctx, c.es, "close indices "+strings.Join(toClose, ","), esapi.IndicesCloseRequest{Index: toClose}, nil); err != nil {
			return nil, err
		}
	}
	reopen := func(cause error) error {
		if len(toClose) == 0 {
			return cause
		}
		octx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if oerr := c.do(octx, c.es, "reopen indices "+strings.Join(toClose, ","), esapi.IndicesOpenRequest{Index: toClose}, nil); oerr != nil {
			return errors.Join(cause, oerr)
		}
		return fmt.Errorf("%w (the indices closed for the restore, %s, were reopened)", cause, strings.Join(toClose, ", "))
	}
	body := map[string]any{
		"indices":              strings.Join(sources, ","),
		"ignore_unavailable":   false,
		"include_global_state": false,
		"include_aliases":      true,
		"partial":              opts.Partial,
	}
	if opts.RenamePattern != "" {
		body["rename_pattern"] = opts.RenamePattern
		body["rename_replacement"] = opts.RenameReplacement
	}
	var out struct {
		Snapshot *struct {
			Indices []string `json:"indices"`
			Shards  struct {
				Total      int `json:"total"`
				Failed     int `json:"failed"`
				Successful int `json:"successful"`
			} `json:"shards"`
		} `json:"snapshot"`
	}
	op := "restore snapshot " + opts.Snapshot + " from repository " + opts.RepoName
	if err := c.do(ctx, c.once, op, esapi.SnapshotRestoreRequest{Repository: opts.RepoName, Snapshot: opts.Snapshot,
		Body: jsonBody(body), WaitForCompletion: ptr(true)}, &out); err != nil {
		var ae *APIError
		if errors.As(err, &ae) {
			return nil, reopen(err) // refused: ES touched nothing
		}
		return nil, err
	}
	if out.Snapshot == nil {
		return nil, fmt.Errorf("elasticsearch: %s: the answer holds no restore information", op)
	}
	got := slices.Clone(out.Snapshot.Indices)
	sort.Strings(got)
	if out.Snapshot.Shards.Failed > 0 {
		return nil, fmt.Errorf("elasticsearch: %s: %d of %d shards failed to restore (indices %s); the files restored into %s are probably damaged",
			op, out.Snapshot.Shards.Failed, out.Snapshot.Shards.Total, strings.Join(got, ","), dir)
	}
	if !slices.Equal(got, targets) {
		return nil, fmt.Errorf("elasticsearch: %s: restored indices %v, expected %v", op, got, targets)
	}
	var health struct {
		Status   string `json:"status"`
		TimedOut bool   `json:"timed_out"`
	}
	herr := c.do(ctx, c.es, "wait for restored indices", esapi.ClusterHealthRequest{Index: targets, WaitForStatus: "yellow", Timeout: opts.HealthTimeout}, &health)
	var ae *APIError
	if errors.As(herr, &ae) && ae.Status == 408 {
		return nil, fmt.Errorf("elasticsearch: restored indices %s did not become yellow within %v", strings.Join(targets, ","), opts.HealthTimeout)
	} else if herr != nil {
		return nil, herr
	}
	res = &RestoreResult{Snapshot: opts.Snapshot, Indices: targets, Closed: toClose, Shards: out.Snapshot.Shards.Total}
	if opts.Indices != "" && opts.RenamePattern == "" {
		if now, err := c.resolve(ctx, strings.Split(opts.Indices, ","), false); err == nil {
			for _, ix := range now.Indices {
				if !slices.Contains(targets, ix.Name) {
					res.Extra = append(res.Extra, ix.Name)
				}
			}
			sort.Strings(res.Extra)
		}
	}
	return res, nil
}

// NewRestoreDir creates a fresh, empty directory next to cfg.Location
// (normally below the same path.repo root) for Restore, readable by the
// Elasticsearch user (mode 0755), and returns its path.
func NewRestoreDir(cfg Config) (string, error) {
	if !filepath.IsAbs(cfg.Location) {
		return "", fmt.Errorf("elasticsearch: repository location %q must be an absolute path", cfg.Location)
	}
	loc := filepath.Clean(cfg.Location)
	dir, err := os.MkdirTemp(filepath.Dir(loc), filepath.Base(loc)+"-restore-")
	if err != nil {
		return "", fmt.Errorf("elasticsearch: restore directory: %w", err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return "", fmt.Errorf("elasticsearch: restore directory: %w", err)
	}
	return dir, nil
}

// Ping checks, without changing anything, that the cluster answers and
// runs a version cairn can talk to: a restore asks before its first
// destructive step, so a cluster that is down is found before the
// database is replaced.
func Ping(ctx context.Context, cfg Config) error {
	c, err := newClient(cfg)
	if err != nil {
		return err
	}
	_, err = c.info(ctx)
	return err
}
