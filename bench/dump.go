//go:build linux

package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"
)

// Mutation model of dump v2 (see README "Data"): rows are edited in place in
// clustered runs, as a real workload rewrites its hot rows, and a few rows are
// inserted in batches at random positions, as PostgreSQL reuses free heap
// space, so changes land all over the file and not only at its end.
const (
	dumpEditFrac       = 0.01  // share of each table's rows edited in v2
	dumpEditRunMin     = 40    // edited rows come in runs of 40..60 consecutive rows
	dumpEditRunMax     = 60    //
	dumpEditSlot       = 64    // each run starts inside its own 64-row slot, so runs never overlap
	dumpInsertFrac     = 0.005 // share of each table's rows inserted in v2
	dumpInsertBatchMax = 20    // inserted rows come in batches of 1..20 rows
)

// v1 rows are spread over five years from dumpEpoch; ids past a table's v1
// row count (rows inserted in v2) continue past the end, i.e. they are newer.
var dumpEpoch = time.Date(2019, 1, 1, 0, 0, 0, 0, time.UTC).Unix()

const dumpSpan = 5 * 365 * 24 * 3600

// dumpTable describes one table of the dump: its DDL, its share of the dump's
// bytes and how to produce one row.
type dumpTable struct {
	name    string
	share   float64 // share of the dump's bytes
	columns string
	ddl     string
	inserts bool // pg_dump --inserts style rather than COPY
	// row fills g.f for row id; edit applies the v2 in-place edit on top.
	row func(g *rowGen, id int64, edit bool)
}

// dumpTables are in pg_dump's order (alphabetical).
var dumpTables = []dumpTable{
	{
		name: "attachments", share: 0.13,
		columns: "id, issue_id, uploader_id, filename, content_type, size_bytes, sha256, storage_key, created_at",
		ddl: `    id bigint NOT NULL,
    issue_id bigint NOT NULL,
    uploader_id bigint NOT NULL,
    filename text NOT NULL,
    content_type text NOT NULL,
    size_bytes bigint NOT NULL,
    sha256 character(64) NOT NULL,
    storage_key text NOT NULL,
    created_at timestamp with time zone NOT NULL`,
		row: attachmentRow,
	},
	{
		name: "audit_log", share: 0.25,
		columns: "id, actor_id, action, target_type, target_id, ip, user_agent, payload, created_at",
		ddl: `    id bigint NOT NULL,
    actor_id bigint,
    action text NOT NULL,
    target_type text NOT NULL,
    target_id bigint NOT NULL,
    ip inet,
    user_agent text,
    payload jsonb NOT NULL,
    created_at timestamp with time zone NOT NULL`,
		row: auditRow,
	},
	{
		name: "issues", share: 0.50,
		columns: "id, project_id, author_id, assignee_id, title, description, state, priority, labels, created_at, updated_at",
		ddl: `    id bigint NOT NULL,
    project_id integer NOT NULL,
    author_id bigint NOT NULL,
    assignee_id bigint,
    title text NOT NULL,
    description text NOT NULL,
    state text DEFAULT 'open'::text NOT NULL,
    priority smallint DEFAULT 3 NOT NULL,
    labels text[] DEFAULT '{}'::text[] NOT NULL,
    created_at timestamp with time zone NOT NULL,
    updated_at timestamp with time zone NOT NULL`,
		row: issueRow,
	},
	{
		name: "users", share: 0.12, inserts: true,
		columns: "id, username, email, full_name, bio, created_at, last_login_at, is_admin",
		ddl: `    id bigint NOT NULL,
    username text NOT NULL,
    email text NOT NULL,
    full_name text NOT NULL,
    bio text,
    created_at timestamp with time zone NOT NULL,
    last_login_at timestamp with time zone,
    is_admin boolean DEFAULT false NOT NULL`,
		row: userRow,
	},
}

// field is one column value of the row being built.
type field struct {
	b      []byte
	quoted bool // a string literal in INSERT form
	null   bool
}

