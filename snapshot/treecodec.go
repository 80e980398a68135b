package snapshot

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io/fs"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/cairn-backup/cairn/chunk"
)

// The tree encoding, written and read by hand. It is the JSON that
// encoding/json writes for wireTree (fields in declaration order, HTML not
// escaped, a final newline), byte for byte; TestEncodeMatchesJSON and
// FuzzTreeCodec hold the two together. encoding/json spent about 5 µs a
// node on a tree (reflection, and a decode of every encoded tree to check
// it): 9 of the 15 CPU-seconds of an unchanged backup of a million files.

// nodeSizeGuess is about what a file node takes besides its name and
// content IDs, to size the encoding buffer.
const nodeSizeGuess = 200

// appendNode appends the encoding of n.
func appendNode(b []byte, n *Node) ([]byte, error) {
	name, nameRaw := splitRaw(n.Name)
	b = append(b, `{"name":`...)
	b = appendString(b, name)
	b = append(b, `,"type":`...)
	b = appendString(b, string(n.Type))
	b = append(b, `,"mode":`...)
	b = strconv.AppendUint(b, uint64(n.Mode), 10)
	b = append(b, `,"mtime":`...)
	b, err := appendTime(b, n.ModTime)
	if err != nil {
		return nil, err
	}
	if !n.ChangeTime.IsZero() {
		b = append(b, `,"ctime":`...)
		if b, err = appendTime(b, n.ChangeTime); err != nil {
			return nil, err
		}
	}
	b = appendUintField(b, `,"inode":`, n.Inode)
	b = appendUintField(b, `,"dev":`, n.DeviceID)
	b = appendUintField(b, `,"uid":`, uint64(n.UID))
	b = appendUintField(b, `,"gid":`, uint64(n.GID))
	b = appendUintField(b, `,"size":`, n.Size)
	target, targetRaw := splitRaw(n.LinkTarget)
	if target != "" {
		b = append(b, `,"linktarget":`...)
		b = appendString(b, target)
	}
	if len(n.Content) > 0 {
		b = append(b, `,"content":[`...)
		for i := range n.Content {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendID(b, &n.Content[i])
		}
		b = append(b, ']')
	}
	if n.Subtree != nil {
		b = append(b, `,"subtree":`...)
		b = appendID(b, n.Subtree)
	}
	if n.Inconsistent {
		b = append(b, `,"inconsistent":true`...)
	}
	b = appendUintField(b, `,"rdev":`, n.Rdev)
	hardLink, hardLinkRaw := splitRaw(n.HardLink)
	if hardLink != "" {
		b = append(b, `,"hardlink":`...)
		b = appendString(b, hardLink)
	}
	b = appendRaw(b, `,"name_raw":`, nameRaw)
	b = appendRaw(b, `,"linktarget_raw":`, targetRaw)
	b = appendRaw(b, `,"hardlink_raw":`, hardLinkRaw)
	return append(b, '}'), nil
}

func appendUintField(b []byte, key string, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = append(b, key...)
	return strconv.AppendUint(b, v, 10)
}

func appendRaw(b []byte, key string, raw []byte) []byte {
	if len(raw) == 0 {
		return b
	}
	b = append(b, key...)
	b = append(b, '"')
	b = base64.StdEncoding.AppendEncode(b, raw)
	return append(b, '"')
}

const hexDigits = "0123456789abcdef"

func appendID(b []byte, id *chunk.ID) []byte {
	b = append(b, '"')
	for _, c := range id {
		b = append(b, hexDigits[c>>4], hexDigits[c&0xf])
	}
	return append(b, '"')
}

// errTimeRange is what time.Time's MarshalJSON refuses: a year that RFC
// 3339 cannot write.
var errTimeRange = errors.New("time: year outside of range [0,9999]")

// appendTime writes t as time.Time's MarshalJSON does, in UTC.
func appendTime(b []byte, t time.Time) ([]byte, error) {
	t = t.UTC()
	if y := t.Year(); y < 0 || y > 9999 {
		return nil, errTimeRange
	}
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"'), nil
}

// plainString reports whether encoding/json writes s as it is between
// quotes: printable ASCII but the quote and the backslash, and valid UTF-8
// but U+2028 and U+2029 (escaped for JavaScript's sake).
func plainString[S string | []byte](s S) bool {
	ascii := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == '"' || c == '\\' {
			return false
		}
		if c >= utf8.RuneSelf {
			ascii = false
		}
	}
	if ascii {
		return true
	}
	// U+2028 and U+2029 are E2 80 A8 and E2 80 A9.
	for i := 0; i+2 < len(s); i++ {
		if s[i] == 0xe2 && s[i+1] == 0x80 && (s[i+2] == 0xa8 || s[i+2] == 0xa9) {
			return false
		}
	}
	return utf8.Valid([]byte(s))
}

