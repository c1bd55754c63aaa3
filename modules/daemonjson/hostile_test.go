package daemonjson

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
)

// Hostile input (issue 11): numbers JSON cannot hold, and daemon.json
// files built to make parsing and rendering expensive.

// TestNumbersJSONCannotHoldAreRefused: every number that would be written
// as something that is not JSON (+Inf), or as a number no float64 holds
// (dockerd could not read it), or that would silently become another
// number (an underflow to 0), is refused at decode with its position.
func TestNumbersJSONCannotHoldAreRefused(t *testing.T) {
	cases := []struct {
		name, expr string
		line, col  int
	}{
		{"divide by zero", `settings = { "x" = 1/0 }`, 2, 22},
		{"negative divide by zero", `settings = { "x" = -1/0 }`, 2, 22},
		{"huge exponent", `settings = { "x" = 1e999999999 }`, 2, 22},
		{"beyond float64", `settings = { "x" = 1e400 }`, 2, 22},
		{"beyond float64 by arithmetic", `settings = { "x" = 1e300 * 1e300 }`, 2, 22},
		{"underflow to zero", `settings = { "x" = 1e-999999999 }`, 2, 22},
		{"underflow below float64", `settings = { "x" = 1e-400 }`, 2, 22},
		{"nested in a list", `settings = { "x" = [1, 1/0] }`, 2, 26},
		{"nested in an object", `settings = { "x" = { y = 1e400 } }`, 2, 28},
		{"log_opts", `log_opts = { max-file = 1/0 }`, 2, 27},
		{"log_opts huge", `log_opts = { max-file = 1e999999999 }`, 2, 27},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := "docker_daemon {\n  " + c.expr + "\n  validate = false\n}\n"
			b, diags := decodeHCL(t, src)
			if !diags.HasErrors() {
				var got []string
				if b != nil {
					for _, m := range b.Managed {
						got = append(got, m.Key+"="+string(m.Value))
					}
				}
				t.Fatalf("accepted; would write %v", got)
			}
			d := diags[0]
			if d.Subject == nil || d.Subject.Filename != "test.hcl" || d.Subject.Start.Line != c.line || d.Subject.Start.Column != c.col {
				t.Errorf("diagnostic at %v, want test.hcl:%d,%d: %s", d.Subject, c.line, c.col, d.Detail)
			}
		})
	}
}

// TestNumbersJSONCanHoldAreKept: the refusal above does not reach numbers
// that are fine, however written.
func TestNumbersJSONCanHoldAreKept(t *testing.T) {
	b := mustDecode(t, `docker_daemon {
  settings = { a = 0, b = 0.0, c = 1e308, d = -1e-300, e = 1e-320, f = 123456789012345678901234567890, g = 0e999999999 }
}`)
	got := map[string]string{}
	for _, m := range b.Managed {
		got[m.Key] = string(m.Value)
		var f float64
		if err := json.Unmarshal(m.Value, &f); err != nil {
			t.Errorf("%s = %s: not a float64 dockerd could read: %v", m.Key, m.Value, err)
		}
	}
	if got["c"] != "1e+308" || got["a"] != "0" || got["g"] != "0" {
		t.Errorf("got %v", got)
	}
}

// TestNothingButJSONIsEverWritten: whatever reaches the module (here a
// managed value that bypassed the decoder), a candidate that does not
// parse back is refused before anything is written.
func TestNothingButJSONIsEverWritten(t *testing.T) {
	for _, bad := range []string{"+Inf", "NaN", `"unterminated`, "1e400", "{}}"} {
		t.Run(bad, func(t *testing.T) {
			env := rootEnv(t)
			path := env.Path(DefaultPath)
			writeFile(t, path, "{\"debug\": true}\n")
			m := New(&Block{Path: DefaultPath, Managed: []Member{{"x", json.RawMessage(bad)}}})
			p, err := m.Plan(context.Background(), env)
			if err == nil {
				err = m.Apply(context.Background(), env, p)
			}
			if err == nil || !strings.Contains(err.Error(), "not valid JSON") {
				t.Errorf("err = %v, want a refusal naming invalid JSON", err)
			}
			if got := readFile(t, path); got != "{\"debug\": true}\n" {
				t.Errorf("file changed to %q", got)
			}
		})
	}
}

