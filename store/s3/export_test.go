package s3

import "time"

// WithTimeouts returns cfg with the transport's dial and response-header
// timeouts set, so that tests of a dead endpoint need not wait a minute.
func WithTimeouts(cfg Config, dial, header time.Duration) Config {
	cfg.dialTimeout, cfg.headerTimeout = dial, header
	return cfg
}