// rowGen builds rows. Each row's values come from a source seeded by
// (seed, table, id) alone, so a row is the same in v1 and v2 and independent
// of every other row; the v2 edit draws from a second, separately seeded
// source, so it changes only the fields it overrides.
type rowGen struct {
	seed  uint64
	rows  []int64 // v1 row count per table: bounds foreign keys and time steps
	table int
	src   *rand.PCG
	esrc  *rand.PCG
	r, e  *rand.Rand
	t, et *textGen
	f     [12]field
	nf    int
}

func newRowGen(seed uint64, rows []int64) *rowGen {
	g := &rowGen{seed: seed, rows: rows, src: rand.NewPCG(0, 0), esrc: rand.NewPCG(0, 0)}
	g.r, g.e = rand.New(g.src), rand.New(g.esrc)
	g.t, g.et = newTextGen(g.r), newTextGen(g.e)
	return g
}

// fields resets and returns the first n fields.
func (g *rowGen) fields(n int) []field {
	for i := range n {
		g.f[i] = field{b: g.f[i].b[:0]}
	}
	g.nf = n
	return g.f[:n]
}

// appendRow renders table ti's row id (v1 form, or v2 form if edit) to b.
func (g *rowGen) appendRow(b []byte, ti int, id int64, edit bool) []byte {
	g.table = ti
	g.src.Seed(g.seed, uint64(ti)<<48|uint64(id))
	g.esrc.Seed(g.seed^0x6564697473, uint64(ti)<<48|uint64(id))
	dumpTables[ti].row(g, id, edit)
	if dumpTables[ti].inserts {
		return g.appendInsert(b, &dumpTables[ti])
	}
	return g.appendCopy(b)
}

// appendCopy renders the fields as a COPY text-format line. Generated text
// holds no tab, newline or backslash except the escapes put there on purpose.
func (g *rowGen) appendCopy(b []byte) []byte {
	for i, f := range g.f[:g.nf] {
		if i > 0 {
			b = append(b, '\t')
		}
		if f.null {
			b = append(b, `\N`...)
		} else {
			b = append(b, f.b...)
		}
	}
	return append(b, '\n')
}

// appendInsert renders the fields as one INSERT statement (pg_dump --inserts).
func (g *rowGen) appendInsert(b []byte, t *dumpTable) []byte {
	b = append(b, "INSERT INTO public."...)
	b = append(b, t.name...)
	b = append(b, " ("...)
	b = append(b, t.columns...)
	b = append(b, ") VALUES ("...)
	for i, f := range g.f[:g.nf] {
		if i > 0 {
			b = append(b, ", "...)
		}
		switch {
		case f.null:
			b = append(b, "NULL"...)
		case f.quoted:
			b = append(b, '\'')
			b = append(b, f.b...)
			b = append(b, '\'')
		default:
			b = append(b, f.b...)
		}
	}
	return append(b, ");\n"...)
}

// created is the creation time of row id: evenly spread over dumpSpan with
// jitter, so timestamps grow along the table like a real serial id.
func (g *rowGen) created(id int64) int64 {
	step := float64(dumpSpan) / float64(max(g.rows[g.table], 1))
	return dumpEpoch + int64(float64(id)*step) + g.r.Int64N(int64(step)+1)
}

func appendTS(b []byte, unix int64) []byte {
	return time.Unix(unix, 0).UTC().AppendFormat(b, "2006-01-02 15:04:05+00")
}

// fk returns a foreign key into table ti, skewed toward low ids (old, active
// users and issues get most of the activity).
func (g *rowGen) fk(r *rand.Rand, ti int) int64 {
	n := max(g.rows[ti], 1)
	return 1 + min(r.Int64N(n), r.Int64N(n))
}

const (
	tAttachments = iota
	tAudit
	tIssues
	tUsers
)

var (
	issueStates  = []string{"open", "open", "in_progress", "closed", "closed", "closed", "wontfix"}
	issueLabels  = []string{"bug", "feature", "ui", "backend", "docs", "performance", "security", "regression", "needs-triage", "good-first-issue", "infra", "api"}
	auditActions = []string{"issue.create", "issue.update", "issue.close", "comment.create", "user.login", "user.logout", "attachment.upload", "project.settings.update", "token.create", "issue.label"}
	auditTargets = []string{"issue", "issue", "comment", "user", "attachment", "project", "token"}
	userAgents   = []string{
		"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
		"curl/8.5.0", "python-requests/2.32.3", "Go-http-client/2.0", "cairn-tracker-cli/1.4.2",
	}
	attachmentTypes = [][2]string{{"png", "image/png"}, {"jpg", "image/jpeg"}, {"pdf", "application/pdf"}, {"log", "text/plain"}, {"txt", "text/plain"}, {"zip", "application/zip"}, {"json", "application/json"}}
	emailDomains    = []string{"example.org", "example.com", "mail.example.net", "corp.example"}
)

