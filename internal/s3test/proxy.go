package s3test

import (
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"sync"
)

// Fault is a way a Proxy breaks a request.
type Fault int

const (
	// SlowDown answers 503 with S3's SlowDown error, without passing the
	// request on.
	SlowDown Fault = iota
	// InternalError answers 500 with S3's InternalError, without passing
	// the request on.
	InternalError
	// DropResponse passes the request on, then cuts the connection halfway
	// through the response body (before any of it when the body is empty):
	// the server did the work, the client never hears of it.
	DropResponse
	// DropUpload passes on half of the request body, then cuts both
	// connections: the server sees a truncated upload and the client a
	// broken connection. Requests without a body are cut before they are
	// passed on.
	DropUpload
	// CorruptUpload passes the request on with one bit of its body flipped
	// (requests without a body pass unharmed), so the server's checksum
	// check must reject it.
	CorruptUpload
	numFaults
)

func (f Fault) String() string {
	switch f {
	case SlowDown:
		return "SlowDown"
	case InternalError:
		return "InternalError"
	case DropResponse:
		return "DropResponse"
	case DropUpload:
		return "DropUpload"
	case CorruptUpload:
		return "CorruptUpload"
	}
	return fmt.Sprintf("Fault(%d)", int(f))
}

// AllFaults lists every Fault.
var AllFaults = []Fault{SlowDown, InternalError, DropResponse, DropUpload, CorruptUpload}

// Proxy is an HTTP reverse proxy on 127.0.0.1 in front of an S3 server that
// breaks requests on command. It keeps the Host header, so requests signed
// for the proxy's address pass the server's signature check. With
// S3TEST_DEBUG set in the environment it logs each request to stderr.
type Proxy struct {
	// Endpoint is the proxy's host:port, to use as s3.Config.Endpoint.
	Endpoint string
	// CAFile, for a TLS proxy, is a PEM file of its certificate, to use as
	// s3.Config.CAFile.
	CAFile string

	srv *httptest.Server
	rp  *httputil.ReverseProxy

	mu       sync.Mutex
	rng      *rand.Rand
	rate     float64
	kinds    []Fault
	next     []Fault // forced faults for the next requests, in order
	requests int
	counts   [numFaults]int
	inFlight int
	maxIn    int
}

type faultKey struct{}

// errDrop tells the error handler to cut the client's connection.
var errDrop = errors.New("s3test: dropping connection")

// NewProxy starts a proxy to the S3 server at target (host:port, plain
// http). With useTLS the proxy itself speaks https, with a certificate for
// 127.0.0.1 that its CAFile holds. It passes every request on until told
// otherwise. Close stops it.
func NewProxy(target string, useTLS bool) (*Proxy, error) {
	p := &Proxy{rng: rand.New(rand.NewPCG(1, 2))}
	tr := &http.Transport{
		Proxy:               nil,
		DisableCompression:  true,
		MaxIdleConnsPerHost: 64,
	}
	p.rp = &httputil.ReverseProxy{
		Transport: tr,
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(&url.URL{Scheme: "http", Host: target})
			pr.Out.Host = pr.In.Host // the client signed this Host
			// Hop-by-hop forwarding headers are not signed, so they
			// may be added, but keep the request as the client sent it.
			pr.Out.Header.Del("X-Forwarded-For")
			f, ok := pr.In.Context().Value(faultKey{}).(Fault)
			if !ok || pr.Out.Body == nil || pr.Out.ContentLength <= 0 {
				return
			}
			switch f {
			case DropUpload:
				pr.Out.Body = &cutBody{rc: pr.Out.Body, left: pr.Out.ContentLength / 2}
			case CorruptUpload:
				pr.Out.Body = &flipBody{rc: pr.Out.Body, at: pr.Out.ContentLength / 2}
			}
		},
		ModifyResponse: func(resp *http.Response) error {
			answered(resp.Request)
			f, ok := resp.Request.Context().Value(faultKey{}).(Fault)
			if !ok || f != DropResponse {
				return nil
			}
			if resp.ContentLength <= 0 || resp.Request.Method == http.MethodHead {
				resp.Body.Close()
				return errDrop
			}
			resp.Body = &cutBody{rc: resp.Body, left: resp.ContentLength / 2}
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if _, ok := r.Context().Value(faultKey{}).(Fault); ok {
				hangUp(w)
				return
			}
			http.Error(w, err.Error(), http.StatusBadGateway)
		},
		ErrorLog: discardLogger,
	}
	p.srv = httptest.NewUnstartedServer(http.HandlerFunc(p.serve))
	p.srv.Config.ErrorLog = discardLogger
	if useTLS {
		p.srv.StartTLS()
		dir, err := os.MkdirTemp("", "cairn-proxy-ca-")
		if err != nil {
			p.srv.Close()
			return nil, err
		}
		p.CAFile = filepath.Join(dir, "ca.pem")
		cert := p.srv.Certificate()
		if err := os.WriteFile(p.CAFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o600); err != nil {
			p.srv.Close()
			return nil, err
		}
	} else {
		p.srv.Start()
	}
	p.Endpoint = p.srv.Listener.Addr().String()
	return p, nil
}

