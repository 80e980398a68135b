package s3_test

import (
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/store/s3"
)

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want s3.Config
	}{
		{"s3:http://127.0.0.1:9000/bucket", s3.Config{Endpoint: "127.0.0.1:9000", Bucket: "bucket"}},
		{"s3:https://s3.example.com/b/backups/host1", s3.Config{Endpoint: "s3.example.com", Bucket: "b", Prefix: "backups/host1", Secure: true}},
		{"s3:https://s3.example.com:8443/b/p/", s3.Config{Endpoint: "s3.example.com:8443", Bucket: "b", Prefix: "p", Secure: true}},
		{"s3:s3.amazonaws.com/b", s3.Config{Endpoint: "s3.amazonaws.com", Bucket: "b", Secure: true}},
		{"s3:http://[::1]:9000/b//p", s3.Config{Endpoint: "[::1]:9000", Bucket: "b", Prefix: "p"}},
		{"s3:http://host:9000/b/a//p", s3.Config{}}, // empty segment: error
		{"s3:http://localhost:9000/bucket/", s3.Config{Endpoint: "localhost:9000", Bucket: "bucket"}},
	} {
		got, err := s3.ParseURL(tc.in)
		if tc.want == (s3.Config{}) {
			if err == nil {
				t.Errorf("ParseURL(%q) = %+v, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseURL(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
		// String gives back an equivalent URL.
		if again, err := s3.ParseURL(got.String()); err != nil || again != got {
			t.Errorf("ParseURL(%q.String() = %q) = %+v, %v", tc.in, got.String(), again, err)
		}
	}
	for in, wantMsg := range map[string]string{
		"http://host/bucket":            "not an s3: URL",
		"s3:http://host":                "no bucket",
		"s3:http://host/":               "no bucket",
		"s3:ftp://host/b":               "only http:// and https://",
		"s3:http://key:secret@host/b":   "credentials do not belong in the URL",
		"s3:http://host/b?region=x":     "query",
		"s3:http:///b":                  "no host",
		"s3:http://host/b/../x":         "invalid prefix",
		"s3:http://host:/b":             "empty port",
		"/srv/backup":                   "not an s3: URL",
		"s3:https://host/b/./p":         "invalid prefix",
		"s3:https://host/b/p/../../etc": "invalid prefix",
	} {
		_, err := s3.ParseURL(in)
		if err == nil || !strings.Contains(err.Error(), wantMsg) {
			t.Errorf("ParseURL(%q): err = %v, want one saying %q", in, err, wantMsg)
		}
	}
}

func TestConfigFromEnv(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "AK")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "SK")
	t.Setenv("AWS_SESSION_TOKEN", "TOKEN")
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "eu-west-1")
	var cfg s3.Config
	s3.ConfigFromEnv(&cfg)
	if cfg.AccessKey != "AK" || cfg.SecretKey != "SK" || cfg.SessionToken != "TOKEN" || cfg.Region != "eu-west-1" {
		t.Errorf("ConfigFromEnv = %+v", cfg)
	}
	t.Setenv("AWS_REGION", "us-west-2")
	cfg = s3.Config{AccessKey: "explicit"}
	s3.ConfigFromEnv(&cfg)
	if cfg.AccessKey != "explicit" || cfg.Region != "us-west-2" {
		t.Errorf("ConfigFromEnv overrode a set field or missed AWS_REGION: %+v", cfg)
	}
}

func TestOpenRejectsBadConfig(t *testing.T) {
	for _, cfg := range []s3.Config{
		{Bucket: "b"},
		{Endpoint: "http://host:9000", Bucket: "b"},
		{Endpoint: "host:9000"},
		{Endpoint: "host:9000", Bucket: "Not_A_Bucket"},
		{Endpoint: "host:9000", Bucket: "b", Prefix: "a//b"},
		{Endpoint: "host:9000", Bucket: "b", Connections: -1},
		{Endpoint: "host:9000", Bucket: "bucket", CAFile: "/nonexistent.pem", Secure: true},
		{Endpoint: "host:9000", Bucket: "bucket", CAFile: "/etc/hostname"},
	} {
		if s, err := s3.Open(t.Context(), cfg); err == nil {
			s.Close()
			t.Errorf("Open(%+v) succeeded", cfg)
		}
	}
}
