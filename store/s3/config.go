package s3

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"
)

// DefaultConnections is the number of requests a Store runs in parallel when
// Config.Connections is zero.
const DefaultConnections = 8

// Default timeouts of the HTTP transport. They bound how long a dead or
// unreachable endpoint can hold up a call; a call's context can cut them
// shorter.
const (
	defaultDialTimeout   = 10 * time.Second // TCP connect
	defaultTLSTimeout    = 10 * time.Second // TLS handshake
	defaultHeaderTimeout = 60 * time.Second // request sent → response headers
)

// Config says where a Store keeps its objects and how it reaches them.
type Config struct {
	// Endpoint is host:port of the S3 server, without a scheme
	// ("s3.eu-central-1.amazonaws.com", "127.0.0.1:9000").
	Endpoint string
	// Bucket holds the store; Prefix, if not empty, is a folder inside it:
	// object "config" of a store with prefix "backups/host1" is the key
	// "backups/host1/config". Leading and trailing slashes are ignored.
	Bucket, Prefix string
	// Secure selects https.
	Secure bool

	// Credentials; all empty means anonymous requests. ConfigFromEnv fills
	// them from the standard AWS variables.
	AccessKey, SecretKey, SessionToken string
	// Region of the bucket; empty asks the server once per bucket
	// (GetBucketLocation) and falls back to us-east-1.
	Region string

	// CAFile is a PEM file of CA certificates trusted, in addition to the
	// system's, for the endpoint's TLS certificate (Secure must be set).
	CAFile string

	// Connections is the number of requests in flight at once; 0 means
	// DefaultConnections. A request counts from the moment it is sent until
	// its response headers arrive: the body of an open Get reader does not
	// hold a slot, so a caller may keep readers open while using the store.
	Connections int

	// CreateBucket makes Open create a missing bucket instead of failing.
	CreateBucket bool

	// Timeouts, zero for the defaults; only tests change them.
	dialTimeout, headerTimeout time.Duration
}

// ParseURL parses a repository location of the form
//
//	s3:http://host[:port]/bucket[/prefix]
//	s3:https://host[:port]/bucket[/prefix]
//	s3:host[:port]/bucket[/prefix]          (https)
//
// into a Config with Endpoint, Bucket, Prefix and Secure set. Credentials are
// never taken from the URL: use ConfigFromEnv.
func ParseURL(s string) (Config, error) {
	rest, ok := strings.CutPrefix(s, "s3:")
	if !ok {
		return Config{}, fmt.Errorf("s3: %q is not an s3: URL (want s3:https://host[:port]/bucket[/prefix])", s)
	}
	secure := true
	switch {
	case strings.HasPrefix(rest, "https://"):
		rest = strings.TrimPrefix(rest, "https://")
	case strings.HasPrefix(rest, "http://"):
		rest = strings.TrimPrefix(rest, "http://")
		secure = false
	case strings.Contains(rest, "://"):
		return Config{}, fmt.Errorf("s3: %q: only http:// and https:// are supported", s)
	}
	u, err := url.Parse("scheme://" + rest)
	if err != nil {
		return Config{}, fmt.Errorf("s3: %q: %w", s, err)
	}
	switch {
	case u.User != nil:
		return Config{}, fmt.Errorf("s3: %q: credentials do not belong in the URL; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY", s)
	case u.RawQuery != "" || u.Fragment != "":
		return Config{}, fmt.Errorf("s3: %q: a query or fragment is not allowed", s)
	case u.Host == "":
		return Config{}, fmt.Errorf("s3: %q: no host", s)
	}
	if _, port, err := net.SplitHostPort(u.Host); err == nil && port == "" {
		return Config{}, fmt.Errorf("s3: %q: empty port", s)
	}
	bucket, prefix, _ := strings.Cut(strings.TrimPrefix(u.Path, "/"), "/")
	if bucket == "" {
		return Config{}, fmt.Errorf("s3: %q: no bucket (want s3:https://host[:port]/bucket[/prefix])", s)
	}
	prefix, err = cleanPrefix(prefix)
	if err != nil {
		return Config{}, fmt.Errorf("s3: %q: %w", s, err)
	}
	return Config{Endpoint: u.Host, Bucket: bucket, Prefix: prefix, Secure: secure}, nil
}

// ConfigFromEnv fills the credentials and region of cfg that are still empty
// from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN and
// AWS_REGION (or AWS_DEFAULT_REGION).
func ConfigFromEnv(cfg *Config) {
	fill := func(field *string, vars ...string) {
		for _, v := range vars {
			if *field == "" {
				*field = os.Getenv(v)
			}
		}
	}
	fill(&cfg.AccessKey, "AWS_ACCESS_KEY_ID")
	fill(&cfg.SecretKey, "AWS_SECRET_ACCESS_KEY")
	fill(&cfg.SessionToken, "AWS_SESSION_TOKEN")
	fill(&cfg.Region, "AWS_REGION", "AWS_DEFAULT_REGION")
}

// String returns the location as ParseURL accepts it.
func (c Config) String() string {
	scheme := "http"
	if c.Secure {
		scheme = "https"
	}
	s := "s3:" + scheme + "://" + c.Endpoint + "/" + c.Bucket
	if p := strings.Trim(c.Prefix, "/"); p != "" {
		s += "/" + p
	}
	return s
}

// cleanPrefix trims slashes and rejects prefixes that could not be a folder:
// empty, "." or ".." segments.
func cleanPrefix(p string) (string, error) {
	p = strings.Trim(p, "/")
	if p == "" {
		return "", nil
	}
	for seg := range strings.SplitSeq(p, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return "", fmt.Errorf("invalid prefix %q: empty, \".\" or \"..\" segment", p)
		}
	}
	return p, nil
}
