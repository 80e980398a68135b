//go:build linux

package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
)

// The performance targets of issue 12, checked against the table's medians.
// Each is stated as an advantage: how many times better cairn's value is
// than the peer's (throughput: cairn/peer; seconds and MiB: peer/cairn),
// which must be at least need.

type target struct {
	text     string   // as the issue states it
	metrics  []string // the table rows it applies to
	peer     string   // the column compared with
	datasets []string // nil: every data set with those rows
	need     float64
}

var targets = []target{
	{text: "first backup ≥ 2× kopia", metrics: []string{"backup 1 throughput"}, peer: "kopia", need: 2},
	{text: "first backup ≥ 2.4× restic 0.14", metrics: []string{"backup 1 throughput"}, peer: "restic", need: 2.4},
	{text: "first backup ≥ 85% of the chain's two-core ceiling", metrics: []string{"backup 1 throughput"}, peer: ceilingTool, need: 0.85},
	{text: "second backup ≥ 1.6× kopia", metrics: []string{"backup 2 throughput"}, peer: "kopia", need: 1.6},
	{text: "unchanged many-file tree ≥ 2× kopia's files/s", metrics: []string{"backup 2 throughput"}, peer: "kopia", need: 2,
		datasets: []string{dsSmallFiles}},
	{text: "unchanged many-file tree within 2× of a stat walk", metrics: []string{"backup 2 throughput"}, peer: statWalkTool, need: 0.5,
		datasets: []string{dsSmallFiles}},
	{text: "peak RSS ≤ borg's on every phase", peer: "borg", need: 1,
		metrics: []string{"peak RSS backup 1", "peak RSS backup 2", "peak RSS restore", "peak RSS check --read-data"}},
	{text: "check --read-data ≥ 2× restic 0.14", metrics: []string{"check --read-data time"}, peer: "restic", need: 2},
	{text: "restore streams ≥ 1.5× restic 0.19 (restic2)", metrics: []string{"restore throughput"}, peer: "restic2", need: 1.5,
		datasets: []string{dsDump, dsPGDump}},
	{text: "restore from MinIO ≥ 1.5× restic 0.19 (restic2)", metrics: []string{"restore from MinIO throughput"}, peer: "restic2", need: 1.5},
	{text: "tree restore within 1.1× of cp -a", metrics: []string{"restore throughput"}, peer: cpTool, need: 1 / 1.1,
		datasets: []string{dsTree, dsSmallFiles}},
}

// targetResult is one target on one data set and metric.
type targetResult struct {
	Target    string   `json:"target"`
	Dataset   string   `json:"dataset"`
	Metric    string   `json:"metric"`
	Peer      string   `json:"peer"`
	Cairn     *float64 `json:"cairn"`
	PeerValue *float64 `json:"peer_value"`
	Advantage *float64 `json:"advantage"` // how many times better cairn is
	Need      float64  `json:"need"`
	Met       bool     `json:"met"`
	Status    string   `json:"status"` // "met", "NOT MET" or "no data: why"
}

// evalTargets checks every target on every data set of the table that has
// its rows. A peer that was skipped (one line for all data sets) or has no
// value gives "no data" with the reason, never a verdict.
// The order is the targets', then the table's.
func evalTargets(table []tableRow, tools []toolInfo) []targetResult {
	skipped := map[string]string{}
	for _, t := range tools {
		if t.Skipped != "" {
			skipped[t.Name] = t.Skipped
		}
	}
	var out []targetResult
	for _, tg := range targets {
		// A skipped peer gives one line, not one per data set.
		if why := skipped[tg.peer]; why != "" {
			out = append(out, targetResult{Target: tg.text, Dataset: "-", Metric: strings.Join(tg.metrics, " / "), Peer: tg.peer,
				Need: tg.need, Status: "no data: " + tg.peer + " skipped"})
			continue
		}
		// A target over several rows (the RSS phases) gives one result per
		// data set: its worst row, named in Metric.
		byDS := map[string]int{}
		for _, row := range table {
			if !slices.Contains(tg.metrics, row.Metric) || tg.datasets != nil && !slices.Contains(tg.datasets, row.Dataset) {
				continue
			}
			r := evalRow(tg, row)
			i, seen := byDS[row.Dataset]
			switch {
			case !seen:
				byDS[row.Dataset] = len(out)
				out = append(out, r)
			case worse(r, out[i]):
				out[i] = r
			}
		}
	}
	return out
}

