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
	"path/filepath"

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

// Restarter is implemented by modules that restart something when other
// modules change (service's restart_on). RestartOn returns module IDs.
type Restarter interface {
	Module
	// Unit is the name the restart-owed journal records ("docker.service").
	Unit() string
	RestartOn() []string
}

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
	// Run numbers the engine's runs in this process (1, 2, ...), so that a
	// module can tell a second Plan in the same run from a new run. Zero
	// means unnumbered (an Env made outside the engine).
	Run uint64
	// Root is --root: file modules work under it; "" means the live system.
	Root string
	// StateDir is the absolute state directory, already joined with Root.
	StateDir string
	Log      *logrus.Entry
	// Upstream holds, for every module handled earlier in this run, the
	// changes it planned (during plan) or made (during apply). Restarters
	// read it to decide whether they owe a restart.
	Upstream map[string][]Change
	// Journal is the durable restart-owed record in StateDir.
	Journal *Journal
	// RollbackUpstream restores the last-known-good state of the listed
	// modules, in reverse order of how they ran; only those that changed in
	// this run are touched. Set by the engine during apply.
	RollbackUpstream func(ctx context.Context, ids []string) error
	// Applying is true during apply, false during plan.
	Applying bool
}

// Offline reports whether live-system modules must skip (--root given).
func (e *Env) Offline() bool { return e.Root != "" }

// Path maps an absolute host path into Root.
func (e *Env) Path(p string) string {
	if e.Root == "" {
		return p
	}
	return filepath.Join(e.Root, p)
}
