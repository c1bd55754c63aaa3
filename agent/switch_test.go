package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// gatekeeper vetoes the modules listed in refuse, and follows restarts.
type gatekeeper struct {
	fakeModule
	refuse   map[string]bool
	asked    []string
	followed []bool
	follow   func() ([]Change, error)
	prepared []string // "unit@restarts-so-far"
	unit     *fakeUnit
}

func (g *gatekeeper) PrepareRestart(ctx context.Context, env *Env, unit string) {
	n := -1
	if g.unit != nil {
		n = g.unit.restarts
	}
	g.prepared = append(g.prepared, fmt.Sprintf("%s@%d", unit, n))
}

func (g *gatekeeper) Gate(ctx context.Context, env *Env, id string, p *Plan) error {
	g.asked = append(g.asked, id)
	if g.refuse[id] {
		return errors.New("refused: " + id)
	}
	return nil
}

func (g *gatekeeper) Follow(ctx context.Context, env *Env, unit string, restarted bool) ([]Change, error) {
	g.followed = append(g.followed, restarted)
	if g.follow != nil {
		return g.follow()
	}
	return nil, nil
}

// publisher publishes the ranges its plan leads to.
type publisher struct{ fakeModule }

func (p *publisher) Plan(ctx context.Context, env *Env) (*Plan, error) {
	pl, err := p.fakeModule.Plan(ctx, env)
	env.Facts.PublishSubordinateIDs(SubordinateIDs{User: "dockremap", UID: []IDRange{{Start: 200000, Count: 65536}}, Module: p.id, Changed: !pl.Empty()})
	return pl, err
}