// worse says whether a is a worse result than b: no data beats any
// verdict, then the smaller advantage.
func worse(a, b targetResult) bool {
	if a.Advantage == nil || b.Advantage == nil {
		return a.Advantage == nil && b.Advantage != nil
	}
	return *a.Advantage < *b.Advantage
}

func evalRow(tg target, row tableRow) targetResult {
	r := targetResult{Target: tg.text, Dataset: row.Dataset, Metric: row.Metric, Peer: tg.peer, Need: tg.need,
		Cairn: row.Values["cairn"], PeerValue: row.Values[tg.peer]}
	switch {
	case r.Cairn == nil || r.PeerValue == nil:
		r.Status = "no data: " + strings.Join(missing(r, tg.peer), " and ") + " has no value"
	case *r.Cairn == 0 || *r.PeerValue == 0:
		r.Status = "no data: a zero value"
	default:
		adv := *r.Cairn / *r.PeerValue
		if !row.HigherIsBetter {
			adv = *r.PeerValue / *r.Cairn
		}
		r.Advantage, r.Met = &adv, adv >= tg.need
		r.Status = "NOT MET"
		if r.Met {
			r.Status = "met"
		}
	}
	return r
}

func missing(r targetResult, peer string) []string {
	var m []string
	if r.Cairn == nil {
		m = append(m, "cairn")
	}
	if r.PeerValue == nil {
		m = append(m, peer)
	}
	return m
}

func targetSummary(rs []targetResult) string {
	met, notMet, noData := 0, 0, 0
	for _, r := range rs {
		switch {
		case r.Met:
			met++
		case r.Advantage != nil:
			notMet++
		default:
			noData++
		}
	}
	return fmt.Sprintf("%d met, %d not met, %d without data", met, notMet, noData)
}

func fmtAdv(v *float64) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf("%.2fx", *v)
}

// writeTargets prints the targets section of the text report.
func writeTargets(w io.Writer, rs []targetResult) {
	if len(rs) == 0 {
		return
	}
	fmt.Fprintf(w, "\ntargets (issue 12): advantage = how many times better cairn is than the peer (MB/s: cairn/peer; s and MiB: peer/cairn); %s\n", targetSummary(rs))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "target\tdata\tmetric\tcairn\tpeer\tadvantage\tneed\tstatus\t")
	for _, r := range rs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s %s\t%s\t%.2fx\t%s\t\n", r.Target, r.Dataset, r.Metric, fmtVal(r.Cairn), r.Peer, fmtVal(r.PeerValue), fmtAdv(r.Advantage), r.Need, r.Status)
	}
	tw.Flush()
	fmt.Fprintln(w)
}

func writeTargetsMarkdown(w io.Writer, rs []targetResult) {
	if len(rs) == 0 {
		return
	}
	fmt.Fprintf(w, "Targets of issue 12 (advantage = how many times better cairn is: MB/s cairn/peer, s and MiB peer/cairn); %s:\n\n", targetSummary(rs))
	fmt.Fprintln(w, "| target | data | metric | cairn | peer | advantage | need | status |")
	fmt.Fprintln(w, "|---|---|---|---:|---:|---:|---:|---|")
	for _, r := range rs {
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s %s | %s | %.2fx | %s |\n", r.Target, r.Dataset, r.Metric, fmtVal(r.Cairn), r.Peer, fmtVal(r.PeerValue), fmtAdv(r.Advantage), r.Need, r.Status)
	}
	fmt.Fprintln(w)
}
