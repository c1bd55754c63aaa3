package agent

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"
)

// The engine's side of restarts, after mgmt's refresh (engine/refresh.go,
// engine/graph/refresh.go): the engine keeps which unit owes a restart,
// durably, and hands the module a plain value; the module never touches the
// bookkeeping. docs/architecture.md, "Restarts and reloads", tells the whole
// story.

// RestartKind is what a unit owes.
type RestartKind string

const (
	NoRestart RestartKind = ""        // nothing changed that the unit reads
	Reload    RestartKind = "reload"  // every owed change says a reload takes it in
	Restart   RestartKind = "restart" // anything else
)

// Due is what the engine hands a Restarter in Env.Due: what its unit owes
// and why.
type Due struct {
	Kind RestartKind
	// Changes are the changes owed for, by upstream module ID: this run's
	// and those an earlier, interrupted run recorded in the journal.
	Changes map[string][]Change
	// ChangedNow are the upstream modules that changed in this run (apply)
	// or would change (plan), in run order: the only ones a rollback can
	// restore.
	ChangedNow []string
	// Since is when the journal first recorded the owed restart; zero when
	// it holds none.
	Since time.Time
	// Written is when the journal's owed changes were last written; zero
	// when it holds none or the run that wrote them died first. A unit
	// that started after Written already runs on the new files.
	Written time.Time
}

// Owed reports whether the unit owes anything.
func (d Due) Owed() bool { return d.Kind != NoRestart }

