package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/cairn-backup/cairn/app"
	"github.com/cairn-backup/cairn/repo"
)

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func humanBytes(n uint64) string { return app.HumanSize(n) }

func mbPerSec(bytes uint64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(bytes) / 1e6 / d.Seconds()
}

// isTerminal reports whether w is a terminal, where progress lines that
// rewrite themselves make sense.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// progressPrinter shows a running count on stderr. On a terminal an mpb
// line (bar, percent and ETA when the total is known) is updated once a
// second; elsewhere (logs, cron mail, systemd)
// it prints a line every --progress-interval (default 10 s) so a stuck run
// shows; with --json it prints a progressJSON object per line at that
// interval instead.
type progressPrinter struct {
	stop chan struct{}
	wg   sync.WaitGroup
}

// defaultProgressInterval is the interval of progress lines when stderr
// is not a terminal.
const defaultProgressInterval = 10 * time.Second

func startProgress(g *globals, verb string, p *repo.Progress, total uint64) *progressPrinter {
	pp := &progressPrinter{stop: make(chan struct{})}
	if g.quiet {
		return pp
	}
	tty := isTerminal(g.stderr) && !g.json
	every := g.progressInterval
	if every <= 0 {
		every = defaultProgressInterval
	}
	if tty {
		every = time.Second
	}
	start := time.Now()
	var bars *barRenderer
	if tty {
		bars = newBarRenderer(g.stderr, 150*time.Millisecond, 0)
		g.logOut.divert(bars.p)
	}
	pp.wg.Add(1)
	go func() {
		defer pp.wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-pp.stop:
				if bars != nil {
					// The lines stay with the final figures.
					bars.show(verb, p, total, time.Since(start))
					g.logOut.divert(nil)
					bars.stop()
				}
				return
			case <-t.C:
				st := progressStatus(verb, p, total, time.Since(start))
				switch {
				case g.json:
					b, _ := json.Marshal(st)
					fmt.Fprintf(g.stderr, "%s\n", b)
				case bars != nil:
					bars.show(verb, p, total, time.Since(start))
				default:
					fmt.Fprintln(g.stderr, st.line())
				}
			}
		}
	}()
	return pp
}

// progressStatus is the progress so far; percent and ETA only when the
// total is known.
func progressStatus(verb string, p *repo.Progress, total uint64, el time.Duration) progressJSON {
	st := progressJSON{Type: "progress", Command: verb, Files: p.Files.Load(), Bytes: p.Bytes.Load(),
		Errors: p.Errors.Load(), ElapsedSeconds: el.Truncate(time.Millisecond).Seconds()}
	if total > 0 {
		st.TotalBytes = total
		pct := min(100*float64(st.Bytes)/float64(total), 100)
		st.Percent = &pct
		if st.Bytes > 0 && st.Bytes < total {
			eta := el.Seconds() * float64(total-st.Bytes) / float64(st.Bytes)
			st.ETASeconds = &eta
		}
	}
	return st
}

func (st progressJSON) line() string {
	el := secs(st.ElapsedSeconds)
	line := fmt.Sprintf("%s: %d files, %s, %.1f MB/s, %s", st.Command, st.Files, humanBytes(st.Bytes),
		mbPerSec(st.Bytes, el), el.Truncate(time.Second))
	return line + st.tail()
}

// tail is the end of a progress line: percent and ETA when the total is
// known, errors when there are any.
func (st progressJSON) tail() string {
	var s string
	if st.Percent != nil {
		s += fmt.Sprintf(", %.0f%%", *st.Percent)
	}
	if st.ETASeconds != nil {
		s += fmt.Sprintf(", ETA %s", secs(*st.ETASeconds).Round(time.Second))
	}
	if st.Errors > 0 {
		s += fmt.Sprintf(", %d errors", st.Errors)
	}
	return s
}

func (pp *progressPrinter) Stop() {
	close(pp.stop)
	pp.wg.Wait()
}
