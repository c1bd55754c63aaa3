package service

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dockward/dockward/agent"
	"github.com/dockward/dockward/config"
	"github.com/dockward/dockward/modules/service/internal/fakesystemd"
)

const docker = "docker.service"

// testBlock is the default configuration's service block, with a short
// timeout; opts adjust it.
func testBlock(opts ...func(*Block)) *Block {
	yes := true
	b := &Block{
		Unit: docker, State: StateRunning, Enabled: &yes,
		RestartOn: []config.Reference{{ID: "docker_daemon"}, {ID: "subordinate_ids.dockremap"}},
		Verify:    VerifyNone, Timeout: 5 * time.Second, Rollback: true, DockerSocket: DefaultDockerSocket,
	}
	for _, o := range opts {
		o(b)
	}
	return b
}

// activeDocker is docker.service as on a converged host.
func activeDocker() fakesystemd.Unit {
	return fakesystemd.Unit{Name: docker, ActiveState: "active", UnitFileState: "enabled", CanReload: true}
}

// fixture is one host: a fake systemd, reached over a private dbus-daemon
// or in memory, the module, and a state dir whose journal outlives runs.
type fixture struct {
	t   *testing.T
	sd  *fakesystemd.Systemd
	srv *fakesystemd.Server // nil in memory
	m   *Module
	dir string

	dials       atomic.Int32 // in memory only
	rollbacks   [][]string
	rollbackErr error
	// onRollback runs when the engine is asked to roll back (the test's
	// stand-in for restoring good files).
	onRollback func()
	pingDown   atomic.Bool
}

type transport struct {
	name string
	make func(t *testing.T, b *Block, units ...fakesystemd.Unit) *fixture
}

// transports runs a scenario against the fake over a real private D-Bus
// (go-systemd's client end to end) and in memory.
var transports = []transport{{"dbus", overBus}, {"direct", inMemory}}

func overBus(t *testing.T, b *Block, units ...fakesystemd.Unit) *fixture {
	f := &fixture{t: t, sd: fakesystemd.New(units...), dir: t.TempDir()}
	f.srv = fakesystemd.Serve(t, f.sd)
	t.Setenv("DBUS_SYSTEM_BUS_ADDRESS", f.srv.Address)
	f.withPing(b)
	f.m = New(b)
	t.Cleanup(f.m.Close)
	return f
}

func inMemory(t *testing.T, b *Block, units ...fakesystemd.Unit) *fixture {
	f := &fixture{t: t, sd: fakesystemd.New(units...), dir: t.TempDir()}
	f.withPing(b)
	f.m = newModule(b, func(context.Context) (Bus, error) {
		f.dials.Add(1)
		return f.sd.Direct(), nil
	})
	t.Cleanup(f.m.Close)
	return f
}

func (f *fixture) withPing(b *Block) {
	if b.Verify == VerifyDocker {
		b.DockerSocket = fakesystemd.ServePing(f.t, func() bool {
			return !f.pingDown.Load() && f.sd.Unit(b.Unit).ActiveState == "active"
		})
	}
}

// fixtureRuns numbers the fixture's runs, as the engine numbers its own.
var fixtureRuns atomic.Uint64

// env is one run's environment, as the engine makes it.
func (f *fixture) env(upstream map[string][]agent.Change, applying bool) *agent.Env {
	env := &agent.Env{Run: fixtureRuns.Add(1), StateDir: f.dir, Journal: agent.NewJournal(f.dir), Upstream: upstream, Applying: applying}
	env.RollbackUpstream = func(ctx context.Context, ids []string) error {
		f.rollbacks = append(f.rollbacks, ids)
		if f.onRollback != nil {
			f.onRollback()
		}
		return f.rollbackErr
	}
	return env
}

// plan is `dockward plan`: upstream holds the changes planned upstream.
func (f *fixture) plan(upstream map[string][]agent.Change) *agent.Plan {
	f.t.Helper()
	p, err := f.m.Plan(context.Background(), f.env(upstream, false))
	if err != nil {
		f.t.Fatalf("plan: %v", err)
	}
	return p
}

// apply is `dockward apply` as the engine runs it: the restart owed is
// journaled before the upstream modules write, then this module plans
// with their changes and applies. It returns the env for planning again
// within the same run.
func (f *fixture) apply(upstream map[string][]agent.Change) (*agent.Env, *agent.Plan, error) {
	f.t.Helper()
	env := f.env(upstream, true)
	for _, id := range f.m.RestartOn() {
		if cs := upstream[id]; len(cs) > 0 {
			if err := env.Journal.Owe(f.m.Unit(), id, cs); err != nil {
				f.t.Fatal(err)
			}
		}
	}
	p, err := f.m.Plan(context.Background(), env)
	if err != nil {
		return env, p, err
	}
	return env, p, f.m.Apply(context.Background(), env, p)
}

func (f *fixture) owed() *agent.Owed {
	f.t.Helper()
	o, err := agent.NewJournal(f.dir).Get(docker)
	if err != nil {
		f.t.Fatal(err)
	}
	return o
}

// changes builds a module's changes to the given targets.
func changes(targets ...string) []agent.Change {
	var cs []agent.Change
	for _, t := range targets {
		cs = append(cs, agent.Change{Action: agent.Update, Target: t, Old: "a", New: "b"})
	}
	return cs
}
