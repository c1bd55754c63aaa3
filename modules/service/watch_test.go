package service

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dockward/dockward/agent"
	"github.com/dockward/dockward/modules/service/internal/fakesystemd"
)

// Watch against the fake systemd over a private dbus-daemon: go-systemd's
// and godbus's client ends as against systemd. The real systemd of a
// sandbox machine is in TestRealWatch.

type emitted struct {
	mu      sync.Mutex
	reasons []string
	ch      chan string
}

func newEmitted() *emitted { return &emitted{ch: make(chan string, 100)} }

func (e *emitted) emit(r string) {
	e.mu.Lock()
	e.reasons = append(e.reasons, r)
	e.mu.Unlock()
	e.ch <- r
}

// next waits (bounded) for the next event.
func (e *emitted) next(t *testing.T, what string) string {
	t.Helper()
	select {
	case r := <-e.ch:
		return r
	case <-time.After(10 * time.Second):
		t.Fatalf("no event within 10s: %s", what)
	}
	return ""
}

// none checks that no event arrives for a while: signals are asynchronous,
// so quiet for d is as close to "never" as a test gets.
func (e *emitted) none(t *testing.T, d time.Duration, what string) {
	t.Helper()
	select {
	case r := <-e.ch:
		t.Errorf("%s: unexpected event %q", what, r)
	case <-time.After(d):
	}
}

// startWatch runs the module's Watch until the test ends and waits until
// it subscribed. It returns the events and Watch's result.
func startWatch(t *testing.T, f *fixture) (*emitted, <-chan error) {
	t.Helper()
	ev := newEmitted()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	finished := make(chan struct{})
	go func() {
		done <- f.m.Watch(ctx, &agent.Env{StateDir: f.dir}, ev.emit)
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
	ev.none(t, 200*time.Millisecond, "unit as wanted")

	// Someone stops it (systemctl stop, elsewhere).
	if _, e := f.sd.Job("stop", docker, nil); e != nil {
		t.Fatal(e)
	}
	r := ev.next(t, "after docker.service stopped")
	if !strings.Contains(r, "docker.service is inactive (dead), want running") {
		t.Errorf("reason = %q", r)
	}
	// The agent starts it again: back as wanted, nothing more to say.
	if _, _, err := f.apply(nil); err != nil {
		t.Fatal(err)
	}
	ev.none(t, 300*time.Millisecond, "after the start")

	// A crash loop is drift too.
	f.sd.SetUnitState(docker, "activating", "auto-restart")
	if r := ev.next(t, "crash loop"); !strings.Contains(r, "activating (auto-restart)") {
		t.Errorf("reason = %q", r)
	}
}

func TestWatchReportsADisabledUnit(t *testing.T) {
	f := overBus(t, testBlock(), activeDocker())
	ev, _ := startWatch(t, f)
	if _, e := f.sd.EnableUnitFiles([]string{docker}, false); e != nil {
		t.Fatal(e)
	}
	if r := ev.next(t, "after systemctl disable"); !strings.Contains(r, "unit files changed: docker.service is disabled, want enabled = true") {
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
		if _, _, err := f.apply(map[string][]agent.Change{"docker_daemon": changes("log-opts")}); err != nil {
			t.Fatal(err)
		}
		if n := f.sd.Count("RestartUnit", docker); n != i+1 {
			t.Fatalf("%d restarts, want %d", n, i+1)
		}
	}
	ev.none(t, 300*time.Millisecond, "three restarts")
}

func TestWatchStoppedStateWanted(t *testing.T) {
	no := false
	f := overBus(t, testBlock(func(b *Block) { b.State = StateStopped; b.Enabled = &no }),
		fakeUnit(docker, "inactive", "disabled"))
	ev, _ := startWatch(t, f)
	ev.none(t, 200*time.Millisecond, "unit stopped as wanted")
	if _, e := f.sd.Job("start", docker, nil); e != nil {
		t.Fatal(e)
	}
	if r := ev.next(t, "after someone started it"); !strings.Contains(r, "want stopped") {
		t.Errorf("reason = %q", r)
	}
}

// Drift that happened before Watch subscribed is reported at once.
func TestWatchReportsDriftFoundAtStart(t *testing.T) {
	f := overBus(t, testBlock(), fakeUnit(docker, "failed", "enabled"))
	ev, _ := startWatch(t, f)
	if r := ev.next(t, "at start"); !strings.Contains(r, "docker.service is failed") {
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
