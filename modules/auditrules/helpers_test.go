package auditrules

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dockward/dockward/agent"
	"github.com/dockward/dockward/config"
)

func decodeBlock(t *testing.T, src string) *Block {
	t.Helper()
	f, diags := config.Decode("test.hcl", []byte(src), []config.Kind{Kind})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	return f.Blocks[0].(*Block)
}

// fakeUnits answers from a map; a missing unit is (nil, nil).
type fakeUnits map[string]*Unit

func (f fakeUnits) Unit(_ context.Context, name string) (*Unit, error) { return f[name], nil }

// fakeAuditd is auditd and the kernel's rules: Load reads the rules file
// as augenrules would (the kernel then holds its watches).
type fakeAuditd struct {
	state   AuditdState
	file    string // the rules file, as loaded
	kernel  []byte
	loadErr error
	listErr error
	loads   int
}

func (f *fakeAuditd) State(context.Context) (AuditdState, string, error) {
	return f.state, "fake", nil
}

func (f *fakeAuditd) Loaded(context.Context) ([]byte, error) {
	if f.listErr != nil {
		return nil, f.listErr
	}
	return f.kernel, nil
}

func (f *fakeAuditd) Load(context.Context) error {
	f.loads++
	if f.loadErr != nil {
		return f.loadErr
	}
	data, err := os.ReadFile(f.file)
	if err != nil {
		return err
	}
	// auditctl -l prints directories with a trailing slash on some
	// versions; the module must not care.
	f.kernel = []byte(strings.ReplaceAll(string(data), "/etc/docker -p", "/etc/docker/ -p"))
	return nil
}

// debianTree lays out a Debian docker.io host under root: dockerd in
// /usr/sbin, units in /usr/lib/systemd/system, /lib a link to usr/lib as on
// merged /usr, containerd's runtime directory and socket (a plain file
// here), and no /etc/sysconfig.
func debianTree(t testing.TB, root string) {
	t.Helper()
	for _, p := range []string{
		"/usr/sbin/dockerd", "/usr/bin/containerd", "/usr/bin/containerd-shim-runc-v2", "/usr/sbin/runc",
		"/usr/lib/systemd/system/docker.service", "/usr/lib/systemd/system/docker.socket",
		"/etc/docker/daemon.json", "/etc/default/docker", "/var/lib/docker/.keep",
		"/run/containerd/containerd.sock",
	} {
		mkfile(t, filepath.Join(root, p))
	}
	if err := os.Symlink("usr/lib", filepath.Join(root, "lib")); err != nil {
		t.Fatal(err)
	}
}

func mkfile(t testing.TB, p string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
}

var debianUnits = fakeUnits{
	"docker.service": {FragmentPath: "/usr/lib/systemd/system/docker.service",
		ExecStart: [][]string{{"/usr/sbin/dockerd", "-H", "fd://", "--containerd=/run/containerd/containerd.sock", "$DOCKER_OPTS"}}},
	"docker.socket":      {FragmentPath: "/usr/lib/systemd/system/docker.socket"},
	"containerd.service": {FragmentPath: "/usr/lib/systemd/system/containerd.service", ExecStart: [][]string{{"/usr/bin/containerd"}}},
}

func rootEnv(t testing.TB) *agent.Env {
	root := t.TempDir()
	return &agent.Env{Root: root, StateDir: filepath.Join(root, "var/lib/dockward")}
}

var errBoom = errors.New("boom")

func paths(ws []Watch) []string {
	var out []string
	for _, w := range ws {
		out = append(out, fmt.Sprintf("%s %s", w.CIS, w.Path))
	}
	return out
}