// appendString writes s as a JSON string the way encoding/json does with
// HTML escaping off. A string that needs escaping, rare in names, is left
// to encoding/json itself.
func appendString(b []byte, s string) []byte {
	if plainString(s) {
		b = append(b, '"')
		b = append(b, s...)
		return append(b, '"')
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	return append(b, bytes.TrimSuffix(buf.Bytes(), []byte("\n"))...)
}

// decodeExact decodes data if it is exactly what Encode writes with every
// string plain (no escapes) and no raw names; ok is false for anything
// else, including JSON that encoding/json would accept and Encode would
// write differently (another key order, a zero field written out, another
// time zone, whitespace). Such a tree is decoded through encoding/json.
// ok therefore also proves that Encode of the nodes gives data back.
// Names are sorted and valid only once checkNodes has seen them.
func decodeExact(data []byte) (nodes []Node, ok bool) {
	p := parser{b: data}
	if !p.lit(`{"nodes":[`) {
		return nil, false
	}
	nodes = make([]Node, 0, bytes.Count(data, []byte(`{"name":`)))
	if p.lit("]}\n") {
		return nodes, p.i == len(data)
	}
	for {
		var n Node
		if !p.node(&n) {
			return nil, false
		}
		nodes = append(nodes, n)
		if p.lit(",") {
			continue
		}
		if p.lit("]}\n") && p.i == len(data) {
			return nodes, true
		}
		return nil, false
	}
}

// parser reads the tree encoding at b[i:]. Each method consumes what it
// accepts and reports whether it did; a false aborts the whole decode, so
// nothing is undone.
type parser struct {
	b []byte
	i int
	// ids is where content IDs go: one allocation for many files
	// instead of one a file.
	ids []chunk.ID
}

func (p *parser) lit(s string) bool {
	if len(p.b)-p.i >= len(s) && string(p.b[p.i:p.i+len(s)]) == s {
		p.i += len(s)
		return true
	}
	return false
}

func (p *parser) node(n *Node) bool {
	if !p.lit(`{"name":`) {
		return false
	}
	name, ok := p.str()
	if !ok || !p.lit(`,"type":"`) {
		return false
	}
	// The types a tree holds, without allocating their names; another
	// type is left to encoding/json (and refused after it).
	switch {
	case p.lit(`file"`):
		n.Type = File
	case p.lit(`dir"`):
		n.Type = Dir
	case p.lit(`symlink"`):
		n.Type = Symlink
	case p.lit(`fifo"`):
		n.Type = Fifo
	case p.lit(`chardev"`):
		n.Type = CharDev
	case p.lit(`blockdev"`):
		n.Type = BlockDev
	default:
		return false
	}
	n.Name = string(name)
	if !p.lit(`,"mode":`) {
		return false
	}
	mode, ok := p.uint(true)
	if !ok || mode > 1<<32-1 {
		return false
	}
	n.Mode = fs.FileMode(mode)
	if !p.lit(`,"mtime":`) {
		return false
	}
	if n.ModTime, ok = p.time(); !ok {
		return false
	}
	if p.lit(`,"ctime":`) {
		if n.ChangeTime, ok = p.time(); !ok || n.ChangeTime.IsZero() {
			return false
		}
	}
	var uid, gid uint64
	if !p.uintField(`,"inode":`, &n.Inode) || !p.uintField(`,"dev":`, &n.DeviceID) ||
		!p.uintField(`,"uid":`, &uid) || !p.uintField(`,"gid":`, &gid) ||
		!p.uintField(`,"size":`, &n.Size) || uid > 1<<32-1 || gid > 1<<32-1 {
		return false
	}
	n.UID, n.GID = uint32(uid), uint32(gid)
	if p.lit(`,"linktarget":`) {
		s, ok := p.str()
		if !ok || len(s) == 0 {
			return false
		}
		n.LinkTarget = string(s)
	}
	if p.lit(`,"content":[`) {
		start := len(p.ids)
		for {
			var id chunk.ID
			if !p.id(&id) {
				return false
			}
			p.ids = append(p.ids, id)
			if p.lit("]") {
				break
			}
			if !p.lit(",") {
				return false
			}
		}
		n.Content = p.takeIDs(start)
	}
	if p.lit(`,"subtree":`) {
		n.Subtree = new(chunk.ID)
		if !p.id(n.Subtree) {
			return false
		}
	}
	if p.lit(`,"inconsistent":true`) {
		n.Inconsistent = true
	}
	if !p.uintField(`,"rdev":`, &n.Rdev) {
		return false
	}
	if p.lit(`,"hardlink":`) {
		s, ok := p.str()
		if !ok || len(s) == 0 {
			return false
		}
		n.HardLink = string(s)
	}
	return p.lit("}")
}

// idChunk is how many content IDs one allocation holds (8 KiB).
const idChunk = 256

// takeIDs returns the IDs appended since start as a slice of their own
// capacity (an append to one never reaches the next file's), and keeps
// the rest of the buffer for the next file.
func (p *parser) takeIDs(start int) []chunk.ID {
	ids := p.ids[start:len(p.ids):len(p.ids)]
	if cap(p.ids)-len(p.ids) == 0 {
		p.ids = make([]chunk.ID, 0, idChunk)
	} else {
		p.ids = p.ids[len(p.ids):]
	}
	return ids
}

// str reads a plain string (see plainString), without its quotes.
func (p *parser) str() ([]byte, bool) {
	if !p.lit(`"`) {
		return nil, false
	}
	end := bytes.IndexByte(p.b[p.i:], '"')
	if end < 0 {
		return nil, false
	}
	s := p.b[p.i : p.i+end]
	if !plainString(s) {
		return nil, false
	}
	p.i += end + 1
	return s, true
}

// uint reads a decimal number as strconv.AppendUint writes it; a zero
// only when zeroOK (a field with omitempty is never written as 0).
func (p *parser) uint(zeroOK bool) (uint64, bool) {
	start := p.i
	var v uint64
	for p.i < len(p.b) && '0' <= p.b[p.i] && p.b[p.i] <= '9' {
		d := uint64(p.b[p.i] - '0')
		if v > (1<<64-1-d)/10 {
			return 0, false
		}
		v = v*10 + d
		p.i++
	}
	switch n := p.i - start; {
	case n == 0:
		return 0, false
	case p.b[start] == '0':
		return 0, zeroOK && n == 1
	}
	return v, true
}

// uintField reads key and a non-zero number into v, if key comes next.
func (p *parser) uintField(key string, v *uint64) bool {
	if !p.lit(key) {
		return true
	}
	var ok bool
	*v, ok = p.uint(false)
	return ok
}

// hexVal maps a lowercase hex digit to its value, anything else to 0xff.
var hexVal = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for i := range 16 {
		t[hexDigits[i]] = byte(i)
	}
	return t
}()

