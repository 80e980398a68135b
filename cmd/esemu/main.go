// Command esemu serves the Elasticsearch emulator of
// internal/esemu as a standalone HTTP server on loopback, for
// demos (scripts/demo-app.sh) and manual runs of cairn's elasticsearch
// component on machines where no real Elasticsearch can be installed.
//
//	esemu [-listen 127.0.0.1:0] [-path-repo DIR] [-version 8.19.7] [-repository-format current] [-smile] [-seed] [-url-file FILE] [-v]
//	esemu -do METHOD URL [BODY]
//
// Served, it prints its base URL (http://127.0.0.1:PORT) as the first line
// of stdout, writes it to -url-file if given (atomically, so a script can
// poll for the file), and runs until SIGINT or SIGTERM, then exits 0.
// -path-repo is the emulated node's path.repo: fs snapshot repositories
// must be registered at or below it; it is created if missing. -seed
// creates the sample indices of an application before serving (see
// seed.go): mqm_sp1001_issues (2 shards, issues ISSUE-1…ISSUE-300),
// mqm_sp1001_comments (1 shard, comments C-1…C-450) and another tenant's
// mqm_sp1002_issues (1 shard, ISSUE-1…ISSUE-40), all without replicas
// (green) and flushed, with deterministic documents.
//
// -do is a tiny HTTP client for scripts on machines without curl: it sends
// one request (a BODY is sent as application/json), prints the response
// body and exits 0 for a status below 400, 22 (as curl --fail) otherwise,
// 2 when the request could not be made.
//
// Limits:
//
//   - The emulator's state is in memory: indices and their documents,
//     registered repositories, the cluster UUID. Only the snapshot
//     repositories' files are on disk, below -path-repo. A restarted esemu
//     is an empty, new cluster; a repository an earlier run wrote names
//     that run's cluster UUID in its index-N, so cairn's elasticsearch
//     backup refuses to write to it (another cluster's repository) — use a
//     fresh location, or register it and restore from it read-only.
//   - It is the test emulator, with its coverage and deviations (listed in
//     sources/elasticsearch/README.md): the snapshot, restore, repository,
//     index, document, _count, _cat/indices, _resolve/index and
//     _cluster/health APIs; no _search, no _bulk, no security, one node.
//   - It listens on loopback only (-listen must name a loopback address);
//     there is no authentication. esemu.New also starts the emulator's own
//     httptest listener on another 127.0.0.1 port, which stays unused.
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/cairn-backup/cairn/internal/esemu"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the whole program: it serves until ctx is done (or does one -do
// request) and returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("esemu", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:0", "loopback address to listen on")
	pathRepo := fs.String("path-repo", "", "the node's path.repo: fs repositories must lie below it (created if missing; default: a temporary directory removed on exit)")
	version := fs.String("version", esemu.DefaultVersion, "Elasticsearch version to report")
	format := fs.String("repository-format", esemu.FormatCurrent, "snapshot repository layout to write: "+
		esemu.Format56+", "+esemu.Format68+" (numeric shard generations), "+esemu.Format76+", "+esemu.Format710+" or "+esemu.FormatCurrent+" (7.12 and later)")
	smile := fs.Bool("smile", false, "write metadata blob payloads in SMILE, as Elasticsearch does (default JSON, easier to read)")
	seedFlag := fs.Bool("seed", false, "create the sample indices mqm_sp1001_issues, mqm_sp1001_comments and mqm_sp1002_issues")
	urlFile := fs.String("url-file", "", "also write the URL to this file")
	verbose := fs.Bool("v", false, "log every request to stderr")
	do := fs.Bool("do", false, "client mode: esemu -do METHOD URL [BODY] sends one request and prints the response body")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: esemu [-listen ADDR] [-path-repo DIR] [-version V] [-repository-format F] [-smile] [-seed] [-url-file FILE] [-v]")
		fmt.Fprintln(stderr, "       esemu -do METHOD URL [BODY]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *do {
		return doRequest(ctx, fs.Args(), stdout, stderr)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "esemu: unexpected arguments %q\n", fs.Args())
		return 2
	}
	if err := serve(ctx, config{listen: *listen, pathRepo: *pathRepo, version: *version, format: *format, smile: *smile,
		seed: *seedFlag, urlFile: *urlFile, verbose: *verbose}, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "esemu: %v\n", err)
		return 1
	}
	return 0
}

