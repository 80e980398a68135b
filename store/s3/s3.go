// Package s3 implements store.Store on an S3 bucket: Amazon S3, MinIO, or any
// server that speaks the S3 API, through minio-go.
//
// Object "data/ab/ab12…" of a store with prefix "backups/host1" is the key
// "backups/host1/data/ab/ab12…". How the contract is kept:
//
//   - Put is one PUT request (never a multipart upload), which S3 applies
//     atomically: a reader sees the old object or the new one, never a part.
//     It sends Content-MD5 and the payload's SHA-256 as the signed
//     x-amz-content-sha256 header; the server recomputes both over the bytes
//     it received and rejects the request (BadDigest,
//     XAmzContentSHA256Mismatch) when either differs, so a body damaged or
//     cut in transit is never stored. Objects are limited to what one PUT
//     may carry (5 GiB on Amazon S3).
//   - Get sends one ranged GET and returns once the response headers are in,
//     so a missing object fails in Get itself; a range starting at or past
//     the end (HTTP 416) returns an empty reader.
//   - Delete first checks that the object exists (S3's DELETE succeeds for
//     missing keys) so that a missing object gives store.ErrNotFound.
//   - List is a recursive ListObjectsV2 under the prefix; keys that are not
//     valid object names (folder markers, foreign files) are skipped.
//
// Errors: a missing object wraps store.ErrNotFound; a missing bucket,
// refused credentials and an unreachable endpoint wrap ErrBucketNotFound,
// ErrAccessDenied and ErrUnreachable; passing failures (5xx, 429, SlowDown, a
// damaged upload, a reset, cut or timed-out connection, also while reading a
// Get's body) are marked transient for store.Transient. The package does
// not retry by itself (minio-go's own retries are off): wrap the store with
// store/retry.
package s3

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/cairn-backup/cairn/store"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/s3utils"
)

var _ store.Store = (*Store)(nil)

// Store is a store.Store in an S3 bucket. It is safe for concurrent use.
type Store struct {
	client      *minio.Client
	core        minio.Core // the same client, with the lower-level calls
	transport   *http.Transport
	bucket      string
	prefix      string // "" or ending in "/"
	endpointURL string // for messages: "http://host:port"
}

// Open connects to the bucket cfg names and checks that it exists and that
// the credentials may list it, so that a wrong endpoint, bucket or key shows
// here with a clear error rather than in the middle of a backup. A missing
// bucket is created when cfg.CreateBucket is set.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	s, err := newStore(cfg)
	if err != nil {
		return nil, err
	}
	if err := s.probe(ctx, cfg); err != nil {
		s.Close()
		return nil, fmt.Errorf("s3: open %s: %w", cfg, err)
	}
	return s, nil
}

func newStore(cfg Config) (*Store, error) {
	if cfg.Endpoint == "" {
		return nil, errors.New("s3: no endpoint")
	}
	if strings.Contains(cfg.Endpoint, "://") || strings.Contains(cfg.Endpoint, "/") {
		return nil, fmt.Errorf("s3: endpoint %q must be host[:port], without scheme or path", cfg.Endpoint)
	}
	if err := s3utils.CheckValidBucketNameStrict(cfg.Bucket); err != nil {
		return nil, fmt.Errorf("s3: bucket %q: %w", cfg.Bucket, err)
	}
	prefix, err := cleanPrefix(cfg.Prefix)
	if err != nil {
		return nil, fmt.Errorf("s3: %w", err)
	}
	if prefix != "" {
		prefix += "/"
	}
	if cfg.Connections < 0 {
		return nil, fmt.Errorf("s3: Connections %d is negative", cfg.Connections)
	}
	conns := cfg.Connections
	if conns == 0 {
		conns = DefaultConnections
	}
	tr, err := newTransport(cfg, conns)
	if err != nil {
		return nil, err
	}
	client, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds:     credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, cfg.SessionToken),
		Secure:    cfg.Secure,
		Transport: &limitTransport{rt: tr, sem: make(chan struct{}, conns)},
		Region:    cfg.Region,
		// Retrying is store/retry's job, with the store's idea of what is
		// transient; retries here would hide failures from it and multiply
		// its attempts.
		MaxRetries: 1,
	})
	if err != nil {
		tr.CloseIdleConnections()
		return nil, fmt.Errorf("s3: endpoint %q: %w", cfg.Endpoint, err)
	}
	scheme := "http"
	if cfg.Secure {
		scheme = "https"
	}
	return &Store{
		client:      client,
		core:        minio.Core{Client: client},
		transport:   tr,
		bucket:      cfg.Bucket,
		prefix:      prefix,
		endpointURL: scheme + "://" + cfg.Endpoint,
	}, nil
}

