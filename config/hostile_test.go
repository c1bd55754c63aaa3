package config_test

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/dockward/dockward/config"
	"github.com/dockward/dockward/modules"
	"github.com/hashicorp/hcl/v2"
)

// Hostile input (issue 11): files built to crash or stall the decoder,
// and values that would switch hardening off.

func errorAt(t *testing.T, diags hcl.Diagnostics, line, col int, want string) {
	t.Helper()
	if !diags.HasErrors() {
		t.Fatalf("accepted; want an error at %d:%d containing %q", line, col, want)
	}
	for _, d := range diags {
		if d.Severity == hcl.DiagError && d.Subject != nil && d.Subject.Start.Line == line && d.Subject.Start.Column == col &&
			strings.Contains(d.Summary+": "+d.Detail, want) {
			return
		}
	}
	t.Fatalf("no error at %d:%d containing %q; got:\n%s", line, col, want, diags.Error())
}

func noErrors(t *testing.T, src string) {
	t.Helper()
	if _, diags := decode(t, src); diags.HasErrors() {
		t.Fatalf("refused:\n%s", diags.Error())
	}
}

// TestDeepNestingIsRefusedBeforeParsing: 100,000 levels (and 60,000)
// ended in a fatal stack overflow (exit 2). Now the level past the limit
// is named.
func TestDeepNestingIsRefusedBeforeParsing(t *testing.T) {
	// Each as deep as fits in MaxFileSize; 60,000 lists were enough for
	// the stack overflow.
	cases := map[string]string{
		"lists":       strings.Repeat("[", 60000) + strings.Repeat("]", 60000),
		"objects":     strings.Repeat("{a=", 30000) + "1" + strings.Repeat("}", 30000),
		"parentheses": strings.Repeat("(", 60000) + "1" + strings.Repeat(")", 60000),
		"templates":   `"` + strings.Repeat(`${"`, 20000) + strings.Repeat(`"}`, 20000) + `"`,
		"for":         strings.Repeat("[for a in [1]: ", 7000) + "1" + strings.Repeat("]", 7000),
		"unclosed":    strings.Repeat("[", 120000),
	}
	for name, expr := range cases {
		t.Run(name, func(t *testing.T) {
			_, diags := decode(t, "docker_daemon {\n  settings = { x = "+expr+" }\n}\n")
			if !diags.HasErrors() || len(diags) != 1 {
				t.Fatalf("want one error, got %v", diags)
			}
			d := diags[0]
			if d.Subject == nil || d.Subject.Filename != "test.hcl" || d.Subject.Start.Line != 2 || !strings.Contains(d.Detail, fmt.Sprint(config.MaxNesting)) {
				t.Fatalf("got %s at %v", d.Detail, d.Subject)
			}
		})
	}
}

// TestNestingCountsCodeOnly: brackets in strings, heredocs, comments and
// escaped template sequences are text, not nesting.
func TestNestingCountsCodeOnly(t *testing.T) {
	many := strings.Repeat("[{(", 200)
	noErrors(t, `# `+many+`
// `+many+`
/* `+many+` */
docker_daemon {
  settings = {
    "a" = "`+many+`"
    "b" = "$${`+many+`} %%{`+many+`}"
    "c" = <<EOT
`+many+`
  "`+many+`
EOT
    "d" = <<-EOT
    ${"x"} `+many+`
    EOT
    "e" = "${"}"}`+many+`"
  }
}
`)
}

// TestHugeFileIsRefused: bounded before parsing.
func TestHugeFileIsRefused(t *testing.T) {
	src := "docker_daemon {\n  settings = { x = \"" + strings.Repeat("a", config.MaxFileSize) + "\" }\n}\n"
	_, diags := decode(t, src)
	if !diags.HasErrors() || !strings.Contains(diags[0].Detail, "larger than") {
		t.Fatalf("got %v", diags)
	}
}

// TestTooManyTokensIsRefused: a file under the size limit but made of
// tiny tokens costs the parser about 500 bytes each.
func TestTooManyTokensIsRefused(t *testing.T) {
	src := "docker_daemon {\n  settings = { x = [" + strings.Repeat("[],", config.MaxTokens/3+10) + "[]] }\n}\n"
	if len(src) > config.MaxFileSize {
		t.Fatalf("test input of %d bytes is over the size limit", len(src))
	}
	_, diags := decode(t, src)
	if !diags.HasErrors() || !strings.Contains(diags[0].Detail, "tokens") || diags[0].Subject == nil || diags[0].Subject.Start.Line != 2 {
		t.Fatalf("got %v", diags)
	}
}

