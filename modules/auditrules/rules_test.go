package auditrules

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dockward/dockward/agent/agenttest"
	"github.com/dockward/dockward/agent/managedfile"
	"github.com/google/go-cmp/cmp"
)

func TestResolveDebian(t *testing.T) {
	root := t.TempDir()
	debianTree(t, root)
	r, err := managedfile.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ws, err := Resolve(context.Background(), r, debianUnits)
	if err != nil {
		t.Fatal(err)
	}
	// /usr/bin/dockerd, /etc/containerd/config.toml, /etc/sysconfig/docker,
	// containerd-shim and -runc-v1 do not exist: no rule. The unit files
	// are watched once, at systemd's path (/lib/systemd/system/... is the
	// same file); runc is found on PATH in /usr/sbin.
	want := []string{
		"1.1.3 /usr/sbin/dockerd",
		"1.1.4 /run/containerd",
		"1.1.5 /var/lib/docker",
		"1.1.6 /etc/docker",
		"1.1.7 /usr/lib/systemd/system/docker.service",
		"1.1.8 /run/containerd/containerd.sock",
		"1.1.9 /usr/lib/systemd/system/docker.socket",
		"1.1.10 /etc/default/docker",
		"1.1.11 /etc/docker/daemon.json",
		"1.1.14 /usr/bin/containerd",
		"1.1.17 /usr/bin/containerd-shim-runc-v2",
		"1.1.18 /usr/sbin/runc",
	}
	if diff := cmp.Diff(want, paths(ws)); diff != "" {
		t.Fatalf("watches (-want +got):\n%s", diff)
	}
	agenttest.Golden(t, "testdata/debian.rules", string(Render("docker", ws)))
}

// Docker's packages: /usr/bin/dockerd, a unit in /etc/systemd/system that
// systemd does not report (no systemd to ask): the places docker-bench
// looks are used, and the benchmark's literal paths are watched.
func TestResolveDockerCEWithoutSystemd(t *testing.T) {
	root := t.TempDir()
	for _, p := range []string{"/usr/bin/dockerd", "/usr/bin/runc", "/etc/systemd/system/docker.service",
		"/lib/systemd/system/docker.socket", "/etc/containerd/config.toml", "/etc/sysconfig/docker",
		"/usr/bin/containerd-shim", "/usr/bin/containerd-shim-runc-v1", "/opt/runc/runc"} {
		mkfile(t, filepath.Join(root, p))
	}
	// /usr/local/bin/runc is a link: the link is watched (it is what is on
	// PATH), and so is the file it names.
	if err := os.MkdirAll(filepath.Join(root, "usr/local/bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../../opt/runc/runc", filepath.Join(root, "usr/local/bin/runc")); err != nil {
		t.Fatal(err)
	}
	r, _ := managedfile.Open(root)
	defer r.Close()
	ws, err := Resolve(context.Background(), r, noSystemd{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"1.1.3 /usr/bin/dockerd",
		"1.1.7 /etc/systemd/system/docker.service",
		"1.1.9 /lib/systemd/system/docker.socket",
		"1.1.12 /etc/containerd/config.toml",
		"1.1.13 /etc/sysconfig/docker",
		"1.1.15 /usr/bin/containerd-shim",
		"1.1.16 /usr/bin/containerd-shim-runc-v1",
		"1.1.18 /usr/local/bin/runc",
		"1.1.18 /opt/runc/runc",
		"1.1.18 /usr/bin/runc",
	}
	if diff := cmp.Diff(want, paths(ws)); diff != "" {
		t.Fatalf("watches (-want +got):\n%s", diff)
	}
}

type noSystemd struct{}

func (noSystemd) Unit(context.Context, string) (*Unit, error) { return nil, ErrNoSystemd }

type failingUnits struct{}

func (failingUnits) Unit(context.Context, string) (*Unit, error) { return nil, errBoom }

func TestResolveSystemdError(t *testing.T) {
	r, _ := managedfile.Open(t.TempDir())
	defer r.Close()
	if _, err := Resolve(context.Background(), r, failingUnits{}); err == nil {
		t.Fatal("a systemd that fails must fail the plan, not give fewer rules")
	}
}

// Rules below /run come last, whatever the benchmark's order.
func TestRenderRuntimeLast(t *testing.T) {
	got := string(Render("k", []Watch{
		{"1.1.4", "/run/containerd", "/run/containerd"},
		{"1.1.8", "containerd.sock", "/run/containerd/containerd.sock"},
		{"1.1.10", "/etc/default/docker", "/etc/default/docker"},
	}))
	want := `## Written by dockward (audit_rules): CIS Docker Benchmark 1.1.3 to 1.1.18.
## dockward rewrites this file when Docker's paths change and reverts edits;
## keep your own rules in another file of this directory.
# 1.1.4 /run/containerd
-w /run/containerd -p wa -k k
# 1.1.10 /etc/default/docker
-w /etc/default/docker -p wa -k k
## Paths below /run last: they exist only while containerd runs.
# 1.1.8 containerd.sock
-w /run/containerd/containerd.sock -p wa -k k
`
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatal(diff)
	}
}

func TestParseRules(t *testing.T) {
	// auditctl -l as auditd 3.x prints watches, a syscall rule with a
	// path and a dir field, another key, and a comment.
	text := `-w /usr/sbin/dockerd -p wa -k docker
-w /etc/docker/ -p wa -k docker
-a always,exit -F arch=b64 -S all -F path=/run/containerd -F perm=wa -F key=docker
-a always,exit -F dir=/var/lib/docker -F perm=wa -k docker
-w /etc/passwd -p wa -k identity
# -w /etc/shadow -p wa -k docker
No rules
`
	got := ParseRules([]byte(text), "docker")
	want := map[string]bool{"/usr/sbin/dockerd": true, "/etc/docker": true, "/run/containerd": true, "/var/lib/docker": true}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatal(diff)
	}
}

func FuzzParseRules(f *testing.F) {
	f.Add([]byte("-w /x -p wa -k docker\n-a always,exit -F path=/y -F key=docker\n"), "docker")
	f.Fuzz(func(t *testing.T, data []byte, key string) {
		for p := range ParseRules(data, key) {
			if p == "" {
				t.Fatal("empty path")
			}
		}
	})
}

func TestMain(m *testing.M) { os.Exit(m.Run()) }

func TestRenderTmpfiles(t *testing.T) {
	ws := []Watch{{"1.1.8", "s", "/run/a/b/c.sock"}, {"1.1.4", "d", "/run/a"}, {"x", "y", "/run/a/d.sock"}, {"z", "v", "/var/run/e/f"}}
	if diff := cmp.Diff([]string{"/run/a", "/run/a/b", "/var/run/e"}, runtimeParents(ws)); diff != "" {
		t.Fatal(diff)
	}
	got := string(RenderTmpfiles([]RuntimeDir{{"/run/a", 0o711, 0, 0}, {"/var/run/e", 0o750, 0, 999}}))
	if !strings.HasSuffix(got, "d /run/a 0711 root root -\nd /run/e 0750 root 999 -\n") {
		t.Fatal(got)
	}
	if RenderTmpfiles(nil) != nil {
		t.Fatal("no directories, no entry")
	}
}
