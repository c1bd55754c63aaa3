package service

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/dockward/dockward/agent"
	"github.com/dockward/dockward/integration/sandbox"
)

// These tests drive the real systemd of a booted sandbox machine (Debian
// trixie: systemd 257, docker.io 26) from this host over its system bus, and
// check Docker's Engine API on its socket, seen from here through
// /proc/PID/root.

func realMachine(t testing.TB) *sandbox.Machine {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: boots a systemd-nspawn sandbox machine with systemd and Docker")
	}
	if testing.Short() {
		t.Skip("boots a sandbox machine; skipped with -short")
	}
	m := sandbox.Start(t)
	t.Setenv("DBUS_SYSTEM_BUS_ADDRESS", m.BusAddress())
	return m
}

// realBlock is the default configuration's block, verifying through the
// machine's docker socket.
func realBlock(m *sandbox.Machine) *Block {
	return testBlock(func(b *Block) {
		b.Verify = VerifyDocker
		b.Timeout = 90 * time.Second
		b.DockerSocket = m.Root() + "/run/docker.sock"
	})
}

type realHost struct {
	t   *testing.T
	m   *sandbox.Machine
	mod *Module
	dir string
}

func (h *realHost) show(prop string) string {
	return strings.TrimSpace(h.m.MustRun(h.t, "systemctl", "show", "-p", prop, "--value", docker))
}

// run is one apply of the engine over upstream modules that changed up;
// rollback restores them.
func (h *realHost) run(up map[string][]agent.Change, rollback func(id string) error) (*agent.Plan, error) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	return engineRun(ctx, h.t, h.dir, h.mod, up, rollback, true)
}

func (h *realHost) planEmpty() {
	h.t.Helper()
	p, err := engineRun(context.Background(), h.t, h.dir, h.mod, nil, nil, false)
	if err != nil || !p.Empty() {
		h.t.Errorf("plan in the next run: %v %+v", err, p)
	}
}

func (h *realHost) pingOK() {
	h.t.Helper()
	if err := pingDocker(context.Background(), h.mod.b.DockerSocket, time.Now().Add(10*time.Second)); err != nil {
		h.t.Errorf("docker /_ping: %v", err)
	}
}

func TestRealSystemd(t *testing.T) {
	m := realMachine(t)
	h := &realHost{t: t, m: m, mod: New(realBlock(m)), dir: t.TempDir()}
	t.Cleanup(h.mod.Close)

	t.Run("nothing changed, nothing restarted", func(t *testing.T) {
		h.t = t
		inv := h.show("InvocationID")
		p, err := h.run(nil, nil)
		if err != nil || !p.Empty() {
			t.Fatalf("apply: %v %+v", err, p)
		}
		if got := h.show("InvocationID"); got != inv {
			t.Errorf("InvocationID %s -> %s on a run that changed nothing", inv, got)
		}
	})

	t.Run("restart verified", func(t *testing.T) {
		h.t = t
		inv := h.show("InvocationID")
		start := time.Now()
		p, err := h.run(map[string][]agent.Change{
			"docker_daemon":             changes("log-opts"),
			"subordinate_ids.dockremap": changes("/etc/subuid"),
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("apply start to docker verified active: %s (waiting for systemd/dockerd: %s)", time.Since(start).Round(time.Millisecond), h.mod.waited.Round(time.Millisecond))
		if len(p.Changes) != 1 || !strings.HasPrefix(p.Changes[0].Detail, "restart docker.service: ") {
			t.Errorf("plan: %+v", p.Changes)
		}
		if got := h.show("InvocationID"); got == inv {
			t.Error("InvocationID unchanged: docker was not restarted")
		}
		if s := h.show("ActiveState"); s != "active" {
			t.Errorf("ActiveState %s", s)
		}
		h.pingOK()
		if o, _ := agent.NewJournal(h.dir).Get(docker); o != nil {
			t.Error("journal entry not cleared")
		}
		h.planEmpty()
	})

	t.Run("reload for live-restore only", func(t *testing.T) {
		h.t = t
		inv, pid := h.show("InvocationID"), h.show("MainPID")
		p, err := h.run(map[string][]agent.Change{"docker_daemon": reloads("live-restore")}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(p.Changes[0].Detail, "reload docker.service: ") {
			t.Errorf("plan: %+v", p.Changes)
		}
		if got := h.show("InvocationID"); got != inv {
			t.Error("InvocationID changed: docker was restarted, not reloaded")
		}
		if got := h.show("MainPID"); got != pid {
			t.Errorf("MainPID %s -> %s", pid, got)
		}
		h.pingOK()
	})

	// "storage-driver": "zfs" passes dockerd --validate, but dockerd exits
	// at start; the unit loops in auto-restart. Rollback restores the old
	// file, resets the start limit and brings docker back.
	t.Run("start failure rolled back", func(t *testing.T) {
		h.t = t
		const path = "/etc/docker/daemon.json"
		old, readErr := os.ReadFile(m.Root() + path)
		m.WriteFile(t, path, []byte(`{"storage-driver": "zfs"}`+"\n"), 0o644)
		var rolledBack []string
		restore := func(id string) error {
			rolledBack = append(rolledBack, id)
			if readErr != nil {
				return os.Remove(m.Root() + path)
			}
			return os.WriteFile(m.Root()+path, old, 0o644)
		}
		inv := h.show("InvocationID")
		_, err := h.run(map[string][]agent.Change{"docker_daemon": changes("storage-driver")}, restore)
		var rb *agent.RolledBackError
		if !errors.As(err, &rb) {
			t.Fatalf("want a RolledBackError, got %v", err)
		}
		t.Logf("reported: %v", err)
		if !strings.Contains(rb.Err.Error(), "restart docker.service: job failed") {
			t.Errorf("first failure: %v", rb.Err)
		}
		if len(rolledBack) == 0 {
			t.Error("the engine rolled nothing back")
		}
		if s := h.show("ActiveState"); s != "active" {
			t.Errorf("after rollback ActiveState %s", s)
		}
		if got := h.show("InvocationID"); got == inv {
			t.Error("InvocationID unchanged")
		}
		h.pingOK()
		if o, _ := agent.NewJournal(h.dir).Get(docker); o != nil {
			t.Error("journal entry kept after a verified rollback")
		}
	})

	// First boot: docker is not running yet; the change needs no restart,
	// a start reads the new files.
	t.Run("inactive unit started, not restarted", func(t *testing.T) {
		h.t = t
		m.MustRun(t, "systemctl", "stop", docker)
		p, err := h.run(map[string][]agent.Change{"docker_daemon": changes("log-opts")}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Changes) != 1 || !strings.HasPrefix(p.Changes[0].Detail, "start docker.service: it reads the new files") {
			t.Errorf("plan: %+v", p.Changes)
		}
		if s := h.show("ActiveState"); s != "active" {
			t.Errorf("ActiveState %s", s)
		}
		h.pingOK()
		h.planEmpty()
	})

	t.Run("no such unit", func(t *testing.T) {
		mod := New(testBlock(func(b *Block) { b.Unit = "no-such-thing.service" }))
		defer mod.Close()
		_, err := mod.Plan(context.Background(), &agent.Env{StateDir: h.dir})
		if !errors.Is(err, ErrNoSuchUnit) {
			t.Fatalf("plan: %v", err)
		}
	})
}
