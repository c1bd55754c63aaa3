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
	"unicode/utf8"

	"github.com/fsnotify/fsnotify"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
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
	// Flap, when set, is the configuration's flapping policy (Loop.Flap
	// otherwise); Count 0 never backs off.
	Flap *FlapPolicy
	// ConfigFiles are the files the configuration was read from, in merge
	// order, for `dockward status`.
	ConfigFiles []string
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
	// One call is one message: "RELOADING=1\nMONOTONIC_USEC=..." must
	// reach systemd together.
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
	Flap     FlapPolicy    // when repeated corrections are flapping (default DefaultFlapPolicy)

	// OnConverge, if set, is called after every converge (tests, benchmarks).
	OnConverge func(rep *Report, trigger string)

	// Resident publishes the agent's state for `dockward status` (see
	// status.go); nil keeps it in memory only.
	Resident *Resident

	// Reloaded, if set, is told the outcome of every reload, after its
	// READY=1 was sent (`dockward run` keeps it for `dockward reload`).
	Reloaded func(ReloadResult)

	rnd *rand.Rand
	// reloading is the reload whose configuration was taken and whose
	// converge runs: its end is told when that converge finishes.
	reloading *ReloadResult
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
	if l.Flap == (FlapPolicy{}) {
		l.Flap = DefaultFlapPolicy
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
	// independent are the modules corrected while a restart is being
	// verified (Engine.Independent).
	independent Selection
}

func (l *Loop) load(ctx context.Context, eng *Engine, set LoopSettings, emit func(loopEvent)) *current {
	return &current{eng: eng, set: set, watches: l.watch(ctx, eng, set, emit), independent: eng.Independent()}
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

// Converges run in lanes, goroutines of their own, so that the loop keeps
// taking events in while one runs. The main lane runs any converge, one at
// a time. While it is busy (above all while a docker restart is being
// verified, which takes as long as dockerd's start: seconds, or minutes on
// a host with many containers), the side lane corrects the modules that no
// restart waits on and that wait on no restart (the firewall, Docker's
// file modes): without it, a firewall table deleted during the wait stayed
// deleted until dockerd was up. The engine lets the two runs share the run
// lock and keeps them off each other's modules (overlap.go). A reload
// waits until both lanes are idle.
const (
	mainLane = 0
	sideLane = 1
)

var laneNames = [2]string{"main", "side"}

type lanes struct {
	// running is what each lane runs, nil when it is free.
	running [2]*InFlight
	done    chan finished
}

func (ln *lanes) busy(lane int) bool { return ln.running[lane] != nil }

// inFlight lists the converges the lanes run now, for the agent's status.
func (ln *lanes) inFlight() []InFlight {
	var out []InFlight
	for _, r := range ln.running {
		if r != nil {
			out = append(out, *r)
		}
	}
	return out
}

// end frees the lane a run finished in.
func (ln *lanes) end(f finished) { ln.running[f.lane] = nil }

// finished is what a lane hands back to the loop when its run is over.
type finished struct {
	lane       int
	ids        []string // the modules the run covers
	only       Selection
	trigger    string
	begin, end time.Time
	rep        *Report
	err        error
	// quiet is a verification whose plan found nothing: no converge ran.
	quiet bool
}

// room says what the lanes can take now.
func (ln *lanes) room(cur *current) room {
	switch {
	case !ln.busy(mainLane):
		return room{main: true, idle: !ln.busy(sideLane)}
	case !ln.busy(sideLane) && len(cur.independent) > 0:
		return room{side: cur.independent}
	}
	return room{}
}

func (ln *lanes) idle() bool { return !ln.busy(mainLane) && !ln.busy(sideLane) }

// Run converges until ctx ends. A SIGTERM (ctx cancelled) stops it
// promptly: the runs in flight are cancelled; a module being written
// finishes its write (writes are atomic), a wait for a restart is given up
// (the restart stays owed in the journal, and the next start sees to it),
// modules not begun are left for the next run.
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
	runCtx, cancelRuns := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelRuns()
	sch := newSchedule(l)
	sch.flapPolicy(set.Flap)
	ln := &lanes{done: make(chan finished, 2)}

	// Watch first, so that READY means "converged, and watching": a change
	// made right after READY is seen. Events the start converge's own
	// writes cause are ignored like any converge's.
	cur := l.load(ctx, eng, set, emit)
	defer func() { cur.watches.stop() }()
	l.start(runCtx, ln, sch, mainLane, cur, nil, "start", false)
	ready := false
	sch.backstop = NextBackstop(time.Now(), set.Interval, set.Splay, l.rnd)

	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		l.publish(cur, sch, ln)
		rm := ln.room(cur)
		timer.Reset(max(time.Until(sch.next(time.Now(), rm)), 0))
		select {
		case <-ctx.Done():
			l.Log.Info("stopping")
			l.Notify("STOPPING=1")
			cancelRuns()
			for !ln.idle() {
				f := <-ln.done
				ln.end(f)
				l.finish(cur, sch, f)
			}
			l.publish(cur, sch, ln)
			return nil
		case <-l.Reload:
			sch.reloadWanted("SIGHUP")
		case f := <-ln.done:
			ln.end(f)
			l.finish(cur, sch, f)
			if !ready && f.trigger == "start" {
				// The start converge is over (READY is sent once, also
				// when it failed: the agent is up and retrying).
				ready = true
				l.Notify("READY=1")
			}
			if f.trigger == "reload" {
				l.reloadDone()
			}
		case ev := <-events:
			if sch.event(time.Now(), ev) {
				l.Log.WithFields(logrus.Fields{"module": ev.module, "event": ev.reason}).Debug("event")
			}
		case <-timer.C:
			w := sch.due(time.Now(), rm)
			switch {
			case w.reload:
				if next := l.reload(ctx, cur, sch, emit); next != nil {
					cur = next
					l.start(runCtx, ln, sch, mainLane, cur, nil, "reload", false)
					if !ln.busy(mainLane) {
						l.reloadDone() // no converge started: nothing to wait for
					}
				}
			case w.only != nil:
				l.start(runCtx, ln, sch, w.lane, cur, cur.eng.WithRestarters(w.only), w.trigger, false)
			case w.verify != nil:
				l.start(runCtx, ln, sch, w.lane, cur, w.verify, w.trigger, true)
			case w.interval:
				l.start(runCtx, ln, sch, mainLane, cur, nil, "interval", false)
				sch.backstop = NextBackstop(time.Now(), cur.set.Interval, cur.set.Splay, l.rnd)
			}
		}
	}
}