// TestNumberLiteralsFloat64CannotHold: a literal no float64 holds, or one
// that rounds to zero, is refused wherever it is, at the literal.
func TestNumberLiteralsFloat64CannotHold(t *testing.T) {
	for _, lit := range []string{"1e999999999", "1e400", "1e-999999999", "1e-400", "-1e400"} {
		t.Run(lit, func(t *testing.T) {
			_, diags := decode(t, "subordinate_ids \"dockremap\" {\n  count = "+lit+"\n}\n")
			errorAt(t, diags, 2, 11+strings.Count(lit, "-")-strings.Count(lit, "e-"), "float64")
		})
	}
	noErrors(t, "docker_daemon {\n  settings = { a = 1e308, b = 1e-320, c = 0e999999999, d = 0.0000 }\n}\n")
}

// TestComputedNumbersOutOfRange: whole-number attributes refuse infinite
// results of arithmetic, which no literal check sees.
func TestComputedNumbersOutOfRange(t *testing.T) {
	_, diags := decode(t, "subordinate_ids \"dockremap\" {\n  count = 1/0\n  start = -1/0\n}\n")
	errorAt(t, diags, 2, 11, "whole number")
	errorAt(t, diags, 3, 11, "whole number")
	_, diags = decode(t, "firewall {\n  network \"n\" {\n    egress_allow {\n      ports = [1/0]\n      to = [\"10.0.0.0/8\"]\n    }\n  }\n}\n")
	errorAt(t, diags, 4, 16, "whole number")
}

// TestUnknownAttributesAreCappedAndOrdered: 10,000 unknown attributes took
// over 300 s and were printed in random order. Now the first
// MaxDiagnostics in file order, then one saying how many more.
func TestUnknownAttributesAreCappedAndOrdered(t *testing.T) {
	src := unknownAttributes(10000)
	f, diags := config.Decode("test.hcl", src, modules.Kinds)
	if len(diags) != config.MaxDiagnostics+1 {
		t.Fatalf("%d diagnostics, want %d", len(diags), config.MaxDiagnostics+1)
	}
	for i := 1; i < config.MaxDiagnostics; i++ {
		if diags[i].Subject.Start.Byte <= diags[i-1].Subject.Start.Byte {
			t.Fatalf("diagnostic %d at %v after %v: not in file order", i, diags[i].Subject, diags[i-1].Subject)
		}
	}
	if diags[0].Subject.Start.Line != 2 {
		t.Fatalf("first diagnostic at %v, want line 2", diags[0].Subject)
	}
	last := diags[len(diags)-1]
	if last.Severity != hcl.DiagError || !strings.Contains(last.Detail, fmt.Sprint(10000-config.MaxDiagnostics)) {
		t.Fatalf("last diagnostic: %s: %s", last.Summary, last.Detail)
	}
	var a, b bytes.Buffer
	if err := config.WriteDiagnostics(&a, f.Files, diags, false); err != nil {
		t.Fatal(err)
	}
	_, again := config.Decode("test.hcl", src, modules.Kinds)
	if err := config.WriteDiagnostics(&b, f.Files, again, false); err != nil {
		t.Fatal(err)
	}
	if a.String() != b.String() {
		t.Fatal("two decodes of one file print different diagnostics")
	}
}

func unknownAttributes(n int) []byte {
	var b bytes.Buffer
	b.WriteString("docker_daemon {\n")
	for i := range n {
		fmt.Fprintf(&b, "a%d=1\n", i) // short, so that 10,000 fit in MaxFileSize and MaxTokens
	}
	b.WriteString("}\n")
	return b.Bytes()
}

