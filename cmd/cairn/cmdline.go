package main

import (
	"errors"
	"strings"
)

// splitCommandLine splits a --command value into argv the way a POSIX shell
// splits words (XCU 2.2): whitespace separates; single quotes keep
// everything; inside double quotes a backslash is special only before $ ` "
// \ and newline, and kept as written before anything else (so
// `printf "%s\n"` passes `%s\n` on, as sh does); outside quotes a backslash
// escapes the next character; backslash-newline joins lines. There is no
// expansion, globbing, piping or redirection: a command that needs them
// belongs in a config file with shell: true.
func splitCommandLine(s string) ([]string, error) {
	var (
		args    []string
		cur     strings.Builder
		inWord  bool
		quote   rune
		escaped bool
	)
	for _, r := range s {
		switch {
		case escaped && quote == '"':
			switch r {
			case '$', '`', '"', '\\':
				cur.WriteRune(r)
			case '\n': // line continuation: both go
			default:
				cur.WriteRune('\\')
				cur.WriteRune(r)
			}
			escaped = false
		case escaped:
			if r != '\n' {
				cur.WriteRune(r)
			}
			escaped = false
		case quote == '\'':
			if r == '\'' {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case quote == '"':
			switch r {
			case '"':
				quote = 0
			case '\\':
				escaped = true
			default:
				cur.WriteRune(r)
			}
		case r == '\\':
			escaped, inWord = true, true
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case r == ' ' || r == '\t' || r == '\n':
			if inWord {
				args = append(args, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if quote != 0 || escaped {
		return nil, errors.New("unterminated quote or trailing backslash")
	}
	if inWord {
		args = append(args, cur.String())
	}
	if len(args) == 0 {
		return nil, errors.New("empty command")
	}
	return args, nil
}
