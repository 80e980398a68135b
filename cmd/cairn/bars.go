package main

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/cairn-backup/cairn/repo"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
)

// barRenderer draws the terminal's live progress with mpb: one line per
// running job and per component of it, a bar with percent and ETA when the total is known, the
// counts alone when it is not. mpb keeps several lines in place and lets
// other output be printed above them, which the single "\r" line could
// not; the figures are the ones the non-terminal lines print
// (progressStatus), so both forms agree.
type barRenderer struct {
	p    *mpb.Progress
	mu   sync.Mutex
	bars map[string]*statusBar
}

type statusBar struct {
	bar *mpb.Bar
	mu  sync.Mutex
	st  progressJSON
}

// newBarRenderer draws on w, refreshing every refresh; width is the
// width of the lines (0: the terminal's).
func newBarRenderer(w io.Writer, refresh time.Duration, width int) *barRenderer {
	opts := []mpb.ContainerOption{mpb.WithOutput(w), mpb.WithRefreshRate(refresh), mpb.WithAutoRefresh()}
	if width > 0 {
		opts = append(opts, mpb.WithWidth(width))
	}
	return &barRenderer{p: mpb.New(opts...), bars: map[string]*statusBar{}}
}

// show updates the job's line and one line per component the job counts
// on its own (a backup's), below it.
func (r *barRenderer) show(verb string, p *repo.Progress, total uint64, el time.Duration) {
	r.update(progressStatus(verb, p, total, el))
	for _, c := range p.Components() {
		r.update(progressStatus(verb+" "+c.Name(), c, 0, el))
	}
}

// update shows st on the line named by st.Command, adding the line the
// first time.
func (r *barRenderer) update(st progressJSON) {
	r.mu.Lock()
	b := r.bars[st.Command]
	if b == nil {
		b = &statusBar{}
		filler := mpb.NopStyle()
		if st.TotalBytes > 0 {
			filler = mpb.BarStyle()
		}
		b.bar = r.p.New(int64(st.TotalBytes), filler,
			mpb.PrependDecorators(decor.Name(st.Command+": ")),
			mpb.AppendDecorators(decor.Any(func(decor.Statistics) string {
				b.mu.Lock()
				defer b.mu.Unlock()
				return " " + b.st.barText()
			})))
		r.bars[st.Command] = b
	}
	r.mu.Unlock()
	b.mu.Lock()
	b.st = st
	b.mu.Unlock()
	if st.TotalBytes > 0 {
		b.bar.SetCurrent(int64(min(st.Bytes, st.TotalBytes)))
	}
}

// stop ends every line (each keeps its last figures) and waits until mpb
// has drawn them and let go of the output.
func (r *barRenderer) stop() {
	r.mu.Lock()
	for _, b := range r.bars {
		b.bar.Abort(false)
	}
	r.mu.Unlock()
	r.p.Wait()
}

// barText is what follows the bar: the counts, and percent and ETA when
// the total is known.
func (st progressJSON) barText() string {
	el := secs(st.ElapsedSeconds)
	s := fmt.Sprintf("%d files, %s", st.Files, humanBytes(st.Bytes))
	if st.TotalBytes > 0 {
		s += " of " + humanBytes(st.TotalBytes)
	}
	return s + fmt.Sprintf(", %.1f MB/s", mbPerSec(st.Bytes, el)) + st.tail()
}
