package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/cairn-backup/cairn/repo"
)

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func humanBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

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

// progressPrinter shows a running count on stderr once a second. On a
// terminal the line rewrites itself; elsewhere (logs, cron mail) it prints
// a line every 10 seconds so long runs still show life.
type progressPrinter struct {
	stop chan struct{}
	wg   sync.WaitGroup
}

func startProgress(g *globals, verb string, p *repo.Progress, total uint64) *progressPrinter {
	pp := &progressPrinter{stop: make(chan struct{})}
	if g.quiet || g.json {
		return pp
	}
	tty := isTerminal(g.stderr)
	every := time.Second
	if !tty {
		every = 10 * time.Second
	}
	start := time.Now()
	pp.wg.Add(1)
	go func() {
		defer pp.wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-pp.stop:
				if tty {
					fmt.Fprint(g.stderr, "\r\033[K")
				}
				return
			case <-t.C:
				el := time.Since(start)
				line := fmt.Sprintf("%s: %d files, %s, %.1f MB/s, %s", verb, p.Files.Load(), humanBytes(p.Bytes.Load()),
					mbPerSec(p.Bytes.Load(), el), el.Truncate(time.Second))
				if total > 0 {
					line += fmt.Sprintf(", %.0f%%", 100*float64(p.Bytes.Load())/float64(total))
				}
				if n := p.Errors.Load(); n > 0 {
					line += fmt.Sprintf(", %d errors", n)
				}
				if tty {
					fmt.Fprintf(g.stderr, "\r\033[K%s", line)
				} else {
					fmt.Fprintln(g.stderr, line)
				}
			}
		}
	}()
	return pp
}

func (pp *progressPrinter) Stop() {
	close(pp.stop)
	pp.wg.Wait()
}
