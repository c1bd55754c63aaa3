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

// Suppressor drops the events a converge's own writes cause: events for a
// module that arrive while that module is being applied, or within Grace
// after, are its own echo. An event after that is someone else's change.
type Suppressor struct {
	Grace time.Duration
	busy  map[string]bool
	until map[string]time.Time
}

// Begin marks modules as being applied.
func (s *Suppressor) Begin(ids []string) {
	if s.busy == nil {
		s.busy, s.until = map[string]bool{}, map[string]time.Time{}
	}
	for _, id := range ids {
		s.busy[id] = true
	}
}

// End marks the apply of modules as finished at now.
func (s *Suppressor) End(now time.Time, ids []string) {
	for _, id := range ids {
		delete(s.busy, id)
		s.until[id] = now.Add(s.Grace)
	}
}

// Own reports whether an event for module at now is an echo of our writes.
func (s *Suppressor) Own(now time.Time, module string) bool {
	if s.busy[module] {
		return true
	}
	u, ok := s.until[module]
	return ok && now.Before(u)
}

func sortedKeys(m map[string]string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