// TestDeepDaemonJSONIsRefused: the probe's 18 KB file of 9,000 nested
// arrays was re-indented into 162 MB. Too deep is refused with the
// position where the limit is passed.
func TestDeepDaemonJSONIsRefused(t *testing.T) {
	data := []byte("{\n  \"x\": " + strings.Repeat("[", 9000) + strings.Repeat("]", 9000) + "\n}\n")
	_, err := Parse(data)
	var se *SyntaxError
	if !errors.As(err, &se) {
		t.Fatalf("err = %v, want *SyntaxError", err)
	}
	if se.Line != 2 || se.Column != 7+MaxDocumentDepth || !strings.Contains(se.Msg, "nested") {
		t.Errorf("got %d:%d: %s", se.Line, se.Column, se.Msg)
	}
	// At the limit it parses and renders.
	ok := []byte("{\"x\": " + strings.Repeat("[", MaxDocumentDepth-1) + strings.Repeat("]", MaxDocumentDepth-1) + "}")
	doc, err := Parse(ok)
	if err != nil {
		t.Fatalf("depth %d refused: %v", MaxDocumentDepth, err)
	}
	if _, err := Parse(Render(doc)); err != nil {
		t.Fatalf("rendered document does not parse back: %v", err)
	}
}

// TestHugeDaemonJSONIsRefused: dockerd's configurations are a few KB.
func TestHugeDaemonJSONIsRefused(t *testing.T) {
	data := []byte("{\"labels\": [\"" + strings.Repeat("a", MaxDocumentSize) + "\"]}")
	_, err := Parse(data)
	var se *SyntaxError
	if !errors.As(err, &se) || !strings.Contains(se.Msg, "larger than") {
		t.Fatalf("err = %v, want a size refusal", err)
	}
}

// TestRenderStaysBounded: a document at the limits, shaped so that
// re-indenting multiplies it (every element on a line of its own, deep
// down), renders within the size Parse accepts, so that what is written
// is always readable back.
func TestRenderStaysBounded(t *testing.T) {
	depth := MaxDocumentDepth - 2
	n := (MaxDocumentSize - 2*depth - 64) / 2
	data := "{\"x\": " + strings.Repeat("[", depth) + strings.Repeat("1,", n-1) + "1" + strings.Repeat("]", depth) + "}"
	doc, err := Parse([]byte(data))
	if err != nil {
		t.Fatal(err)
	}
	out := Render(doc)
	if len(out) > MaxDocumentSize {
		t.Fatalf("rendered %d bytes from %d", len(out), len(data))
	}
	back, err := Parse(out)
	if err != nil {
		t.Fatalf("rendered document does not parse back: %v", err)
	}
	if !Equal(back.Members[0].Value, doc.Members[0].Value) {
		t.Fatal("rendering changed the value")
	}
}

// TestPlanOfDeepFileNamesIt: the module says which file and where.
func TestPlanOfDeepFileNamesIt(t *testing.T) {
	env := rootEnv(t)
	path := env.Path(DefaultPath)
	bad := "{\"x\": " + strings.Repeat("[", 9000) + strings.Repeat("]", 9000) + "}\n"
	writeFile(t, path, bad)
	_, err := New(mustDecode(t, designExample)).Plan(context.Background(), env)
	var fe *FileError
	if !errors.As(err, &fe) || !strings.HasPrefix(err.Error(), path+":1:") {
		t.Fatalf("err = %v, want a *FileError naming %s:1:col", err, path)
	}
	if got, _ := os.ReadFile(path); string(got) != bad {
		t.Fatal("file changed")
	}
}

// BenchmarkWorstCaseDocument is what a plan does with a daemon.json at the
// limits, shaped to be expensive: half a million numbers, 30 levels deep.
// Before the limits and the cheaper canonical numbers: 18 KB of nested
// arrays became 162 MB and a plan took 12 s.
func BenchmarkWorstCaseDocument(b *testing.B) {
	depth := MaxDocumentDepth - 2
	n := (MaxDocumentSize - 2*depth - 64) / 2
	data := []byte("{\"x\": " + strings.Repeat("[", depth) + strings.Repeat("1,", n-1) + "1" + strings.Repeat("]", depth) + "}")
	desired := []Member{{"debug", json.RawMessage("true")}}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		doc, err := Parse(data)
		if err != nil {
			b.Fatal(err)
		}
		after := Merge(doc, desired, nil)
		_ = Diff(doc, after)
		if err := CheckCandidate(Render(after)); err != nil {
			b.Fatal(err)
		}
	}
}
