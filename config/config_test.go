package config_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dockward/dockward/agent/agenttest"
	"github.com/dockward/dockward/config"
	"github.com/dockward/dockward/modules"
	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/hcl/v2"
)

func decode(t testing.TB, src string) (*config.File, hcl.Diagnostics) {
	t.Helper()
	return config.Decode("test.hcl", []byte(src), modules.Kinds)
}

func TestDefaultConfigurationIsValid(t *testing.T) {
	f, diags := config.Load(config.DefaultFilename, config.Default, modules.Kinds)
	if diags.HasErrors() {
		t.Fatalf("embedded default: %s", diags.Error())
	}
	var ids []string
	for _, b := range f.Blocks {
		ids = append(ids, b.ID())
	}
	want := []string{"docker_daemon", "subordinate_ids.dockremap", "service.docker.service", "docker_files", "audit_rules", "firewall"}
	if diff := cmp.Diff(want, ids); diff != "" {
		t.Fatalf("blocks (-want +got):\n%s", diff)
	}
	if f.Agent.StateDir != "/var/lib/dockward" || !f.Agent.Watch {
		t.Fatalf("agent block: %+v", f.Agent)
	}
	// No placeholder addresses in what a fresh host gets.
	for _, bad := range []string{"10.0.0.2", "192.0.2.", "198.51.100.", "203.0.113.", "example"} {
		if bytes.Contains(config.Default, []byte(bad)) {
			t.Errorf("embedded default contains placeholder %q", bad)
		}
	}
	if len(modules.Build(f)) != 6 {
		t.Fatalf("default builds %d modules, want 6", len(modules.Build(f)))
	}
}

func TestMisspeltBlockSuggestsTheRightName(t *testing.T) {
	_, diags := decode(t, "agent {}\n\ndocker_deamon {\n  userns_remap = \"default\"\n}\n")
	if !diags.HasErrors() {
		t.Fatal("no error")
	}
	d := diags[0]
	if d.Subject.Start.Line != 3 || !strings.Contains(d.Detail, `Did you mean "docker_daemon"?`) {
		t.Fatalf("got %s at %v", d.Detail, d.Subject)
	}
}

func TestEveryDiagnosticAtOnce(t *testing.T) {
	src := `agent {
  interval = "soon"
  splay    = "-1s"
}
docker_daemon {
  userns_remapp = "default"
}
service "docker.service" {
  restart_on = [docker_daemon, subordinate_ids.nobody]
}
`
	_, diags := decode(t, src)
	var lines []int
	for _, d := range diags {
		lines = append(lines, d.Subject.Start.Line)
	}
	want := []int{2, 3, 6, 9}
	for _, w := range want {
		found := false
		for _, l := range lines {
			found = found || l == w
		}
		if !found {
			t.Errorf("no diagnostic on line %d; got lines %v:\n%s", w, lines, diags.Error())
		}
	}
}

func TestDuplicateBlockSaysWhereTheFirstIs(t *testing.T) {
	_, diags := decode(t, "docker_daemon {}\n\ndocker_daemon {}\n")
	if len(diags) != 1 || !strings.Contains(diags[0].Detail, "test.hcl:1,1") || diags[0].Subject.Start.Line != 3 {
		t.Fatalf("got %v", diags)
	}
}

func TestUnknownRestartOnReference(t *testing.T) {
	_, diags := decode(t, "docker_daemon {}\nservice \"docker.service\" {\n  restart_on = [docker_deamon]\n}\n")
	if len(diags) != 1 {
		t.Fatalf("want 1 diagnostic, got %v", diags)
	}
	d := diags[0]
	if d.Subject.Start.Line != 3 || d.Subject.Start.Column != 17 || !strings.Contains(d.Detail, "Did you mean docker_daemon?") {
		t.Fatalf("got %q at %v", d.Detail, d.Subject)
	}
}

func TestDiagnosticsGolden(t *testing.T) {
	src, err := os.ReadFile("testdata/invalid.hcl")
	if err != nil {
		t.Fatal(err)
	}
	f, diags := config.Decode("testdata/invalid.hcl", src, modules.Kinds)
	var text bytes.Buffer
	if err := config.WriteDiagnostics(&text, f.Files, diags, false); err != nil {
		t.Fatal(err)
	}
	agenttest.Golden(t, "testdata/invalid.text.golden", text.String())
	var js bytes.Buffer
	if err := config.WriteJSON(&js, diags); err != nil {
		t.Fatal(err)
	}
	agenttest.Golden(t, "testdata/invalid.json.golden", js.String())
	var v struct {
		FormatVersion string `json:"format_version"`
		Valid         *bool  `json:"valid"`
		Diagnostics   []struct {
			Severity, Summary, Detail string
			Range                     struct {
				Filename string
				Start    struct{ Line, Column int }
			}
		}
	}
	if err := json.Unmarshal(js.Bytes(), &v); err != nil {
		t.Fatal(err)
	}
	if v.FormatVersion != "1" || v.Valid == nil || *v.Valid || len(v.Diagnostics) == 0 || v.Diagnostics[0].Range.Start.Line == 0 {
		t.Fatalf("json diagnostics: %+v", v)
	}
}

