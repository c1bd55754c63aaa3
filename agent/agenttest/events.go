// Package agenttest has helpers for testing modules against the agent's
// contracts, such as collecting what an agent.EventSource emits.
package agenttest

import (
	"testing"
	"time"
)

// Events collects what an EventSource's Watch emits; pass Emit as emit.
type Events struct {
	C chan string
}

// NewEvents returns a collector with room for n events.
func NewEvents(n int) *Events { return &Events{C: make(chan string, n)} }

// Emit records one event.
func (e *Events) Emit(reason string) { e.C <- reason }

// Next waits, at most 10 s, for the next event.
func (e *Events) Next(t testing.TB, what string) string {
	t.Helper()
	select {
	case r := <-e.C:
		return r
	case <-time.After(10 * time.Second):
		t.Fatalf("no event within 10s: %s", what)
	}
	return ""
}

// None checks that no event arrives for d: events are asynchronous, so
// quiet for a while is as close to "never" as a test gets.
func (e *Events) None(t testing.TB, d time.Duration, what string) {
	t.Helper()
	select {
	case r := <-e.C:
		t.Errorf("%s: unexpected event %q", what, r)
	case <-time.After(d):
	}
}

// Drain forgets what arrives within d (the echo of a test's own setup).
func (e *Events) Drain(d time.Duration) {
	end := time.After(d)
	for {
		select {
		case <-e.C:
		case <-end:
			return
		}
	}
}
