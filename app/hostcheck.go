package app

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
)

// hostCheck adds to p what config check can find on this host without
// changing anything or connecting anywhere: programs (dump and restore
// commands, hooks) on PATH, password and CA files readable, tree
// directories present, the dump directory's parent present.
func (cfg *Config) hostCheck(p *Problems) {
	readable := func(line int, what, path string) {
		if path == "" {
			return
		}
		f, err := os.Open(path)
		if err != nil {
			p.add(line, "%s %s: %v", what, path, unwrapPath(err))
			return
		}
		f.Close()
	}
	readable(0, "password_file", cfg.PasswordFile)
	for i, rp := range cfg.Replicate {
		readable(0, fmt.Sprintf("replicate[%d]: password_file", i), rp.PasswordFile)
	}
	program := func(line int, what string, argv []string, shell bool) {
		if len(argv) > 0 {
			if err := lookProgram(argv, shell); err != nil {
				p.add(line, "%s: %v", what, err)
			}
		}
	}
	hooks := func(line int, where string, h Hooks) {
		for _, phase := range []string{"backup", "restore"} {
			ph := h.Phase(phase)
			program(line, where+"hooks."+phase+".before", ph.Before, false)
			program(line, where+"hooks."+phase+".after", ph.After, false)
			program(line, where+"hooks."+phase+".on_failure", ph.OnFailure, false)
		}
	}
	hooks(0, "", cfg.Hooks)
	for i := range cfg.Components {
		c := &cfg.Components[i]
		where := fmt.Sprintf("component %q: ", c.Name)
		hooks(c.Line, where, c.Hooks)
		switch c.Kind() {
		case "command":
			program(c.Line, where+"command", c.Command, c.Shell)
			program(c.Line, where+"restore", c.Restore, c.Shell)
			if c.Mode == "dir" && c.Dir != "" {
				if _, err := os.Stat(filepath.Dir(filepath.Clean(c.Dir))); err != nil {
					p.add(c.Line, "%sdir %s: its parent directory: %v", where, c.Dir, unwrapPath(err))
				}
			}
		case "elasticsearch":
			readable(c.Line, where+"elasticsearch cacert", c.Elasticsearch.CACert)
		case "tree":
			if fi, err := os.Stat(c.Tree); err != nil {
				p.add(c.Line, "%stree %s: %v", where, c.Tree, unwrapPath(err))
			} else if !fi.IsDir() {
				p.add(c.Line, "%stree %s is not a directory", where, c.Tree)
			}
		}
	}
}

// unwrapPath drops the path an *os.PathError repeats.
func unwrapPath(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

// checkURL reports what is wrong with an Elasticsearch URL, or "".
func checkURL(s string) string {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return err.Error()
	case u.Scheme != "http" && u.Scheme != "https":
		return "want http:// or https://"
	case u.Host == "":
		return "no host"
	}
	return ""
}