func TestOwnershipIsChecked(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "dockward.hcl")
	if err := os.WriteFile(p, config.Default, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := config.CheckOwnership(p); err != nil {
		t.Fatalf("0600 file refused: %v", err)
	}
	for _, mode := range []os.FileMode{0o620, 0o602, 0o666} {
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		if err := config.CheckOwnership(p); err == nil || !strings.Contains(err.Error(), "writable") {
			t.Errorf("mode %o: got %v, want refusal", mode, err)
		}
	}
	if os.Geteuid() == 0 {
		if err := os.Chmod(p, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, 1234, 0); err != nil {
			t.Fatal(err)
		}
		if err := config.CheckOwnership(p); err == nil || !strings.Contains(err.Error(), "owned by uid 1234") {
			t.Errorf("foreign owner: got %v", err)
		}
	}
}

func TestReadFallsBackToTheEmbeddedDefault(t *testing.T) {
	root := t.TempDir()
	src, err := config.Read("", root)
	if err != nil || !src.Embedded {
		t.Fatalf("got %+v, %v", src, err)
	}
	if _, err := config.Read(filepath.Join(root, "missing.hcl"), ""); err == nil {
		t.Fatal("a missing -c file must be an error")
	}
	p := filepath.Join(root, "etc/dockward/dockward.hcl")
	_ = os.MkdirAll(filepath.Dir(p), 0o755)
	_ = os.WriteFile(p, []byte("agent {}\n"), 0o644)
	src, err = config.Read("", root)
	if err != nil || src.Embedded || src.Filename != p {
		t.Fatalf("got %+v, %v", src, err)
	}
}

func BenchmarkDecodeDefault(b *testing.B) {
	for b.Loop() {
		if _, diags := config.Load(config.DefaultFilename, config.Default, modules.Kinds); diags.HasErrors() {
			b.Fatal(diags)
		}
	}
}

// FuzzDecode: whatever the input, decoding returns diagnostics, never
// panics, and every error points into the file.
func FuzzDecode(f *testing.F) {
	f.Add(string(config.Default))
	f.Add("docker_daemon { settings = { a = [1, {b = null}] } }")
	f.Add("service \"x\" { restart_on = [a.b.c, \"q\", 1] }")
	f.Add("firewall { network \"n\" { egress_allow { ports = [0, 70000] to = [\"1.2.3.4/33\"] } } }")
	// The probe's hostile inputs (issue 11).
	f.Add("docker_daemon {\n settings = { x = " + strings.Repeat("[", 2000) + strings.Repeat("]", 2000) + " }\n}\n")
	f.Add("docker_daemon {\n settings = { x = \"" + strings.Repeat("${\"", 100) + strings.Repeat("\"}", 100) + "\" }\n}\n")
	f.Add("docker_daemon {\n settings = { x = 1/0, y = -1/0, z = 1e999999999, w = 1e-999999999, v = 1e400 }\n log_opts = { max-file = 1/0 }\n validate = false\n}\n")
	f.Add("docker_daemon {\n userns_remap = \"0:0\"\n}\nagent {\n metrics_textfile = \"/etc/shadow\"\n}\n")
	f.Add("docker_daemon {\n userns_remap = \" default\\n\"\n}\nsubordinate_ids \"x\" {\n count = 1/0\n start = 1e400\n}\n")
	f.Add("docker_daemon {\n x = <<EOT\n[[[[ ${ [[ } \nEOT\n y = <<-EOT\n  $${ %%{\n  EOT\n}\n")
	f.Add(string(unknownAttributes(300)))
	f.Fuzz(func(t *testing.T, src string) {
		_, diags := config.Decode("fuzz.hcl", []byte(src), modules.Kinds)
		for _, d := range diags {
			if d.Severity == hcl.DiagError && d.Subject != nil && d.Subject.Filename != "fuzz.hcl" {
				t.Fatalf("diagnostic outside the file: %v", d)
			}
		}
		if len(diags) > config.MaxDiagnostics+1 {
			t.Fatalf("%d diagnostics", len(diags))
		}
		for i := 1; i < len(diags); i++ {
			a, b := diags[i-1].Subject, diags[i].Subject
			if a != nil && b != nil && a.Start.Byte > b.Start.Byte {
				t.Fatalf("diagnostics out of order: %v before %v", a, b)
			}
		}
	})
}
