package agent

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/sirupsen/logrus"
)

// FileWatcher is implemented by modules whose state lives in files; the run
// loop watches them (through their directories: editors and tools replace
// files by rename) and converges the module when one changes.
type FileWatcher interface {
	Module
	WatchedFiles(env *Env) []string
}

// EventSource is implemented by modules with other event sources: the
// nftables monitor, D-Bus unit signals, Docker network events. Watch runs
// until ctx ends and calls emit whenever the module may have drifted.
type EventSource interface {
	Module
	Watch(ctx context.Context, env *Env, emit func(reason string)) error
}

// LoopSettings are the agent block's run-loop settings.
type LoopSettings struct {
	Interval, Splay time.Duration
	Watch           bool
	MetricsTextfile string
}

// Loop is `dockward run`: converge now, then on events and on a backstop
// interval, until its context ends.
type Loop struct {
	// Load reads and validates the configuration; called at start and on
	// every reload. A failed reload keeps the running configuration.
	Load func() (*Engine, LoopSettings, error)
	// Reload delivers SIGHUP.
	Reload <-chan struct{}
	// ConfigPath, when set, is watched: a change reloads.
	ConfigPath string
	// Notify sends sd_notify states ("READY=1", "STATUS=..."); may be nil.
	Notify  func(state string)
	Metrics *Metrics
	Log     *logrus.Logger

	Debounce time.Duration // quiet time that ends a burst of events
	MaxDelay time.Duration // longest a burst may defer its converge
	Backoff  Backoff
	Grace    time.Duration // how long after an apply its own echo is ignored

	// OnConverge, if set, is called after every converge (tests, benchmarks).
	OnConverge func(rep *Report, trigger string)

	rnd *rand.Rand
}

// configKey is the debouncer's key for changes of the configuration file.
const configKey = "\x00configuration"

type loopEvent struct {
	module string // "" = configuration changed
	reason string
	at     time.Time // when the source emitted it (see Suppressor)
}

func (l *Loop) defaults() {
	if l.Debounce == 0 {
		l.Debounce = 20 * time.Millisecond
	}
	if l.MaxDelay == 0 {
		l.MaxDelay = 500 * time.Millisecond
	}
	if l.Backoff == (Backoff{}) {
		l.Backoff = Backoff{Base: 2 * time.Second, Max: 5 * time.Minute}
	}
	if l.Grace == 0 {
		l.Grace = 100 * time.Millisecond
	}
	if l.Log == nil {
		l.Log = logrus.StandardLogger()
	}
	if l.Notify == nil {
		l.Notify = func(string) {}
	}
	l.rnd = rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0))
}