type config struct {
	listen, pathRepo, version, format, urlFile string
	seed, verbose, smile                       bool
}

// loopbackListen listens on addr, which must name a loopback IP address or
// localhost.
func loopbackListen(addr string) (net.Listener, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("-listen %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("-listen %q: only loopback addresses are allowed (the emulator has no authentication)", addr)
	}
	return net.Listen("tcp", addr)
}

func serve(ctx context.Context, c config, stdout, stderr io.Writer) error {
	ln, err := loopbackListen(c.listen)
	if err != nil {
		return err
	}
	defer ln.Close()
	opts := esemu.Options{Version: c.version, RepositoryFormat: c.format, SMILE: c.smile}
	if c.pathRepo != "" {
		if err := os.MkdirAll(c.pathRepo, 0o755); err != nil {
			return err
		}
		opts.PathRepo = []string{c.pathRepo}
	}
	emu, err := esemu.New(opts)
	if err != nil {
		return err
	}
	defer emu.Close()
	if c.seed {
		if err := seed(emu); err != nil {
			return fmt.Errorf("seed: %w", err)
		}
	}
	var h http.Handler = emu
	if c.verbose {
		h = logRequests(emu, stderr)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()

	url := "http://" + ln.Addr().String()
	fmt.Fprintln(stdout, url)
	if c.urlFile != "" {
		if err := writeFileAtomic(c.urlFile, url+"\n"); err != nil {
			srv.Close()
			return err
		}
	}
	fmt.Fprintf(stderr, "esemu: Elasticsearch %s emulator at %s, path.repo %s (Ctrl-C to stop)\n", emu.Version(), url, emu.PathRepo())

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// writeFileAtomic writes data to a temporary file next to name and renames
// it into place.
func writeFileAtomic(name, data string) error {
	f, err := os.CreateTemp(filepath.Dir(name), ".esemu-url-*")
	if err != nil {
		return err
	}
	if _, err := f.WriteString(data); err != nil {
		f.Close()
		os.Remove(f.Name())
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return err
	}
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		os.Remove(f.Name())
		return err
	}
	return os.Rename(f.Name(), name)
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController (and the emulator's hang-up fault,
// through Hijack) reach the underlying writer.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (r *statusRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return http.NewResponseController(r.ResponseWriter).Hijack()
}

func logRequests(h http.Handler, w io.Writer) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: rw, status: http.StatusOK}
		start := time.Now()
		h.ServeHTTP(rec, r)
		fmt.Fprintf(w, "esemu: %s %s %d %s\n", r.Method, r.URL.RequestURI(), rec.status, time.Since(start).Round(time.Microsecond))
	})
}

// doRequest is -do METHOD URL [BODY].
func doRequest(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) < 2 || len(args) > 3 {
		fmt.Fprintln(stderr, "usage: esemu -do METHOD URL [BODY]")
		return 2
	}
	var body io.Reader
	if len(args) == 3 {
		body = strings.NewReader(args[2])
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, strings.ToUpper(args[0]), args[1], body)
	if err != nil {
		fmt.Fprintf(stderr, "esemu: %v\n", err)
		return 2
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "esemu: %v\n", err)
		return 2
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, resp.Body); err != nil {
		fmt.Fprintf(stderr, "esemu: reading the response: %v\n", err)
		return 2
	}
	stdout.Write(buf.Bytes())
	if resp.StatusCode >= 400 {
		fmt.Fprintf(stderr, "esemu: %s %s: %s\n", req.Method, args[1], resp.Status)
		return 22
	}
	return 0
}