// BenchmarkUnknownAttributes decodes and prints the diagnostics of a
// file with n unknown attributes, as `dockward validate` does.
func BenchmarkUnknownAttributes(b *testing.B) {
	for _, n := range []int{1000, 5000, 10000} {
		src := unknownAttributes(n)
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			for b.Loop() {
				f, diags := config.Decode("bench.hcl", src, modules.Kinds)
				if err := config.WriteDiagnostics(io.Discard, f.Files, diags, false); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestUsernsRemapThatSwitchesHardeningOff: each is refused at the value,
// saying why.
func TestUsernsRemapThatSwitchesHardeningOff(t *testing.T) {
	cases := []struct{ value, want string }{
		{`"root"`, "root"},
		{`"0"`, "root"},
		{`"0:0"`, "root"},
		{`"alice:0"`, "root"},
		{`"alice:root"`, "root"},
		{`" default"`, `Did you mean "default"?`},
		{`"default\n"`, `Did you mean "default"?`},
		{`"Default"`, `Did you mean "default"?`},
		{`"default\u0000"`, "not a user name"},
		{`"../../x"`, "not a user name"},
		{`"alice:"`, "not a group name"},
		{`":alice"`, "not a user name"},
		{`"a:b:c"`, "user:group"},
		{`"99999999999"`, "uid"},
		{`"bob"`, `subordinate_ids "bob"`},
	}
	for _, c := range cases {
		t.Run(c.value, func(t *testing.T) {
			src := "docker_daemon {\n  userns_remap = " + c.value + "\n}\nsubordinate_ids \"alice\" {}\n"
			_, diags := decode(t, src)
			errorAt(t, diags, 2, 18, c.want)
		})
	}
}

// TestUsernsRemapInSettingsIsCheckedToo: the key given through settings
// is no way around the check.
func TestUsernsRemapInSettingsIsCheckedToo(t *testing.T) {
	_, diags := decode(t, "docker_daemon {\n  settings = { \"userns-remap\" = \"0:0\" }\n}\n")
	errorAt(t, diags, 2, 33, "root")
	_, diags = decode(t, "docker_daemon {\n  settings = { \"userns-remap\" = \"bob\" }\n}\n")
	errorAt(t, diags, 2, 33, `subordinate_ids "bob"`)
	noErrors(t, "docker_daemon {\n  settings = { \"userns-remap\" = \"default\" }\n}\n")
}

func TestUsernsRemapValidForms(t *testing.T) {
	for _, v := range []string{"default", "alice", "alice:alice", "alice:staff", "dockremap"} {
		t.Run(v, func(t *testing.T) {
			user, _, _ := strings.Cut(v, ":")
			if user == "default" {
				user = "dockremap"
			}
			noErrors(t, "docker_daemon {\n  userns_remap = \""+v+"\"\n}\nsubordinate_ids \""+user+"\" {}\n")
		})
	}
	// dockerd makes dockremap's ranges itself for "default".
	noErrors(t, "docker_daemon {\n  userns_remap = \"default\"\n}\n")
	// A uid cannot be matched to a subordinate_ids block: a warning says so.
	_, diags := decode(t, "docker_daemon {\n  userns_remap = \"1000:1000\"\n}\n")
	if diags.HasErrors() || len(diags) != 1 || diags[0].Severity != hcl.DiagWarning {
		t.Fatalf("uid:gid: got %v", diags)
	}
}

// TestMetricsTextfileMustBeAPromFile: node_exporter reads *.prom files
// only; anything else is a typo or an attempt to overwrite a system file.
func TestMetricsTextfileMustBeAPromFile(t *testing.T) {
	for _, v := range []string{"/etc/shadow", "/etc/dockward.prom", "/proc/self/x.prom", "/x.prom",
		"/var/lib/node_exporter/.prom", "/var/lib/node_exporter/../x.prom", "/var/lib/node_exporter/x.prom/",
		"/var/lib/node exporter\n/x.prom", "/usr/lib/x.prom", "/var/lib/node_exporter//dockward.prom"} {
		t.Run(v, func(t *testing.T) {
			_, diags := decode(t, fmt.Sprintf("agent {\n  metrics_textfile = %q\n}\n", v))
			errorAt(t, diags, 2, 22, "metrics_textfile")
		})
	}
	noErrors(t, "agent {\n  metrics_textfile = \"/var/lib/node_exporter/textfile_collector/dockward.prom\"\n}\n")
	noErrors(t, "agent {\n  metrics_textfile = \"\"\n}\n")
}

func TestFlapSettings(t *testing.T) {
	for _, tc := range []struct{ src, what string }{
		{"flap_corrections = 1", "flap_corrections"},
		{"flap_corrections = -1", "flap_corrections"},
		{"flap_corrections = 2.5", "flap_corrections"},
		{`flap_window = "0s"`, "flap_window"},
		{`flap_backoff = "soon"`, "flap_backoff"},
	} {
		t.Run(tc.src, func(t *testing.T) {
			_, diags := decode(t, "agent {\n  "+tc.src+"\n}\n")
			errorAt(t, diags, 2, len(tc.what)+6, tc.what)
		})
	}
	f, diags := decode(t, "agent {\n  flap_corrections = 0\n  flap_window = \"1h\"\n  flap_backoff = \"2h\"\n}\n")
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if a := f.Agent; a.FlapCorrections != 0 || a.FlapWindow != time.Hour || a.FlapBackoff != 2*time.Hour {
		t.Fatalf("decoded %+v", a)
	}
	f, _ = decode(t, "agent {\n}\n")
	if a := f.Agent; a.FlapCorrections != 3 || a.FlapWindow != 10*time.Minute || a.FlapBackoff != 5*time.Minute {
		t.Fatalf("defaults %+v", a)
	}
}
