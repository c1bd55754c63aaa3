package agent

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
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

// FileWatch reports changes of some files until its context ends; see
// Loop.WatchFiles.
type FileWatch interface {
	Run(ctx context.Context, changed func(path string))
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
	// ConfigDir, when set, is the drop-in directory (conf.d): a *.hcl file
	// added, changed or removed there reloads, as does the directory
	// itself appearing or going.
	ConfigDir string
	// Notify sends sd_notify states ("READY=1", "STATUS=..."); may be nil.
	Notify  func(state string)
	Metrics *Metrics
	Log     *logrus.Logger
	// WatchFiles sets up a watch on files (the configuration, the files of
	// FileWatchers) and returns it; nil when watching is unavailable. The
	// watches are in place when it returns. Default: inotify on the files'
	// directories. A path ending in "/" stands for the *.hcl files of that
	// directory (ConfigDir). Tests pass a fake.
	WatchFiles func(files []string) FileWatch

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
	if l.WatchFiles == nil {
		l.WatchFiles = l.inotify
	}
	l.rnd = rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0))
}

// current is the running configuration: its engine, its settings and the
// watches on what it manages.
type current struct {
	eng     *Engine
	set     LoopSettings
	watches *watches
}

// watches are the goroutines that turn a configuration's event sources
// into loop events.
type watches struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func (w *watches) stop() {
	w.cancel()
	w.wg.Wait()
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
	runCtx := context.WithoutCancel(ctx)
	sch := newSchedule(l)

	// Watch first, so that READY means "converged, and watching": a change
	// made right after READY is seen. Events the start converge's own
	// writes cause are ignored like any converge's.
	cur := &current{eng: eng, set: set, watches: l.watch(ctx, eng, set, emit)}
	defer func() { cur.watches.stop() }()
	l.converge(runCtx, cur, sch, nil, "start")
	l.Notify("READY=1")
	sch.backstop = NextBackstop(time.Now(), set.Interval, set.Splay, l.rnd)

	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		timer.Reset(max(time.Until(sch.next()), 0))
		reload := false
		select {
		case <-ctx.Done():
			l.Log.Info("stopping")
			l.Notify("STOPPING=1")
			return nil
		case <-l.Reload:
			reload = true
		case ev := <-events:
			if sch.event(time.Now(), ev) {
				l.Log.WithFields(logrus.Fields{"module": ev.module, "event": ev.reason}).Debug("event")
			}
		case <-timer.C:
			w := sch.due(time.Now())
			switch {
			case w.reload:
				reload = true
			case w.only != nil:
				l.converge(runCtx, cur, sch, cur.eng.WithRestarters(w.only), w.trigger)
			case w.verify != nil:
				l.verify(runCtx, cur, sch, w.verify, w.trigger)
			case w.interval:
				l.converge(runCtx, cur, sch, nil, "interval")
				sch.backstop = NextBackstop(time.Now(), cur.set.Interval, cur.set.Splay, l.rnd)
			}
		}
		if reload {
			l.reload(ctx, runCtx, cur, sch, emit)
		}
	}
}

// reload loads the configuration again; a bad one is reported and the
// running one kept. A good one starts afresh: its own run says what fails.
func (l *Loop) reload(ctx, runCtx context.Context, cur *current, sch *schedule, emit func(loopEvent)) {
	eng, set, err := l.Load()
	if err != nil {
		l.Log.WithError(err).Error("reload: the new configuration is invalid; keeping the running one")
		l.Notify("STATUS=reload failed: keeping the running configuration")
		return
	}
	l.Log.Info("reload: configuration reloaded")
	cur.watches.stop()
	cur.eng, cur.set = eng, set
	sch.reset()
	cur.watches = l.watch(ctx, eng, set, emit)
	l.converge(runCtx, cur, sch, nil, "reload")
	sch.backstop = NextBackstop(time.Now(), set.Interval, set.Splay, l.rnd)
}

// verify plans modules whose events looked like echoes of the loop's own
// writes and converges them only when the plan finds drift: the echo was
// then someone's change made right after ours.
func (l *Loop) verify(ctx context.Context, cur *current, sch *schedule, only Selection, trigger string) {
	rep, err := cur.eng.Plan(ctx, only)
	if err == nil && !rep.Changed() && !rep.Failed() {
		l.Log.WithField("trigger", trigger).Debug("echo verified: nothing to do")
		return
	}
	l.converge(ctx, cur, sch, cur.eng.WithRestarters(only), trigger)
}

