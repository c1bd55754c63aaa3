package agent

import (
	"math/rand/v2"
	"sort"
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

// Suppressor drops the events a converge's own writes cause. Events carry
// the time their source emitted them. An event for a module is an echo
// when it was emitted while a converge that wrote to that module ran, or
// within Grace after it ended (what the event source took to deliver it).
// A converge that left a module as it was wrote nothing of it, so the
// module's events from then are someone else's: they are kept, so that a
// change made right after a converge (an operator's edit just after the
// agent's start, a network created just after a failed firewall run) is
// not lost.
type Suppressor struct {
	Grace time.Duration
	wrote map[string]window // module ID -> the last converge that wrote to it
}

type window struct{ begin, end time.Time }

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
