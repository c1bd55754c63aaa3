package service

import (
	"context"
	"errors"
	"github.com/dockward/dockward/agent/agenttest"
	"strings"
	"testing"
	"time"

	"github.com/dockward/dockward/agent"
	"github.com/dockward/dockward/modules/service/internal/fakesystemd"
)

// Watch against the fake systemd over a private dbus-daemon: go-systemd's
// and godbus's client ends as against systemd. The real systemd of a
// sandbox machine is in TestRealWatch.

// startWatch runs the module's Watch until the test ends and waits until
// it subscribed. It returns the events and Watch's result.
func startWatch(t *testing.T, f *fixture) (*agenttest.Events, <-chan error) {
	t.Helper()
	ev := agenttest.NewEvents(100)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	finished := make(chan struct{})
	go func() {
		done <- f.m.Watch(ctx, &agent.Env{StateDir: f.dir}, ev.Emit)
		close(finished)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-finished:
		case <-time.After(10 * time.Second):
			t.Error("Watch did not return within 10s of its context ending")
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for f.sd.Count("Subscribe", "") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("Watch did not subscribe within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Subscribe comes after the matches; the first read of the unit after
	// it. Let that read happen before the test changes anything.
	time.Sleep(50 * time.Millisecond)
	return ev, done
}

func TestWatchReportsAStoppedUnit(t *testing.T) {
	f := overBus(t, testBlock(), activeDocker())
	ev, _ := startWatch(t, f)
	ev.None(t, 200*time.Millisecond, "unit as wanted")

	// Someone stops it (systemctl stop, elsewhere).
	if _, e := f.sd.Job("stop", docker, nil); e != nil {
		t.Fatal(e)
	}
	r := ev.Next(t, "after docker.service stopped")
	if !strings.Contains(r, "docker.service is inactive (dead), want running") {
		t.Errorf("reason = %q", r)
	}
	// The agent starts it again: back as wanted, nothing more to say.
	if _, err := f.apply(nil); err != nil {
		t.Fatal(err)
	}
	ev.None(t, 300*time.Millisecond, "after the start")

	// A crash loop is drift too.
	f.sd.SetUnitState(docker, "activating", "auto-restart")
	if r := ev.Next(t, "crash loop"); !strings.Contains(r, "activating (auto-restart)") {
		t.Errorf("reason = %q", r)
	}
}

func TestWatchReportsADisabledUnit(t *testing.T) {
	f := overBus(t, testBlock(), activeDocker())
	ev, _ := startWatch(t, f)
	if _, e := f.sd.EnableUnitFiles([]string{docker}, false); e != nil {
		t.Fatal(e)
	}
	if r := ev.Next(t, "after systemctl disable"); !strings.Contains(r, "unit files changed: docker.service is disabled, want enabled = true") {
		t.Errorf("reason = %q", r)
	}
}

// A restart, by dockward or anyone, holds a job on the unit from its first
// signal to its last: Watch judges the unit only after, when it is active
// again, so a restart causes no event at all.
func TestWatchQuietDuringRestart(t *testing.T) {
	f := overBus(t, testBlock(func(b *Block) { b.Verify = VerifyDocker }), activeDocker())
	f.sd.SetJobDelay(100 * time.Millisecond)
	ev, _ := startWatch(t, f)
	for i := range 3 {
		if _, err := f.apply(map[string][]agent.Change{"docker_daemon": changes("log-opts")}); err != nil {
			t.Fatal(err)
		}
		if n := f.sd.Count("RestartUnit", docker); n != i+1 {
			t.Fatalf("%d restarts, want %d", n, i+1)
		}
	}
	ev.None(t, 300*time.Millisecond, "three restarts")
}

func TestWatchStoppedStateWanted(t *testing.T) {
	no := false
	f := overBus(t, testBlock(func(b *Block) { b.State = StateStopped; b.Enabled = &no }),
		fakeUnit(docker, "inactive", "disabled"))
	ev, _ := startWatch(t, f)
	ev.None(t, 200*time.Millisecond, "unit stopped as wanted")
	if _, e := f.sd.Job("start", docker, nil); e != nil {
		t.Fatal(e)
	}
	if r := ev.Next(t, "after someone started it"); !strings.Contains(r, "want stopped") {
		t.Errorf("reason = %q", r)
	}
}

// Drift that happened before Watch subscribed is reported at once.
func TestWatchReportsDriftFoundAtStart(t *testing.T) {
	f := overBus(t, testBlock(), fakeUnit(docker, "failed", "enabled"))
	ev, _ := startWatch(t, f)
	if r := ev.Next(t, "at start"); !strings.Contains(r, "docker.service is failed") {
		t.Errorf("reason = %q", r)
	}
}

// The bus going away ends Watch with an error, for the run loop to start it
// again (and converge, since something may have changed meanwhile).
func TestWatchEndsWhenTheBusCloses(t *testing.T) {
	f := overBus(t, testBlock(), activeDocker())
	_, done := startWatch(t, f)
	f.srv.RestartBus()
	select {
	case err := <-done:
		if !errors.Is(err, ErrBusUnavailable) {
			t.Errorf("Watch returned %v, want ErrBusUnavailable", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Watch did not notice the bus closing within 10s")
	}
}

func TestWatchOffline(t *testing.T) {
	m := New(testBlock())
	err := m.Watch(context.Background(), &agent.Env{Root: t.TempDir()}, func(string) {})
	if !errors.Is(err, agent.ErrOffline) {
		t.Errorf("Watch under --root = %v, want ErrOffline", err)
	}
}

func TestWatchNoBus(t *testing.T) {
	t.Setenv("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/nonexistent/bus")
	m := New(testBlock())
	err := m.Watch(context.Background(), &agent.Env{}, func(string) {})
	if !errors.Is(err, ErrBusUnavailable) {
		t.Errorf("Watch without a bus = %v, want ErrBusUnavailable", err)
	}
}

func fakeUnit(name, active, fileState string) fakesystemd.Unit {
	return fakesystemd.Unit{Name: name, ActiveState: active, UnitFileState: fileState}
}

// Watch against the real systemd of a sandbox machine, from this host over
// its system bus: restarts (dockward's and an operator's) are quiet; a
// stop, a kill and a disable are reported. It also checks what the
// journal's Written rule relies on: a restart moves both timestamps.
func TestRealWatch(t *testing.T) {
	m := realMachine(t)
	b := realBlock(m)
	mod := New(b)
	t.Cleanup(mod.Close)
	f := &fixture{t: t, m: mod, dir: t.TempDir()}
	ev := agenttest.NewEvents(100)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mod.Watch(ctx, &agent.Env{StateDir: f.dir}, ev.Emit) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Watch: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Watch did not return within 10s of its context ending")
		}
	})
	ev.None(t, time.Second, "docker.service active and enabled")
	run := func(args ...string) {
		t.Helper()
		m.MustRun(t, args...)
	}
	state := func() unitState {
		t.Helper()
		u, err := mod.sd.State(context.Background(), docker)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}

	t.Run("dockward's restart is quiet", func(t *testing.T) {
		before := time.Now()
		if _, err := f.apply(map[string][]agent.Change{"docker_daemon": changes("log-opts")}); err != nil {
			t.Fatal(err)
		}
		ev.None(t, 2*time.Second, "after dockward restarted docker")
		u := state()
		if !u.InactiveExit.After(before) || !u.ActiveEnter.After(u.InactiveExit) {
			t.Errorf("after a restart: InactiveExit %v, ActiveEnter %v, restart asked at %v", u.InactiveExit, u.ActiveEnter, before)
		}
		if !u.StartedAfter(before) {
			t.Error("startedAfter(the time the restart was asked) is false after the restart")
		}
	})
	t.Run("an operator's restart is quiet", func(t *testing.T) {
		run("systemctl", "restart", "docker.service")
		ev.None(t, 2*time.Second, "after systemctl restart docker")
	})
	t.Run("stopped", func(t *testing.T) {
		run("systemctl", "stop", "docker.service", "docker.socket")
		if r := ev.Next(t, "after systemctl stop docker"); !strings.Contains(r, "docker.service is inactive (dead), want running") {
			t.Errorf("reason %q", r)
		}
		if _, err := f.apply(nil); err != nil {
			t.Fatal(err)
		}
		ev.None(t, 2*time.Second, "after dockward started it again")
	})
	t.Run("killed", func(t *testing.T) {
		// dockerd dies; systemd restarts it (Restart=always): a crash
		// between two attempts is reported once, the recovery not at all.
		run("systemctl", "kill", "-s", "KILL", "docker.service")
		r := ev.Next(t, "after dockerd was killed")
		if !strings.Contains(r, "docker.service is ") {
			t.Errorf("reason %q", r)
		}
		deadline := time.Now().Add(90 * time.Second)
		for state().ActiveState != "active" {
			if time.Now().After(deadline) {
				t.Fatal("docker did not come back after the kill")
			}
			time.Sleep(200 * time.Millisecond)
		}
		ev.Drain(2 * time.Second)
	})
	t.Run("disabled", func(t *testing.T) {
		run("systemctl", "disable", "docker.service")
		if r := ev.Next(t, "after systemctl disable docker"); !strings.Contains(r, "is disabled, want enabled = true") {
			t.Errorf("reason %q", r)
		}
		if _, err := f.apply(nil); err != nil {
			t.Fatal(err)
		}
		if got := strings.TrimSpace(m.MustRun(t, "systemctl", "is-enabled", "docker.service")); got != "enabled" {
			t.Errorf("after apply: %s", got)
		}
		ev.Drain(time.Second) // the enable's own UnitFilesChanged finds it as wanted
	})
}