// Close stops the proxy.
func (p *Proxy) Close() {
	p.srv.CloseClientConnections()
	p.srv.Close()
	if p.CAFile != "" {
		os.RemoveAll(filepath.Dir(p.CAFile))
	}
}

// SetFaults makes the proxy break each request with probability rate, in a
// way drawn from kinds (all of them if none are given). Rate 0 passes every
// request. The draws come from a fixed seed, so a serial run repeats.
func (p *Proxy) SetFaults(rate float64, kinds ...Fault) {
	if len(kinds) == 0 {
		kinds = AllFaults
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rate, p.kinds = rate, kinds
}

// FailNext breaks the next len(faults) requests with these faults, in order,
// before the random faults of SetFaults apply again.
func (p *Proxy) FailNext(faults ...Fault) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.next = append(p.next, faults...)
}

// Counts returns how many requests the proxy saw and how many it broke, by
// fault.
func (p *Proxy) Counts() (requests int, faults map[Fault]int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	faults = map[Fault]int{}
	for f, n := range p.counts {
		if n > 0 {
			faults[Fault(f)] = n
		}
	}
	return p.requests, faults
}

func (p *Proxy) pick(r *http.Request) (Fault, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.requests++
	var f Fault
	switch {
	case len(p.next) > 0:
		f, p.next = p.next[0], p.next[1:]
	case p.rate > 0 && p.rng.Float64() < p.rate:
		f = p.kinds[p.rng.IntN(len(p.kinds))]
	default:
		return 0, false
	}
	if os.Getenv("S3TEST_DEBUG") != "" {
		fmt.Fprintf(os.Stderr, "proxy: %s %s len=%d fault=%v\n", r.Method, r.URL, r.ContentLength, f)
	}
	if f == CorruptUpload && r.ContentLength <= 0 {
		return 0, false // nothing to corrupt
	}
	p.counts[f]++
	return f, true
}

// MaxInFlight returns the largest number of requests the proxy was handling
// at once.
func (p *Proxy) MaxInFlight() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.maxIn
}

// A request counts as in flight from its arrival until its response headers
// are about to be sent (or the handler ends): the span a client waits for.
type answeredKey struct{}

func answered(r *http.Request) {
	if f, ok := r.Context().Value(answeredKey{}).(func()); ok {
		f()
	}
}

func (p *Proxy) serve(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	p.inFlight++
	p.maxIn = max(p.maxIn, p.inFlight)
	p.mu.Unlock()
	done := sync.OnceFunc(func() {
		p.mu.Lock()
		p.inFlight--
		p.mu.Unlock()
	})
	defer done()
	r = r.WithContext(context.WithValue(r.Context(), answeredKey{}, done))

	f, ok := p.pick(r)
	if !ok {
		p.rp.ServeHTTP(w, r)
		return
	}
	switch f {
	case SlowDown:
		io.Copy(io.Discard, r.Body)
		done()
		s3Error(w, r, http.StatusServiceUnavailable, "SlowDown", "Please reduce your request rate.")
	case InternalError:
		io.Copy(io.Discard, r.Body)
		done()
		s3Error(w, r, http.StatusInternalServerError, "InternalError", "We encountered an internal error, please try again.")
	case DropUpload:
		if r.ContentLength <= 0 {
			hangUp(w)
			return
		}
		fallthrough
	default:
		p.rp.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), faultKey{}, f)))
	}
}

// s3Error answers as an S3 server does. The caller has read the request's
// body (a client still sending it would otherwise see a broken pipe).
func s3Error(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/xml")
	if r.Method == http.MethodHead {
		w.WriteHeader(status)
		return
	}
	w.WriteHeader(status)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>%s</Code><Message>%s</Message><Resource>%s</Resource><RequestId>s3test-fault</RequestId></Error>`,
		code, msg, r.URL.Path)
}

// hangUp closes the client's connection without a word. (No Flush first: it
// would send a 200 header.)
func hangUp(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler)
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetLinger(0) // a reset, as a crashed peer gives
	}
	conn.Close()
}

// cutBody passes left bytes, then fails.
type cutBody struct {
	rc   io.ReadCloser
	left int64
}

var errCut = errors.New("s3test: body cut by fault injection")

func (b *cutBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, errCut
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	return n, err
}

func (b *cutBody) Close() error { return b.rc.Close() }

// flipBody flips the lowest bit of the byte at offset at.
type flipBody struct {
	rc  io.ReadCloser
	at  int64
	pos int64
}

func (b *flipBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if b.at >= b.pos && b.at < b.pos+int64(n) {
		p[b.at-b.pos] ^= 1
	}
	b.pos += int64(n)
	return n, err
}

func (b *flipBody) Close() error { return b.rc.Close() }

var discardLogger = log.New(io.Discard, "", 0)
