package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
)

// Engine plans and applies a set of modules in order.
type Engine struct {
	// Modules in run order (see modules.Build).
	Modules []Module
	// Root is --root ("" = the live system).
	Root string
	// StateDir is absolute and already under Root.
	StateDir string
	Log      *logrus.Logger
	// LockWait bounds how long a run waits for another run's lock.
	LockWait time.Duration

	// Runs of this Engine may overlap (see overlap.go).
	once sync.Once
	ov   *overlap
}

// Selection restricts a run to some module IDs (apply --only; the run loop
// converges only the modules an event concerns, plus their restarters: see
// WithRestarters). A nil or empty Selection runs every module.
type Selection map[string]bool

func (s Selection) has(m Module) bool { return len(s) == 0 || s[m.ID()] }

// run is one plan or apply: what the engine keeps while it goes through the
// modules.
type run struct {
	e       *Engine
	env     *Env
	journal *Journal
	rep     *Report
	// upstream holds, for every module handled so far, the changes that
	// dependents read: planned (plan) or made (apply).
	upstream map[string][]Change
	// changed are the modules that changed in this apply, and index their
	// place in rep.Modules: a rollback marks them there.
	changed map[string]bool
	index   map[string]int
}

func (e *Engine) newRun(command string) *run {
	return &run{
		e:        e,
		env:      &Env{Root: e.Root, StateDir: e.StateDir, Log: logrus.NewEntry(e.logger()), Facts: NewFacts(), UnitsRestarting: e.restarting},
		journal:  NewJournalIn(e.Root, e.StateDir),
		rep:      &Report{FormatVersion: ReportFormatVersion, Command: command, Start: time.Now().UTC()},
		upstream: map[string][]Change{},
		changed:  map[string]bool{},
		index:    map[string]int{},
	}
}

// moduleEnv is the Env one module gets: its own log fields, and for a
// Restarter what its unit owes.
func (r *run) moduleEnv(m Module) (*Env, error) {
	env := r.env.with(r.env.Log.WithField("module", m.ID()))
	if rs, ok := m.(Restarter); ok {
		d, err := r.due(rs)
		if err != nil {
			return env, err
		}
		env.Due = d
	}
	return env, nil
}

// WithRestarters adds to ids the modules that restart on any of them, so
// that a change an event corrects still gets its restart.
func (e *Engine) WithRestarters(ids Selection) Selection {
	out := Selection{}
	for id := range ids {
		out[id] = true
	}
	for _, m := range e.Modules {
		if r, ok := m.(Restarter); ok {
			for _, dep := range r.RestartOn() {
				if ids[dep] {
					out[m.ID()] = true
				}
			}
		}
	}
	return out
}

// restartersOf returns the Restarters whose restart_on lists id.
func (e *Engine) restartersOf(id string) []Restarter {
	var out []Restarter
	for _, m := range e.Modules {
		if r, ok := m.(Restarter); ok {
			for _, dep := range r.RestartOn() {
				if dep == id {
					out = append(out, r)
				}
			}
		}
	}
	return out
}

// Plan looks at the selected modules and reports what apply would do. It
// changes nothing on the host and writes nothing to the state directory; it
// takes a shared lock only when the state directory already exists.
func (e *Engine) Plan(ctx context.Context, only Selection) (*Report, error) {
	if _, err := os.Stat(e.StateDir); err == nil {
		release, err := e.acquire(ctx, false)
		if err != nil {
			return nil, err
		}
		defer release()
	}
	r := e.newRun("plan")
	for _, m := range e.Modules {
		if !only.has(m) {
			continue
		}
		unlock := e.module(m.ID())
		r.rep.Modules = append(r.rep.Modules, r.planOne(ctx, m))
		unlock()
	}
	r.rep.Duration = time.Since(r.rep.Start).Seconds()
	return r.rep, nil
}

