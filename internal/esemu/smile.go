package esemu

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"unicode/utf8"
)

// Real Elasticsearch writes the payload of its metadata blobs in SMILE,
// Jackson's binary JSON. With Options.SMILE the emulator does too: values
// are marshalled to JSON first (so the struct tags apply), then written as
// Jackson's SmileGenerator writes them with Elasticsearch's settings
// (header flags 0x05: shared key names, raw binary allowed; no shared
// values). The decoder below reads back what this encoder writes and
// nothing more; the source has its own, complete decoder, so the two
// check each other.

const (
	smileMaxSharedNames = 1024
	smileFlags          = 0x05
)

type smileWriter struct {
	b     bytes.Buffer
	names map[string]int
}

// toSmile encodes v (any value encoding/json can marshal) as a SMILE
// document with its header.
func toSmile(v any) ([]byte, error) {
	js, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.UseNumber()
	var tree any
	if err := dec.Decode(&tree); err != nil {
		return nil, err
	}
	w := &smileWriter{names: map[string]int{}}
	w.b.WriteString(":)\n")
	w.b.WriteByte(smileFlags)
	if err := w.value(tree); err != nil {
		return nil, err
	}
	return w.b.Bytes(), nil
}

// vint writes SMILE's unsigned VInt: 7 bits a byte, big-endian, the last
// byte with its high bit set and 6 bits of value.
func (w *smileWriter) vint(v uint64) {
	var tmp [10]byte
	i := len(tmp) - 1
	tmp[i] = 0x80 | byte(v&0x3f)
	v >>= 6
	for v > 0 {
		i--
		tmp[i] = byte(v & 0x7f)
		v >>= 7
	}
	w.b.Write(tmp[i:])
}