// converge applies the selected modules (nil: all) and records the outcome.
func (l *Loop) converge(ctx context.Context, cur *current, sch *schedule, only Selection, trigger string) {
	ids := moduleIDs(cur.eng, only)
	start := time.Now()
	rep, err := cur.eng.Apply(ctx, only)
	if rep == nil {
		rep = &Report{FormatVersion: ReportFormatVersion, Command: "apply", Start: start.UTC(), Duration: time.Since(start).Seconds()}
	}
	failed := sch.observe(start, time.Now(), ids, rep, err)
	l.Metrics.Observe(rep, trigger != "start")
	if cur.set.MetricsTextfile != "" {
		if err := l.Metrics.WriteTextfile(cur.set.MetricsTextfile); err != nil {
			l.Log.WithError(err).Warn("could not write the metrics textfile")
		}
	}
	entry := l.Log.WithFields(logrus.Fields{"trigger": trigger, "exit": rep.ExitCode(), "duration": time.Since(start).Round(time.Millisecond).String()})
	switch {
	case err != nil:
		entry.WithError(err).Error("converge failed")
	case failed && len(sch.failing) > 0:
		entry.Errorf("converge failed; retrying %s in %s", strings.Join(sortedSet(sch.failing), ", "), time.Until(sch.retryAt).Round(time.Millisecond))
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

// watch starts the event sources of a configuration: its modules' (when
// set.Watch) and the configuration file's.
func (l *Loop) watch(ctx context.Context, eng *Engine, set LoopSettings, emit func(loopEvent)) *watches {
	wctx, cancel := context.WithCancel(ctx)
	w := &watches{cancel: cancel}
	if set.Watch {
		l.startWatchers(wctx, &w.wg, eng, emit)
	}
	var config []string
	if l.ConfigPath != "" {
		config = append(config, l.ConfigPath)
	}
	if l.ConfigDir != "" {
		// The directory as a file of its parent (created or removed), and
		// its drop-ins.
		config = append(config, l.ConfigDir, filepath.Clean(l.ConfigDir)+string(filepath.Separator))
	}
	if len(config) > 0 {
		if fw := l.WatchFiles(config); fw != nil {
			w.wg.Add(1)
			go func() {
				defer w.wg.Done()
				fw.Run(wctx, func(string) { emit(loopEvent{reason: "configuration changed"}) })
			}()
		}
	}
	return w
}

func (l *Loop) startWatchers(ctx context.Context, wg *sync.WaitGroup, eng *Engine, emit func(loopEvent)) {
	env := &Env{Root: eng.Root, StateDir: eng.StateDir, Log: logrus.NewEntry(eng.logger())}
	for _, m := range eng.Modules {
		id := m.ID()
		if fw, ok := m.(FileWatcher); ok {
			// Set up here, not in the goroutine: the watches are in place
			// when startWatchers returns.
			if w := l.WatchFiles(fw.WatchedFiles(env)); w != nil {
				wg.Add(1)
				go func() {
					defer wg.Done()
					w.Run(ctx, func(p string) { emit(loopEvent{module: id, reason: "changed " + p}) })
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
	// wantDirs are directories whose *.hcl files are all wanted.
	wantDirs map[string]bool
	log      *logrus.Logger
}

// wanted says whether an event's path is one of the files watched.
func (fw *fileWatch) wanted(name string) bool {
	name = filepath.Clean(name)
	if fw.want[name] {
		return true
	}
	base := filepath.Base(name)
	// config.IsDropInName's rule, not imported: agent does not depend on config.
	return fw.wantDirs[filepath.Dir(name)] && strings.HasSuffix(base, ".hcl") && !strings.HasPrefix(base, ".")
}

// inotify sets up the watches; nil when inotify is unavailable.
func (l *Loop) inotify(files []string) FileWatch {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		l.Log.WithError(err).Error("inotify unavailable; relying on the interval")
		return nil
	}
	fw := &fileWatch{w: w, want: map[string]bool{}, wantDirs: map[string]bool{}, log: l.Log}
	dirs := map[string]bool{}
	for _, f := range files {
		if strings.HasSuffix(f, string(filepath.Separator)) {
			d := filepath.Clean(f)
			if _, err := os.Stat(d); err != nil {
				continue // not there (yet): its creation is watched as a file
			}
			fw.wantDirs[d] = true
			dirs[d] = true
			continue
		}
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

// Run calls changed(path) whenever one of the files is written, created,
// removed or renamed over, until ctx ends; then it closes the watch.
func (fw *fileWatch) Run(ctx context.Context, changed func(string)) {
	defer fw.w.Close()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-fw.w.Events:
			if !ok {
				return
			}
			if fw.wanted(ev.Name) && !ev.Has(fsnotify.Chmod) {
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

// moduleIDs lists the modules a run of only covers.
func moduleIDs(eng *Engine, only Selection) []string {
	var ids []string
	for _, m := range eng.Modules {
		if only.has(m) {
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
