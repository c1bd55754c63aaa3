package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
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
	// Only, when not empty, restricts a run to these module IDs (apply
	// --only; the run loop converges only the modules an event concerns,
	// plus their restarters: see WithRestarters).
	Only map[string]bool
}

// runs numbers the engine's runs (Env.Run).
var runs atomic.Uint64

func (e *Engine) env(applying bool) *Env {
	log := e.Log
	if log == nil {
		log = logrus.StandardLogger()
	}
	return &Env{
		Run:      runs.Add(1),
		Root:     e.Root,
		StateDir: e.StateDir,
		Log:      logrus.NewEntry(log),
		Upstream: map[string][]Change{},
		Journal:  NewJournal(e.StateDir),
		Applying: applying,
	}
}

func (e *Engine) selected(m Module) bool {
	return len(e.Only) == 0 || e.Only[m.ID()]
}

// WithRestarters adds to ids the modules that restart on any of them, so
// that a change an event corrects still gets its restart.
func (e *Engine) WithRestarters(ids map[string]bool) map[string]bool {
	out := map[string]bool{}
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

// Plan looks at every module and reports what apply would do. It changes
// nothing on the host and writes nothing to the state directory; it takes
// a shared lock only when the state directory already exists.
func (e *Engine) Plan(ctx context.Context) (*Report, error) {
	if _, err := os.Stat(e.StateDir); err == nil {
		l, err := AcquireLock(ctx, e.StateDir, false, e.lockWait(), logrus.NewEntry(e.logger()))
		if err != nil {
			return nil, err
		}
		defer l.Release() //nolint:errcheck
	}
	env := e.env(false)
	rep := &Report{FormatVersion: ReportFormatVersion, Command: "plan", Start: time.Now().UTC()}
	for _, m := range e.Modules {
		if !e.selected(m) {
			continue
		}
		start := time.Now()
		log := env.Log.WithField("module", m.ID())
		log.Debug("planning")
		mr := ModuleResult{ID: m.ID(), Changes: []Change{}}
		p, err := m.Plan(ctx, env.with(log))
		switch {
		case errors.Is(err, ErrOffline):
			mr.Status = StatusSkipped
			mr.Error = ErrOffline.Error()
		case err != nil:
			mr.Status = StatusFailed
			mr.Error = err.Error()
			log.WithError(err).Error("plan failed")
		case p.Empty():
			mr.Status = StatusOK
			mr.Pending = p.Pending
		default:
			mr.Pending = p.Pending
			mr.Status = StatusChanged
			mr.Changes = p.Changes
			if r := relevant(p.Changes); len(r) > 0 {
				env.Upstream[m.ID()] = r
			}
		}
		mr.Duration = time.Since(start).Seconds()
		rep.Modules = append(rep.Modules, mr)
	}
	rep.Duration = time.Since(rep.Start).Seconds()
	return rep, nil
}

// Apply converges every module in order under the exclusive run lock and
// writes the run report to the state directory.
func (e *Engine) Apply(ctx context.Context) (*Report, error) {
	l, err := AcquireLock(ctx, e.StateDir, true, e.lockWait(), logrus.NewEntry(e.logger()))
	if err != nil {
		return nil, err
	}
	defer l.Release() //nolint:errcheck

	env := e.env(true)
	rep := &Report{FormatVersion: ReportFormatVersion, Command: "apply", Start: time.Now().UTC()}
	changedThisRun := map[string]bool{}
	index := map[string]int{} // module ID -> position in rep.Modules
	env.RollbackUpstream = func(ctx context.Context, ids []string) error {
		return e.rollback(ctx, env, ids, changedThisRun, rep, index)
	}

	for _, m := range e.Modules {
		if !e.selected(m) {
			continue
		}
		mr := e.applyOne(ctx, env, m, changedThisRun)
		index[m.ID()] = len(rep.Modules)
		rep.Modules = append(rep.Modules, mr)
	}
	if !rep.Failed() {
		e.commit(ctx, env, rep)
	}
	rep.Duration = time.Since(rep.Start).Seconds()
	if err := WriteReport(e.StateDir, rep); err != nil {
		e.logger().WithError(err).Error("could not write the run report")
		return rep, err
	}
	return rep, nil
}

func (e *Engine) applyOne(ctx context.Context, env *Env, m Module, changedThisRun map[string]bool) ModuleResult {
	start := time.Now()
	log := env.Log.WithField("module", m.ID())
	menv := env.with(log)
	mr := ModuleResult{ID: m.ID(), Changes: []Change{}}
	defer func() { mr.Duration = time.Since(start).Seconds() }()

	p, err := m.Plan(ctx, menv)
	if errors.Is(err, ErrOffline) {
		mr.Status, mr.Error = StatusSkipped, ErrOffline.Error()
		log.Info("skipped (offline)")
		return mr
	}
	if err != nil {
		mr.Status, mr.Error = StatusFailed, err.Error()
		log.WithError(err).Error("failed")
		return mr
	}
	mr.Pending = p.Pending
	if p.Empty() {
		mr.Status = StatusOK
		log.Debug("converged")
		return mr
	}

	// The restart owed is recorded durably before the change is written,
	// so a crash between the write and the restart still restarts.
	type saved struct {
		unit string
		prev *Owed
	}
	var owed []saved
	restarters := e.restartersOf(m.ID())
	if len(relevant(p.Changes)) == 0 {
		restarters = nil // only metadata changes: nothing to restart for
	}
	for _, r := range restarters {
		prev, err := env.Journal.Get(r.Unit())
		if err == nil {
			err = env.Journal.Owe(r.Unit(), m.ID(), relevant(p.Changes))
		}
		if err != nil {
			mr.Status, mr.Error = StatusFailed, fmt.Sprintf("record restart owed by %s: %v", r.Unit(), err)
			log.WithError(err).Error("failed")
			return mr
		}
		owed = append(owed, saved{r.Unit(), prev})
	}

	for _, c := range p.Changes {
		log.WithField("target", c.Target).Infof("%s %s", c.Action, describe(c))
	}
	err = m.Apply(ctx, menv, p)
	mr.Pending = p.Pending // Apply may have found more or less waiting than Plan
	if err != nil {
		mr.Status, mr.Error = StatusFailed, err.Error()
		var rb *RolledBackError
		if errors.As(err, &rb) {
			mr.Status = StatusRolledBack
		}
		mr.Changes = p.Changes
		log.WithError(err).Error("failed")
		// Modules apply all or nothing: a failed apply changed nothing,
		// so it owes no restart. Put back what the journal held before.
		if mr.Status == StatusFailed {
			for _, s := range owed {
				if err := env.Journal.Restore(s.unit, s.prev); err != nil {
					log.WithError(err).Warn("could not withdraw the restart owed; the next run will restart")
				}
			}
		}
		return mr
	}
	for _, s := range owed {
		if err := env.Journal.MarkWritten(s.unit, time.Now()); err != nil {
			log.WithError(err).Warn("could not record when the change was written; the unit will restart")
		}
	}
	mr.Status = StatusChanged
	mr.Changes = p.Changes
	if r := relevant(p.Changes); len(r) > 0 {
		env.Upstream[m.ID()] = r
	}
	changedThisRun[m.ID()] = true
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

// rollback restores the listed modules that changed in this run, latest first.
func (e *Engine) rollback(ctx context.Context, env *Env, ids []string, changed map[string]bool, rep *Report, index map[string]int) error {
	var errs []error
	for i := len(e.Modules) - 1; i >= 0; i-- {
		m := e.Modules[i]
		want := false
		for _, id := range ids {
			want = want || id == m.ID()
		}
		if !want || !changed[m.ID()] {
			continue
		}
		rb, ok := m.(Rollbacker)
		if !ok {
			continue
		}
		log := env.Log.WithField("module", m.ID())
		if err := rb.Rollback(ctx, env.with(log)); err != nil {
			errs = append(errs, fmt.Errorf("roll back %s: %w", m.ID(), err))
			log.WithError(err).Error("rollback failed")
			continue
		}
		log.Warn("rolled back to the last-known-good state")
		if j, ok := index[m.ID()]; ok {
			rep.Modules[j].Status = StatusRolledBack
			rep.Modules[j].Error = "rolled back after a failed restart"
		}
		delete(changed, m.ID())
	}
	return errors.Join(errs...)
}

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
