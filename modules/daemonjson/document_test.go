package daemonjson

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/dockward/dockward/agent"
	"github.com/google/go-cmp/cmp"
)

func members(kv ...string) []Member {
	var out []Member
	for i := 0; i < len(kv); i += 2 {
		out = append(out, Member{Key: kv[i], Value: json.RawMessage(kv[i+1])})
	}
	return out
}

func memberStrings(ms []Member) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Key+"="+string(m.Value))
	}
	return out
}

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string // key=raw value bytes
	}{
		{"empty file", "", nil},
		{"whitespace only", " \n\t\n", nil},
		{"empty object", "{}", nil},
		{"order and raw bytes kept", `{"z": 1.50, "a": {"y" : [ 1,2 ]}, "m": "\u0041"}`,
			[]string{"z=1.50", `a={"y" : [ 1,2 ]}`, `m="\u0041"`}},
		{"duplicate keys kept", `{"a":1,"b":2,"a":3}`, []string{"a=1", "b=2", "a=3"}},
		{"byte order mark", "\xef\xbb\xbf{\"a\": true}\n", []string{"a=true"}},
		{"nested newlines", "{\n  \"log-opts\": {\n    \"max-size\": \"10m\"\n  }\n}\n",
			[]string{"log-opts={\n    \"max-size\": \"10m\"\n  }"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc, err := Parse([]byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, memberStrings(doc.Members)); diff != "" {
				t.Errorf("members (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name      string
		in        string
		line, col int
		msg       string
	}{
		{"missing value", "{\n  \"a\": 1,\n  \"b\": }\n", 3, 8, "invalid character '}'"},
		{"trailing comma", "{\n  \"a\": 1,\n}", 3, 1, "looking for beginning of object key"},
		{"unterminated", "{\n  \"a\": 1\n", 3, 1, "unexpected end"},
		{"garbage after object", "{\"a\": 1} x", 1, 10, "after top-level value"},
		{"array", "\n  [1, 2]", 2, 3, "must hold a JSON object"},
		{"string", `"x"`, 1, 1, "not a string"},
		{"null", `null`, 1, 1, "not null"},
		{"comment", "{\n  // docker\n  \"a\": 1\n}", 2, 3, "invalid character '/'"},
		{"column counts characters", "{\"é\": x}", 1, 7, "invalid character 'x'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.in))
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("err = %v, want a *SyntaxError", err)
			}
			if se.Line != tt.line || se.Column != tt.col || !strings.Contains(se.Msg, tt.msg) {
				t.Errorf("got %d:%d %q, want %d:%d containing %q", se.Line, se.Column, se.Msg, tt.line, tt.col, tt.msg)
			}
		})
	}
}

func TestEqual(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{`3`, `3.0`, true},
		{`3`, `3e0`, true},
		{`300`, `3e2`, true},
		{`0`, `-0`, true},
		{`3`, `"3"`, false},
		{`3`, `4`, false},
		{`"A"`, `"\u0041"`, true},
		{`{"a":1,"b":[1,2]}`, "{ \"b\" : [1, 2],\n \"a\": 1 }", true},
		{`{"a":1}`, `{"a":1,"a":2}`, false},
		{`{"a":2}`, `{"a":1,"a":2}`, true},
		{`[1,2]`, `[2,1]`, false},
		{`true`, `true`, true},
		{`null`, `false`, false},
		{`12345678901234567890123`, `12345678901234567890124`, false},
		{`1e999999999`, `1e999999999`, true},
	}
	for _, tt := range tests {
		if got := Equal(json.RawMessage(tt.a), json.RawMessage(tt.b)); got != tt.want {
			t.Errorf("Equal(%s, %s) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestMergeDiffRender(t *testing.T) {
	tests := []struct {
		name     string
		existing string
		desired  []Member
		owned    map[string]json.RawMessage
		want     string
		changes  []agent.Change
		owns     []string // NextOwned keys
	}{
		{
			name:    "no file",
			desired: members("userns-remap", `"default"`, "log-opts", `{"max-size":"10m","max-file":"3"}`),
			want:    "{\n  \"userns-remap\": \"default\",\n  \"log-opts\": {\n    \"max-size\": \"10m\",\n    \"max-file\": \"3\"\n  }\n}\n",
			changes: []agent.Change{
				{Action: "+", Target: "userns-remap", New: `"default"`},
				{Action: "+", Target: "log-opts", New: `{"max-size":"10m","max-file":"3"}`},
			},
			owns: []string{"log-opts", "userns-remap"},
		},
		{
			name:     "existing key changes in place, new key appended, unmanaged kept",
			existing: `{"debug": true, "log-driver": "journald", "dns": ["1.1.1.1"]}`,
			desired:  members("log-driver", `"json-file"`, "icc", `false`),
			want:     "{\n  \"debug\": true,\n  \"log-driver\": \"json-file\",\n  \"dns\": [\n    \"1.1.1.1\"\n  ],\n  \"icc\": false\n}\n",
			changes: []agent.Change{
				{Action: "~", Target: "log-driver", Old: `"journald"`, New: `"json-file"`},
				{Action: "+", Target: "icc", New: `false`},
			},
			owns: []string{"icc"},
		},
		{
			name:     "semantically equal managed value keeps its bytes",
			existing: `{"log-opts": {"max-file": "3", "max-size": "10m"}, "mtu": 1500.0}`,
			desired:  members("log-opts", `{"max-size":"10m","max-file":"3"}`, "mtu", `1500`),
			want:     "{\n  \"log-opts\": {\n    \"max-file\": \"3\",\n    \"max-size\": \"10m\"\n  },\n  \"mtu\": 1500.0\n}\n",
		},
		{
			name:     "numbers in log-opts become strings",
			existing: `{"log-opts": {"max-size": "10m", "max-file": 3}}`,
			desired:  members("log-opts", `{"max-size":"10m","max-file":"3"}`),
			want:     "{\n  \"log-opts\": {\n    \"max-size\": \"10m\",\n    \"max-file\": \"3\"\n  }\n}\n",
			changes:  []agent.Change{{Action: "~", Target: "log-opts", Old: `{"max-size":"10m","max-file":3}`, New: `{"max-size":"10m","max-file":"3"}`}},
		},
		{
			name:     "dropped owned key removed, dropped unowned key kept",
			existing: `{"debug": true, "icc": false, "live-restore": true}`,
			desired:  members("live-restore", `true`),
			owned:    map[string]json.RawMessage{"debug": json.RawMessage(`true`), "live-restore": json.RawMessage(`true`)},
			want:     "{\n  \"icc\": false,\n  \"live-restore\": true\n}\n",
			changes: []agent.Change{
				{Action: "-", Target: "debug", Old: "true", Detail: "written by dockward and no longer in the configuration"},
			},
			owns: []string{"live-restore"},
		},
		{
			name:     "owned key edited by hand since is kept when dropped",
			existing: `{"debug": false}`,
			owned:    map[string]json.RawMessage{"debug": json.RawMessage(`true`)},
			want:     "{\n  \"debug\": false\n}\n",
		},
		{
			name:     "key present before dockward managed it is not owned",
			existing: `{"icc": true}`,
			desired:  members("icc", `false`),
			want:     "{\n  \"icc\": false\n}\n",
			changes:  []agent.Change{{Action: "~", Target: "icc", Old: "true", New: "false"}},
		},
		{
			name:     "earlier duplicate of a managed key dropped, last changed",
			existing: `{"icc": true, "debug": true, "icc": true}`,
			desired:  members("icc", `false`),
			want:     "{\n  \"debug\": true,\n  \"icc\": false\n}\n",
			changes:  []agent.Change{{Action: "~", Target: "icc", Old: "true", New: "false"}},
		},
		{
			name:     "duplicates of an unmanaged key kept",
			existing: `{"debug": true, "debug": false}`,
			desired:  members("icc", `false`),
			want:     "{\n  \"debug\": true,\n  \"debug\": false,\n  \"icc\": false\n}\n",
			changes:  []agent.Change{{Action: "+", Target: "icc", New: "false"}},
			owns:     []string{"icc"},
		},
		{
			name:     "unmanaged values re-indented, not re-encoded",
			existing: `{"labels":["a=<b>","c=\u00e9"],"x":1E+2,"o":{}}`,
			desired:  members("icc", `false`),
			want:     "{\n  \"labels\": [\n    \"a=<b>\",\n    \"c=\\u00e9\"\n  ],\n  \"x\": 1E+2,\n  \"o\": {},\n  \"icc\": false\n}\n",
			changes:  []agent.Change{{Action: "+", Target: "icc", New: "false"}},
			owns:     []string{"icc"},
		},
		{
			name:    "nothing desired, no file",
			desired: nil,
			want:    "{}\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc, err := Parse([]byte(tt.existing))
			if err != nil {
				t.Fatal(err)
			}
			after := Merge(doc, tt.desired, tt.owned)
			if got := string(Render(after)); got != tt.want {
				t.Errorf("Render:\n%s\nwant:\n%s", got, tt.want)
			}
			if diff := cmp.Diff(tt.changes, Diff(doc, after)); diff != "" {
				t.Errorf("Diff (-want +got):\n%s", diff)
			}
			var owns []string
			for k := range NextOwned(doc, tt.desired, tt.owned) {
				owns = append(owns, k)
			}
			if diff := cmp.Diff(tt.owns, owns, cmpSorted); diff != "" {
				t.Errorf("NextOwned (-want +got):\n%s", diff)
			}
			// Converged: merging the result again changes nothing.
			again, err := Parse(Render(after))
			if err != nil {
				t.Fatalf("rendered file does not parse: %v", err)
			}
			if ch := Diff(again, Merge(again, tt.desired, NextOwned(doc, tt.desired, tt.owned))); len(ch) != 0 {
				t.Errorf("second merge changes %v", ch)
			}
		})
	}
}

var cmpSorted = cmp.Transformer("sorted", func(in []string) []string {
	out := append([]string(nil), in...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
})

// FuzzMerge: whatever the existing bytes and the managed keys, merging
// never panics, the result is one valid JSON object, every unmanaged key
// stays with a semantically equal value and in the same relative order, and
// every managed key has its desired value.
func FuzzMerge(f *testing.F) {
	f.Add([]byte(`{"debug": true, "log-opts": {"max-file": 3}}`), "log-opts", `{"max-file":"3"}`, "icc", "false")
	f.Add([]byte(`{"a":1,"a":2,"b":[1,{"c":null}]}`), "a", `3`, "b", `"x"`)
	f.Add([]byte("\xef\xbb\xbf{}"), "userns-remap", `"default"`, "x", `{"y":[1.5e3]}`)
	f.Add([]byte(`{"\u0041": "\ud800", "k": 1e999}`), "A", `true`, "k", `1e999`)
	f.Add([]byte(`[1]`), "a", `1`, "b", `2`)
	f.Fuzz(func(t *testing.T, existing []byte, k1, v1, k2, v2 string) {
		doc, err := Parse(existing)
		if err != nil {
			return
		}
		var desired []Member
		for _, kv := range [][2]string{{k1, v1}, {k2, v2}} {
			// Managed keys come from HCL, which is valid UTF-8.
			if !json.Valid([]byte(kv[1])) || !utf8.ValidString(kv[0]) || (len(desired) > 0 && desired[0].Key == kv[0]) {
				continue
			}
			desired = append(desired, Member{Key: kv[0], Value: json.RawMessage(kv[1])})
		}
		want := map[string]bool{}
		for _, d := range desired {
			want[d.Key] = true
		}
		after := Merge(doc, desired, nil)
		out := Render(after)
		if !json.Valid(out) {
			t.Fatalf("rendered invalid JSON:\n%s", out)
		}
		back, err := Parse(out)
		if err != nil {
			t.Fatalf("rendered file does not parse: %v\n%s", err, out)
		}
		// Unmanaged keys: same members, same order, same meaning.
		var unBefore, unAfter []Member
		for _, m := range doc.Members {
			if !want[m.Key] {
				unBefore = append(unBefore, m)
			}
		}
		for _, m := range back.Members {
			if !want[m.Key] {
				unAfter = append(unAfter, m)
			}
		}
		if len(unBefore) != len(unAfter) {
			t.Fatalf("unmanaged members %v became %v", memberStrings(unBefore), memberStrings(unAfter))
		}
		for i := range unBefore {
			if unBefore[i].Key != unAfter[i].Key || !Equal(unBefore[i].Value, unAfter[i].Value) {
				t.Fatalf("unmanaged member %d: %s became %s", i, memberStrings(unBefore[i:i+1]), memberStrings(unAfter[i:i+1]))
			}
		}
		for _, d := range desired {
			v, ok := back.Lookup(d.Key)
			if !ok || !Equal(v, d.Value) {
				t.Fatalf("managed %q = %s, want %s", d.Key, v, d.Value)
			}
		}
		if ch := Diff(back, Merge(back, desired, nil)); len(ch) != 0 {
			t.Fatalf("not converged after one merge: %v", ch)
		}
	})
}
