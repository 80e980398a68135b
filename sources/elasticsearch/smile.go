package elasticsearch

import (
	"errors"
	"fmt"
	"math"
	"unicode/utf8"
)

// SMILE is Jackson's binary JSON; Elasticsearch writes the payload of its
// metadata blobs (snap-*.dat, meta-*.dat, shard index-*) in it. The decoder
// below reads what Jackson's SmileGenerator writes (format version 0, with
// or without shared names, shared values and raw binary) into the values
// encoding/json would produce: map[string]any, []any, string, int64,
// float64, bool, nil. Binary values and big numbers, which no field cairn
// reads holds, decode to nil. Every length is checked against the bytes
// left before anything is allocated, and nesting is bounded, so a damaged
// blob cannot make cairn allocate without bound or crash.

var errSmile = errors.New("elasticsearch: not a valid SMILE document")

const (
	smileMaxDepth  = 64
	smileMaxShared = 1024 // Jackson resets a shared-string table when it is full
	smileMaxShort  = 64   // only strings of at most 64 bytes are shared values
	// smileMaxValues bounds the values of one document: each costs up to
	// ~100 bytes decoded against 1 byte encoded. A shard index file of
	// 1,000 snapshots of 300 files each holds about 400,000.
	smileMaxValues = 4 << 20
)

// smileHeader starts every SMILE document Elasticsearch writes (":)\n").
var smileHeader = []byte{':', ')', '\n'}

type smileDecoder struct {
	p            []byte
	off          int
	sharedNames  bool
	sharedValues bool
	names        []string
	values       []string
	count        int // values decoded
}

// decodeSmile decodes one SMILE document that starts with the header.
func decodeSmile(p []byte) (any, error) {
	if len(p) < 4 || p[0] != ':' || p[1] != ')' || p[2] != '\n' {
		return nil, fmt.Errorf("%w: no header", errSmile)
	}
	flags := p[3]
	if flags>>4 != 0 {
		return nil, fmt.Errorf("%w: format version %d", errSmile, flags>>4)
	}
	d := &smileDecoder{p: p, off: 4, sharedNames: flags&1 != 0, sharedValues: flags&2 != 0}
	v, err := d.value(0)
	if err != nil {
		return nil, fmt.Errorf("%w at byte %d: %v", errSmile, d.off, err)
	}
	return v, nil
}

func (d *smileDecoder) byte() (byte, error) {
	if d.off >= len(d.p) {
		return 0, errors.New("truncated")
	}
	b := d.p[d.off]
	d.off++
	return b, nil
}

func (d *smileDecoder) take(n int) ([]byte, error) {
	if n < 0 || n > len(d.p)-d.off {
		return nil, fmt.Errorf("length %d exceeds the %d bytes left", n, len(d.p)-d.off)
	}
	b := d.p[d.off : d.off+n]
	d.off += n
	return b, nil
}

// vint reads SMILE's variable-length unsigned integer: 7 bits in each byte
// with the high bit clear, the last byte flagged by its high bit and
// carrying 6 bits.
func (d *smileDecoder) vint(maxBytes int) (uint64, error) {
	var v uint64
	for i := 0; i < maxBytes; i++ {
		b, err := d.byte()
		if err != nil {
			return 0, err
		}
		if b&0x80 != 0 {
			return v<<6 | uint64(b&0x3f), nil
		}
		v = v<<7 | uint64(b)
	}
	return 0, errors.New("variable-length integer too long")
}

func zigzag(u uint64) int64 { return int64(u>>1) ^ -int64(u&1) }

// fixed7 reads n bytes of 7 bits each (floats and doubles).
func (d *smileDecoder) fixed7(n int) (uint64, error) {
	b, err := d.take(n)
	if err != nil {
		return 0, err
	}
	var v uint64
	for _, c := range b {
		if c&0x80 != 0 {
			return 0, errors.New("bad 7-bit group")
		}
		v = v<<7 | uint64(c)
	}
	return v, nil
}

// skip7bit skips 7-bit encoded binary of n raw bytes: 8 bytes for every 7,
// and r+1 bytes for a remainder of r.
func (d *smileDecoder) skip7bit(n uint64) error {
	enc := n/7*8 + n%7
	if n%7 != 0 {
		enc++
	}
	if n > uint64(len(d.p)) || enc > uint64(len(d.p)-d.off) {
		return fmt.Errorf("binary of %d bytes exceeds the input", n)
	}
	d.off += int(enc)
	return nil
}

// text reads a string of n bytes.
func (d *smileDecoder) text(n int) (string, error) {
	b, err := d.take(n)
	if err != nil {
		return "", err
	}
	if !utf8.Valid(b) {
		return "", errors.New("string is not UTF-8")
	}
	return string(b), nil
}

// untilEnd reads a string terminated by 0xFC (which UTF-8 never holds).
func (d *smileDecoder) untilEnd() (string, error) {
	for i := d.off; i < len(d.p); i++ {
		if d.p[i] == 0xFC {
			s, err := d.text(i - d.off)
			d.off++
			return s, err
		}
	}
	return "", errors.New("unterminated long string")
}

func remember(table []string, s string) []string {
	if len(table) == smileMaxShared {
		table = table[:0]
	}
	return append(table, s)
}

