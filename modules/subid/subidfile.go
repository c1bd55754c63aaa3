package subid

import (
	"bytes"
	"fmt"
	"strconv"
)

// LineKind says what a line of a subordinate ID file is.
type LineKind uint8

const (
	Blank   LineKind = iota // empty or only spaces and tabs
	Comment                 // first non-blank byte is '#'
	Entry                   // name:start:count
)

// Line is one line of /etc/subuid or /etc/subgid. Its bytes are never kept
// apart from the file's: Render copies them from File.Data, so a line this
// package does not edit comes out byte for byte as it went in.
type Line struct {
	Kind LineKind
	Num  int // 1-based line number
	// Off and End delimit the line's bytes in File.Data, without the "\n".
	Off, End int
	// Newline is false only for a last line without a final "\n".
	Newline bool
	// Owner is a user name or a numeric UID, as written (entries only).
	Owner string
	Range Range
}

// File is a parsed subordinate ID file.
type File struct {
	Path  string // for error messages only
	Data  []byte
	Lines []Line
}

// ParseError is a malformed line. The file it names is never rewritten.
type ParseError struct {
	Path string
	Line int
	Msg  string
}

func (e *ParseError) Error() string { return fmt.Sprintf("%s:%d: %s", e.Path, e.Line, e.Msg) }

// Parse reads a subordinate ID file: lines "name:start:count", where name
// is a user name or numeric UID, plus comments and blank lines.
//
// It is stricter than shadow-utils, which silently skips lines it cannot
// parse and reads numbers with strtoul(…, 0) (so "0100000" is octal there):
// a line that two readers could understand differently is an error, never
// guessed at, because a wrong guess here means overlapping ID ranges.
// dockerd skips lines that start with '#' after trimming spaces, so those
// are comments here too.
func Parse(path string, data []byte) (*File, error) {
	f := &File{Path: path, Data: data}
	off := 0
	for num := 1; off < len(data); num++ {
		end := len(data)
		nl := false
		if i := bytes.IndexByte(data[off:], '\n'); i >= 0 {
			end, nl = off+i, true
		}
		ln := Line{Num: num, Off: off, End: end, Newline: nl}
		text := data[off:end]
		switch trimmed := bytes.TrimLeft(text, " \t"); {
		case len(trimmed) == 0 || (len(bytes.TrimRight(trimmed, " \t\r")) == 0):
			ln.Kind = Blank
		case trimmed[0] == '#':
			ln.Kind = Comment
		default:
			owner, r, msg := parseEntry(text)
			if msg != "" {
				return nil, &ParseError{Path: path, Line: num, Msg: msg}
			}
			ln.Kind, ln.Owner, ln.Range = Entry, owner, r
		}
		f.Lines = append(f.Lines, ln)
		if !nl {
			break
		}
		off = end + 1
	}
	return f, nil
}

func parseEntry(text []byte) (owner string, r Range, msg string) {
	fields := bytes.Split(text, []byte(":"))
	if len(fields) != 3 {
		return "", Range{}, fmt.Sprintf("expected name:start:count, got %q", text)
	}
	if len(fields[0]) == 0 {
		return "", Range{}, fmt.Sprintf("empty name in %q", text)
	}
	for _, c := range fields[0] {
		if c <= ' ' || c == 0x7f {
			return "", Range{}, fmt.Sprintf("name %q contains a space or control character", fields[0])
		}
	}
	start, ok := parseID(fields[1])
	if !ok {
		return "", Range{}, fmt.Sprintf("start %q is not a decimal number below 2^32 without leading zeros", fields[1])
	}
	count, ok := parseID(fields[2])
	if !ok {
		return "", Range{}, fmt.Sprintf("count %q is not a decimal number below 2^32 without leading zeros", fields[2])
	}
	r = Range{Start: start, Count: count}
	if r.End() > MaxID {
		return "", Range{}, fmt.Sprintf("range %d+%d ends beyond %d, the last valid ID", start, count, uint64(MaxID)-1)
	}
	return string(fields[0]), r, ""
}

// parseID accepts what every reader of the file agrees on: plain decimal,
// no sign, no leading zero (shadow-utils would read those as octal), at
// most 2^32-1.
func parseID(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 10 || (b[0] == '0' && len(b) > 1) {
		return 0, false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseUint(string(b), 10, 32)
	return n, err == nil
}

// EntryText is how a new entry is written, as shadow-utils writes it.
func EntryText(owner string, r Range) string {
	return owner + ":" + strconv.FormatUint(r.Start, 10) + ":" + strconv.FormatUint(r.Count, 10)
}

// Text returns a line's bytes as they are in the file (without "\n").
func (f *File) Text(i int) string { return string(f.Data[f.Lines[i].Off:f.Lines[i].End]) }

// Edit changes one line: Line is an index into File.Lines, or -1 to append.
// An empty New deletes the line.
type Edit struct {
	Line int
	New  string
}

// Render returns the file with edits applied. Every line not edited is
// copied from the original bytes, so other users' lines, comments, blank
// lines and a missing final newline stay exactly as they were. Appended
// lines come last, after a newline added to an unterminated last line.
func (f *File) Render(edits []Edit) []byte {
	repl := make(map[int]*Edit, len(edits))
	var appends []string
	for i := range edits {
		if edits[i].Line < 0 {
			appends = append(appends, edits[i].New)
			continue
		}
		repl[edits[i].Line] = &edits[i]
	}
	out := make([]byte, 0, len(f.Data)+64*len(edits))
	for i, ln := range f.Lines {
		if e, ok := repl[i]; ok {
			if e.New == "" {
				continue
			}
			out = append(out, e.New...)
		} else {
			out = append(out, f.Data[ln.Off:ln.End]...)
		}
		if ln.Newline {
			out = append(out, '\n')
		}
	}
	if len(appends) > 0 && len(out) > 0 && out[len(out)-1] != '\n' {
		out = append(out, '\n')
	}
	for _, a := range appends {
		out = append(out, a...)
		out = append(out, '\n')
	}
	return out
}