func TestGateRefusesBeforeTheRestartIsOwed(t *testing.T) {
	ids := &publisher{fakeModule{id: "subordinate_ids.dockremap", have: str("100000"), want: "200000"}}
	g := &gatekeeper{fakeModule: fakeModule{id: "docker_daemon", have: str("off"), want: "on"},
		refuse: map[string]bool{"subordinate_ids.dockremap": true, "docker_daemon": true}}
	fw := &fakeModule{id: "firewall", have: str("none"), want: "table"}
	u := &fakeUnit{deps: []string{"subordinate_ids.dockremap", "docker_daemon"}}
	e := newEngine(t, ids, g, u, fw)

	rep, err := e.Apply(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if ids.applied != 0 || g.applied != 0 {
		t.Errorf("refused modules applied: subordinate_ids %d, docker_daemon %d", ids.applied, g.applied)
	}
	if u.restarts != 0 {
		t.Errorf("unit restarted %d times after a refusal", u.restarts)
	}
	if _, err := os.Stat(filepath.Join(e.StateDir, "restart-owed.json")); !os.IsNotExist(err) {
		t.Errorf("restart-owed.json exists after a refusal (stat: %v)", err)
	}
	if fw.applied != 1 {
		t.Errorf("firewall applied %d times, want 1: modules that do not depend on the refused ones still converge", fw.applied)
	}
	if got, want := rep.ExitCode(), ExitChangedAndFail; got != want {
		t.Errorf("exit = %d, want %d", got, want)
	}
	for _, m := range rep.Modules[:2] {
		if m.Status != StatusFailed || m.Error != "refused: "+m.ID || len(m.Changes) != 1 {
			t.Errorf("%s: status %s, error %q, %d changes; want failed with the refusal and its planned change", m.ID, m.Status, m.Error, len(m.Changes))
		}
	}
	// Asked before each module with changes, itself included; not before
	// modules with nothing to do (the unit).
	want := []string{"subordinate_ids.dockremap", "docker_daemon", "firewall"}
	if len(g.asked) != len(want) {
		t.Fatalf("gate asked for %v, want %v", g.asked, want)
	}
	for i := range want {
		if g.asked[i] != want[i] {
			t.Fatalf("gate asked for %v, want %v", g.asked, want)
		}
	}
	if len(g.followed) != 0 {
		t.Errorf("follower called %v although the unit did nothing", g.followed)
	}
}

func TestFollowAfterTheRestart(t *testing.T) {
	g := &gatekeeper{fakeModule: fakeModule{id: "docker_daemon", have: str("off"), want: "on"},
		follow: func() ([]Change, error) {
			return []Change{{Action: Create, Target: "container web", Detail: "migrated"}}, errors.New("volume data: copy failed")
		}}
	u := &fakeUnit{deps: []string{"docker_daemon"}}
	e := newEngine(t, g, u)
	rep, err := e.Apply(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if u.restarts != 1 || len(g.followed) != 1 || !g.followed[0] {
		t.Fatalf("restarts %d, followed %v; want one restart, then Follow(restarted=true)", u.restarts, g.followed)
	}
	m := rep.Modules[0]
	if m.Status != StatusFailed || m.Error != "volume data: copy failed" {
		t.Errorf("docker_daemon: %s %q, want failed with Follow's error", m.Status, m.Error)
	}
	if len(m.Changes) != 2 || m.Changes[1].Target != "container web" {
		t.Errorf("docker_daemon's changes %+v, want the planned one then Follow's", m.Changes)
	}
	if got := rep.ExitCode(); got != ExitChangedAndFail {
		t.Errorf("exit = %d, want %d", got, ExitChangedAndFail)
	}
}

func TestFollowToldOfARolledBackRestart(t *testing.T) {
	g := &gatekeeper{fakeModule: fakeModule{id: "docker_daemon", have: str("off"), want: "on"}}
	u := &fakeUnit{deps: []string{"docker_daemon"}, failFirst: true}
	e := newEngine(t, g, u)
	if _, err := e.Apply(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	// Told, so that it can undo what it did for the restart.
	if len(g.followed) != 1 || g.followed[0] {
		t.Errorf("followed %v after a rolled-back restart, want [false]", g.followed)
	}
}

func TestFactsNilSafe(t *testing.T) {
	var f *Facts
	f.PublishSubordinateIDs(SubordinateIDs{User: "x"})
	if _, ok := f.SubordinateIDs("x"); ok || f.ChangedBy("m") {
		t.Error("a nil Facts remembered something")
	}
	f = NewFacts()
	f.PublishSubordinateIDs(SubordinateIDs{User: "x", Module: "m", Changed: true})
	if s, ok := f.SubordinateIDs("x"); !ok || s.Module != "m" || !f.ChangedBy("m") || f.ChangedBy("n") {
		t.Errorf("facts: %+v %v", s, ok)
	}
}

// The run loop converges only what an event concerns (Only): a gatekeeper
// outside that selection is still asked, since the change it guards
// against can come from any module.
func TestGateAskedWhenNotSelected(t *testing.T) {
	ids := &publisher{fakeModule{id: "subordinate_ids.dockremap", have: str("100000"), want: "200000"}}
	g := &gatekeeper{fakeModule: fakeModule{id: "docker_daemon", have: str("on"), want: "on"},
		refuse: map[string]bool{"subordinate_ids.dockremap": true}}
	u := &fakeUnit{deps: []string{"subordinate_ids.dockremap", "docker_daemon"}}
	e := newEngine(t, ids, g, u)
	only := e.WithRestarters(Selection{"subordinate_ids.dockremap": true})
	rep, err := e.Apply(context.Background(), only)
	if err != nil {
		t.Fatal(err)
	}
	if ids.applied != 0 || u.restarts != 0 || rep.ExitCode() != ExitFailed {
		t.Errorf("applied %d, restarts %d, exit %d; want the refusal to hold under Only", ids.applied, u.restarts, rep.ExitCode())
	}
}

// A follower outside the run's selection whose Gate prepared work (an
// export for a switch the ranges alone cause) still follows the restart,
// and what it did gets a result of its own.
func TestFollowerNotSelected(t *testing.T) {
	ids := &publisher{fakeModule{id: "subordinate_ids.dockremap", have: str("100000"), want: "200000"}}
	g := &gatekeeper{fakeModule: fakeModule{id: "docker_daemon", have: str("on"), want: "on"},
		follow: func() ([]Change, error) { return []Change{{Action: Create, Target: "container web: moved"}}, nil }}
	u := &fakeUnit{deps: []string{"subordinate_ids.dockremap", "docker_daemon"}}
	e := newEngine(t, ids, g, u)
	only := e.WithRestarters(Selection{"subordinate_ids.dockremap": true})
	rep, err := e.Apply(context.Background(), only)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Modules) != 3 || rep.Modules[2].ID != "docker_daemon" || len(rep.Modules[2].Changes) != 1 {
		t.Fatalf("report modules %+v, want docker_daemon's Follow reported after the unit", rep.Modules)
	}
}

// RestartPreparers are told right before the unit restarts, not when it
// has nothing to do.
func TestPrepareRestart(t *testing.T) {
	g := &gatekeeper{fakeModule: fakeModule{id: "docker_daemon", have: str("off"), want: "on"}}
	u := &fakeUnit{deps: []string{"docker_daemon"}}
	g.unit = u
	e := newEngine(t, g, u)
	if _, err := e.Apply(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if len(g.prepared) != 1 || g.prepared[0] != "unit@0" {
		t.Fatalf("prepared %v, want once, before the restart", g.prepared)
	}
	if _, err := e.Apply(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if len(g.prepared) != 1 {
		t.Errorf("prepared %v on a converged run", g.prepared)
	}
}
