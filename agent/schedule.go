package agent

import (
	"math/rand/v2"
	"sort"
	"strings"
	"time"
)

// The pure scheduling pieces of the run loop, apart from timers and I/O so
// that they can be tested with explicit times.

// Debouncer coalesces a burst of events into one converge. It fires once
// the events have been quiet for Quiet, but never later than MaxDelay after
// the first event of the burst, so a steady trickle cannot starve it.
type Debouncer struct {
	Quiet    time.Duration
	MaxDelay time.Duration

	pending map[string]string // module ID -> first reason
	first   time.Time
	last    time.Time
}

// Add records an event for a module at time now.
func (d *Debouncer) Add(now time.Time, module, reason string) {
	if d.pending == nil {
		d.pending = map[string]string{}
	}
	if len(d.pending) == 0 {
		d.first = now
	}
	if _, ok := d.pending[module]; !ok {
		d.pending[module] = reason
	}
	d.last = now
}

// Pending reports whether events are waiting.
func (d *Debouncer) Pending() bool { return len(d.pending) > 0 }

// Deadline is when the pending burst is due (zero time when none is pending).
func (d *Debouncer) Deadline() time.Time {
	if !d.Pending() {
		return time.Time{}
	}
	due := d.last.Add(d.Quiet)
	if limit := d.first.Add(d.MaxDelay); d.MaxDelay > 0 && limit.Before(due) {
		due = limit
	}
	return due
}

// Take returns the pending modules and their reasons if the burst is due at
// now, and forgets them.
func (d *Debouncer) Take(now time.Time) (map[string]string, bool) {
	if !d.Pending() || now.Before(d.Deadline()) {
		return nil, false
	}
	p := d.pending
	d.pending = nil
	return p, true
}

// Backoff is the delay before retrying after consecutive failures:
// Base, doubled per further failure, capped at Max. Zero failures, zero delay.
type Backoff struct {
	Base, Max time.Duration
}

// Delay returns the wait after n consecutive failed runs.
func (b Backoff) Delay(n int) time.Duration {
	if n <= 0 {
		return 0
	}
	d := b.Base
	for i := 1; i < n; i++ {
		d *= 2
		if d >= b.Max {
			return b.Max
		}
	}
	return min(d, b.Max)
}

// NextBackstop is the next full reconcile: interval plus a random share of
// splay, so that a fleet does not converge in lockstep.
func NextBackstop(now time.Time, interval, splay time.Duration, rnd *rand.Rand) time.Time {
	var extra time.Duration
	if splay > 0 {
		extra = time.Duration(rnd.Int64N(int64(splay)))
	}
	return now.Add(interval + extra)
}

// Suppressor tells the events a converge's own writes cause. Events carry
// the time their source emitted them. An event for a module is an echo
// when it was emitted while a converge that covers the module ran, or
// within Grace after a converge that wrote to it ended (what the event
// source took to deliver it). A converge that left a module as it was wrote
// nothing of it, so the module's events from then are someone else's: they
// are kept, so that a change made right after a converge (an operator's
// edit just after the agent's start, a network created just after a failed
// firewall run) is not lost. The loop verifies echoes rather than dropping
// them (see schedule.echoes), so one taken wrongly for an echo costs a
// plan, not a correction.
type Suppressor struct {
	Grace   time.Duration
	wrote   map[string]window // module ID -> the last converge that wrote to it
	running map[string]int    // module ID -> converges covering it that run now
}

type window struct{ begin, end time.Time }

// Begin notes converges of the modules ids starting.
func (s *Suppressor) Begin(ids []string) {
	if s.running == nil {
		s.running = map[string]int{}
	}
	for _, id := range ids {
		s.running[id]++
	}
}

// End notes that a converge Begin noted is over.
func (s *Suppressor) End(ids []string) {
	for _, id := range ids {
		if s.running[id]--; s.running[id] <= 0 {
			delete(s.running, id)
		}
	}
}

