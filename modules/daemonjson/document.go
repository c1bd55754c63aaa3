package daemonjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/dockward/dockward/agent"
)

// The functions in this file are pure: they turn bytes and desired keys
// into documents, documents into bytes and changes, and touch nothing.

// Member is one top-level key of daemon.json and its value's JSON text, as
// it was in the file (for kept keys) or as dockward writes it (for managed
// ones).
type Member struct {
	Key   string
	Value json.RawMessage
}

// Document is a daemon.json object with its top-level keys in file order.
// A key may appear more than once in a file; dockerd (encoding/json) uses
// the last occurrence, and so does Lookup.
type Document struct {
	Members []Member
}

// Lookup returns the value dockerd would see for key: its last occurrence.
func (d *Document) Lookup(key string) (json.RawMessage, bool) {
	for i := len(d.Members) - 1; i >= 0; i-- {
		if d.Members[i].Key == key {
			return d.Members[i].Value, true
		}
	}
	return nil, false
}

// Keys returns the distinct keys in file order (first occurrence).
func (d *Document) Keys() []string {
	seen := map[string]bool{}
	var ks []string
	for _, m := range d.Members {
		if !seen[m.Key] {
			seen[m.Key] = true
			ks = append(ks, m.Key)
		}
	}
	return ks
}

// SyntaxError says where an existing daemon.json is not a JSON object.
type SyntaxError struct {
	Line, Column int // 1-based; Column counts characters
	Msg          string
}

func (e *SyntaxError) Error() string { return fmt.Sprintf("%d:%d: %s", e.Line, e.Column, e.Msg) }

var utf8BOM = []byte("\xef\xbb\xbf")

// Limits on a daemon.json, far above any dockerd configuration (a few KB;
// its deepest settings, builder garbage-collection policies, nest six
// levels): a file beyond them is refused as not valid rather than read.
// At the limits a plan takes 18 MB RSS (with 1 MiB, a file of numbers: 88 MB,
// too close to the resident agent's MemoryMax of 128 MB).
const (
	MaxDocumentSize  = 256 << 10
	MaxDocumentDepth = 32
)

// jsonShape scans JSON text for its nesting: the offset of the first
// bracket or brace that opens a level deeper than MaxDocumentDepth (or of
// the deepest level's first one), and the depth reached. Strings are
// skipped; the text need not be valid.
func jsonShape(data []byte) (at, depth int) {
	d := 0
	inString := false
	for i := 0; i < len(data); i++ {
		c := data[i]
		switch {
		case inString && c == '\\':
			i++
		case inString:
			inString = c != '"'
		case c == '"':
			inString = true
		case c == '[' || c == '{':
			d++
			if d > depth {
				at, depth = i, d
				if depth > MaxDocumentDepth {
					return at, depth
				}
			}
		case c == ']' || c == '}':
			d--
		}
	}
	return at, depth
}