func pick[T any](r *rand.Rand, s []T) T { return s[r.IntN(len(s))] }

func issueRow(g *rowGen, id int64, edit bool) {
	f := g.fields(11)
	r, t := g.r, g.t
	f[0].b = strconv.AppendInt(f[0].b, id, 10)
	f[1].b = strconv.AppendInt(f[1].b, 1+int64(min(r.IntN(40), r.IntN(40))), 10)
	f[2].b = strconv.AppendInt(f[2].b, g.fk(r, tUsers), 10)
	if r.IntN(10) < 3 {
		f[3].null = true
	} else {
		f[3].b = strconv.AppendInt(f[3].b, g.fk(r, tUsers), 10)
	}
	f[4].b = t.words(f[4].b, 3+r.IntN(8))
	// Paragraphs are separated by an escaped blank line, as COPY writes them.
	for i := range 1 + r.IntN(5) {
		if i > 0 {
			f[5].b = append(f[5].b, `\n\n`...)
		}
		f[5].b = t.paragraph(f[5].b)
	}
	f[6].b = append(f[6].b, pick(r, issueStates)...)
	f[7].b = strconv.AppendInt(f[7].b, 1+int64(r.IntN(4)), 10)
	f[8].b = append(f[8].b, '{')
	for i := range r.IntN(4) {
		if i > 0 {
			f[8].b = append(f[8].b, ',')
		}
		f[8].b = append(f[8].b, pick(r, issueLabels)...)
	}
	f[8].b = append(f[8].b, '}')
	created := g.created(id)
	updated := created + r.Int64N(90*24*3600)
	f[9].b = appendTS(f[9].b, created)
	f[10].b = appendTS(f[10].b, updated)
	if !edit {
		return
	}
	// Edit: the issue was triaged or worked on.
	e := g.e
	f[6].b = append(f[6].b[:0], pick(e, issueStates)...)
	if e.IntN(2) == 0 {
		f[3].null = false
		f[3].b = strconv.AppendInt(f[3].b[:0], g.fk(e, tUsers), 10)
	}
	if e.IntN(2) == 0 {
		f[5].b = append(f[5].b, `\n\nUpdate: `...)
		f[5].b = g.et.paragraph(f[5].b)
	}
	f[10].b = appendTS(f[10].b[:0], updated+1+e.Int64N(30*24*3600))
}

func userRow(g *rowGen, id int64, edit bool) {
	f := g.fields(8)
	r, t := g.r, g.t
	first, last := t.word(), t.word()
	f[0].b = strconv.AppendInt(f[0].b, id, 10)
	f[1].b = append(f[1].b, first...)
	f[1].b = append(f[1].b, '_')
	f[1].b = append(f[1].b, last...)
	f[1].b = strconv.AppendInt(f[1].b, int64(r.IntN(1000)), 10)
	f[2].b = append(f[2].b, first...)
	f[2].b = append(f[2].b, '.')
	f[2].b = append(f[2].b, last...)
	f[2].b = append(f[2].b, '@')
	f[2].b = append(f[2].b, pick(r, emailDomains)...)
	f[3].b = appendTitle(f[3].b, first)
	f[3].b = append(f[3].b, ' ')
	f[3].b = appendTitle(f[3].b, last)
	if r.IntN(10) < 3 {
		f[4].null = true
	} else {
		f[4].b = t.sentence(f[4].b)
	}
	created := g.created(id)
	lastLogin := created + r.Int64N(dumpSpan/2)
	f[5].b = appendTS(f[5].b, created)
	f[6].b = appendTS(f[6].b, lastLogin)
	if r.IntN(50) == 0 {
		f[7].b = append(f[7].b, "true"...)
	} else {
		f[7].b = append(f[7].b, "false"...)
	}
	for i := 1; i <= 6; i++ {
		f[i].quoted = true
	}
	if !edit {
		return
	}
	// Edit: the user logged in again; some rewrote their bio.
	e := g.e
	f[6].b = appendTS(f[6].b[:0], lastLogin+1+e.Int64N(30*24*3600))
	if e.IntN(10) < 3 {
		f[4].null = false
		f[4].b = g.et.sentence(f[4].b[:0])
	}
}

