package agent

import (
	"context"
	"sync"
)

// Runs of one Engine may overlap in one process: the run loop keeps the
// firewall corrected while a docker restart is being verified (see
// runloop.go, lanes). Between processes the flock keeps runs apart, as
// ever; within the process the runs share it, and a module is planned or
// applied by one run at a time. Modules are never told: each one's Plan
// and Apply still run alone.
type overlap struct {
	// lockMu guards the flock and its holders; it is held while the flock
	// is waited for (see acquire).
	lockMu sync.Mutex
	idle   *sync.Cond // signalled when the last run of the process releases
	lock   *Lock      // the flock, held while runs > 0
	excl   bool       // lock is exclusive
	runs   int

	mu    sync.Mutex
	mods  map[string]*sync.Mutex
	units map[string]int // units whose restart (or reload) a run is verifying now
}

func (e *Engine) overlap() *overlap {
	e.once.Do(func() {
		e.ov = &overlap{mods: map[string]*sync.Mutex{}, units: map[string]int{}}
		e.ov.idle = sync.NewCond(&e.ov.lockMu)
	})
	return e.ov
}

// acquire takes the run lock for a run of this process: the flock when no
// other run of the process holds it, or a share of the one held. A run
// that needs it exclusive while the process holds it shared (an apply
// during a plan) waits for the plan to end. The mutex is held while the
// flock is waited for, so a second run of the process joins the first
// instead of queueing on the flock behind it.
func (e *Engine) acquire(ctx context.Context, exclusive bool) (release func(), err error) {
	o := e.overlap()
	o.lockMu.Lock()
	defer o.lockMu.Unlock()
	for o.runs > 0 && exclusive && !o.excl {
		o.idle.Wait()
	}
	if o.runs == 0 {
		l, err := AcquireLockIn(ctx, e.Root, e.StateDir, exclusive, e.lockWait(), e.entry())
		if err != nil {
			return nil, err
		}
		o.lock, o.excl = l, exclusive
	}
	o.runs++
	return func() {
		o.lockMu.Lock()
		defer o.lockMu.Unlock()
		o.runs--
		if o.runs == 0 {
			_ = o.lock.Release()
			o.lock = nil
			o.idle.Broadcast()
		}
	}, nil
}

// module serialises the runs of this process on one module.
func (e *Engine) module(id string) func() {
	o := e.overlap()
	o.mu.Lock()
	mu := o.mods[id]
	if mu == nil {
		mu = &sync.Mutex{}
		o.mods[id] = mu
	}
	o.mu.Unlock()
	mu.Lock()
	return mu.Unlock
}

// verifying marks unit as being restarted (or reloaded) by a run of this
// process until the returned func is called.
func (e *Engine) verifying(unit string) func() {
	o := e.overlap()
	o.mu.Lock()
	o.units[unit]++
	o.mu.Unlock()
	return func() {
		o.mu.Lock()
		o.units[unit]--
		if o.units[unit] == 0 {
			delete(o.units, unit)
		}
		o.mu.Unlock()
	}
}

// restarting reports whether a run of this process is restarting unit.
func (e *Engine) restarting(unit string) bool {
	o := e.overlap()
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.units[unit] > 0
}

// Independent returns the modules that no restart waits on and that wait
// on no restart: neither a Restarter nor in any Restarter's restart_on.
// The run loop corrects them while a restart is being verified.
func (e *Engine) Independent() Selection {
	tied := map[string]bool{}
	for _, m := range e.Modules {
		if r, ok := m.(Restarter); ok {
			tied[m.ID()] = true
			for _, dep := range r.RestartOn() {
				tied[dep] = true
			}
		}
	}
	out := Selection{}
	for _, m := range e.Modules {
		if !tied[m.ID()] {
			out[m.ID()] = true
		}
	}
	return out
}
