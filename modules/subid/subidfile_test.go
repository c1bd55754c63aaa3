package subid

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// ent is a compact expected line: kind, owner, start, count.
type ent struct {
	Kind         LineKind
	Owner        string
	Start, Count uint64
}

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []ent
		errLine int    // > 0: a ParseError at this line
		errText string // part of its message
	}{
		{name: "empty", in: ""},
		{name: "one entry", in: "alice:100000:65536\n", want: []ent{{Entry, "alice", 100000, 65536}}},
		{name: "no final newline", in: "alice:100000:65536", want: []ent{{Entry, "alice", 100000, 65536}}},
		{name: "numeric owner", in: "1000:100000:65536\n", want: []ent{{Entry, "1000", 100000, 65536}}},
		{name: "comments and blanks", in: "# managed by hand\n\n  # indented\n \t\nbob:1:2\n",
			want: []ent{{Kind: Comment}, {Kind: Blank}, {Kind: Comment}, {Kind: Blank}, {Entry, "bob", 1, 2}}},
		{name: "blank with carriage return", in: "\r\n", want: []ent{{Kind: Blank}}},
		{name: "zero count is a valid (empty) range", in: "x:5:0\n", want: []ent{{Entry, "x", 5, 0}}},
		{name: "last valid ID", in: "x:4294967294:1\n", want: []ent{{Entry, "x", 4294967294, 1}}},
		{name: "whole ID space", in: "x:0:4294967295\n", want: []ent{{Entry, "x", 0, 4294967295}}},
		{name: "range reaching 2^32", in: "x:1:4294967295\n", errLine: 1, errText: "ends beyond 4294967294"},
		{name: "range ending on -1", in: "ok:1:1\nx:4294967295:1\n", errLine: 2, errText: "ends beyond"},
		{name: "start above 2^32", in: "x:4294967296:1\n", errLine: 1, errText: "start \"4294967296\""},
		{name: "huge count", in: "x:1:99999999999999999999\n", errLine: 1, errText: "count"},
		{name: "two fields", in: "a:1:2\nalice:100000\n", errLine: 2, errText: "expected name:start:count"},
		{name: "four fields", in: "alice:100000:65536:x\n", errLine: 1, errText: "expected name:start:count"},
		{name: "empty name", in: ":100000:65536\n", errLine: 1, errText: "empty name"},
		{name: "empty start", in: "a::65536\n", errLine: 1, errText: "start"},
		{name: "leading zero is octal to shadow-utils", in: "a:0100000:65536\n", errLine: 1, errText: "leading zeros"},
		{name: "hex", in: "a:0x10:1\n", errLine: 1, errText: "start"},
		{name: "sign", in: "a:+10:1\n", errLine: 1, errText: "start"},
		{name: "negative", in: "a:10:-1\n", errLine: 1, errText: "count"},
		{name: "leading space", in: " alice:100000:65536\n", errLine: 1, errText: "space"},
		{name: "CRLF", in: "alice:100000:65536\r\n", errLine: 1, errText: "count"},
		{name: "NUL in name", in: "al\x00ice:1:1\n", errLine: 1, errText: "control"},
		{name: "garbage after good lines", in: "a:1:1\n# c\n\nnot a line\n", errLine: 4, errText: "expected name:start:count"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Parse("/etc/subuid", []byte(tt.in))
			if tt.errLine > 0 {
				var pe *ParseError
				if !errors.As(err, &pe) {
					t.Fatalf("Parse(%q) = %v, want a ParseError", tt.in, err)
				}
				if pe.Line != tt.errLine || pe.Path != "/etc/subuid" || !strings.Contains(pe.Msg, tt.errText) {
					t.Fatalf("error %q: want line %d and %q", err, tt.errLine, tt.errText)
				}
				if !strings.HasPrefix(err.Error(), "/etc/subuid:"+strconv.Itoa(tt.errLine)+": ") {
					t.Fatalf("error %q does not start with file:line", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			var got []ent
			for _, l := range f.Lines {
				got = append(got, ent{l.Kind, l.Owner, l.Range.Start, l.Range.Count})
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("lines (-want +got):\n%s", diff)
			}
			if out := f.Render(nil); !bytes.Equal(out, []byte(tt.in)) {
				t.Errorf("Render(nil) = %q, want the input back", out)
			}
		})
	}
}

func TestRender(t *testing.T) {
	const in = "# keep me\nalice:100000:65536\ndockremap:1:10\n\n1000:300000:65536\nold:5:5"
	f, err := Parse("/etc/subuid", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		edits []Edit
		want  string
	}{
		{"none", nil, in},
		{"replace in place", []Edit{{Line: 2, New: "dockremap:165536:65536"}},
			"# keep me\nalice:100000:65536\ndockremap:165536:65536\n\n1000:300000:65536\nold:5:5"},
		{"delete", []Edit{{Line: 2}}, "# keep me\nalice:100000:65536\n\n1000:300000:65536\nold:5:5"},
		{"delete unterminated last line", []Edit{{Line: 5}}, "# keep me\nalice:100000:65536\ndockremap:1:10\n\n1000:300000:65536\n"},
		{"append after unterminated line", []Edit{{Line: -1, New: "d:1:1"}},
			"# keep me\nalice:100000:65536\ndockremap:1:10\n\n1000:300000:65536\nold:5:5\nd:1:1\n"},
		{"replace unterminated keeps it unterminated", []Edit{{Line: 5, New: "old:6:6"}},
			"# keep me\nalice:100000:65536\ndockremap:1:10\n\n1000:300000:65536\nold:6:6"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(f.Render(tt.edits)); got != tt.want {
				t.Errorf("Render:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
	empty, _ := Parse("x", nil)
	if got := string(empty.Render([]Edit{{Line: -1, New: "d:1:1"}})); got != "d:1:1\n" {
		t.Errorf("append to empty file = %q", got)
	}
}

// FuzzParse: Parse never panics; whatever it accepts renders back byte for
// byte, and an appended entry is the only thing that changes.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"", "\n", "alice:100000:65536\n", "alice:100000:65536", "# c\n\n1000:1:2\nb:3:4",
		"a:0100:1\n", "a:1:2:3\n", ":1:2\n", "x:4294967294:1\n", "x:1:4294967295\n", " # c\r\n",
		// Hostile: overflowing numbers, signs, NULs, a range past 2^32.
		"a:99999999999999999999:1\n", "a:-1:1\n", "a:+1:1\n", "a:1:0\n", "\x00:1:1\n", "a:4294967295:4294967295\n", "a:1e3:1\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		p, err := Parse("f", in)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Line < 1 {
				t.Fatalf("error %v is not a ParseError with a line", err)
			}
			return
		}
		if out := p.Render(nil); !bytes.Equal(out, in) {
			t.Fatalf("Render(Parse(%q)) = %q", in, out)
		}
		for _, l := range p.Lines {
			if l.Kind == Entry && l.Range.End() > MaxID {
				t.Fatalf("accepted range beyond the ID space: %+v", l)
			}
		}
		out := p.Render([]Edit{{Line: -1, New: "zz:1:2"}})
		if !bytes.HasPrefix(out, in) {
			t.Fatalf("append changed existing bytes: %q -> %q", in, out)
		}
		q, err := Parse("f", out)
		if err != nil {
			t.Fatalf("re-parse after append: %v", err)
		}
		last := q.Lines[len(q.Lines)-1]
		if len(q.Lines) != len(p.Lines)+1 || last.Owner != "zz" || last.Range != (Range{1, 2}) {
			t.Fatalf("append: %d lines -> %d, last %+v", len(p.Lines), len(q.Lines), last)
		}
	})
}