// Run converges until ctx ends. A SIGTERM (ctx cancelled) lets the run in
// flight finish: converges use a context that outlives ctx.
func (l *Loop) Run(ctx context.Context) error {
	l.defaults()
	eng, set, err := l.Load()
	if err != nil {
		return err
	}
	events := make(chan loopEvent, 256)
	emit := func(ev loopEvent) {
		ev.at = time.Now()
		select {
		case events <- ev:
		default: // a full queue already holds a converge for everything that matters
		}
	}

	var watchCancel context.CancelFunc
	var watchWG sync.WaitGroup
	startWatch := func() {
		wctx, cancel := context.WithCancel(ctx)
		watchCancel = cancel
		if set.Watch {
			l.startWatchers(wctx, &watchWG, eng, emit)
		}
		if l.ConfigPath != "" {
			if w := l.newFileWatch([]string{l.ConfigPath}); w != nil {
				watchWG.Add(1)
				go func() {
					defer watchWG.Done()
					w.run(wctx, func(string) { emit(loopEvent{reason: "configuration changed"}) })
				}()
			}
		}
	}
	stopWatch := func() {
		watchCancel()
		watchWG.Wait()
	}

	runCtx := context.WithoutCancel(ctx)
	supp := &Suppressor{Grace: l.Grace}
	deb := &Debouncer{Quiet: l.Debounce, MaxDelay: l.MaxDelay}
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
	failing := map[string]bool{}
	failures := 0
	var retryAt, lastFail time.Time
	held := map[string]string{} // module ID -> reason, events waiting for heldUntil

	converge := func(only map[string]bool, trigger string) {
		eng.Only = only
		ids := moduleIDs(eng)
		start := time.Now()
		rep, err := eng.Apply(runCtx)
		eng.Only = nil
		if rep == nil {
			rep = &Report{FormatVersion: ReportFormatVersion, Command: "apply", Start: start.UTC(), Duration: time.Since(start).Seconds()}
		}
		wrote := ids // a run that did not report its modules may have written any
		if len(rep.Modules) > 0 {
			wrote = nil
			for _, mr := range rep.Modules {
				// A failed module wrote nothing: modules apply all or
				// nothing (the engine's contract), and a failed plan
				// never got to apply.
				if mr.Status == StatusChanged || mr.Status == StatusRolledBack {
					wrote = append(wrote, mr.ID)
				}
			}
		}
		supp.Record(start, time.Now(), wrote)
		failed := err != nil || rep.Failed()
		if len(rep.Modules) == 0 && err != nil {
			// The run did not get to the modules (the lock): all of them
			// are owed a retry.
			for _, id := range ids {
				failing[id] = true
			}
		}
		for _, mr := range rep.Modules {
			if mr.Status == StatusFailed {
				failing[mr.ID] = true
			} else {
				delete(failing, mr.ID)
			}
		}
		switch {
		case failed && len(failing) > 0:
			failures++
			lastFail = time.Now()
			retryAt = lastFail.Add(l.Backoff.Delay(failures))
		case len(failing) == 0:
			failures = 0
			retryAt = time.Time{}
		}
		l.Metrics.Observe(rep, trigger != "start")
		if set.MetricsTextfile != "" {
			if err := l.Metrics.WriteTextfile(set.MetricsTextfile); err != nil {
				l.Log.WithError(err).Warn("could not write the metrics textfile")
			}
		}
		entry := l.Log.WithFields(logrus.Fields{"trigger": trigger, "exit": rep.ExitCode(), "duration": time.Since(start).Round(time.Millisecond).String()})
		switch {
		case err != nil:
			entry.WithError(err).Error("converge failed")
		case failed && len(failing) > 0:
			entry.Errorf("converge failed; retrying %s in %s", strings.Join(sortedSet(failing), ", "), time.Until(retryAt).Round(time.Millisecond))
		case failed:
			entry.Error("converge failed; the interval tries again")
		case rep.Changed():
			entry.Info("converged: corrected drift")
		default:
			entry.Debug("converged: nothing to do")
		}
		l.Notify("STATUS=" + statusLine(rep, err))
		if l.OnConverge != nil {
			l.OnConverge(rep, trigger)
		}
	}

	// Watch first, so that READY means "converged, and watching": a change
	// made right after READY is seen. Events the start converge's own
	// writes cause are ignored like any converge's.
	startWatch()
	converge(nil, "start")
	l.Notify("READY=1")
	defer stopWatch()
	backstop := NextBackstop(time.Now(), set.Interval, set.Splay, l.rnd)
	reloadNow := false

	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		next := backstop
		if d := deb.Deadline(); !d.IsZero() && d.Before(next) {
			next = d
		}
		if len(failing) > 0 && retryAt.Before(next) {
			next = retryAt
		}
		heldUntil := lastFail.Add(l.Backoff.Base)
		if len(held) > 0 && heldUntil.Before(next) {
			next = heldUntil
		}
		timer.Reset(max(time.Until(next), 0))

		select {
		case <-ctx.Done():
			l.Log.Info("stopping")
			l.Notify("STOPPING=1")
			return nil
		case <-l.Reload:
			reloadNow = true
		case ev := <-events:
			now := time.Now()
			if ev.module == "" {
				// The configuration file changed: reload once the writes
				// are over (an editor truncates, then writes; a partial
				// file must not become the running configuration).
				deb.Add(now, configKey, ev.reason)
				break
			}
			if supp.Own(ev.at, ev.module) {
				continue
			}
			l.Log.WithFields(logrus.Fields{"module": ev.module, "event": ev.reason}).Debug("event")
			deb.Add(now, ev.module, ev.reason)
		case <-timer.C:
			now := time.Now()
			if pending, ok := deb.Take(now); ok {
				for id, r := range pending {
					if _, dup := held[id]; !dup {
						held[id] = r
					}
				}
			}
			if _, ok := held[configKey]; ok {
				// The reload converges everything.
				delete(held, configKey)
				reloadNow = true
				break
			}
			ready := map[string]string{}
			for id, r := range held {
				if failing[id] && now.Before(heldUntil) {
					continue
				}
				ready[id] = r
				delete(held, id)
			}
			retryDue := len(failing) > 0 && !now.Before(retryAt)
			if len(ready) > 0 || retryDue {
				only := map[string]bool{}
				var why []string
				if len(ready) > 0 {
					for id := range ready {
						only[id] = true
					}
					why = append(why, "event: "+describePending(ready))
				}
				if retryDue {
					for id := range failing {
						only[id] = true
					}
					why = append(why, "retry: "+strings.Join(sortedSet(failing), ", "))
				}
				converge(eng.WithRestarters(only), strings.Join(why, "; "))
				continue
			}
			if !now.Before(backstop) {
				converge(nil, "interval")
				backstop = NextBackstop(time.Now(), set.Interval, set.Splay, l.rnd)
			}
		}
		if reloadNow {
			reloadNow = false
			neng, nset, err := l.Load()
			if err != nil {
				l.Log.WithError(err).Error("reload: the new configuration is invalid; keeping the running one")
				l.Notify("STATUS=reload failed: keeping the running configuration")
				continue
			}
			l.Log.Info("reload: configuration reloaded")
			stopWatch()
			eng, set = neng, nset
			// The new configuration starts afresh: its own run says what fails.
			failing, failures, retryAt, lastFail = map[string]bool{}, 0, time.Time{}, time.Time{}
			held = map[string]string{}
			startWatch()
			converge(nil, "reload")
			backstop = NextBackstop(time.Now(), set.Interval, set.Splay, l.rnd)
		}
	}
}