func (r *run) planOne(ctx context.Context, m Module) (mr ModuleResult) {
	start := time.Now()
	mr = newResult(m)
	defer func() { mr.Duration = time.Since(start).Seconds() }()
	env, err := r.moduleEnv(m)
	log := env.Log
	log.Debug("planning")
	var p *Plan
	if err == nil {
		p, err = m.Plan(ctx, env)
	}
	switch {
	case errors.Is(err, ErrOffline):
		mr.Status, mr.Error, mr.err = StatusSkipped, ErrOffline.Error(), err
	case err != nil:
		mr.Status, mr.Error, mr.err = StatusFailed, err.Error(), err
		log.WithError(err).Error("plan failed")
	case p.Empty():
		mr.Status = StatusOK
		mr.Pending = p.Pending
	default:
		mr.Pending = p.Pending
		mr.Status = StatusChanged
		mr.Changes = p.Changes
		if rel := relevant(p.Changes); len(rel) > 0 {
			r.upstream[m.ID()] = rel
		}
	}
	return mr
}

func newResult(m Module) ModuleResult {
	mr := ModuleResult{ID: m.ID(), Changes: []Change{}}
	if rs, ok := m.(Restarter); ok {
		mr.unit = rs.Unit()
	}
	return mr
}

// Apply converges the selected modules in order under the exclusive run
// lock and writes the run report to the state directory.
func (e *Engine) Apply(ctx context.Context, only Selection) (*Report, error) {
	release, err := e.acquire(ctx, true)
	if err != nil {
		return nil, err
	}
	defer release()

	r := e.newRun("apply")
	for _, m := range e.Modules {
		if !only.has(m) {
			continue
		}
		if ctx.Err() != nil {
			// Stopping (the agent's SIGTERM): the modules not begun are
			// left for the next run rather than started now.
			r.rep.Modules = append(r.rep.Modules, ModuleResult{ID: m.ID(), Changes: []Change{}, Status: StatusSkipped, Error: "not run: stopping"})
			continue
		}
		unlock := e.module(m.ID())
		mr := r.applyOne(ctx, m)
		r.index[m.ID()] = len(r.rep.Modules)
		r.rep.Modules = append(r.rep.Modules, mr)
		r.follow(ctx, m, mr) // see switch.go
		unlock()
	}
	if !r.rep.Failed() {
		e.commit(ctx, r.env, r.rep)
	}
	r.rep.Duration = time.Since(r.rep.Start).Seconds()
	if err := WriteReportIn(e.Root, e.StateDir, r.rep); err != nil {
		e.logger().WithError(err).Error("could not write the run report")
		return r.rep, err
	}
	return r.rep, nil
}

func (r *run) applyOne(ctx context.Context, m Module) (mr ModuleResult) {
	start := time.Now()
	mr = newResult(m)
	defer func() { mr.Duration = time.Since(start).Seconds() }()
	env, err := r.moduleEnv(m)
	log := env.Log
	fail := func(err error) ModuleResult {
		mr.Status, mr.Error, mr.err = StatusFailed, err.Error(), err
		log.WithError(err).Error("failed")
		return mr
	}
	if err != nil {
		return fail(err)
	}

	p, err := m.Plan(ctx, env)
	if errors.Is(err, ErrOffline) {
		mr.Status, mr.Error, mr.err = StatusSkipped, ErrOffline.Error(), err
		log.Info("skipped (offline)")
		return mr
	}
	if err != nil {
		return fail(err)
	}
	mr.Pending = p.Pending
	if p.Empty() {
		mr.Status = StatusOK
		log.Debug("converged")
		return mr
	}

	if err := r.gate(ctx, env, m, p); err != nil { // see switch.go
		mr.Changes = p.Changes
		return fail(err)
	}

	// The restart owed is recorded durably before the change is written,
	// so a crash between the write and the restart still restarts.
	owed, err := r.owe(m, p.Changes)
	if err != nil {
		r.withdraw(owed)
		return fail(err)
	}
	for _, c := range p.Changes {
		log.WithField("target", c.Target).Infof("%s %s", c.Action, describe(c))
	}
	mr.Changes = p.Changes
	if rs, ok := m.(Restarter); ok && env.Due.Owed() {
		defer r.e.verifying(rs.Unit())()
	}
	err = m.Apply(ctx, env, p)
	mr.Pending = p.Pending // Apply may have found more or less waiting than Plan
	rs, restarter := m.(Restarter)
	var vf *VerifyError
	if restarter && errors.As(err, &vf) {
		err = r.recover(ctx, rs, env, p, env.Due, vf)
	}
	var rb *RolledBackError
	if restarter && (err == nil || errors.As(err, &rb)) {
		// Verified: on the new files, or, rolled back, on the old ones.
		err = errors.Join(err, r.settle(rs, env.Due))
	}
	if err != nil {
		mr.Status, mr.Error, mr.err = StatusFailed, err.Error(), err
		if errors.As(err, &rb) {
			mr.Status = StatusRolledBack
		}
		log.WithError(err).Error("failed")
		// Modules apply all or nothing: a failed apply changed nothing,
		// so it owes no restart. Put back what the journal held before.
		if mr.Status == StatusFailed {
			r.withdraw(owed)
		}
		return mr
	}
	r.written(owed)
	mr.Status = StatusChanged
	if rel := relevant(p.Changes); len(rel) > 0 {
		r.upstream[m.ID()] = rel
	}
	r.changed[m.ID()] = true
	log.Info("changed")
	return mr
}