func (d *smileDecoder) shortValue(n int) (string, error) {
	s, err := d.text(n)
	if err == nil && d.sharedValues && n <= smileMaxShort {
		d.values = remember(d.values, s)
	}
	return s, err
}

func (d *smileDecoder) sharedValue(i int) (string, error) {
	if i >= len(d.values) {
		return "", fmt.Errorf("shared value %d not defined", i)
	}
	return d.values[i], nil
}

func (d *smileDecoder) value(depth int) (any, error) {
	if depth > smileMaxDepth {
		return nil, errors.New("nested too deeply")
	}
	if d.count++; d.count > smileMaxValues {
		return nil, fmt.Errorf("more than %d values", smileMaxValues)
	}
	b, err := d.byte()
	if err != nil {
		return nil, err
	}
	switch {
	case b >= 0x01 && b <= 0x1f:
		return d.sharedValue(int(b) - 1)
	case b == 0x20:
		return "", nil
	case b == 0x21:
		return nil, nil
	case b == 0x22:
		return false, nil
	case b == 0x23:
		return true, nil
	case b == 0x24:
		u, err := d.vint(5)
		return zigzag(u), err
	case b == 0x25:
		u, err := d.vint(10)
		return zigzag(u), err
	case b == 0x26: // BigInteger: length, then 7-bit binary
		n, err := d.vint(5)
		if err != nil {
			return nil, err
		}
		return nil, d.skip7bit(n)
	case b == 0x28:
		u, err := d.fixed7(5)
		return float64(math.Float32frombits(uint32(u))), err
	case b == 0x29:
		u, err := d.fixed7(10)
		return math.Float64frombits(u), err
	case b == 0x2a: // BigDecimal: scale, length, 7-bit binary
		if _, err := d.vint(5); err != nil {
			return nil, err
		}
		n, err := d.vint(5)
		if err != nil {
			return nil, err
		}
		return nil, d.skip7bit(n)
	case b >= 0x40 && b <= 0x5f:
		return d.shortValue(int(b&0x1f) + 1)
	case b >= 0x60 && b <= 0x7f:
		return d.shortValue(int(b&0x1f) + 33)
	case b >= 0x80 && b <= 0x9f:
		return d.shortValue(int(b&0x1f) + 2)
	case b >= 0xa0 && b <= 0xbf:
		return d.shortValue(int(b&0x1f) + 34)
	case b >= 0xc0 && b <= 0xdf:
		return zigzag(uint64(b & 0x1f)), nil
	case b == 0xe0 || b == 0xe4:
		return d.untilEnd()
	case b == 0xe8:
		n, err := d.vint(10)
		if err != nil {
			return nil, err
		}
		return nil, d.skip7bit(n)
	case b >= 0xec && b <= 0xef:
		lo, err := d.byte()
		if err != nil {
			return nil, err
		}
		return d.sharedValue(int(b&3)<<8 | int(lo))
	case b == 0xf8:
		return d.array(depth)
	case b == 0xfa:
		return d.object(depth)
	case b == 0xfd:
		n, err := d.vint(10)
		if err != nil {
			return nil, err
		}
		if n > uint64(len(d.p)-d.off) {
			return nil, fmt.Errorf("binary of %d bytes exceeds the input", n)
		}
		d.off += int(n)
		return nil, nil
	}
	return nil, fmt.Errorf("unexpected value token 0x%02x", b)
}

func (d *smileDecoder) array(depth int) (any, error) {
	out := []any{}
	for {
		if d.off < len(d.p) && d.p[d.off] == 0xf9 {
			d.off++
			return out, nil
		}
		v, err := d.value(depth + 1)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
}

func (d *smileDecoder) object(depth int) (any, error) {
	out := map[string]any{}
	for {
		k, end, err := d.key()
		if err != nil {
			return nil, err
		}
		if end {
			return out, nil
		}
		v, err := d.value(depth + 1)
		if err != nil {
			return nil, err
		}
		out[k] = v
	}
}

func (d *smileDecoder) sharedName(i int) (string, error) {
	if i >= len(d.names) {
		return "", fmt.Errorf("shared name %d not defined", i)
	}
	return d.names[i], nil
}

func (d *smileDecoder) newName(s string, err error) (string, bool, error) {
	if err == nil && d.sharedNames {
		d.names = remember(d.names, s)
	}
	return s, false, err
}

// key reads a field name; end is true at the end of the object.
func (d *smileDecoder) key() (string, bool, error) {
	b, err := d.byte()
	if err != nil {
		return "", false, err
	}
	switch {
	case b == 0xfb:
		return "", true, nil
	case b == 0x20:
		return "", false, nil
	case b >= 0x30 && b <= 0x33:
		lo, err := d.byte()
		if err != nil {
			return "", false, err
		}
		s, err := d.sharedName(int(b&3)<<8 | int(lo))
		return s, false, err
	case b == 0x34:
		return d.newName(d.untilEnd())
	case b >= 0x40 && b <= 0x7f:
		s, err := d.sharedName(int(b & 0x3f))
		return s, false, err
	case b >= 0x80 && b <= 0xbf:
		return d.newName(d.text(int(b&0x3f) + 1))
	case b >= 0xc0 && b <= 0xf7:
		return d.newName(d.text(int(b&0x3f) + 2))
	}
	return "", false, fmt.Errorf("unexpected key token 0x%02x", b)
}
