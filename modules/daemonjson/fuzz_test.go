package daemonjson

import (
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
)

// FuzzParse: an existing daemon.json is outside input. Parse never
// panics; what it refuses is a *SyntaxError with a position inside the
// file; what it accepts renders to a file that parses back to the same
// members, within the limits.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"", "{}", "\xef\xbb\xbf{\"debug\": true}", `{"a":1,"a":2}`, `[1]`, `{"x": +Inf}`, `{"x": NaN}`,
		`{"x": 1e400}`, `{"x": 1e-999999999}`, `{"x": "\ud800"}`, `{"x": "a\"]]]]"}`, "{\"x\": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}",
		"{\"x\": " + strings.Repeat("[", 9000) + strings.Repeat("]", 9000) + "}",
		"{\"x\": " + strings.Repeat("[", 30) + strings.Repeat("1,", 500) + "1" + strings.Repeat("]", 30) + "}",
		"{\n  \"log-opts\": {\"max-size\": \"10m\"}\n} trailing", "{\"a\":1}{\"b\":2}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		doc, err := Parse(data)
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) {
				return // a decoder error after validation; has no position
			}
			if se.Line < 1 || se.Column < 1 || se.Line > strings.Count(string(data), "\n")+1 {
				t.Fatalf("error outside the file: %v", err)
			}
			return
		}
		out := Render(doc)
		if len(out) > MaxDocumentSize {
			// Many tiny members can outgrow the limit when laid out one
			// a line; the candidate check refuses to write that.
			if CheckCandidate(out) == nil {
				t.Fatalf("a %d-byte candidate passed the check", len(out))
			}
			return
		}
		back, err := Parse(out)
		if err != nil {
			t.Fatalf("rendered file does not parse: %v\n%s", err, out)
		}
		if len(back.Members) != len(doc.Members) {
			t.Fatalf("%d members became %d", len(doc.Members), len(back.Members))
		}
		for i := range doc.Members {
			if doc.Members[i].Key != back.Members[i].Key || !Equal(doc.Members[i].Value, back.Members[i].Value) {
				t.Fatalf("member %d: %s became %s", i, memberStrings(doc.Members[i:i+1]), memberStrings(back.Members[i:i+1]))
			}
		}
	})
}

// FuzzDockerdArgs: the unit's ExecStart, Environment and EnvironmentFile
// are read from systemd and the disk. Turning them into dockerd's flags
// and checking those against a candidate never panics and is repeatable.
func FuzzDockerdArgs(f *testing.F) {
	f.Add("/usr/bin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock $DOCKER_OPTS", "DOCKER_OPTS=--log-driver journald", []byte("DOCKER_OPTS=\"--userns-remap=default -D\"\n"))
	f.Add("dockerd ${A}${A}${A} --config-file=$B", "A=-D", []byte("export B='/etc/x.json'\n# c\n; c\nA=\\\n--debug\n"))
	f.Add("dockerd --log-opt max-size=1m -l debug -Dl info --", "", []byte("=\n\x00=\x00\nA=\"unterminated\n"))
	f.Add("dockerd", "", []byte(strings.Repeat("A=${A}\n", 100)))
	f.Fuzz(func(t *testing.T, execStart, environment string, envFile []byte) {
		ue := &UnitExec{
			ExecStart:        [][]string{strings.Fields(execStart)},
			Environment:      []string{environment},
			EnvironmentFiles: []EnvFile{{Path: "/etc/default/docker"}, {Path: "/missing", Optional: true}},
		}
		read := func(p string) ([]byte, error) {
			if p == "/missing" {
				return nil, os.ErrNotExist
			}
			return envFile, nil
		}
		doc, err := Parse([]byte(`{"log-driver":"json-file","log-opts":{"max-size":"10m"},"debug":true,"userns-remap":"default","hosts":["fd://"]}`))
		if err != nil {
			t.Fatal(err)
		}
		run := func() ([]string, []Flag, []Conflict, []string) {
			args, err := DockerdArgs(ue, read)
			if err != nil {
				t.Fatal(err)
			}
			flags := Flags(args)
			_, _ = configFileFlag(flags)
			return args, flags, Conflicts(doc, flags), validateArgs(args)
		}
		a1, f1, c1, v1 := run()
		a2, f2, c2, v2 := run()
		if !reflect.DeepEqual(a1, a2) || !reflect.DeepEqual(f1, f2) || !reflect.DeepEqual(c1, c2) || !reflect.DeepEqual(v1, v2) {
			t.Fatal("two reads of one unit differ")
		}
	})
}