// Parse reads a daemon.json. It keeps the top-level keys in order and each
// value's bytes as written, so that keys dockward does not manage can be
// written back unchanged. An empty (or all-whitespace) file is an empty
// object, as dockerd reads it. Anything else that is not one JSON object is
// a *SyntaxError with its line and column, and so is a file larger than
// MaxDocumentSize or nested deeper than MaxDocumentDepth.
func Parse(data []byte) (*Document, error) {
	// dockerd accepts a UTF-8 byte order mark (moby#21394); editors on other
	// systems write one.
	data = bytes.TrimPrefix(data, utf8BOM)
	if len(data) > MaxDocumentSize {
		return nil, &SyntaxError{Line: 1, Column: 1, Msg: fmt.Sprintf(
			"the file is %d bytes, larger than the %d (256 KiB) dockward reads; dockerd's configuration is a few KB", len(data), MaxDocumentSize)}
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return &Document{}, nil
	}
	// Before decoding: encoding/json allows 10,000 levels, and re-indenting
	// a deep value costs its depth on every line.
	if at, depth := jsonShape(data); depth > MaxDocumentDepth {
		return nil, syntaxErrorAt(data, at, fmt.Sprintf(
			"nested more than %d levels deep; dockerd's settings nest a few", MaxDocumentDepth))
	}
	// Validate the whole input first: Unmarshal reports the offset in data
	// of the first problem, including trailing garbage after the object.
	var whole json.RawMessage
	if err := json.Unmarshal(data, &whole); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			// Offset counts the bytes read, the offending one included; at
			// the end of the input it is the length.
			at := int(se.Offset)
			if at > 0 && at <= len(data) && !strings.HasPrefix(se.Error(), "unexpected end") {
				at--
			}
			return nil, syntaxErrorAt(data, at, se.Error())
		}
		return nil, err
	}
	start := len(data) - len(bytes.TrimLeft(data, " \t\r\n"))
	if data[start] != '{' {
		return nil, syntaxErrorAt(data, start, fmt.Sprintf("daemon.json must hold a JSON object ({...}), not %s", jsonKind(data[start])))
	}

	doc := &Document{}
	dec := json.NewDecoder(bytes.NewReader(data))
	if _, err := dec.Token(); err != nil { // '{'
		return nil, err
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, ok := tok.(string)
		if !ok {
			return nil, fmt.Errorf("unexpected %v where a key belongs", tok)
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, err
		}
		doc.Members = append(doc.Members, Member{Key: key, Value: raw})
	}
	if _, err := dec.Token(); err != nil { // '}'
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("data after the object")
	}
	return doc, nil
}

func jsonKind(c byte) string {
	switch c {
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a bool"
	case 'n':
		return "null"
	}
	return "a number"
}

func syntaxErrorAt(data []byte, at int, msg string) *SyntaxError {
	if at > len(data) {
		at = len(data)
	}
	before := data[:at]
	line := bytes.Count(before, []byte("\n")) + 1
	lineStart := bytes.LastIndexByte(before, '\n') + 1
	return &SyntaxError{Line: line, Column: utf8.RuneCount(before[lineStart:]) + 1, Msg: msg}
}

// Merge returns the document dockward wants: every managed key set to its
// desired value, an existing key changed in place (earlier duplicates of it
// dropped), a new one appended in the order given; a key no longer desired
// removed only if owned says dockward wrote it and it still holds the value
// dockward wrote (an operator's later edit makes it theirs). Every other
// member is kept as it was, bytes included. A managed key whose value is
// already semantically right keeps its bytes, so formatting alone never
// causes a rewrite.
func Merge(doc *Document, desired []Member, owned map[string]json.RawMessage) *Document {
	want := make(map[string]json.RawMessage, len(desired))
	for _, m := range desired {
		want[m.Key] = m.Value
	}
	last := map[string]int{}
	count := map[string]int{}
	for i, m := range doc.Members {
		last[m.Key] = i
		count[m.Key]++
	}
	out := &Document{Members: make([]Member, 0, len(doc.Members)+len(desired))}
	for i, m := range doc.Members {
		if v, ok := want[m.Key]; ok {
			if i != last[m.Key] {
				continue // an earlier duplicate; dockerd never saw it
			}
			if !Equal(m.Value, v) {
				m = Member{Key: m.Key, Value: v}
			}
			out.Members = append(out.Members, m)
			continue
		}
		if ov, ok := owned[m.Key]; ok && count[m.Key] == 1 && Equal(m.Value, ov) {
			continue
		}
		out.Members = append(out.Members, m)
	}
	for _, d := range desired {
		if _, ok := last[d.Key]; !ok {
			out.Members = append(out.Members, d)
		}
	}
	return out
}

// NextOwned is the owned-key record after writing Merge(doc, desired,
// owned): desired keys dockward already owned or is adding now. A key that
// was in the file before dockward managed it stays the operator's: dropping
// it from the configuration later leaves it in the file.
func NextOwned(doc *Document, desired []Member, owned map[string]json.RawMessage) map[string]json.RawMessage {
	next := map[string]json.RawMessage{}
	for _, d := range desired {
		_, was := owned[d.Key]
		if _, present := doc.Lookup(d.Key); was || !present {
			next[d.Key] = d.Value
		}
	}
	return next
}