func attachmentRow(g *rowGen, id int64, edit bool) {
	f := g.fields(9)
	r, t := g.r, g.t
	typ := pick(r, attachmentTypes)
	f[0].b = strconv.AppendInt(f[0].b, id, 10)
	f[1].b = strconv.AppendInt(f[1].b, g.fk(r, tIssues), 10)
	f[2].b = strconv.AppendInt(f[2].b, g.fk(r, tUsers), 10)
	f[3].b = t.ident(f[3].b, '_')
	f[3].b = append(f[3].b, '.')
	f[3].b = append(f[3].b, typ[0]...)
	f[4].b = append(f[4].b, typ[1]...)
	f[5].b = strconv.AppendInt(f[5].b, logUniform(r, 200, 50<<20), 10)
	f[6].b = hexRand(f[6].b, r, 64)
	created := g.created(id)
	f[7].b = time.Unix(created, 0).UTC().AppendFormat(f[7].b, "uploads/2006/01/")
	f[7].b = hexRand(f[7].b, r, 32)
	f[8].b = appendTS(f[8].b, created)
	if !edit {
		return
	}
	// Edit: a new version of the file replaced the old one.
	e := g.e
	f[5].b = strconv.AppendInt(f[5].b[:0], logUniform(e, 200, 50<<20), 10)
	f[6].b = hexRand(f[6].b[:0], e, 64)
}

func auditRow(g *rowGen, id int64, edit bool) {
	f := g.fields(9)
	r, t := g.r, g.t
	f[0].b = strconv.AppendInt(f[0].b, id, 10)
	if r.IntN(20) == 0 {
		f[1].null = true // system actions
	} else {
		f[1].b = strconv.AppendInt(f[1].b, g.fk(r, tUsers), 10)
	}
	f[2].b = append(f[2].b, pick(r, auditActions)...)
	f[3].b = append(f[3].b, pick(r, auditTargets)...)
	f[4].b = strconv.AppendInt(f[4].b, g.fk(r, tIssues), 10)
	f[5].b = fmt.Appendf(f[5].b, "10.%d.%d.%d", r.IntN(8), r.IntN(256), 1+r.IntN(254))
	f[6].b = append(f[6].b, pick(r, userAgents)...)
	b := append(f[7].b, `{"request_id": "`...)
	b = hexRand(b, r, 16)
	b = append(b, `", "changes": {`...)
	for i := range 1 + r.IntN(3) {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = append(b, '"')
		b = t.ident(b, '_')
		b = append(b, `": ["`...)
		b = t.words(b, 1+r.IntN(3))
		b = append(b, `", "`...)
		b = t.words(b, 1+r.IntN(3))
		b = append(b, `"]`...)
	}
	f[7].b = append(b, "}}"...)
	f[8].b = appendTS(f[8].b, g.created(id))
	if !edit {
		return
	}
	// Edit: personal data in the entry was redacted.
	f[5].b = append(f[5].b[:0], "0.0.0.0"...)
	f[7].b = fmt.Appendf(f[7].b[:0], `{"redacted": true, "by": %d}`, g.fk(g.e, tUsers))
}

func appendTitle(b []byte, w string) []byte {
	start := len(b)
	b = append(b, w...)
	if c := b[start]; c >= 'a' && c <= 'z' {
		b[start] = c - 'a' + 'A'
	}
	return b
}

// logUniform returns an integer in [lo, hi) whose logarithm is uniform.
func logUniform(r *rand.Rand, lo, hi int64) int64 {
	v := float64(lo) * math.Pow(float64(hi)/float64(lo), r.Float64())
	return min(max(int64(v), lo), hi-1)
}