// Record notes a converge that ran from begin to end and wrote to the
// modules in wrote (changed, rolled back, or failed part-way).
func (s *Suppressor) Record(begin, end time.Time, wrote []string) {
	if s.wrote == nil {
		s.wrote = map[string]window{}
	}
	for _, id := range wrote {
		s.wrote[id] = window{begin, end}
	}
}

// Own reports whether an event for module, emitted at at, is an echo of
// dockward's own writes.
func (s *Suppressor) Own(at time.Time, module string) bool {
	if s.running[module] > 0 {
		return true
	}
	w, ok := s.wrote[module]
	return ok && !at.Before(w.begin) && at.Before(w.end.Add(s.Grace))
}

func sortedKeys(m map[string]string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// schedule is the run loop's bookkeeping between converges: the pending
// burst of events, the echoes to ignore, the modules that keep failing and
// when they are retried, the events held back for them, and the next
// backstop. It decides, given times, what the loop does next; the loop
// only waits and converges.
type schedule struct {
	backoff Backoff
	deb     *Debouncer
	supp    *Suppressor

	// Modules whose last run failed are retried on their own at retryAt,
	// backing off exponentially while they keep failing. A module that was
	// rolled back is not retried early: its desired state is what failed,
	// and only the interval (or a new configuration) tries it again.
	//
	// Events are not retries: they say the host changed, and the change may
	// be what the failing module waited for (a declared Docker network
	// created at last; containers on it are unfiltered until its rules are
	// in). So events go ahead, the failing module's too, but not sooner
	// than Backoff.Base after its last failure: a flood of outside changes
	// cannot turn a failing module (a docker restart that rolls back) into
	// a loop. Such events are held until then.
	failing           map[string]bool
	retrying          map[string]bool // failing modules whose retry is running
	failures          int
	retryAt, lastFail time.Time
	held              map[string]string // module ID -> reason, events waiting for heldUntil

	// Events that fell in an echo window are not dropped outright: a real
	// change made within the window (a table deleted 50 ms after the agent
	// rebuilt it) would then wait for the backstop. They are verified
	// instead: once quiet, the loop plans those modules (read-only, cheap)
	// and converges only when the plan finds something to do.
	echoes    map[string]string // module ID -> reason
	echoCheck time.Time

	backstop time.Time // the next full reconcile

	// Modules whose corrections keep being undone are left alone for a
	// while (flapping.go): their events wait, the backstop skips them.
	flaps *flaps
}

func newSchedule(l *Loop) *schedule {
	s := &schedule{
		backoff: l.Backoff,
		deb:     &Debouncer{Quiet: l.Debounce, MaxDelay: l.MaxDelay},
		supp:    &Suppressor{Grace: l.Grace},
		flaps:   newFlaps(l.Flap),
	}
	s.reset()
	return s
}

// flapPolicy takes a configuration's flapping policy (nil: keep the
// loop's), forgetting what was counted.
func (s *schedule) flapPolicy(p *FlapPolicy) {
	if p != nil {
		s.flaps = newFlaps(*p)
	}
}

// reset forgets failures and held events: a new configuration starts afresh.
func (s *schedule) reset() {
	s.failing, s.failures, s.retryAt, s.lastFail = map[string]bool{}, 0, time.Time{}, time.Time{}
	s.retrying = map[string]bool{}
	if s.flaps != nil {
		s.flaps = newFlaps(s.flaps.policy)
	}
	s.held = map[string]string{}
	s.echoes = map[string]string{}
}

func (s *schedule) heldUntil() time.Time { return s.lastFail.Add(s.backoff.Base) }

// room is what the run loop's lanes can take now (see runloop.go, lanes).
type room struct {
	main bool // the main lane is free: any converge may start
	idle bool // both lanes are free: a reload may start
	// side, with the main lane busy and the side lane free, are the
	// modules a converge may start for.
	side Selection
}

func (r room) none() bool { return !r.main && len(r.side) == 0 }

// allows says whether a converge of module id may start now.
func (r room) allows(id string) bool { return r.main || r.side[id] }

// reloadWanted asks for a reload (SIGHUP); it starts once both lanes are
// idle.
func (s *schedule) reloadWanted(why string) {
	s.held[configKey] = why
}

// next is when something that room allows may be due: a burst's end, a
// retry, held events, an echo check, a reload, or the backstop. Work room
// does not allow waits for a lane to end, which wakes the loop anyway.
func (s *schedule) next(now time.Time, rm room) time.Time {
	next := now.Add(time.Hour)
	if rm.none() {
		return next
	}
	earlier := func(t time.Time) {
		if t.Before(next) {
			next = t
		}
	}
	_, reloading := s.held[configKey]
	if rm.main && !reloading {
		earlier(s.backstop)
	}
	if d := s.deb.Deadline(); !d.IsZero() {
		earlier(d)
	}
	for id := range s.failing {
		if rm.allows(id) && !s.retrying[id] && !s.flaps.held(now, id) {
			earlier(s.retryAt)
			break
		}
	}
	if t := s.flaps.nextEnd(); !t.IsZero() {
		earlier(t)
	}
	for id := range s.held {
		switch {
		case id == configKey:
			if rm.idle {
				earlier(now)
			}
		case !rm.allows(id), s.flaps.held(now, id):
			// Its back-off's end is in nextEnd.
		case s.failing[id]:
			earlier(s.heldUntil())
		default:
			earlier(now)
		}
	}
	for id := range s.echoes {
		if rm.allows(id) {
			earlier(s.echoCheck)
			break
		}
	}
	return next
}

// event takes one event in; it reports false for what looks like an echo
// of dockward's own writes, which is only verified (see echoes).
func (s *schedule) event(now time.Time, ev loopEvent) bool {
	if ev.module == "" {
		// The configuration file changed: reload once the writes are over
		// (an editor truncates, then writes; a partial file must not
		// become the running configuration).
		s.deb.Add(now, configKey, ev.reason)
		return true
	}
	if s.supp.Own(ev.at, ev.module) {
		if _, dup := s.echoes[ev.module]; !dup {
			s.echoes[ev.module] = ev.reason
		}
		s.echoCheck = now.Add(s.deb.Quiet)
		return false
	}
	s.deb.Add(now, ev.module, ev.reason)
	return true
}

// work is what is due at a moment: a reload, a converge of some modules
// (only, with its trigger), or the interval's full converge, and the lane
// it runs in.
type work struct {
	reload   bool
	only     Selection
	trigger  string
	interval bool
	// verify lists modules to plan (read-only) and converge only when the
	// plan finds drift: their events looked like echoes of our own writes.
	verify Selection
	lane   int
}

// due says what to start at now, of what room allows.
func (s *schedule) due(now time.Time, rm room) work {
	if rm.none() {
		return work{}
	}
	lane := mainLane
	if !rm.main {
		lane = sideLane
	}
	if pending, ok := s.deb.Take(now); ok {
		for id, r := range pending {
			if _, dup := s.held[id]; !dup {
				s.held[id] = r
			}
		}
	}
	s.flaps.calm(now)
	for _, id := range s.flaps.ended(now) {
		// Once more after the back-off, event or not: the other side may
		// have stopped and left its change behind.
		if _, dup := s.held[id]; !dup {
			s.held[id] = "its back-off after flapping is over"
		}
	}
	if _, ok := s.held[configKey]; ok {
		switch {
		case rm.idle:
			// The reload converges everything.
			delete(s.held, configKey)
			return work{reload: true}
		case rm.main:
			// The side lane ends soon; the reload goes first then.
			return work{}
		}
	}
	ready := map[string]string{}
	for id, r := range s.held {
		if id == configKey || !rm.allows(id) || (s.failing[id] && now.Before(s.heldUntil())) || s.flaps.held(now, id) {
			continue
		}
		ready[id] = r
		delete(s.held, id)
	}
	var retry []string
	if len(s.failing) > 0 && !now.Before(s.retryAt) {
		for _, id := range sortedSet(s.failing) {
			if rm.allows(id) && !s.retrying[id] && !s.flaps.held(now, id) {
				retry = append(retry, id)
				s.retrying[id] = true
			}
		}
	}
	if len(ready) > 0 || len(retry) > 0 {
		only := Selection{}
		var why []string
		if len(ready) > 0 {
			for id := range ready {
				only[id] = true
			}
			why = append(why, "event: "+describePending(ready))
		}
		if len(retry) > 0 {
			for _, id := range retry {
				only[id] = true
			}
			why = append(why, "retry: "+strings.Join(retry, ", "))
		}
		return work{only: only, trigger: strings.Join(why, "; "), lane: lane}
	}
	if len(s.echoes) > 0 && !now.Before(s.echoCheck) {
		verify := Selection{}
		echoes := map[string]string{}
		for id, r := range s.echoes {
			if rm.allows(id) {
				verify[id] = true
				echoes[id] = r
				delete(s.echoes, id)
			}
		}
		if len(verify) > 0 {
			return work{verify: verify, trigger: "event after its own write: " + describePending(echoes), lane: lane}
		}
	}
	if _, reloading := s.held[configKey]; rm.main && !reloading && !now.Before(s.backstop) {
		return work{interval: true}
	}
	return work{}
}

// observe records a converge of the modules ids that ran from begin to end,
// and reports whether it failed and which modules began flapping with it.
// drift says its changes corrected drift: it was not the agent's first
// converge, which provisions. A reload's converge counts (it corrects what
// changed meanwhile); the reload itself started the count afresh, so a
// changed configuration's own changes count once.
func (s *schedule) observe(begin, end time.Time, ids []string, rep *Report, err error, drift bool) (bool, []Flapping) {
	var began []Flapping
	if drift {
		began = s.flaps.corrected(end, rep)
	}
	wrote := ids // a run that did not report its modules may have written any
	if len(rep.Modules) > 0 {
		wrote = nil
		for _, mr := range rep.Modules {
			// A failed module wrote nothing: modules apply all or nothing
			// (the engine's contract), and a failed plan never got to apply.
			if mr.Status == StatusChanged || mr.Status == StatusRolledBack {
				wrote = append(wrote, mr.ID)
			}
		}
	}
	s.supp.Record(begin, end, wrote)
	for _, id := range ids {
		delete(s.retrying, id)
	}
	failed := err != nil || rep.Failed()
	if len(rep.Modules) == 0 && err != nil {
		// The run did not get to the modules (the lock): all of them are
		// owed a retry.
		for _, id := range ids {
			s.failing[id] = true
		}
	}
	for _, mr := range rep.Modules {
		if mr.Status == StatusFailed {
			s.failing[mr.ID] = true
		} else {
			delete(s.failing, mr.ID)
		}
	}
	switch {
	case failed && len(s.failing) > 0:
		s.failures++
		s.lastFail = end
		s.retryAt = s.lastFail.Add(s.backoff.Delay(s.failures))
	case len(s.failing) == 0:
		s.failures = 0
		s.retryAt = time.Time{}
	}
	return failed, began
}

// leaveAlone takes the modules the flapping back-off holds out of a run's
// selection (nil or empty: all of eng's modules). ok is false when nothing
// is left to run.
func (s *schedule) leaveAlone(now time.Time, eng *Engine, only Selection) (sel Selection, ok bool) {
	out := Selection{}
	held := false
	for _, m := range eng.Modules {
		if !only.has(m) {
			continue
		}
		if s.flaps.held(now, m.ID()) {
			held = true
			continue
		}
		out[m.ID()] = true
	}
	if !held {
		return only, true
	}
	return out, len(out) > 0
}

// snapshot is what status and the metrics show of the schedule.
func (s *schedule) snapshot() scheduleState {
	st := scheduleState{failing: sortedSet(s.failing), failures: s.failures, backstop: s.backstop, flapping: s.flaps.list()}
	if len(s.failing) > 0 {
		st.retryAt, st.backoff = s.retryAt, s.backoff.Delay(s.failures)
	}
	return st
}
