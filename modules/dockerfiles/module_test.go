package dockerfiles

import (
	"context"
	"fmt"
	"github.com/dockward/dockward/agent/moduletest"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dockward/dockward/agent"
	"github.com/dockward/dockward/agent/agenttest"
	"github.com/dockward/dockward/config"
	"github.com/google/go-cmp/cmp"
)

func decodeBlock(t *testing.T, src string) *Block {
	t.Helper()
	f, diags := config.Decode("test.hcl", []byte(src), []config.Kind{Kind})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	return f.Blocks[0].(*Block)
}

type fakeUnits map[string]string

func (f fakeUnits) FragmentPath(_ context.Context, unit string) (string, error) { return f[unit], nil }

func put(t testing.TB, p string, mode os.FileMode, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}

func modeOf(t *testing.T, p string) string {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%04o", fi.Mode().Perm())
}

// looseTree is a host whose Docker files are all too open, except the TLS
// key, already stricter than the benchmark (0000), which must stay.
func looseTree(t testing.TB, root string) {
	t.Helper()
	put(t, root+"/usr/lib/systemd/system/docker.service", 0o664, "")
	put(t, root+"/usr/lib/systemd/system/docker.socket", 0o644, "")
	put(t, root+"/etc/docker/daemon.json", 0o666, `{"tlscacert": "/etc/docker/tls/ca.pem", "tlscert": "/etc/docker/tls/cert.pem", "tlskey": "/etc/docker/tls/key.pem", "tlsverify": true}`)
	put(t, root+"/etc/docker/tls/ca.pem", 0o644, "")
	put(t, root+"/etc/docker/tls/cert.pem", 0o440, "")
	put(t, root+"/etc/docker/tls/key.pem", 0o000, "")
	put(t, root+"/etc/docker/certs.d/registry.example:5000/ca.crt", 0o644, "")
	put(t, root+"/etc/docker/certs.d/registry.example:5000/client.key", 0o600, "")
	put(t, root+"/etc/default/docker", 0o646, "")
	if err := os.Chmod(root+"/etc/docker", 0o777); err != nil {
		t.Fatal(err)
	}
}

func rootEnv(t testing.TB) *agent.Env {
	root := t.TempDir()
	return &agent.Env{Root: root, StateDir: filepath.Join(root, "var/lib/dockward")}
}

var units = fakeUnits{"docker.service": "/usr/lib/systemd/system/docker.service", "docker.socket": "/usr/lib/systemd/system/docker.socket"}

func newModule(t *testing.T, src string) *Module {
	m := New(decodeBlock(t, src))
	m.units = units
	return m
}

func TestPlanApplyPlan(t *testing.T) {
	env := rootEnv(t)
	looseTree(t, env.Root)
	m := newModule(t, `docker_files {}`)
	p := moduletest.Plan(t, m, env)
	var got []string
	for _, c := range p.Changes {
		if !c.Metadata {
			t.Errorf("%s: not Metadata", c.Target)
		}
		got = append(got, c.Target+" "+c.Old+" -> "+c.New)
	}
	want := []string{
		"/usr/lib/systemd/system/docker.service mode 0664 -> mode 0644",
		"/etc/docker mode 0777 -> mode 0755",
		"/etc/docker/certs.d/registry.example:5000/ca.crt mode 0644 -> mode 0444",
		"/etc/docker/certs.d/registry.example:5000/client.key mode 0600 -> mode 0400",
		"/etc/docker/tls/ca.pem mode 0644 -> mode 0444",
		"/etc/docker/daemon.json mode 0666 -> mode 0644",
		"/etc/default/docker mode 0646 -> mode 0644",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("plan (-want +got):\n%s", diff)
	}
	daemonJSON, _ := os.ReadFile(env.Path("/etc/docker/daemon.json"))
	if err := m.Apply(context.Background(), env, p); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]string{
		"/etc/docker": "0755", "/etc/docker/daemon.json": "0644", "/etc/docker/tls/key.pem": "0000",
		"/etc/docker/tls/cert.pem": "0440", "/etc/docker/tls/ca.pem": "0444",
	} {
		if got := modeOf(t, env.Path(p)); got != want {
			t.Errorf("%s: %s, want %s", p, got, want)
		}
	}
	if after, _ := os.ReadFile(env.Path("/etc/docker/daemon.json")); string(after) != string(daemonJSON) {
		t.Error("content changed")
	}
	if p := moduletest.Plan(t, m, env); !p.Empty() {
		t.Fatalf("plan after apply: %+v", p.Changes)
	}
}

// The operator's file blocks override the table and add files; a link is
// not followed.
func TestOverridesAndLinks(t *testing.T) {
	env := rootEnv(t)
	put(t, env.Path("/etc/docker/daemon.json"), 0o644, "{}")
	put(t, env.Path("/etc/docker/seccomp.json"), 0o666, "{}")
	put(t, env.Path("/etc/shadow"), 0o640, "")
	put(t, env.Path("/etc/default/.keep"), 0o644, "")
	if err := os.Symlink("/etc/shadow", env.Path("/etc/default/docker")); err != nil {
		t.Fatal(err)
	}
	m := newModule(t, `docker_files {
  file "/etc/docker/daemon.json" { mode = "0600" }
  file "/etc/docker/seccomp.json" { mode = "0644" }
}`)
	p := moduletest.Plan(t, m, env)
	var got []string
	for _, c := range p.Changes {
		got = append(got, c.Target+" "+c.New+" ("+c.Detail+")")
	}
	want := []string{"/etc/docker/daemon.json mode 0600 (3.17/3.18 daemon.json)", "/etc/docker/seccomp.json mode 0644 (declared in docker_files)"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("plan (-want +got):\n%s", diff)
	}
	if err := m.Apply(context.Background(), env, p); err != nil {
		t.Fatal(err)
	}
	if got := modeOf(t, env.Path("/etc/shadow")); got != "0640" {
		t.Fatalf("a link's target was changed: %s", got)
	}
}

