package service

import (
	"strings"
	"testing"
	"time"

	"github.com/dockward/dockward/config"
	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/hcl/v2"
)

// stubKind stands in for the blocks restart_on refers to.
func stubKind(typ string, labels ...string) config.Kind {
	return config.Kind{Type: typ, Labels: labels, Decode: func(b *hcl.Block) (config.Block, hcl.Diagnostics) {
		_, d := b.Body.JustAttributes()
		return stubBlock{id: config.BlockID(b), rng: b.DefRange}, d
	}}
}

type stubBlock struct {
	id  string
	rng hcl.Range
}

func (s stubBlock) ID() string          { return s.id }
func (s stubBlock) DefRange() hcl.Range { return s.rng }

var testKinds = []config.Kind{Kind, stubKind("docker_daemon"), stubKind("subordinate_ids", "user")}

const upstreamBlocks = `
docker_daemon {}
subordinate_ids "dockremap" {}
`

func load(t *testing.T, src string) (*Block, hcl.Diagnostics) {
	t.Helper()
	f, diags := config.Decode("test.hcl", []byte(upstreamBlocks+src), testKinds)
	for _, b := range f.Blocks {
		if sb, ok := b.(*Block); ok {
			return sb, diags
		}
	}
	return nil, diags
}

func TestDecodeFull(t *testing.T) {
	b, diags := load(t, `
service "docker.service" {
  state      = "running"
  enabled    = true
  restart_on = [docker_daemon, subordinate_ids.dockremap]
  verify     = "docker"
  timeout    = "45s"
  rollback   = true
  docker_socket = "/var/run/docker.sock"
}`)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	yes := true
	want := &Block{Unit: "docker.service", State: "running", Enabled: &yes, Verify: "docker", Timeout: 45 * time.Second,
		Rollback: true, DockerSocket: "/var/run/docker.sock"}
	if diff := cmp.Diff(want, b, cmp.FilterPath(func(p cmp.Path) bool {
		f := p.Last().String()
		return f == ".RestartOn" || f == ".Range"
	}, cmp.Ignore())); diff != "" {
		t.Errorf("decoded block (-want +got):\n%s", diff)
	}
	var ids []string
	for _, r := range b.References() {
		ids = append(ids, r.ID)
	}
	if diff := cmp.Diff([]string{"docker_daemon", "subordinate_ids.dockremap"}, ids); diff != "" {
		t.Errorf("restart_on (-want +got):\n%s", diff)
	}
	if b.ID() != "service.docker.service" {
		t.Errorf("ID = %q", b.ID())
	}
	m := New(b)
	if m.Unit() != "docker.service" || cmp.Diff([]string{"docker_daemon", "subordinate_ids.dockremap"}, m.RestartOn()) != "" {
		t.Errorf("module Unit/RestartOn = %q %q", m.Unit(), m.RestartOn())
	}
}

func TestDecodeDefaults(t *testing.T) {
	b, diags := load(t, `service "containerd.service" {}`)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if b.State != StateRunning || b.Enabled != nil || b.Verify != VerifyNone || b.Timeout != DefaultTimeout || b.Rollback || b.DockerSocket != DefaultDockerSocket {
		t.Errorf("defaults: %+v", b)
	}
}

// Every problem is reported, each at the range of what is wrong.
func TestDecodeErrors(t *testing.T) {
	src := `
service "docker" {
  state      = "started"
  enabled    = "yes"
  restart_on = [docker_deamon, "subordinate_ids.dockremap"]
  verify     = "http"
  timeout    = "soon"
  rollback   = 1
  docker_socket = "run/docker.sock"
  rolback    = true
}`
	_, diags := load(t, src)
	type d struct {
		Summary string
		Line    int
		Col     int
		Text    string // the source the diagnostic points at
	}
	lines := strings.Split(upstreamBlocks+src, "\n")
	var got []d
	for _, x := range diags {
		r := x.Subject
		got = append(got, d{x.Summary, r.Start.Line, r.Start.Column, lines[r.Start.Line-1][r.Start.Column-1 : r.End.Column-1]})
	}
	// In file order: config.Decode orders diagnostics by position.
	want := []d{
		{"Invalid unit name", 5, 9, `"docker"`},
		{"Invalid value", 6, 16, `"started"`},
		{"Incorrect attribute value type", 7, 16, `"yes"`},
		{"Reference to undeclared block", 8, 17, "docker_deamon"},
		{"Invalid reference", 8, 32, `"subordinate_ids.dockremap"`},
		{"Invalid value", 9, 16, `"http"`},
		{"Invalid duration", 10, 16, `"soon"`},
		{"Incorrect attribute value type", 11, 16, "1"},
		{"Invalid path", 12, 19, `"run/docker.sock"`},
		{"Unsupported argument", 13, 3, "rolback"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("diagnostics (-want +got):\n%s\n%s", diff, diags)
	}
	for _, x := range diags {
		if x.Summary == "Reference to undeclared block" && !strings.Contains(x.Detail, "Did you mean docker_daemon") {
			t.Errorf("no suggestion for a misspelt reference: %s", x.Detail)
		}
	}
}

func TestDecodeSuggestsAttribute(t *testing.T) {
	_, diags := load(t, `service "docker.service" { restart_onn = [docker_daemon] }`)
	if len(diags) != 1 || !strings.Contains(diags[0].Detail, `Did you mean "restart_on"?`) {
		t.Errorf("want one diagnostic suggesting restart_on, got %s", diags)
	}
}

func TestCheckUnitName(t *testing.T) {
	for _, tc := range []struct {
		name, problem string
	}{
		{"docker.service", ""},
		{"containerd.service", ""},
		{"getty@tty1.service", ""},
		{"dev-sda1.device", ""},
		{"foo\\x2dbar.mount", ""},
		{"docker", "needs a type suffix"},
		{".service", "needs a type suffix"},
		{"docker.srv", "unknown unit type"},
		{"getty@.service", "is a template"},
		{"@tty1.service", "no name before"},
		{"dock er.service", "does not allow"},
		{"döcker.service", "does not allow"},
		{strings.Repeat("a", 250) + ".service", "longer than 255"},
	} {
		got := checkUnitName(tc.name)
		if (tc.problem == "") != (got == "") || !strings.Contains(got, tc.problem) {
			t.Errorf("checkUnitName(%q) = %q, want %q", tc.name, got, tc.problem)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(`service "docker.service" { state = "running" restart_on = [docker_daemon] timeout = "1s" }`)
	f.Add(`service "a@b.socket" { verify = "docker" enabled = false rollback = true }`)
	f.Add(`service "x" { restart_on = docker_daemon }`)
	f.Fuzz(func(t *testing.T, src string) {
		// Must not panic, whatever the input.
		_, _ = config.Decode("fuzz.hcl", []byte(src), testKinds)
	})
}