func newTransport(cfg Config, conns int) (*http.Transport, error) {
	dialTimeout := orDefault(cfg.dialTimeout, defaultDialTimeout)
	tr := &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   dialTimeout,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		TLSHandshakeTimeout:   min(defaultTLSTimeout, max(dialTimeout, 1)),
		ResponseHeaderTimeout: orDefault(cfg.headerTimeout, defaultHeaderTimeout),
		ExpectContinueTimeout: time.Second,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConns:          2 * conns,
		MaxIdleConnsPerHost:   2 * conns,
		// Objects are encrypted and compressed already; gzip would only
		// hide Content-Length.
		DisableCompression: true,
		ForceAttemptHTTP2:  true,
	}
	if cfg.CAFile != "" {
		if !cfg.Secure {
			return nil, fmt.Errorf("s3: CA file %s given for a plain http endpoint", cfg.CAFile)
		}
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("s3: CA file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("s3: CA file %s holds no PEM certificate", cfg.CAFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return tr, nil
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// limitTransport lets at most cap(sem) requests wait for their response at
// once.
type limitTransport struct {
	rt  http.RoundTripper
	sem chan struct{}
}

func (t *limitTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	select {
	case t.sem <- struct{}{}:
	case <-req.Context().Done():
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, req.Context().Err()
	}
	defer func() { <-t.sem }()
	return t.rt.RoundTrip(req)
}

// probe lists at most one key under the prefix: it needs the bucket, the
// credentials and the right to list, as List does. A missing bucket is made
// if cfg says so.
func (s *Store) probe(ctx context.Context, cfg Config) error {
	err := s.listOne(ctx)
	if errors.Is(err, ErrBucketNotFound) && cfg.CreateBucket {
		if err := s.client.MakeBucket(ctx, s.bucket, minio.MakeBucketOptions{Region: cfg.Region}); err != nil {
			code := minio.ToErrorResponse(err).Code
			if code != "BucketAlreadyOwnedByYou" && code != "BucketAlreadyExists" {
				return fmt.Errorf("creating bucket %q: %w", s.bucket, s.classify(ctx, err))
			}
		}
		err = s.listOne(ctx)
	}
	return err
}

func (s *Store) listOne(ctx context.Context) error {
	noOwner := false
	for obj := range s.client.ListObjectsIter(ctx, s.bucket, minio.ListObjectsOptions{
		Prefix:     s.prefix,
		Recursive:  true,
		MaxKeys:    1,
		FetchOwner: &noOwner,
	}) {
		if obj.Err != nil {
			return s.classify(ctx, obj.Err)
		}
		break
	}
	return ctx.Err()
}

// Bucket returns the store's bucket.
func (s *Store) Bucket() string { return s.bucket }

// Close implements store.Store: it closes idle connections. Calls after
// Close fail or open new connections; do not make them.
func (s *Store) Close() error {
	s.transport.CloseIdleConnections()
	return nil
}

func (s *Store) key(name string) string { return s.prefix + name }

func (s *Store) opErr(ctx context.Context, op, name string, err error) error {
	return fmt.Errorf("s3: %s %s: %w", op, name, s.classify(ctx, err))
}

// begin runs the checks every operation starts with.
func begin(ctx context.Context, op, name string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("s3: %s %s: %w", op, name, err)
	}
	if err := store.CheckName(name); err != nil {
		return fmt.Errorf("s3: %s %s: %w", op, name, err)
	}
	return nil
}

// Put implements store.Store with one PUT carrying Content-MD5 and the
// signed SHA-256 of the data, both checked by the server.
func (s *Store) Put(ctx context.Context, name string, data []byte) error {
	if err := begin(ctx, "put", name); err != nil {
		return err
	}
	md5sum := md5.Sum(data)
	shasum := sha256.Sum256(data)
	_, err := s.core.PutObject(ctx, s.bucket, s.key(name), bytes.NewReader(data), int64(len(data)),
		base64.StdEncoding.EncodeToString(md5sum[:]), hex.EncodeToString(shasum[:]),
		minio.PutObjectOptions{
			ContentType: "application/octet-stream",
			// Sign the SHA-256 given above instead of minio-go's
			// streaming signature (used on plain http) or
			// UNSIGNED-PAYLOAD (https): the same server-side check
			// whatever the scheme.
			DisableContentSha256: true,
			DisableMultipart:     true,
		})
	if err != nil {
		return s.opErr(ctx, "put", name, err)
	}
	return nil
}

// Get implements store.Store.
func (s *Store) Get(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	if err := begin(ctx, "get", name); err != nil {
		return nil, err
	}
	if offset < 0 {
		return nil, fmt.Errorf("s3: get %s: negative offset %d", name, offset)
	}
	if length == 0 {
		// No request can ask for zero bytes; the object must still exist.
		if _, err := s.Stat(ctx, name); err != nil {
			return nil, err
		}
		return io.NopCloser(bytes.NewReader(nil)), nil
	}
	var opts minio.GetObjectOptions
	if length > 0 && length <= math.MaxInt64-offset {
		if err := opts.SetRange(offset, offset+length-1); err != nil {
			return nil, fmt.Errorf("s3: get %s: %w", name, err)
		}
	} else if offset > 0 {
		if err := opts.SetRange(offset, 0); err != nil {
			return nil, fmt.Errorf("s3: get %s: %w", name, err)
		}
	}
	body, oi, header, err := s.core.GetObject(ctx, s.bucket, s.key(name), opts)
	if err != nil {
		if minio.ToErrorResponse(err).StatusCode == http.StatusRequestedRangeNotSatisfiable {
			// The object exists and the range starts at or past its end.
			return io.NopCloser(bytes.NewReader(nil)), nil
		}
		return nil, s.opErr(ctx, "get", name, err)
	}
	if opts.Header().Get("Range") != "" {
		if start, ok := rangeStart(header.Get("Content-Range")); !ok || start != offset {
			body.Close()
			return nil, fmt.Errorf("s3: get %s: asked for bytes from %d, server answered Content-Range %q",
				name, offset, header.Get("Content-Range"))
		}
	}
	return &reader{s: s, ctx: ctx, name: name, rc: body, etag: oi.ETag}, nil
}

// rangeStart parses the first byte of "bytes 100-199/1000".
func rangeStart(cr string) (int64, bool) {
	rest, ok := strings.CutPrefix(cr, "bytes ")
	if !ok {
		return 0, false
	}
	first, _, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(first, 10, 64)
	return n, err == nil
}

// reader is a Get's body, with read errors classified: a connection that
// breaks mid-body gives a transient error. It implements store.Versioned
// with the object's ETag.
type reader struct {
	s    *Store
	ctx  context.Context
	name string
	rc   io.ReadCloser
	etag string
}

var _ store.Versioned = (*reader)(nil)

// Version implements store.Versioned.
func (r *reader) Version() string { return r.etag }

func (r *reader) Read(p []byte) (int, error) {
	n, err := r.rc.Read(p)
	if err != nil && err != io.EOF {
		err = r.s.opErr(r.ctx, "get", r.name, err)
	}
	return n, err
}

func (r *reader) Close() error { return r.rc.Close() }

// Stat implements store.Store.
func (s *Store) Stat(ctx context.Context, name string) (store.Info, error) {
	if err := begin(ctx, "stat", name); err != nil {
		return store.Info{}, err
	}
	oi, err := s.client.StatObject(ctx, s.bucket, s.key(name), minio.StatObjectOptions{})
	if err != nil {
		return store.Info{}, s.opErr(ctx, "stat", name, err)
	}
	return store.Info{Name: name, Size: oi.Size}, nil
}

// List implements store.Store. fn runs between the requests for pages of
// the listing, not during one, so it may use the store.
func (s *Store) List(ctx context.Context, prefix string, fn func(store.Info) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("s3: list %s: %w", prefix, err)
	}
	if err := store.CheckPrefix(prefix); err != nil {
		return fmt.Errorf("s3: list %s: %w", prefix, err)
	}
	noOwner := false
	for obj := range s.client.ListObjectsIter(ctx, s.bucket, minio.ListObjectsOptions{
		Prefix:     s.prefix + prefix,
		Recursive:  true,
		FetchOwner: &noOwner,
	}) {
		if obj.Err != nil {
			return s.opErr(ctx, "list", prefix, obj.Err)
		}
		name, ok := strings.CutPrefix(obj.Key, s.prefix)
		if !ok || store.CheckName(name) != nil {
			continue
		}
		if err := fn(store.Info{Name: name, Size: obj.Size}); err != nil {
			return err
		}
	}
	// The iterator ends quietly when the context is canceled.
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("s3: list %s: %w", prefix, err)
	}
	return nil
}

// Delete implements store.Store.
func (s *Store) Delete(ctx context.Context, name string) error {
	if _, err := s.Stat(ctx, name); err != nil {
		// Stat's error already says "s3: stat <name>"; keep its
		// classification but name the operation.
		return fmt.Errorf("s3: delete %s: %w", name, unwrapOp(err))
	}
	if err := s.client.RemoveObject(ctx, s.bucket, s.key(name), minio.RemoveObjectOptions{}); err != nil {
		return s.opErr(ctx, "delete", name, err)
	}
	return nil
}

// unwrapOp strips the "s3: op name: " of an error made by opErr or begin.
func unwrapOp(err error) error {
	if u := errors.Unwrap(err); u != nil {
		return u
	}
	return err
}