// Sockets on the live system: corrected through an O_PATH descriptor
// (a socket cannot be opened for FixPerm). The test's socket is a declared
// file at a temp path, so nothing of this host's own is touched.
func TestSocketLive(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "test.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := os.Chmod(sock, 0o777); err != nil {
		t.Fatal(err)
	}
	m := New(decodeBlock(t, fmt.Sprintf(`docker_files {
  file %q {
    owner = "root"
    group = "root"
    mode  = "0660"
  }
}`, sock)))
	m.units = fakeUnits{}
	env := &agent.Env{}
	p := moduletest.Plan(t, m, env)
	var mine []agent.Change
	for _, c := range p.Changes {
		if c.Target == sock {
			mine = append(mine, c)
		}
	}
	if len(mine) != 1 || !strings.Contains(mine[0].New, "mode 0660") {
		t.Fatalf("plan: %+v", p.Changes)
	}
	p.Changes = mine
	fixes := p.State.([]fix)
	var keep []fix
	for _, f := range fixes {
		if f.path == sock {
			keep = append(keep, f)
		}
	}
	p.State = keep
	if err := m.Apply(context.Background(), env, p); err != nil {
		t.Fatal(err)
	}
	if got := modeOf(t, sock); got != "0660" {
		t.Fatalf("socket mode %s", got)
	}
}

// A file replaced between plan and apply is refused.
func TestApplyRefusesAReplacedFile(t *testing.T) {
	env := rootEnv(t)
	put(t, env.Path("/etc/docker/daemon.json"), 0o666, "{}")
	m := newModule(t, `docker_files {}`)
	p := moduletest.Plan(t, m, env)
	put(t, env.Path("/etc/docker/new.json"), 0o666, "{}")
	if err := os.Rename(env.Path("/etc/docker/new.json"), env.Path("/etc/docker/daemon.json")); err != nil {
		t.Fatal(err)
	}
	if err := m.Apply(context.Background(), env, p); err == nil || !strings.Contains(err.Error(), "replaced since the plan") {
		t.Fatalf("apply: %v", err)
	}
}

func TestDecodeErrors(t *testing.T) {
	for _, tc := range []struct{ src, summary string }{
		{`file "/etc/docker/daemon.json" { mode = "rw-r--r--" }`, "Invalid mode"},
		{`file "/etc/docker/daemon.json" { mode = "01777" }`, "Invalid mode"},
		{`file "etc/docker/daemon.json" {}`, "Invalid path"},
		{`file "/etc/docker/x.json" {}`, "Missing mode"},
		{`file "/etc/docker/daemon.json" { owner = "Not A User" }`, "Invalid owner"},
	} {
		_, diags := config.Decode("test.hcl", []byte("docker_files {\n  "+tc.src+"\n}\n"), []config.Kind{Kind})
		if !diags.HasErrors() || diags[0].Summary != tc.summary || diags[0].Subject.Start.Line != 2 {
			t.Errorf("%s: %v", tc.src, diags)
		}
	}
	_, diags := config.Decode("test.hcl", []byte(`docker_files {
  file "/etc/default/docker" {}
  file "/etc/default//docker" {}
}`), []config.Kind{Kind})
	if !diags.HasErrors() || diags[0].Summary != "Duplicate file" || diags[0].Subject.Start.Line != 3 {
		t.Errorf("duplicate: %v", diags)
	}
}

// TestPlanGolden is what an operator sees on the loose host.
func TestPlanGolden(t *testing.T) {
	env := rootEnv(t)
	looseTree(t, env.Root)
	var sb strings.Builder
	for _, c := range moduletest.Plan(t, newModule(t, `docker_files {}`), env).Changes {
		fmt.Fprintf(&sb, "%s %s: %s -> %s (%s)\n", c.Action, c.Target, c.Old, c.New, c.Detail)
	}
	agenttest.Golden(t, "testdata/loose-host.golden", sb.String())
}

// As root, a wrong owner is changed to the table's, named through the
// tree's own /etc/passwd and /etc/group.
func TestOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("owners are only compared and set as root")
	}
	env := rootEnv(t)
	put(t, env.Path("/etc/passwd"), 0o644, "root:x:0:0::/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n")
	put(t, env.Path("/etc/group"), 0o644, "root:x:0:\nalice:x:1000:\ndocker:x:998:\n")
	put(t, env.Path("/etc/default/docker"), 0o644, "")
	if err := os.Chown(env.Path("/etc/default/docker"), 1000, 998); err != nil {
		t.Fatal(err)
	}
	m := newModule(t, `docker_files {}`)
	p := moduletest.Plan(t, m, env)
	if len(p.Changes) != 1 || p.Changes[0].Old != "owner alice:docker" || p.Changes[0].New != "owner root:root" {
		t.Fatalf("plan: %+v", p.Changes)
	}
	if err := m.Apply(context.Background(), env, p); err != nil {
		t.Fatal(err)
	}
	if p := moduletest.Plan(t, m, env); !p.Empty() {
		t.Fatalf("plan after apply: %+v", p.Changes)
	}
}
