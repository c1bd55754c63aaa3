package service

import (
	"context"
	"io"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dockward/dockward/agent"
	"github.com/dockward/dockward/config"
	"github.com/dockward/dockward/modules/service/internal/fakesystemd"
	"github.com/sirupsen/logrus"
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
	rollbacks   []string
	rollbackErr error
	// onRollback runs when the engine rolls an upstream module back (the
	// test's stand-in for restoring good files).
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

// upstream stands for a module the unit may restart on (docker_daemon,
// subordinate_ids.dockremap) as the engine sees it: it plans the changes it
// was given until it has applied them, and rollback restores it.
type upstream struct {
	id       string
	changes  []agent.Change
	applied  bool
	rollback func(id string) error
}

func (u *upstream) ID() string { return u.id }
func (u *upstream) Plan(context.Context, *agent.Env) (*agent.Plan, error) {
	if u.applied {
		return &agent.Plan{}, nil
	}
	return &agent.Plan{Changes: u.changes}, nil
}
func (u *upstream) Apply(context.Context, *agent.Env, *agent.Plan) error {
	u.applied = true
	return nil
}
func (u *upstream) Rollback(context.Context, *agent.Env) error {
	if u.rollback == nil {
		return nil
	}
	return u.rollback(u.id)
}

// engineRun is one `dockward plan` (apply false) or `dockward apply` of the
// real engine over the upstream modules and mod, with its journal in dir:
// the engine records the owed restart before the upstream modules write,
// hands mod what is owed, rolls back and retries. It returns mod's plan (or
// the changes it made) and the error its run ended with.
func engineRun(ctx context.Context, t testing.TB, dir string, mod *Module, up map[string][]agent.Change, rollback func(id string) error, apply bool) (*agent.Plan, error) {
	t.Helper()
	var mods []agent.Module
	ids := make([]string, 0, len(up))
	for id := range up {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		mods = append(mods, &upstream{id: id, changes: up[id], rollback: rollback})
	}
	log := logrus.New()
	log.SetOutput(io.Discard)
	e := &agent.Engine{Modules: append(mods, mod), StateDir: dir, Log: log, LockWait: time.Minute}
	run := e.Plan
	if apply {
		run = e.Apply
	}
	rep, err := run(ctx, nil)
	if err != nil {
		t.Fatalf("engine: %v", err)
	}
	for _, mr := range rep.Modules {
		if mr.ID == mod.ID() {
			return &agent.Plan{Changes: mr.Changes}, mr.Err()
		}
	}
	t.Fatalf("no result for %s in %+v", mod.ID(), rep.Modules)
	return nil, nil
}

// rollbackFunc records the engine's rollbacks in the fixture.
func (f *fixture) rollbackFunc(id string) error {
	f.rollbacks = append(f.rollbacks, id)
	if f.onRollback != nil {
		f.onRollback()
	}
	return f.rollbackErr
}

// plan is `dockward plan`: upstream holds the changes planned upstream.
func (f *fixture) plan(upstream map[string][]agent.Change) *agent.Plan {
	f.t.Helper()
	p, err := engineRun(context.Background(), f.t, f.dir, f.m, upstream, f.rollbackFunc, false)
	if err != nil {
		f.t.Fatalf("plan: %v", err)
	}
	return p
}

// apply is `dockward apply`: the upstream modules write their changes and
// the engine hands the module the restart they owe.
func (f *fixture) apply(upstream map[string][]agent.Change) (*agent.Plan, error) {
	f.t.Helper()
	return f.applyCtx(context.Background(), upstream)
}

func (f *fixture) applyCtx(ctx context.Context, upstream map[string][]agent.Change) (*agent.Plan, error) {
	f.t.Helper()
	return engineRun(ctx, f.t, f.dir, f.m, upstream, f.rollbackFunc, true)
}

// env is what the engine hands the module directly, for tests that split
// Plan and Apply: a restart owed for the upstream changes of this run.
func (f *fixture) env(up map[string][]agent.Change) *agent.Env {
	env := &agent.Env{StateDir: f.dir}
	if len(up) > 0 {
		env.Due = agent.Due{Kind: agent.Restart, Changes: up}
		for id := range up {
			env.Due.ChangedNow = append(env.Due.ChangedNow, id)
		}
	}
	return env
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

// reloads builds docker_daemon's changes to keys dockerd reloads on SIGHUP,
// marked as the docker_daemon module marks them.
func reloads(targets ...string) []agent.Change {
	cs := changes(targets...)
	for i := range cs {
		cs[i].Reload = true
	}
	return cs
}