// reload loads the configuration again; a bad one is reported and the
// running one kept (nil). A good one starts afresh: its watches replace
// the old ones, and its own run (started by the caller) says what fails.
// Both lanes are idle.
//
// It speaks systemd's reload protocol: RELOADING=1 with the monotonic time
// as it begins (systemd counts only a reload begun after it asked), and
// READY=1 once the configuration was refused or, for one taken, once its
// converge finished (reloadDone); only then is Reloaded told:
// `dockward reload` (ExecReload=) exits on that, so systemd has READY=1
// before it sees the reload command end.
func (l *Loop) reload(ctx context.Context, cur *current, sch *schedule, emit func(loopEvent)) *current {
	started := MonotonicUsec()
	l.Notify(fmt.Sprintf("RELOADING=1\nMONOTONIC_USEC=%d\nSTATUS=reloading the configuration", started))
	eng, set, err := l.Load()
	if err != nil {
		l.Log.WithError(err).Error("reload: the new configuration is invalid; keeping the running one")
		l.resident().reloadFailed(err)
		l.Notify("READY=1\nSTATUS=" + clip("reload failed, running the previous configuration: "+err.Error(), maxStatus))
		l.reloaded(ReloadResult{Started: started, Err: err})
		return nil
	}
	l.Log.Info("reload: configuration reloaded")
	cur.watches.stop()
	sch.reset()
	sch.flapPolicy(set.Flap)
	sch.backstop = NextBackstop(time.Now(), set.Interval, set.Splay, l.rnd)
	l.reloading = &ReloadResult{Started: started}
	return l.load(ctx, eng, set, emit)
}

// reloadDone ends a reload whose configuration was taken, after its
// converge (whatever that converge's result: the configuration runs).
func (l *Loop) reloadDone() {
	if l.reloading == nil {
		return
	}
	r := *l.reloading
	l.reloading = nil
	l.Notify("READY=1") // STATUS= is the converge's
	l.reloaded(r)
}

func (l *Loop) reloaded(r ReloadResult) {
	if l.Reloaded != nil {
		l.Reloaded(r)
	}
}

