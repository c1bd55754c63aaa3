// Package agent is dockward's engine: the module contract, the order in which
// modules run and the restart edges between them, plan and apply, the run
// lock, the run report and the resident run loop.
//
// The engine knows modules only through Module. A module's Plan looks and
// never changes anything; its Apply makes exactly the changes of a plan and
// either converges in one call or returns an error. Planning again after a
// successful Apply must return an empty plan.
package agent

import (
	"context"
	"errors"
	"github.com/dockward/dockward/agent/managedfile"
	"github.com/sirupsen/logrus"
)

// Action says what a Change does, in terraform plan's symbols.
type Action string

const (
	Create Action = "+" // something missing is added
	Update Action = "~" // something present is changed (or a unit restarted/reloaded)
	Delete Action = "-" // something present is removed
)

// Change is one difference between the host and the desired state, as shown
// by plan and recorded in the run report. It is an API (plan --format json):
// fields are only ever added.
type Change struct {
	Action Action `json:"action"`
	// Target names what changes: a file, a key inside a file ("log-opts"),
	// a user, a unit, a chain or set.
	Target string `json:"target"`
	// Old and New are short renderings of the value before and after;
	// empty when not meaningful (Old of a Create, New of a Delete).
	Old string `json:"old,omitempty"`
	New string `json:"new,omitempty"`
	// Detail is free text shown after the change ("because docker_daemon changed log-opts").
	Detail string `json:"detail,omitempty"`
	// Metadata marks a change that dependents do not read (a file's mode
	// or owner): it owes no restart.
	Metadata bool `json:"metadata,omitempty"`
	// Reload marks a change that the units restarting on this module take
	// in with a reload instead of a restart (a daemon.json key dockerd
	// re-reads on SIGHUP). The module that makes the change knows; the
	// engine owes a reload only when every owed change says so.
	Reload bool `json:"reload,omitempty"`
}

// relevant returns the changes that dependents read (not Metadata).
func relevant(cs []Change) []Change {
	var out []Change
	for _, c := range cs {
		if !c.Metadata {
			out = append(out, c)
		}
	}
	return out
}

// Plan is what a module's Plan found to do. An empty Changes means converged.
type Plan struct {
	Changes []Change
	// State carries whatever Apply needs that Plan already computed (the
	// candidate file bytes, the desired ruleset, ...). Opaque to the engine.
	State any
	// Pending lists what is declared but cannot be converged yet because
	// something outside dockward has not happened (a Docker network nobody
	// has created yet). It is not a change (apply cannot make it) and not a
	// failure; the engine reports it. Apply may refresh it on the plan it
	// was given, with what it found when it applied.
	Pending []Pending
}

// Pending is one declared thing that is waiting for something outside
// dockward, as plan and apply report it. An API, like Change.
type Pending struct {
	// Target names what waits ("docker network app").
	Target string `json:"target"`
	// Detail says what it waits for and what happens then.
	Detail string `json:"detail,omitempty"`
}

// Empty reports whether the plan has nothing to do.
func (p *Plan) Empty() bool { return p == nil || len(p.Changes) == 0 }

// Module is one managed piece of the host. IDs are the HCL block's address:
// "docker_daemon", "subordinate_ids.dockremap", "service.docker.service",
// "firewall".
type Module interface {
	ID() string
	Plan(ctx context.Context, env *Env) (*Plan, error)
	Apply(ctx context.Context, env *Env, plan *Plan) error
}

// Restarter is implemented by modules that restart (or reload) something
// when other modules change (service's restart_on). The engine owns the
// bookkeeping: it records the owed restart durably before an upstream
// change is written, hands the Restarter what is owed in Env.Due, clears
// it after the Restarter's Apply succeeded, and, when Apply returns a
// *VerifyError, rolls the upstream modules back and calls Retry. See
// docs/architecture.md, "Restarts and reloads".
type Restarter interface {
	Module
	// Unit is the name the restart-owed journal records ("docker.service").
	Unit() string
	// RestartOn returns the IDs of the modules whose changes the unit owes
	// a restart for.
	RestartOn() []string
	// RollsBack reports whether a restart that does not verify should
	// restore the upstream modules' last-known-good state (rollback = true).
	RollsBack() bool
	// Retry runs the restart of plan once more, after the engine restored
	// the upstream modules, and verifies it.
	Retry(ctx context.Context, env *Env, plan *Plan) error
}

// VerifyError is returned by a Restarter's Apply (and Retry) when the
// restart, reload or start ran but the unit did not come back verified.
// The engine reacts to it with rollback and retry; its text is Err's.
type VerifyError struct{ Err error }

func (e *VerifyError) Error() string { return e.Err.Error() }
func (e *VerifyError) Unwrap() error { return e.Err }

// Rollbacker is implemented by modules that keep a last-known-good copy of
// what they wrote and can put it back (docker_daemon, subordinate_ids).
type Rollbacker interface {
	Module
	// Rollback restores the copy kept before this run's Apply. It is only
	// called on modules that changed something in the current run.
	Rollback(ctx context.Context, env *Env) error
}

// Committer is implemented by Rollbackers whose last-known-good copy should
// be a state the host was verified to run with, not merely the file as it
// was before the last write (which may be someone's bad edit, drift that
// the write corrects). The engine calls Commit after an apply in which no
// module failed: restarts were verified, so what is on disk now is good.
type Committer interface {
	Module
	Commit(ctx context.Context, env *Env) error
}

// ErrOffline is returned by Plan of modules that touch the live system
// (D-Bus, netlink, dockerd, the Docker API) when running under --root.
// The engine reports them "skipped (offline)".
var ErrOffline = errors.New("skipped (offline)")

// RolledBackError is returned by Apply when it failed and then restored the
// previous state successfully. The run still fails (exit 4).
type RolledBackError struct{ Err error }

func (e *RolledBackError) Error() string { return "rolled back: " + e.Err.Error() }
func (e *RolledBackError) Unwrap() error { return e.Err }

// Env is what the engine hands every module for one run.
type Env struct {
	// Root is --root: file modules work under it; "" means the live system.
	Root string
	// StateDir is the absolute state directory, already joined with Root.
	StateDir string
	Log      *logrus.Entry
	// Due is, for a Restarter, what its unit owes in this run: nothing, a
	// reload or a restart, and why. Zero for every other module.
	Due Due
	// Facts carries what modules publish about the state their plans lead
	// to, for modules later in the run; one per run (see switch.go).
	Facts *Facts
	// UnitsRestarting, set by the engine, says whether a run of this
	// process restarts a unit right now; use Restarting.
	UnitsRestarting func(unit string) bool
}

// Restarting reports whether this process is restarting (or reloading)
// unit right now and waiting for it to come back: a module whose plan asks
// that unit's daemon something (the firewall asks dockerd for its networks)
// would wait for the restart too, and can answer from what it last knew.
func (e *Env) Restarting(unit string) bool {
	return e.UnitsRestarting != nil && e.UnitsRestarting(unit)
}

// Offline reports whether live-system modules must skip (--root given).
func (e *Env) Offline() bool { return e.Root != "" }

// Path maps an absolute host path into Root, as messages show it. Files
// are opened through managedfile.Open(e.Root), which keeps links inside Root.
func (e *Env) Path(p string) string {
	if e.Root == "" {
		return p
	}
	return managedfile.Join(e.Root, p)
}