// tablePlan is where table ti's v2 differs from v1.
type tablePlan struct {
	edited  []bool     // edited[id] for id in 1..rows
	inserts []insertAt // sorted by before
	nEdited int64
	nInsert int64
}

// insertAt says that n new rows go just before v1 row "before" (rows+1: at the end).
type insertAt struct{ before, n int64 }

func planTable(seed uint64, ti int, rows int64) tablePlan {
	r := rand.New(rand.NewPCG(seed^0x706c616e, uint64(ti)))
	p := tablePlan{edited: make([]bool, rows+1)}
	slots := rows / dumpEditSlot
	runs := int64(float64(rows)*dumpEditFrac/float64(dumpEditRunMin+dumpEditRunMax)*2 + 0.5)
	if runs == 0 && slots > 0 {
		runs = 1 // keep a tiny table's v2 different from v1
	}
	runs = min(runs, slots)
	for _, slot := range r.Perm(int(slots))[:runs] {
		n := int64(dumpEditRunMin + r.IntN(dumpEditRunMax-dumpEditRunMin+1))
		start := int64(slot)*dumpEditSlot + 1 + r.Int64N(dumpEditSlot-n+1)
		for id := start; id < start+n; id++ {
			p.edited[id] = true
		}
		p.nEdited += n
	}
	left := int64(float64(rows)*dumpInsertFrac + 0.5)
	p.nInsert = left
	for left > 0 {
		n := min(left, 1+r.Int64N(dumpInsertBatchMax))
		p.inserts = append(p.inserts, insertAt{before: 1 + r.Int64N(rows+1), n: n})
		left -= n
	}
	slices.SortStableFunc(p.inserts, func(a, b insertAt) int { return int(a.before - b.before) })
	return p
}

// dumpTableStats describes one table of the generated dump.
type dumpTableStats struct {
	Name     string `json:"name"`
	Rows     int64  `json:"rows_v1"`
	Edited   int64  `json:"rows_edited_v2"`
	Inserted int64  `json:"rows_inserted_v2"`
}

// dumpStats describes the generated dump pair.
type dumpStats struct {
	V1Bytes int64            `json:"v1_bytes"`
	V2Bytes int64            `json:"v2_bytes"`
	V1SHA   string           `json:"v1_sha256"`
	V2SHA   string           `json:"v2_sha256"`
	Tables  []dumpTableStats `json:"tables"`
}

// dumpRowCounts sizes each table so the dump comes out near target bytes,
// from the mean size of a deterministic sample of rows.
func dumpRowCounts(seed uint64, target int64) []int64 {
	provisional := []int64{1 << 20, 1 << 20, 1 << 20, 1 << 20}
	g := newRowGen(seed, provisional)
	rows := make([]int64, len(dumpTables))
	const sample = 2000
	var b []byte
	for ti, t := range dumpTables {
		var total int
		for id := int64(1); id <= sample; id++ {
			b = g.appendRow(b[:0], ti, id, false)
			total += len(b)
		}
		rows[ti] = max(int64(t.share*float64(target)/(float64(total)/sample)), 64)
	}
	return rows
}

// dumpOut is one of the two dump files being written, with its hash.
type dumpOut struct {
	f *os.File
	h hash.Hash
	w *bufio.Writer
	n int64
}

func createDumpOut(path string) (*dumpOut, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	return &dumpOut{f: f, h: h, w: bufio.NewWriterSize(io.MultiWriter(f, h), 1<<20)}, nil
}

func (o *dumpOut) write(b []byte) {
	n, _ := o.w.Write(b) // a write error sticks in the bufio.Writer; close reports it
	o.n += int64(n)
}

func (o *dumpOut) close() error {
	err := o.w.Flush()
	if cerr := o.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", o.f.Name(), err)
	}
	return nil
}