// id reads a quoted ID in lowercase hex.
func (p *parser) id(id *chunk.ID) bool {
	if len(p.b)-p.i < 2*len(id)+2 || p.b[p.i] != '"' || p.b[p.i+2*len(id)+1] != '"' {
		return false
	}
	h := p.b[p.i+1:]
	for j := range id {
		hi, lo := hexVal[h[2*j]], hexVal[h[2*j+1]]
		if hi|lo == 0xff {
			return false
		}
		id[j] = hi<<4 | lo
	}
	p.i += 2*len(id) + 2
	return true
}

// time reads a quoted time as appendTime writes it, and only that form:
// UTC ("Z"), every field in range (time.Date would carry a 30 February
// over into March, and AppendFormat would then write another date), and
// a fraction only when not zero, without trailing zeros. Checking the
// fields took a third of the time that writing the time back and
// comparing did, which was a third of decoding a tree.
func (p *parser) time() (time.Time, bool) {
	s, ok := p.str()
	// 2006-01-02T15:04:05Z, or with a fraction: 2006-01-02T15:04:05.5Z.
	if !ok || len(s) < 20 || len(s) > 30 || len(s) == 21 || s[len(s)-1] != 'Z' ||
		s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' {
		return time.Time{}, false
	}
	num := func(b []byte) int {
		v := 0
		for _, c := range b {
			if c < '0' || c > '9' {
				return -1
			}
			v = v*10 + int(c-'0')
		}
		return v
	}
	year, month, day := num(s[0:4]), num(s[5:7]), num(s[8:10])
	hour, minute, sec := num(s[11:13]), num(s[14:16]), num(s[17:19])
	if year < 0 || month < 1 || month > 12 || day < 1 || day > daysIn(month, year) ||
		hour < 0 || hour > 23 || minute < 0 || minute > 59 || sec < 0 || sec > 59 {
		return time.Time{}, false
	}
	nsec := 0
	if frac := s[19 : len(s)-1]; len(frac) > 0 {
		if frac[0] != '.' || frac[len(frac)-1] == '0' {
			return time.Time{}, false
		}
		if nsec = num(frac[1:]); nsec < 0 {
			return time.Time{}, false
		}
		for range 10 - len(frac) {
			nsec *= 10
		}
	}
	return time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC), true
}

// daysIn is the number of days of month in year (proleptic Gregorian, as
// package time counts).
func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}