// Why renders what the restart is owed for, modules sorted:
// "docker_daemon changed log-opts, userns-remap; subordinate_ids.dockremap changed /etc/subuid".
func (d Due) Why() string {
	ids := make([]string, 0, len(d.Changes))
	for id := range d.Changes {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var parts []string
	for _, id := range ids {
		var targets []string
		seen := map[string]bool{}
		for _, c := range d.Changes[id] {
			if !seen[c.Target] {
				seen[c.Target] = true
				targets = append(targets, c.Target)
			}
		}
		parts = append(parts, id+" changed "+strings.Join(targets, ", "))
	}
	return strings.Join(parts, "; ")
}

// due computes what r's unit owes: the journal's entry (during apply it
// already holds this run's changes, recorded before they were written) and
// the changes the upstream modules made or planned in this run.
func (r *run) due(rs Restarter) (Due, error) {
	d := Due{Changes: map[string][]Change{}}
	o, err := r.journal.Get(rs.Unit())
	if err != nil {
		return Due{}, err
	}
	if o != nil {
		d.Since, d.Written = o.Since, o.Written
		for _, id := range o.Modules() {
			d.Changes[id] = mergeChanges(d.Changes[id], o.Changes[id])
		}
	}
	for _, id := range rs.RestartOn() {
		if cs := r.upstream[id]; len(cs) > 0 {
			d.ChangedNow = append(d.ChangedNow, id)
			d.Changes[id] = mergeChanges(d.Changes[id], cs)
		}
	}
	if len(d.Changes) == 0 {
		return Due{}, nil
	}
	d.Kind = Reload
	for _, cs := range d.Changes {
		for _, c := range cs {
			if !c.Reload {
				d.Kind = Restart
			}
		}
	}
	return d, nil
}

// mergeChanges appends the changes of b not already in a.
func mergeChanges(a, b []Change) []Change {
outer:
	for _, c := range b {
		for _, have := range a {
			if have == c {
				continue outer
			}
		}
		a = append(a, c)
	}
	return a
}

// pendingOwe is the journal entry of one unit as it was before a module's
// apply recorded a restart in it, so that a failed apply can withdraw it.
type pendingOwe struct {
	unit string
	prev *Owed
}

// owe records durably, before m's changes are written, that every unit
// restarting on m owes a restart. Only changes dependents read count.
func (r *run) owe(m Module, changes []Change) ([]pendingOwe, error) {
	rel := relevant(changes)
	if len(rel) == 0 {
		return nil, nil // only metadata changes: nothing to restart for
	}
	var owed []pendingOwe
	for _, rs := range r.e.restartersOf(m.ID()) {
		prev, err := r.journal.Get(rs.Unit())
		if err == nil {
			err = r.journal.Owe(rs.Unit(), m.ID(), rel)
		}
		if err != nil {
			return owed, fmt.Errorf("record restart owed by %s: %v", rs.Unit(), err)
		}
		owed = append(owed, pendingOwe{rs.Unit(), prev})
	}
	return owed, nil
}

// written marks the owed restarts' changes as on disk now.
func (r *run) written(owed []pendingOwe) {
	for _, o := range owed {
		if err := r.journal.MarkWritten(o.unit, time.Now()); err != nil {
			r.env.Log.WithError(err).Warn("could not record when the change was written; the unit will restart")
		}
	}
}

// withdraw puts the journal back as it was before a failed apply: modules
// apply all or nothing, so a failed apply changed nothing and owes nothing.
func (r *run) withdraw(owed []pendingOwe) {
	for _, o := range owed {
		if err := r.journal.Restore(o.unit, o.prev); err != nil {
			r.env.Log.WithError(err).Warn("could not withdraw the restart owed; the next run will restart")
		}
	}
}

// settle clears what a Restarter's unit owed once its Apply succeeded: the
// running unit has read the files now on disk (new ones, or, after a
// verified rollback, the old ones).
func (r *run) settle(rs Restarter, due Due) error {
	if !due.Owed() {
		return nil
	}
	if err := r.journal.Clear(rs.Unit()); err != nil {
		return fmt.Errorf("%s verified, but clearing its owed restart failed: %w", rs.Unit(), err)
	}
	return nil
}

// recover handles a restart that did not verify: with rollback, restore the
// last-known-good state of the upstream modules that changed in this run,
// latest first, and let the Restarter restart and verify again. The texts
// say what the host was left with.
func (r *run) recover(ctx context.Context, rs Restarter, env *Env, p *Plan, due Due, failed *VerifyError) error {
	first := failed.Err
	if ctx.Err() != nil || !due.Owed() {
		// Interrupted (the restart stays owed for the next run), or a plain
		// start that no upstream change caused: nothing to roll back.
		return failed
	}
	if !rs.RollsBack() {
		return fmt.Errorf("%w; rollback is off, the new files stay and the restart stays owed", failed)
	}
	if len(due.ChangedNow) == 0 {
		return fmt.Errorf("%w; not rolled back: no module in restart_on changed in this run (the restart was owed since %s by an interrupted run, whose files have no last-known-good copy from this run)",
			failed, due.Since.Format(time.RFC3339))
	}
	unit := rs.Unit()
	what := strings.Join(due.ChangedNow, ", ")
	env.Log.WithError(first).Warnf("%s did not come back; rolling back %s", unit, what)
	if rerr := r.rollback(ctx, rs.RestartOn()); rerr != nil {
		// Some files may be back, and the unit is down anyway: one more
		// start can only help.
		var state string
		if err := rs.Retry(ctx, env, p); err == nil {
			state = unit + " is active again (verified) on what is on disk now"
		} else {
			state = unit + " did not come back: " + err.Error()
		}
		return fmt.Errorf("%w; rollback failed too: %v; of %s, the files of the modules named there may still be the new ones, the others' were restored; %s",
			failed, rerr, what, state)
	}
	if err := rs.Retry(ctx, env, p); err != nil {
		return fmt.Errorf("%w; restored the last-known-good files of %s, but %s did not come back with them either: %v",
			failed, what, unit, err)
	}
	env.Log.Warnf("rolled back %s; %s is active again on the previous files", what, unit)
	return &RolledBackError{Err: fmt.Errorf("%w; restored the last-known-good files of %s, and %s is active again (verified)", failed, what, unit)}
}