// Diff is the key-level difference between two documents, by the values
// dockerd sees (the last occurrence of a key), compared semantically:
// changed and removed keys in the order of before, then added keys in the
// order of after. Old and New are compact JSON.
func Diff(before, after *Document) []agent.Change {
	var changes []agent.Change
	for _, k := range before.Keys() {
		old, _ := before.Lookup(k)
		nv, ok := after.Lookup(k)
		switch {
		case !ok:
			changes = append(changes, agent.Change{Action: agent.Delete, Target: k, Old: Compact(old),
				Detail: "written by dockward and no longer in the configuration"})
		case !Equal(old, nv):
			changes = append(changes, agent.Change{Action: agent.Update, Target: k, Old: Compact(old), New: Compact(nv)})
		}
	}
	for _, k := range after.Keys() {
		if _, ok := before.Lookup(k); ok {
			continue
		}
		nv, _ := after.Lookup(k)
		changes = append(changes, agent.Change{Action: agent.Create, Target: k, New: Compact(nv)})
	}
	return changes
}

// Render writes a document as daemon.json: a two-space indented object and
// a trailing newline. Values are re-indented, never re-encoded: strings
// keep their escapes and numbers their digits. Re-indenting costs each
// line its depth in spaces; when that would make the file larger than
// Parse accepts, values are written compact instead, one key a line, so
// what is written can always be read back.
func Render(doc *Document) []byte {
	if len(doc.Members) == 0 {
		return []byte("{}\n")
	}
	if indentedSize(doc) > MaxDocumentSize {
		return renderCompact(doc)
	}
	var buf bytes.Buffer
	buf.WriteString("{\n")
	for i, m := range doc.Members {
		buf.WriteString("  ")
		buf.Write(jsonString(m.Key))
		buf.WriteString(": ")
		if err := json.Indent(&buf, m.Value, "  ", "  "); err != nil {
			// Values come from Parse or the HCL decoder, both valid JSON;
			// write the bytes as they are rather than lose the key.
			buf.Write(m.Value)
		}
		if i < len(doc.Members)-1 {
			buf.WriteByte(',')
		}
		buf.WriteByte('\n')
	}
	buf.WriteString("}\n")
	return buf.Bytes()
}

// indentedSize bounds from above the size Render's indented form takes:
// every byte once, and at most one line break with its indentation per
// structural character.
func indentedSize(doc *Document) int {
	n := 4
	for _, m := range doc.Members {
		_, depth := jsonShape(m.Value)
		lines := 0
		inString := false
		for i := 0; i < len(m.Value); i++ {
			switch c := m.Value[i]; {
			case inString && c == '\\':
				i++
			case inString:
				inString = c != '"'
			case c == '"':
				inString = true
			case c == '[' || c == '{' || c == ']' || c == '}' || c == ',':
				lines++
			}
		}
		n += len(m.Key) + 8 + len(m.Value) + lines*(1+2*(depth+1))
	}
	return n
}

func renderCompact(doc *Document) []byte {
	var buf bytes.Buffer
	buf.WriteString("{\n")
	for i, m := range doc.Members {
		buf.WriteString("  ")
		buf.Write(jsonString(m.Key))
		buf.WriteString(": ")
		if err := json.Compact(&buf, m.Value); err != nil {
			buf.Write(m.Value)
		}
		if i < len(doc.Members)-1 {
			buf.WriteByte(',')
		}
		buf.WriteByte('\n')
	}
	buf.WriteString("}\n")
	return buf.Bytes()
}

// CheckCandidate is the last check before daemon.json is written: the
// bytes must read back as a daemon.json dockward and dockerd accept (one
// JSON object within the limits, every number one a float64 holds).
// The decoder refuses what JSON cannot hold, so only a mistake in dockward
// or a value kept from the existing file gets here; either ends in an
// error rather than in a file dockerd refuses.
func CheckCandidate(data []byte) error {
	if len(data) > MaxDocumentSize {
		return fmt.Errorf("the daemon.json dockward would write is %d bytes, more than the %d (256 KiB) it reads back; nothing written", len(data), MaxDocumentSize)
	}
	doc, err := Parse(data)
	if err == nil {
		for _, m := range doc.Members {
			if err = checkNumbers(m.Value); err != nil {
				err = fmt.Errorf("%q: %w", m.Key, err)
				break
			}
		}
	}
	if err != nil {
		return fmt.Errorf("the daemon.json dockward would write is not valid JSON for dockerd (%v); nothing written", err)
	}
	return nil
}