func (w *smileWriter) value(v any) error {
	switch v := v.(type) {
	case nil:
		w.b.WriteByte(0x21)
	case bool:
		w.b.WriteByte(map[bool]byte{false: 0x22, true: 0x23}[v])
	case json.Number:
		if n, err := v.Int64(); err == nil {
			switch {
			case n >= -16 && n <= 15:
				w.b.WriteByte(0xc0 | byte(uint32(n<<1^n>>31)&0x1f))
			case n >= math.MinInt32 && n <= math.MaxInt32:
				w.b.WriteByte(0x24)
				w.vint(uint64(uint32(int32(n)<<1 ^ int32(n)>>31)))
			default:
				w.b.WriteByte(0x25)
				w.vint(uint64(n<<1 ^ n>>63))
			}
			return nil
		}
		f, err := v.Float64()
		if err != nil {
			return err
		}
		w.b.WriteByte(0x29)
		bits := math.Float64bits(f)
		for shift := 63; shift >= 0; shift -= 7 {
			w.b.WriteByte(byte(bits>>uint(shift)) & 0x7f)
		}
	case string:
		w.text(v)
	case []any:
		w.b.WriteByte(0xf8)
		for _, e := range v {
			if err := w.value(e); err != nil {
				return err
			}
		}
		w.b.WriteByte(0xf9)
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		w.b.WriteByte(0xfa)
		for _, k := range keys {
			w.key(k)
			if err := w.value(v[k]); err != nil {
				return err
			}
		}
		w.b.WriteByte(0xfb)
	default:
		return fmt.Errorf("smile: cannot encode %T", v)
	}
	return nil
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func (w *smileWriter) text(s string) {
	n, ascii := len(s), isASCII(s)
	switch {
	case n == 0:
		w.b.WriteByte(0x20)
		return
	case ascii && n <= 32:
		w.b.WriteByte(0x40 + byte(n-1))
	case ascii && n <= 64:
		w.b.WriteByte(0x60 + byte(n-33))
	case !ascii && n <= 33:
		w.b.WriteByte(0x80 + byte(n-2))
	case !ascii && n <= 64:
		w.b.WriteByte(0xa0 + byte(n-34))
	default:
		w.b.WriteByte(map[bool]byte{true: 0xe0, false: 0xe4}[ascii])
		w.b.WriteString(s)
		w.b.WriteByte(0xfc)
		return
	}
	w.b.WriteString(s)
}

func (w *smileWriter) key(k string) {
	if k == "" {
		w.b.WriteByte(0x20)
		return
	}
	if i, ok := w.names[k]; ok {
		if i < 64 {
			w.b.WriteByte(0x40 | byte(i))
		} else {
			w.b.WriteByte(0x30 | byte(i>>8))
			w.b.WriteByte(byte(i))
		}
		return
	}
	n, ascii := len(k), isASCII(k)
	switch {
	case ascii && n <= 64:
		w.b.WriteByte(0x80 + byte(n-1))
		w.b.WriteString(k)
	case !ascii && n <= 57:
		w.b.WriteByte(0xc0 + byte(n-2))
		w.b.WriteString(k)
	default:
		w.b.WriteByte(0x34)
		w.b.WriteString(k)
		w.b.WriteByte(0xfc)
	}
	if len(w.names) == smileMaxSharedNames {
		clear(w.names)
	}
	w.names[k] = len(w.names)
}

// smileReader reads back what smileWriter writes.
type smileReader struct {
	p     []byte
	names []string
}

var errSmile = errors.New("smile: unexpected input")

// fromSmile decodes a document toSmile wrote into v, through JSON.
func fromSmile(doc []byte, v any) error {
	if len(doc) < 4 || !bytes.HasPrefix(doc, []byte(":)\n")) || doc[3] != smileFlags {
		return fmt.Errorf("%w: header", errSmile)
	}
	r := &smileReader{p: doc[4:]}
	tree, err := r.value(0)
	if err != nil {
		return err
	}
	js, err := json.Marshal(tree)
	if err != nil {
		return err
	}
	return json.Unmarshal(js, v)
}

func (r *smileReader) next() (byte, error) {
	if len(r.p) == 0 {
		return 0, fmt.Errorf("%w: truncated", errSmile)
	}
	c := r.p[0]
	r.p = r.p[1:]
	return c, nil
}

func (r *smileReader) bytes(n int) (string, error) {
	if n > len(r.p) {
		return "", fmt.Errorf("%w: truncated", errSmile)
	}
	s := string(r.p[:n])
	r.p = r.p[n:]
	if !utf8.ValidString(s) {
		return "", fmt.Errorf("%w: not UTF-8", errSmile)
	}
	return s, nil
}

func (r *smileReader) untilEnd() (string, error) {
	i := bytes.IndexByte(r.p, 0xfc)
	if i < 0 {
		return "", fmt.Errorf("%w: unterminated string", errSmile)
	}
	s, err := r.bytes(i)
	r.p = r.p[1:]
	return s, err
}

func (r *smileReader) vint() (uint64, error) {
	var v uint64
	for i := 0; i < 10; i++ {
		c, err := r.next()
		if err != nil {
			return 0, err
		}
		if c&0x80 != 0 {
			return v<<6 | uint64(c&0x3f), nil
		}
		v = v<<7 | uint64(c)
	}
	return 0, fmt.Errorf("%w: vint", errSmile)
}

func (r *smileReader) value(depth int) (any, error) {
	if depth > 100 {
		return nil, fmt.Errorf("%w: too deep", errSmile)
	}
	c, err := r.next()
	if err != nil {
		return nil, err
	}
	switch {
	case c == 0x20:
		return "", nil
	case c == 0x21:
		return nil, nil
	case c == 0x22, c == 0x23:
		return c == 0x23, nil
	case c == 0x24, c == 0x25:
		u, err := r.vint()
		return int64(u>>1) ^ -int64(u&1), err
	case c == 0x29:
		if len(r.p) < 10 {
			return nil, fmt.Errorf("%w: truncated double", errSmile)
		}
		var bits uint64
		for _, b := range r.p[:10] {
			bits = bits<<7 | uint64(b)
		}
		r.p = r.p[10:]
		return math.Float64frombits(bits), nil
	case c >= 0x40 && c <= 0x5f:
		return r.bytes(int(c-0x40) + 1)
	case c >= 0x60 && c <= 0x7f:
		return r.bytes(int(c-0x60) + 33)
	case c >= 0x80 && c <= 0x9f:
		return r.bytes(int(c-0x80) + 2)
	case c >= 0xa0 && c <= 0xbf:
		return r.bytes(int(c-0xa0) + 34)
	case c >= 0xc0 && c <= 0xdf:
		u := uint64(c & 0x1f)
		return int64(u>>1) ^ -int64(u&1), nil
	case c == 0xe0, c == 0xe4:
		return r.untilEnd()
	case c == 0xf8:
		out := []any{}
		for len(r.p) > 0 && r.p[0] != 0xf9 {
			v, err := r.value(depth + 1)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		_, err := r.next()
		return out, err
	case c == 0xfa:
		return r.object(depth)
	}
	return nil, fmt.Errorf("%w: token 0x%02x", errSmile, c)
}

func (r *smileReader) object(depth int) (any, error) {
	out := map[string]any{}
	for {
		c, err := r.next()
		if err != nil {
			return nil, err
		}
		var k string
		switch {
		case c == 0xfb:
			return out, nil
		case c == 0x20:
		case c >= 0x30 && c <= 0x33:
			lo, err := r.next()
			if err != nil {
				return nil, err
			}
			if k, err = r.shared(int(binary.BigEndian.Uint16([]byte{c & 3, lo}))); err != nil {
				return nil, err
			}
		case c >= 0x40 && c <= 0x7f:
			if k, err = r.shared(int(c & 0x3f)); err != nil {
				return nil, err
			}
		default:
			switch {
			case c == 0x34:
				k, err = r.untilEnd()
			case c >= 0x80 && c <= 0xbf:
				k, err = r.bytes(int(c-0x80) + 1)
			case c >= 0xc0 && c <= 0xf7:
				k, err = r.bytes(int(c-0xc0) + 2)
			default:
				return nil, fmt.Errorf("%w: key token 0x%02x", errSmile, c)
			}
			if err != nil {
				return nil, err
			}
			if len(r.names) == smileMaxSharedNames {
				r.names = r.names[:0]
			}
			r.names = append(r.names, k)
		}
		v, err := r.value(depth + 1)
		if err != nil {
			return nil, err
		}
		out[k] = v
	}
}

func (r *smileReader) shared(i int) (string, error) {
	if i >= len(r.names) {
		return "", fmt.Errorf("%w: shared name %d", errSmile, i)
	}
	return r.names[i], nil
}