// generateDump writes v1Path and v2Path in one pass: every v1 row goes to both
// files, edited in v2 where the plan says, and v2 gets the inserted rows.
func generateDump(v1Path, v2Path string, seed uint64, target int64) (dumpStats, error) {
	rows := dumpRowCounts(seed, target)
	v1, err := createDumpOut(v1Path)
	if err != nil {
		return dumpStats{}, err
	}
	defer v1.f.Close()
	v2, err := createDumpOut(v2Path)
	if err != nil {
		return dumpStats{}, err
	}
	defer v2.f.Close()

	both := func(b []byte) { v1.write(b); v2.write(b) }
	both(dumpHeader())
	var st dumpStats
	g := newRowGen(seed, rows)
	var b1, b2 []byte
	for ti, t := range dumpTables {
		p := planTable(seed, ti, rows[ti])
		st.Tables = append(st.Tables, dumpTableStats{Name: t.name, Rows: rows[ti], Edited: p.nEdited, Inserted: p.nInsert})
		if !t.inserts {
			both(fmt.Appendf(nil, "\n--\n-- Data for Name: %s; Type: TABLE DATA; Schema: public; Owner: app\n--\n\nCOPY public.%s (%s) FROM stdin;\n", t.name, t.name, t.columns))
		} else {
			both(fmt.Appendf(nil, "\n--\n-- Data for Name: %s; Type: TABLE DATA; Schema: public; Owner: app\n--\n\n", t.name))
		}
		nextNew, ins := rows[ti]+1, p.inserts
		for id := int64(1); id <= rows[ti]+1; id++ {
			for len(ins) > 0 && ins[0].before == id {
				for range ins[0].n {
					b2 = g.appendRow(b2[:0], ti, nextNew, false)
					v2.write(b2)
					nextNew++
				}
				ins = ins[1:]
			}
			if id > rows[ti] {
				break
			}
			b1 = g.appendRow(b1[:0], ti, id, false)
			v1.write(b1)
			if p.edited[id] {
				b2 = g.appendRow(b2[:0], ti, id, true)
				v2.write(b2)
			} else {
				v2.write(b1)
			}
		}
		if !t.inserts {
			both([]byte("\\.\n\n"))
		}
		setval := "\nSELECT pg_catalog.setval('public.%s_id_seq', %d, true);\n\n"
		v1.write(fmt.Appendf(nil, setval, t.name, rows[ti]))
		v2.write(fmt.Appendf(nil, setval, t.name, nextNew-1))
	}
	both(dumpFooter())
	if err := v1.close(); err != nil {
		return st, err
	}
	if err := v2.close(); err != nil {
		return st, err
	}
	st.V1Bytes, st.V2Bytes = v1.n, v2.n
	st.V1SHA, st.V2SHA = hex.EncodeToString(v1.h.Sum(nil)), hex.EncodeToString(v2.h.Sum(nil))
	return st, nil
}

func dumpHeader() []byte {
	b := []byte(`--
-- PostgreSQL database dump
--

-- Dumped from database version 15.8
-- Dumped by pg_dump version 15.8

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

SET default_tablespace = '';

SET default_table_access_method = heap;
`)
	for _, t := range dumpTables {
		b = fmt.Appendf(b, `
--
-- Name: %[1]s; Type: TABLE; Schema: public; Owner: app
--

CREATE TABLE public.%[1]s (
%[2]s
);


ALTER TABLE public.%[1]s OWNER TO app;

--
-- Name: %[1]s_id_seq; Type: SEQUENCE; Schema: public; Owner: app
--

CREATE SEQUENCE public.%[1]s_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.%[1]s_id_seq OWNED BY public.%[1]s.id;
`, t.name, t.ddl)
	}
	return b
}

func dumpFooter() []byte {
	var b []byte
	for _, t := range dumpTables {
		b = fmt.Appendf(b, `
--
-- Name: %[1]s %[1]s_pkey; Type: CONSTRAINT; Schema: public; Owner: app
--

ALTER TABLE ONLY public.%[1]s
    ADD CONSTRAINT %[1]s_pkey PRIMARY KEY (id);
`, t.name)
	}
	b = append(b, `
CREATE INDEX attachments_issue_id_idx ON public.attachments USING btree (issue_id);
CREATE INDEX audit_log_created_at_idx ON public.audit_log USING btree (created_at);
CREATE INDEX issues_project_id_state_idx ON public.issues USING btree (project_id, state);
CREATE INDEX users_email_idx ON public.users USING btree (email);

--
-- PostgreSQL database dump complete
--

`...)
	return b
}
