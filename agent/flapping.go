package agent

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
)

// Flapping: something keeps undoing dockward's work (another configuration
// tool rewriting daemon.json, a cron job). Correcting it every time would
// restart docker every time the other side writes, which is worse than the
// drift: containers stop (without live-restore), Debian's docker.service
// allows three starts a minute and then gives up, and the two tools'
// fight never ends. So the run loop counts the corrections of each target
// and, when one target keeps being corrected, stops correcting that module
// for a while (events and the backstop alike), says so, and tries once
// more when the back-off ends.

// FlapPolicy says when a module flaps and how long it is left alone.
type FlapPolicy struct {
	// Count corrections of one target within Window make its module flap.
	Count  int
	Window time.Duration
	// Backoff is how long a flapping module is left alone: Base the first
	// time, doubled each time it flaps again before it calmed down.
	Backoff Backoff
}

// DefaultFlapPolicy: three corrections of a target in ten minutes. Two can
// be an operator's slip and its repetition; a third within minutes is a
// tool. Left alone 5 minutes, then 10, 20, 40, 60.
var DefaultFlapPolicy = FlapPolicy{Count: 3, Window: 10 * time.Minute, Backoff: Backoff{Base: 5 * time.Minute, Max: time.Hour}}

// Flapping is one module the loop has stopped correcting for a while. It
// is reported in the log, the agent's status and its metrics.
type Flapping struct {
	Module string `json:"module"`
	// Targets are the targets corrected Count times within Window.
	Targets []string `json:"targets"`
	// Corrections of those targets within the window, when it flapped last.
	Corrections int       `json:"corrections"`
	Since       time.Time `json:"since"` // when it began flapping this time
	Until       time.Time `json:"until"` // when the loop corrects it again
	// Rounds counts the back-offs since it last calmed down.
	Rounds int `json:"rounds"`
	// Window is the policy's: Corrections happened within it.
	Window time.Duration `json:"-"`
	// retried: its back-off ended and its one converge was handed out.
	retried bool
}

// Describe is the log's and the status's sentence about it.
func (f Flapping) Describe(now time.Time) string {
	what := fmt.Sprintf("dockward had to change %s %d times within %s", strings.Join(f.Targets, ", "), f.Corrections, f.Window)
	if f.Rounds > 1 {
		what = fmt.Sprintf("dockward had to change %s again right after backing off (%d back-offs so far)", strings.Join(f.Targets, ", "), f.Rounds-1)
	}
	return fmt.Sprintf("%s is flapping: %s; something else keeps undoing it. Left alone until %s (in %s)",
		f.Module, what, f.Until.Format(time.RFC3339), f.Until.Sub(now).Round(time.Second))
}

type flapKey struct{ module, target string }

// flaps is the run loop's record of corrections and flapping modules.
type flaps struct {
	policy   FlapPolicy
	seen     map[flapKey][]time.Time // recent corrections of each target
	flapping map[string]*Flapping
}

func newFlaps(p FlapPolicy) *flaps {
	return &flaps{policy: p, seen: map[flapKey][]time.Time{}, flapping: map[string]*Flapping{}}
}

// corrected records the drift corrections of a converge that ended at now
// and returns the modules that began flapping with it.
func (f *flaps) corrected(now time.Time, rep *Report) []Flapping {
	if f.policy.Count <= 0 {
		return nil // never backs off (agent.flap_corrections = 0)
	}
	var began []Flapping
	for _, mr := range rep.Modules {
		if mr.Status != StatusChanged {
			continue
		}
		fl := f.flapping[mr.ID]
		var over []string
		most := 0
		// A target counts once per converge: a table put back is one
		// correction, however many of its rules the plan lists.
		seen := map[string]bool{}
		for _, c := range mr.Changes {
			if seen[c.Target] {
				continue
			}
			seen[c.Target] = true
			k := flapKey{mr.ID, c.Target}
			times := append(f.recent(now, f.seen[k]), now)
			f.seen[k] = times
			if len(times) >= f.policy.Count {
				over = append(over, c.Target)
				most = max(most, len(times))
			}
		}
		if fl != nil && len(over) == 0 {
			// Corrected again after its back-off, before it calmed down:
			// the other side is still at it. Back off again, longer; the
			// one correction after each back-off is all it gets.
			for _, c := range mr.Changes {
				over = append(over, c.Target)
			}
			most = 1
		}
		if len(over) == 0 {
			continue
		}
		sort.Strings(over)
		over = slices.Compact(over)
		if fl == nil {
			fl = &Flapping{Module: mr.ID, Window: f.policy.Window}
			f.flapping[mr.ID] = fl
		}
		fl.Rounds++
		fl.Targets, fl.Corrections, fl.Since = over, most, now
		fl.Until = now.Add(f.policy.Backoff.Delay(fl.Rounds))
		fl.retried = false
		// The count starts again: after the back-off, Count more
		// corrections within the window make it flap again.
		for _, t := range over {
			delete(f.seen, flapKey{mr.ID, t})
		}
		began = append(began, *fl)
	}
	return began
}

func (f *flaps) recent(now time.Time, times []time.Time) []time.Time {
	out := times[:0]
	for _, t := range times {
		if now.Sub(t) < f.policy.Window {
			out = append(out, t)
		}
	}
	return out
}

// held reports whether module is left alone at now.
func (f *flaps) held(now time.Time, module string) bool {
	fl := f.flapping[module]
	return fl != nil && now.Before(fl.Until)
}

// calm forgets modules whose back-off ended more than a window ago with
// no new flapping since: the other side stopped.
func (f *flaps) calm(now time.Time) {
	for id, fl := range f.flapping {
		if now.Sub(fl.Until) >= f.policy.Window {
			delete(f.flapping, id)
		}
	}
}

// ended returns the flapping modules whose back-off is over and that have
// not been converged since, marking them converged.
func (f *flaps) ended(now time.Time) []string {
	var out []string
	for id, fl := range f.flapping {
		if !now.Before(fl.Until) && !fl.retried {
			fl.retried = true
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

// nextEnd is the earliest end of a back-off not yet converged after; zero
// when none.
func (f *flaps) nextEnd() time.Time {
	var next time.Time
	for _, fl := range f.flapping {
		if !fl.retried && (next.IsZero() || fl.Until.Before(next)) {
			next = fl.Until
		}
	}
	return next
}

// list returns the flapping modules, by ID.
func (f *flaps) list() []Flapping {
	out := make([]Flapping, 0, len(f.flapping))
	for _, fl := range f.flapping {
		out = append(out, *fl)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Module < out[j].Module })
	return out
}