// checkNumbers refuses a JSON number no float64 holds: dockerd's decoder
// fails on it ("cannot unmarshal number 1e400 into ... float64").
func checkNumbers(v json.RawMessage) error {
	dec := json.NewDecoder(bytes.NewReader(v))
	dec.UseNumber()
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if n, ok := tok.(json.Number); ok {
			if _, err := strconv.ParseFloat(string(n), 64); err != nil {
				return fmt.Errorf("%s is beyond what a float64 holds", n)
			}
		}
	}
}

// Compact returns v as one line of JSON, for plan output.
func Compact(v json.RawMessage) string {
	var buf bytes.Buffer
	if err := json.Compact(&buf, v); err != nil {
		return string(v)
	}
	return buf.String()
}

// Equal reports whether two JSON values mean the same to dockerd:
// whitespace, key order, string escapes and number spelling (3, 3.0, 3e0)
// do not count. Invalid JSON compares by its bytes.
func Equal(a, b json.RawMessage) bool {
	if bytes.Equal(a, b) {
		return true // the common case, and free: most keys are kept as they are
	}
	ca, errA := Canonical(a)
	cb, errB := Canonical(b)
	if errA != nil || errB != nil {
		return bytes.Equal(a, b)
	}
	return ca == cb
}

// Canonical returns a normal form of a JSON value for comparison: objects
// with sorted keys (the last of duplicate keys wins, as in dockerd), no
// whitespace, strings re-encoded, numbers as exact decimals. It is for
// comparing only, never written.
func Canonical(v json.RawMessage) (string, error) {
	dec := json.NewDecoder(bytes.NewReader(v))
	dec.UseNumber()
	var x any
	if err := dec.Decode(&x); err != nil {
		return "", err
	}
	if _, err := dec.Token(); err != io.EOF {
		return "", fmt.Errorf("data after the value")
	}
	var sb strings.Builder
	writeCanonical(&sb, x)
	return sb.String(), nil
}

func writeCanonical(sb *strings.Builder, x any) {
	switch t := x.(type) {
	case map[string]any:
		ks := make([]string, 0, len(t))
		for k := range t {
			ks = append(ks, k)
		}
		sort.Strings(ks)
		sb.WriteByte('{')
		for i, k := range ks {
			if i > 0 {
				sb.WriteByte(',')
			}
			sb.Write(jsonString(k))
			sb.WriteByte(':')
			writeCanonical(sb, t[k])
		}
		sb.WriteByte('}')
	case []any:
		sb.WriteByte('[')
		for i, e := range t {
			if i > 0 {
				sb.WriteByte(',')
			}
			writeCanonical(sb, e)
		}
		sb.WriteByte(']')
	case json.Number:
		sb.WriteString(canonicalNumber(string(t)))
	case string:
		sb.Write(jsonString(t))
	case bool:
		fmt.Fprint(sb, t)
	case nil:
		sb.WriteString("null")
	}
}

// canonicalNumber spells equal numbers alike. big.Float (not big.Rat) so
// that an exponent like 1e999999999 costs nothing; 256 bits are far more
// than the float64 and int64 dockerd parses into. The spelling is the
// binary mantissa and exponent ('p'): exact, and cheap where the shortest
// decimal ('g') cost 20 µs a number, 10 s for a 1 MiB file of numbers.
func canonicalNumber(s string) string {
	f, _, err := big.ParseFloat(s, 10, 256, big.ToNearestEven)
	if err != nil {
		return s
	}
	if f.Sign() == 0 {
		return "0" // -0 and 0 are the same setting
	}
	return f.Text('p', 0)
}

// jsonString encodes s as a JSON string without HTML escaping, so that
// "<" and "&" in values stay readable.
func jsonString(s string) json.RawMessage {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}
