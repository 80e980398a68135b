package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
)

// newLogger makes the slog logger for --log-format. Every warning and
// notice cairn prints on stderr goes through it. In text form the
// one-shot commands (human) print the lines they always printed,
// "cairn: warning: MSG" and "cairn: MSG", so people and scripts reading
// stderr see no change; the daemon's text form is slog's key=value lines
// (a log, not a conversation). With json every record is a JSON object.
func newLogger(w io.Writer, format string, human bool) (*slog.Logger, error) {
	switch format {
	case "", "text":
		if human {
			return slog.New(&humanHandler{w: w, mu: new(sync.Mutex)}), nil
		}
		return slog.New(slog.NewTextHandler(w, nil)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, nil)), nil
	}
	return nil, fmt.Errorf("--log-format %q: use text or json", format)
}

// logSink is where the logger writes: stderr, or while the terminal's
// progress lines are drawn, above them (mpb prints what it is given there
// at its next redraw), so a warning is neither overwritten nor splits the
// lines.
type logSink struct {
	mu    sync.Mutex
	w     io.Writer
	above io.Writer // guarded by mu
}

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	w := s.w
	if s.above != nil {
		w = s.above
	}
	s.mu.Unlock()
	n, err := w.Write(p)
	if err != nil && w != s.w {
		// The lines were stopped between the two: stderr it is.
		return s.w.Write(p)
	}
	return n, err
}

// divert sends what is logged to w until divert(nil).
func (s *logSink) divert(w io.Writer) {
	s.mu.Lock()
	s.above = w
	s.mu.Unlock()
}

// humanHandler writes a record as one line, "cairn: " and, for a warning
// or worse, "warning: " before the message. The message carries what a
// person needs; attributes are for the JSON form and left out here.
type humanHandler struct {
	w  io.Writer
	mu *sync.Mutex // shared by handlers derived with WithAttrs/WithGroup
}

func (h *humanHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }

func (h *humanHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString("cairn: ")
	if r.Level >= slog.LevelWarn {
		b.WriteString("warning: ")
	}
	b.WriteString(r.Message)
	b.WriteByte('\n')
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := io.WriteString(h.w, b.String())
	return err
}

func (h *humanHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *humanHandler) WithGroup(string) slog.Handler      { return h }
