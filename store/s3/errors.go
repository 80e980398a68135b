package s3

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"syscall"

	"github.com/cairn-backup/cairn/store"
	"github.com/minio/minio-go/v7"
)

// Errors that Open and the Store's methods wrap, for callers that react to
// them (test with errors.Is).
var (
	// ErrBucketNotFound: the bucket does not exist.
	ErrBucketNotFound = errors.New("bucket does not exist")
	// ErrAccessDenied: the server refused the credentials or their rights
	// (invalid access key, wrong secret key, missing permission).
	ErrAccessDenied = errors.New("access denied")
	// ErrUnreachable: no connection to the endpoint could be made, or it
	// did not answer in time. Such errors are also transient.
	ErrUnreachable = errors.New("endpoint unreachable")
)

// S3 error codes after which the same request may well succeed. The HTTP
// status decides for the rest: 5xx, 408 and 429 are transient.
var transientCodes = map[string]bool{
	"SlowDown":                   true,
	"SlowDownRead":               true,
	"SlowDownWrite":              true,
	"ServiceUnavailable":         true,
	"InternalError":              true,
	"RequestTimeout":             true,
	"RequestTimeTooSkewed":       false, // needs the clock fixed
	"Throttling":                 true,
	"ThrottlingException":        true,
	"RequestLimitExceeded":       true,
	"RequestThrottled":           true,
	"XMinioServerNotInitialized": true,
	// The body arrived damaged or short: the bytes we send are computed
	// from the caller's slice, so a second try sends them intact.
	"BadDigest":                   true,
	"XAmzContentSHA256Mismatch":   true,
	"XAmzContentChecksumMismatch": true,
	"InvalidDigest":               false,
	"IncompleteBody":              true,
	"XMinioStorageFull":           false,
}

var accessCodes = map[string]string{
	"AccessDenied":          "access denied",
	"InvalidAccessKeyId":    "invalid access key",
	"SignatureDoesNotMatch": "secret key does not match the access key",
	"InvalidToken":          "invalid session token",
	"ExpiredToken":          "session token expired",
	"AllAccessDisabled":     "access to the bucket is disabled",
	"AccountProblem":        "problem with the account",
	"InvalidSecurity":       "invalid security credentials",
}

// classify turns an error of minio-go or of the HTTP transport into the
// store's terms: ErrNotFound for a missing object, ErrBucketNotFound,
// ErrAccessDenied, and transient errors marked with store.MarkTransient.
// Everything else is returned as it is, permanent.
func (s *Store) classify(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		// Whatever broke, the caller gave up first; say so.
		if errors.Is(err, ctxErr) {
			return err
		}
		return fmt.Errorf("%w (%v)", ctxErr, err)
	}
	if errors.Is(err, context.Canceled) {
		return err
	}

	var resp minio.ErrorResponse
	if errors.As(err, &resp) && (resp.Code != "" || resp.StatusCode != 0) {
		return s.classifyResponse(resp)
	}

	switch {
	case isCertError(err):
		hint := "set the CA file (CAFile) to the certificate authority that signed the server's certificate"
		return fmt.Errorf("TLS certificate of %s not trusted: %w; %s", s.endpointURL, err, hint)
	case isDialError(err):
		return store.MarkTransient(fmt.Errorf("%w: cannot connect to %s: %w", ErrUnreachable, s.endpointURL, err))
	case isTimeout(err):
		return store.MarkTransient(fmt.Errorf("%w: %s did not answer in time: %w", ErrUnreachable, s.endpointURL, err))
	case isConnError(err):
		return store.MarkTransient(fmt.Errorf("connection to %s failed: %w", s.endpointURL, err))
	}
	return err
}

func (s *Store) classifyResponse(resp minio.ErrorResponse) error {
	detail := resp.Code
	if resp.StatusCode != 0 {
		detail = fmt.Sprintf("%s, HTTP %d", resp.Code, resp.StatusCode)
	}
	switch {
	case resp.Code == "NoSuchBucket":
		return fmt.Errorf("%w: bucket %q does not exist at %s; create it with cairn init --create-bucket",
			ErrBucketNotFound, s.bucket, s.endpointURL)
	case accessCodes[resp.Code] != "" || resp.StatusCode == http.StatusForbidden:
		what := accessCodes[resp.Code]
		if what == "" {
			what = "access denied"
		}
		return fmt.Errorf("%w at %s: %s (%s: %s); check AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and the rights on bucket %q",
			ErrAccessDenied, s.endpointURL, what, detail, resp.Error(), s.bucket)
	case resp.Code == "NoSuchKey" || resp.StatusCode == http.StatusNotFound:
		return fmt.Errorf("%w (%s)", store.ErrNotFound, detail)
	}
	e := fmt.Errorf("%s: %w", detail, resp)
	if transient, known := transientCodes[resp.Code]; known {
		if transient {
			return store.MarkTransient(e)
		}
		return e
	}
	if resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusRequestTimeout {
		return store.MarkTransient(e)
	}
	return e
}

func isCertError(err error) bool {
	var (
		unknownAuth *x509.UnknownAuthorityError
		hostname    x509.HostnameError
		invalid     x509.CertificateInvalidError
		verify      *tls.CertificateVerificationError
	)
	return errors.As(err, &unknownAuth) || errors.As(err, &hostname) ||
		errors.As(err, &invalid) || errors.As(err, &verify)
}

func isDialError(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	var dns *net.DNSError
	return errors.As(err, &dns)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// isConnError reports errors of a connection that broke while in use: reset,
// closed early, cut mid-body.
func isConnError(err error) bool {
	var ue *url.Error
	var op *net.OpError
	return errors.As(err, &ue) || errors.As(err, &op) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, net.ErrClosed)
}