// commit tells Committers that the state on disk is now known good. Only
// modules that ran (not skipped) are committed; a failed commit is logged:
// it only means a later rollback goes back further.
func (e *Engine) commit(ctx context.Context, env *Env, rep *Report) {
	ran := map[string]bool{}
	for _, m := range rep.Modules {
		ran[m.ID] = m.Status == StatusOK || m.Status == StatusChanged
	}
	for _, m := range e.Modules {
		c, ok := m.(Committer)
		if !ok || !ran[m.ID()] {
			continue
		}
		log := env.Log.WithField("module", m.ID())
		if err := c.Commit(ctx, env.with(log)); err != nil {
			log.WithError(err).Warn("could not keep the current state as last-known-good")
		}
	}
}

// rollback restores the listed modules that changed in this run, latest
// first, and marks them rolled back in the report.
func (r *run) rollback(ctx context.Context, ids []string) error {
	var errs []error
	for i := len(r.e.Modules) - 1; i >= 0; i-- {
		m := r.e.Modules[i]
		if !slices.Contains(ids, m.ID()) || !r.changed[m.ID()] {
			continue
		}
		rb, ok := m.(Rollbacker)
		if !ok {
			continue
		}
		log := r.env.Log.WithField("module", m.ID())
		if err := rb.Rollback(ctx, r.env.with(log)); err != nil {
			errs = append(errs, fmt.Errorf("roll back %s: %w", m.ID(), err))
			log.WithError(err).Error("rollback failed")
			continue
		}
		log.Warn("rolled back to the last-known-good state")
		if j, ok := r.index[m.ID()]; ok {
			r.rep.Modules[j].Status = StatusRolledBack
			r.rep.Modules[j].Error = "rolled back after a failed restart"
		}
		delete(r.changed, m.ID())
	}
	return errors.Join(errs...)
}

func (e *Engine) entry() *logrus.Entry { return logrus.NewEntry(e.logger()) }

func (e *Engine) logger() *logrus.Logger {
	if e.Log == nil {
		return logrus.StandardLogger()
	}
	return e.Log
}

func (e *Engine) lockWait() time.Duration {
	if e.LockWait <= 0 {
		return 5 * time.Minute
	}
	return e.LockWait
}

func (env *Env) with(log *logrus.Entry) *Env {
	c := *env
	c.Log = log
	c.Due = Due{}
	return &c
}

func describe(c Change) string {
	switch {
	case c.Old != "" && c.New != "":
		return fmt.Sprintf("%s: %s -> %s", c.Target, c.Old, c.New)
	case c.New != "":
		return fmt.Sprintf("%s = %s", c.Target, c.New)
	case c.Old != "":
		return fmt.Sprintf("%s (was %s)", c.Target, c.Old)
	}
	return c.Target
}