// ReloadResult is the outcome of one reload of the configuration.
type ReloadResult struct {
	// Started is CLOCK_MONOTONIC in µs as the reload began, as sent in
	// MONOTONIC_USEC=: whoever asked for a reload at time T waits for one
	// with Started >= T (the configuration it read is then as of T or later).
	Started uint64
	// Err is why the new configuration was refused (the running one is
	// kept); nil when it runs and its first converge has finished.
	Err error
}

// maxStatus bounds a STATUS= text sent with READY=1: systemd reads at most
// 4096 bytes of a notification (NOTIFY_BUFFER_MAX) and drops a longer one,
// READY=1 with it. A reload error names every diagnostic and can be longer.
const maxStatus = 1024

// clip cuts s to at most n bytes on a character boundary, marking the cut.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const more = "..."
	cut := n - len(more)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + more
}

// MonotonicUsec is CLOCK_MONOTONIC in µs, the clock of sd_notify's
// MONOTONIC_USEC= (Go's monotonic time readings are not on it).
func MonotonicUsec() uint64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return uint64(ts.Sec)*1e6 + uint64(ts.Nsec)/1e3
}

// start runs a converge of the selected modules (nil: all) in a lane; with
// verify, it plans them first (read-only) and converges only when the plan
// finds drift: their events looked like echoes of the loop's own writes,
// and are someone's change only if something is to do.
func (l *Loop) start(ctx context.Context, ln *lanes, sch *schedule, lane int, cur *current, only Selection, trigger string, verify bool) {
	eng := cur.eng
	// A flapping module is left out, also as the restarter of what runs:
	// its unit's restart stays owed until its back-off ends.
	only, ok := sch.leaveAlone(time.Now(), eng, only)
	if !ok {
		return // everything it would run is left alone
	}
	// A verification converges with the restarters of what it verifies.
	converge := only
	if verify {
		converge, _ = sch.leaveAlone(time.Now(), eng, eng.WithRestarters(only))
	}
	// Its events are echoes while it runs.
	ids := moduleIDs(eng, converge)
	ln.running[lane] = &InFlight{Lane: laneNames[lane], Start: time.Now().UTC(), Trigger: trigger, Modules: ids}
	l.Log.WithFields(logrus.Fields{"lane": laneNames[lane], "trigger": trigger, "modules": strings.Join(ids, ", "), "verify": verify}).Debug("lane starts")
	sch.supp.Begin(ids)
	go func() {
		f := finished{lane: lane, ids: ids, only: only, trigger: trigger, begin: time.Now()}
		if verify {
			rep, err := eng.Plan(ctx, only)
			if err == nil && !rep.Changed() && !rep.Failed() {
				f.quiet, f.end = true, time.Now()
				ln.done <- f
				return
			}
			f.only = converge
			f.begin = time.Now()
		}
		f.rep, f.err = eng.Apply(ctx, f.only)
		f.end = time.Now()
		ln.done <- f
	}()
}

// finish records a lane's converge: the schedule's bookkeeping, metrics,
// the log and STATUS=.
func (l *Loop) finish(cur *current, sch *schedule, f finished) {
	sch.supp.End(f.ids)
	if f.quiet {
		l.Log.WithField("trigger", f.trigger).Debug("echo verified: nothing to do")
		return
	}
	rep, err := f.rep, f.err
	if rep == nil {
		rep = &Report{FormatVersion: ReportFormatVersion, Command: "apply", Start: f.begin.UTC(), Duration: f.end.Sub(f.begin).Seconds()}
	}
	failed, flapping := sch.observe(f.begin, f.end, f.ids, rep, err, f.trigger != "start")
	for _, fl := range flapping {
		l.Log.WithFields(logrus.Fields{"module": fl.Module, "target": strings.Join(fl.Targets, ", "), "flapping": true}).Warn(fl.Describe(f.end))
	}
	l.Metrics.Observe(rep, f.trigger != "start")
	l.resident().ran(f.trigger, f.ids, rep, err) // published (and the metrics textfile written) before the loop waits again
	fields := logrus.Fields{"trigger": f.trigger, "exit": rep.ExitCode(), "duration": f.end.Sub(f.begin).Round(time.Millisecond).String()}
	if f.lane == sideLane {
		fields["lane"] = laneNames[f.lane]
	}
	entry := l.Log.WithFields(fields)
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
		l.OnConverge(rep, f.trigger)
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
