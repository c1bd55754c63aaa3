package agent

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// gateModule blocks in Apply until its gate opens, and counts how many of
// its applies run at once.
type gateModule struct {
	id      string
	gate    chan struct{}
	entered chan struct{}
	drifted bool
	now     atomic.Int32
	most    atomic.Int32
}

func (g *gateModule) ID() string { return g.id }
func (g *gateModule) Plan(ctx context.Context, env *Env) (*Plan, error) {
	if !g.drifted {
		return &Plan{}, nil
	}
	return &Plan{Changes: []Change{{Action: Update, Target: g.id}}}, nil
}
func (g *gateModule) Apply(ctx context.Context, env *Env, p *Plan) error {
	n := g.now.Add(1)
	defer g.now.Add(-1)
	if n > g.most.Load() {
		g.most.Store(n)
	}
	g.entered <- struct{}{}
	<-g.gate
	return nil
}

// Two runs of one engine in one process share the run lock (the second
// does not wait for the first), never run one module at once, and still
// keep another holder of the lock (another process) out.
func TestOverlappingRunsShareTheLockNotTheModules(t *testing.T) {
	a := &gateModule{id: "a", gate: make(chan struct{}), entered: make(chan struct{}, 4), drifted: true}
	b := &fakeModule{id: "b", have: str("x"), want: "y"}
	e := newEngine(t, a, b)
	ctx := context.Background()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if _, err := e.Apply(ctx, Selection{"a": true}); err != nil {
			t.Error(err)
		}
	}()
	<-a.entered // the first run holds the lock and is inside a's Apply

	// Another process: a lock of its own on the same file waits.
	if _, err := AcquireLockIn(ctx, "", e.StateDir, true, 50*time.Millisecond, e.entry()); !errors.Is(err, ErrLockTimeout) {
		t.Fatalf("another holder got the lock during a run: %v", err)
	}
	// A second run of this process goes ahead on another module.
	rep, err := e.Apply(ctx, Selection{"b": true})
	if err != nil || !rep.Changed() {
		t.Fatalf("the overlapping run on b: %v %+v", err, rep)
	}
	// And on the same module it waits for the first run's apply of it.
	wg.Add(1)
	go func() {
		defer wg.Done()
		if _, err := e.Apply(ctx, Selection{"a": true}); err != nil {
			t.Error(err)
		}
	}()
	select {
	case <-a.entered:
		t.Fatal("two runs applied module a at once")
	case <-time.After(50 * time.Millisecond):
	}
	a.gate <- struct{}{}
	<-a.entered
	a.gate <- struct{}{}
	wg.Wait()
	if a.most.Load() != 1 {
		t.Fatalf("module a ran %d applies at once", a.most.Load())
	}
	// All runs over: the lock is free for others.
	l, err := AcquireLockIn(ctx, "", e.StateDir, true, 50*time.Millisecond, e.entry())
	if err != nil {
		t.Fatalf("the lock stayed held after the runs: %v", err)
	}
	l.Release()
}

// A module planned while a run of the process restarts a unit learns it
// from Env.Restarting, and only then.
func TestEnvRestartingWhileARestartIsVerified(t *testing.T) {
	up := &fakeModule{id: "up", have: str("old"), want: "new"}
	unit := &slowUnit{deps: []string{"up"}, takes: time.Hour, entered: make(chan struct{}, 1)}
	var saw []bool
	probe := &probeModule{id: "probe", plan: func(env *Env) { saw = append(saw, env.Restarting("slow.service")) }}
	e := newEngine(t, up, unit, probe)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.Apply(ctx, Selection{"up": true, "service.slow": true}) //nolint:errcheck
	}()
	<-unit.entered
	if _, err := e.Plan(context.Background(), Selection{"probe": true}); err != nil {
		t.Fatal(err)
	}
	cancel()
	<-done
	if _, err := e.Plan(context.Background(), Selection{"probe": true}); err != nil {
		t.Fatal(err)
	}
	if len(saw) != 2 || !saw[0] || saw[1] {
		t.Fatalf("Env.Restarting during and after the restart: %v, want [true false]", saw)
	}
}

type probeModule struct {
	id   string
	plan func(env *Env)
}

func (p *probeModule) ID() string { return p.id }
func (p *probeModule) Plan(ctx context.Context, env *Env) (*Plan, error) {
	p.plan(env)
	return &Plan{}, nil
}
func (p *probeModule) Apply(ctx context.Context, env *Env, plan *Plan) error { return nil }
