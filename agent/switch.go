package agent

import (
	"context"
	"slices"
	"sync"

	"github.com/sirupsen/logrus"
)

// This file holds the engine's two hooks for changes that span modules
// (the data-root switch: subordinate_ids' ranges and docker_daemon's
// userns-remap together decide where dockerd keeps its data), and the facts
// modules publish to one another without importing one another.

// IDRange is one subordinate ID range.
type IDRange struct {
	Start uint64 `json:"start"`
	Count uint64 `json:"count"`
}

// SubordinateIDs is a user's subordinate ID ranges as a module will leave
// them once its plan is applied (or as they are, when it has nothing to do).
type SubordinateIDs struct {
	User string
	UID  []IDRange // the user's lines of /etc/subuid, in file order
	GID  []IDRange // the user's lines of /etc/subgid, in file order
	// Module is the ID of the module that published them; Changed says
	// whether its plan changes them.
	Module  string
	Changed bool
}

// Facts is what modules tell later modules of the same run about the state
// their plans lead to. The engine makes one per run (Env.Facts); a nil
// Facts (an Env made outside the engine) knows nothing and keeps nothing.
type Facts struct {
	mu     sync.Mutex
	subIDs map[string]SubordinateIDs
}

// NewFacts makes an empty set of facts.
func NewFacts() *Facts { return &Facts{subIDs: map[string]SubordinateIDs{}} }

// PublishSubordinateIDs records a user's ranges after a module's plan.
func (f *Facts) PublishSubordinateIDs(s SubordinateIDs) {
	if f == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	s.UID, s.GID = slices.Clone(s.UID), slices.Clone(s.GID)
	f.subIDs[s.User] = s
}

// SubordinateIDs returns what a module published for user in this run.
func (f *Facts) SubordinateIDs(user string) (SubordinateIDs, bool) {
	if f == nil {
		return SubordinateIDs{}, false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.subIDs[user]
	return s, ok
}

// ChangedBy reports whether module id published facts that its plan
// changes.
func (f *Facts) ChangedBy(id string) bool {
	if f == nil {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range f.subIDs {
		if s.Module == id && s.Changed {
			return true
		}
	}
	return false
}

// Gatekeeper is implemented by modules that must be asked before another
// module's change is written, because the two changes together do
// something neither does alone (docker_daemon refuses, or prepares for,
// a data-root switch that subordinate_ids' new ranges would cause).
type Gatekeeper interface {
	Module
	// Gate is called during apply, after module id planned and before the
	// engine records any restart owed for it or applies it; id may be the
	// gatekeeper's own. A non-nil error fails module id with that error
	// and nothing of its plan is written. Gatekeepers are asked whether or
	// not they are selected (apply --only), since the change they guard
	// against can come from any module.
	Gate(ctx context.Context, env *Env, id string, plan *Plan) error
}

// Follower is implemented by modules with work to finish once a unit that
// restarts on them has been restarted (docker_daemon, after a migrating
// data-root switch, imports the workloads into dockerd's new root).
type Follower interface {
	Module
	// Follow is called after the Restarter for unit did something in this
	// run (restarted, failed or rolled back). restarted is true when the Restarter
	// succeeded (its unit restarted or started and was verified), false
	// when it failed or rolled back. The changes returned are added to the
	// follower's result; an error fails it (the run exits 4 or 6).
	Follow(ctx context.Context, env *Env, unit string, restarted bool) ([]Change, error)
}

// RestartPreparer is implemented by modules with work to do right before
// a unit that restarts on them is restarted (docker_daemon stops the
// containers live-restore would keep running through a data-root switch).
type RestartPreparer interface {
	Module
	// PrepareRestart is called during apply when the Restarter for unit
	// has planned something and is about to apply it.
	PrepareRestart(ctx context.Context, env *Env, unit string)
}

// gate asks every Gatekeeper about module m's plan before it is written;
// when m is a Restarter about to apply, the modules it restarts on are
// told first (RestartPreparer).
func (r *run) gate(ctx context.Context, env *Env, m Module, p *Plan) error {
	for _, g := range r.e.Modules {
		gk, ok := g.(Gatekeeper)
		if !ok {
			continue
		}
		if err := gk.Gate(ctx, env.with(env.Log.WithField("gatekeeper", g.ID())), m.ID(), p); err != nil {
			return err
		}
	}
	if rs, ok := m.(Restarter); ok {
		for _, id := range rs.RestartOn() {
			for _, d := range r.e.Modules {
				if rp, ok := d.(RestartPreparer); ok && d.ID() == id {
					rp.PrepareRestart(ctx, r.env.with(r.env.Log.WithField("module", id)), rs.Unit())
				}
			}
		}
	}
	return nil
}

// follow runs the Followers among the modules restarter m restarts on,
// once m has done something (restarted, failed, rolled back), and records
// what they did in their results. A follower with nothing pending from this
// run returns nothing.
func (r *run) follow(ctx context.Context, m Module, mr ModuleResult) {
	rs, ok := m.(Restarter)
	if !ok || mr.Status == StatusOK || mr.Status == StatusSkipped {
		return
	}
	restarted := mr.Status == StatusChanged
	for _, id := range rs.RestartOn() {
		for _, d := range r.e.Modules {
			f, ok := d.(Follower)
			if !ok || d.ID() != id {
				continue
			}
			log := r.env.Log.WithFields(logrus.Fields{"module": id, "after": rs.Unit()})
			cs, err := f.Follow(ctx, r.env.with(log), rs.Unit(), restarted)
			j, ran := r.index[id]
			if !ran {
				// Not selected in this run (apply --only, an event's
				// subset), but its Gate prepared work: report it.
				if len(cs) == 0 && err == nil {
					continue
				}
				j = len(r.rep.Modules)
				r.index[id] = j
				r.rep.Modules = append(r.rep.Modules, ModuleResult{ID: id, Status: StatusChanged, Changes: []Change{}})
			}
			r.rep.Modules[j].Changes = append(r.rep.Modules[j].Changes, cs...)
			if err != nil {
				r.rep.Modules[j].Status = StatusFailed
				r.rep.Modules[j].Error = err.Error()
				log.WithError(err).Error("failed after the restart")
			}
		}
	}
}