func (l *Loop) startWatchers(ctx context.Context, wg *sync.WaitGroup, eng *Engine, emit func(loopEvent)) {
	env := eng.env(false)
	for _, m := range eng.Modules {
		id := m.ID()
		if fw, ok := m.(FileWatcher); ok {
			// Set up here, not in the goroutine: the watches are in place
			// when startWatchers returns.
			if w := l.newFileWatch(fw.WatchedFiles(env)); w != nil {
				wg.Add(1)
				go func() {
					defer wg.Done()
					w.run(ctx, func(p string) { emit(loopEvent{module: id, reason: "changed " + p}) })
				}()
			}
		}
		if es, ok := m.(EventSource); ok {
			wg.Add(1)
			go func() {
				defer wg.Done()
				l.keepWatching(ctx, es, env.with(env.Log.WithField("module", id)), func(r string) { emit(loopEvent{module: id, reason: r}) })
			}()
		}
	}
}

// keepWatching restarts an event source that fails (a D-Bus or Docker
// connection that closed), backing off so a dead daemon is not hammered.
func (l *Loop) keepWatching(ctx context.Context, es EventSource, env *Env, emit func(string)) {
	b := Backoff{Base: time.Second, Max: time.Minute}
	for n := 1; ; n++ {
		start := time.Now()
		err := es.Watch(ctx, env, emit)
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, ErrOffline) {
			return
		}
		if time.Since(start) > time.Minute {
			n = 1
		}
		env.Log.WithError(err).Warnf("event source stopped; restarting in %s", b.Delay(n))
		select {
		case <-ctx.Done():
			return
		case <-time.After(b.Delay(n)):
		}
		// Something may have changed while nobody was watching: converge
		// as the source starts again (not before: the daemon that went
		// away is likelier to be back now).
		emit("event source restarted")
	}
}

// fileWatch is inotify on the parent directories of some files: editors
// and tools replace files by rename, which a watch on the file itself
// would lose.
type fileWatch struct {
	w    *fsnotify.Watcher
	want map[string]bool
	log  *logrus.Logger
}

// newFileWatch sets up the watches; nil when inotify is unavailable.
func (l *Loop) newFileWatch(files []string) *fileWatch {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		l.Log.WithError(err).Error("inotify unavailable; relying on the interval")
		return nil
	}
	fw := &fileWatch{w: w, want: map[string]bool{}, log: l.Log}
	dirs := map[string]bool{}
	for _, f := range files {
		fw.want[filepath.Clean(f)] = true
		dirs[filepath.Dir(f)] = true
	}
	for d := range dirs {
		if err := w.Add(d); err != nil {
			l.Log.WithError(err).WithField("dir", d).Warn("cannot watch directory; relying on the interval")
		}
	}
	return fw
}

// run calls changed(path) whenever one of the files is written, created,
// removed or renamed over, until ctx ends; then it closes the watch.
func (fw *fileWatch) run(ctx context.Context, changed func(string)) {
	defer fw.w.Close()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-fw.w.Events:
			if !ok {
				return
			}
			if fw.want[filepath.Clean(ev.Name)] && !ev.Has(fsnotify.Chmod) {
				changed(ev.Name)
			}
		case err, ok := <-fw.w.Errors:
			if !ok {
				return
			}
			fw.log.WithError(err).Warn("inotify error")
		}
	}
}

// moduleIDs lists the modules the engine's next run covers.
func moduleIDs(eng *Engine) []string {
	var ids []string
	for _, m := range eng.Modules {
		if eng.selected(m) {
			ids = append(ids, m.ID())
		}
	}
	return ids
}

func describePending(p map[string]string) string {
	var parts []string
	for _, id := range sortedKeys(p) {
		parts = append(parts, fmt.Sprintf("%s (%s)", id, p[id]))
	}
	return strings.Join(parts, ", ")
}

func statusLine(rep *Report, err error) string {
	if err != nil {
		return "last run failed: " + err.Error()
	}
	var failed []string
	for _, m := range rep.Modules {
		if m.Status == StatusFailed || m.Status == StatusRolledBack {
			failed = append(failed, m.ID)
		}
	}
	sort.Strings(failed)
	at := rep.Start.Local().Format("15:04:05")
	switch {
	case len(failed) > 0:
		return fmt.Sprintf("last run %s: failed: %s", at, strings.Join(failed, ", "))
	case rep.Changed():
		return fmt.Sprintf("last run %s: corrected drift", at)
	}
	return fmt.Sprintf("last run %s: converged", at)
}

func sortedSet(m map[string]bool) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
