package dockerfiles

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/dockward/dockward/integration/sandbox"
)

// TestRealHost runs dockward inside a booted sandbox machine (Debian
// trixie, systemd 257, docker.io 26): the unit files come from the real
// systemd, the sockets are Docker's and containerd's own. Loosened files
// and sockets are narrowed, content is untouched, Docker still answers on
// its socket, and a second plan has nothing to do.
func TestRealHost(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: boots a systemd-nspawn sandbox machine with systemd and Docker")
	}
	if testing.Short() {
		t.Skip("boots a sandbox machine; skipped with -short")
	}
	m := sandbox.Start(t)
	m.InstallDockward(t)
	run := func(args ...string) (string, int) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		out, stderr, code, err := m.Run(ctx, args...)
		if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		return out + stderr, code
	}
	stat := func(p string) string {
		return strings.TrimSpace(m.MustRun(t, "stat", "-L", "-c", "%a %U:%G", p))
	}
	unit := strings.TrimSpace(m.MustRun(t, "systemctl", "show", "-p", "FragmentPath", "--value", "docker.service"))
	m.MustRun(t, "sh", "-c", `test -e /etc/docker/daemon.json || echo '{}' > /etc/docker/daemon.json`)
	sum := m.MustRun(t, "sha256sum", "/etc/docker/daemon.json", unit)
	m.MustRun(t, "chmod", "666", "/etc/docker/daemon.json", unit)
	m.MustRun(t, "chmod", "777", "/etc/docker")
	m.MustRun(t, "chmod", "666", "/run/docker.sock", "/run/containerd/containerd.sock")
	m.MustRun(t, "chgrp", "root", "/run/docker.sock")

	out, code := run("dockward", "plan", "--only", "docker_files")
	if code != 2 {
		t.Fatalf("plan: exit %d\n%s", code, out)
	}
	for _, want := range []string{"/var/run/docker.sock", "owner root:docker", "/run/containerd/containerd.sock", unit, "3.17/3.18 daemon.json"} {
		if !strings.Contains(out, want) {
			t.Errorf("plan lacks %q:\n%s", want, out)
		}
	}
	if out, code := run("dockward", "apply", "--only", "docker_files"); code != 2 {
		t.Fatalf("apply: exit %d\n%s", code, out)
	}
	for p, want := range map[string]string{
		"/etc/docker/daemon.json":         "644 root:root",
		"/etc/docker":                     "755 root:root",
		unit:                              "644 root:root",
		"/run/docker.sock":                "660 root:docker",
		"/run/containerd/containerd.sock": "660 root:root",
	} {
		if got := stat(p); got != want {
			t.Errorf("%s: %s, want %s", p, got, want)
		}
	}
	if got := m.MustRun(t, "sha256sum", "/etc/docker/daemon.json", unit); got != sum {
		t.Errorf("content changed:\n%s\n%s", sum, got)
	}
	m.MustRun(t, "docker", "version")
	if out, code := run("dockward", "plan", "--only", "docker_files"); code != 0 {
		t.Fatalf("plan after apply: exit %d\n%s", code, out)
	}
	// A file already stricter than the benchmark stays as it is.
	m.MustRun(t, "chmod", "600", "/etc/docker/daemon.json")
	if out, code := run("dockward", "apply", "--only", "docker_files"); code != 0 {
		t.Fatalf("apply on a stricter file: exit %d\n%s", code, out)
	}
	if got := stat("/etc/docker/daemon.json"); got != "600 root:root" {
		t.Errorf("a stricter daemon.json was changed: %s", got)
	}
}
