package agent

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sirupsen/logrus"
)

// The loop tests run in a synctest bubble: the loop's timers (debounce,
// grace, backoff, interval) run on the bubble's fake clock, and file
// changes come from fakeFiles instead of inotify, so no test waits for real
// time. The real inotify watch is tested on its own (TestInotifySeesReplace).

// fakeFiles stands in for inotify: Touch delivers a change of a path to the
// watches on it, as the kernel would after a write or a rename over it.
type fakeFiles struct {
	mu      sync.Mutex
	watches map[*fakeWatch]bool
}

type fakeWatch struct {
	files map[string]bool
	ch    chan string
}

func newFakeFiles() *fakeFiles { return &fakeFiles{watches: map[*fakeWatch]bool{}} }

// watch is Loop.WatchFiles.
func (f *fakeFiles) watch(files []string) FileWatch {
	w := &fakeWatch{files: map[string]bool{}, ch: make(chan string, 64)}
	for _, p := range files {
		w.files[filepath.Clean(p)] = true
	}
	f.mu.Lock()
	f.watches[w] = true
	f.mu.Unlock()
	return &fakeWatchRun{f, w}
}

type fakeWatchRun struct {
	f *fakeFiles
	w *fakeWatch
}

func (r *fakeWatchRun) Run(ctx context.Context, changed func(string)) {
	defer func() {
		r.f.mu.Lock()
		delete(r.f.watches, r.w)
		r.f.mu.Unlock()
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case p := <-r.w.ch:
			changed(p)
		}
	}
}

// Touch reports a change of path.
func (f *fakeFiles) Touch(path string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for w := range f.watches {
		if w.files[filepath.Clean(path)] {
			w.ch <- path
		}
	}
}

// write writes a file and reports it, as inotify would.
func (f *fakeFiles) write(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	f.Touch(path)
}

// advance lets d pass on the bubble's fake clock (no real time passes) and
// waits until every goroutine of the bubble is blocked again.
func advance(d time.Duration) {
	<-time.After(d)
	synctest.Wait()
}

// fileModule keeps a file's content equal to want.
type fileModule struct {
	path, want string
	mu         sync.Mutex
	applies    int
	// files, when set, gets the echo of the module's own write, delivered
	// echo after it (inotify's delivery delay).
	files *fakeFiles
	echo  time.Duration
}

func (f *fileModule) ID() string { return "file" }
func (f *fileModule) Plan(ctx context.Context, env *Env) (*Plan, error) {
	b, _ := os.ReadFile(f.path)
	if string(b) == f.want {
		return &Plan{}, nil
	}
	return &Plan{Changes: []Change{{Action: Update, Target: f.path}}}, nil
}
func (f *fileModule) Apply(ctx context.Context, env *Env, p *Plan) error {
	f.mu.Lock()
	f.applies++
	f.mu.Unlock()
	if err := WriteFileAtomic(f.path, []byte(f.want), 0o644); err != nil {
		return err
	}
	if f.files != nil {
		time.AfterFunc(f.echo, func() { f.files.Touch(f.path) })
	}
	return nil
}
func (f *fileModule) WatchedFiles(env *Env) []string { return []string{f.path} }

type converged struct {
	rep     *Report
	trigger string
	at      time.Time
}

// neverFlap is agent.flap_corrections = 0: the loop never backs off. The
// tests and the benchmark that tamper one file again and again use it:
// with the default policy their third tampering would make it flap.
var neverFlap = FlapPolicy{Window: time.Nanosecond}

// startLoop runs a loop over mod; files nil means real inotify.
func startLoop(t testing.TB, mod *fileModule, stateDir string, reload chan struct{}, files *fakeFiles) (chan converged, func()) {
	t.Helper()
	log := logrus.New()
	log.SetOutput(&bytes.Buffer{})
	out := make(chan converged, 100)
	l := &Loop{
		Load: func() (*Engine, LoopSettings, error) {
			return &Engine{Modules: []Module{mod}, StateDir: stateDir, Log: log},
				LoopSettings{Interval: time.Hour, Watch: true}, nil
		},
		Reload:     reload,
		Log:        log,
		Flap:       neverFlap,
		OnConverge: func(rep *Report, trigger string) { out <- converged{rep, trigger, time.Now()} },
	}
	if files != nil {
		l.WatchFiles = files.watch
	} else {
		// Real inotify: the echo of the loop's own write comes on its own
		// time; a grace of a nanosecond lets the benchmark tamper at once
		// (an echo then costs one converge that changes nothing).
		l.Grace = time.Nanosecond
	}
	return out, runLoop(t, l)
}

// runLoop runs l until stop, which cancels its context (SIGTERM), waits
// for Run to return and reports its error; stop may be called again.
func runLoop(t testing.TB, l *Loop) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Error(err)
			}
		})
	}
}

func TestLoopCorrectsATamperedFileAndIgnoresItsOwnWrite(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		files := newFakeFiles()
		mod := &fileModule{path: filepath.Join(dir, "daemon.json"), want: "{}\n", files: files, echo: 50 * time.Millisecond}
		out, stop := startLoop(t, mod, filepath.Join(dir, "state"), nil, files)
		defer stop()

		first := <-out
		if first.trigger != "start" || !first.rep.Changed() {
			t.Fatalf("first converge: %s %+v", first.trigger, first.rep)
		}
		// The loop's own write (its echo comes 50 ms later, within the
		// grace) must not cause a second converge.
		advance(300 * time.Millisecond)
		select {
		case c := <-out:
			t.Fatalf("converged again after its own write: %s", c.trigger)
		default:
		}
		// Someone replaces the file by rename, as editors do.
		tmp := filepath.Join(dir, ".tmp")
		if err := os.WriteFile(tmp, []byte(`{"debug":true}`), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, mod.path); err != nil {
			t.Fatal(err)
		}
		files.Touch(mod.path)
		c := <-out
		if !c.rep.Changed() {
			t.Fatalf("event converge changed nothing: %s %+v", c.trigger, c.rep)
		}
		if b, _ := os.ReadFile(mod.path); string(b) != mod.want {
			t.Fatalf("file = %q", b)
		}
	})
}

func TestLoopStopsAfterTheRunInFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		mod := &fileModule{path: filepath.Join(dir, "f"), want: "x"}
		out, stop := startLoop(t, mod, filepath.Join(dir, "state"), nil, newFakeFiles())
		<-out
		stop() // returns once Run returned nil; a loop that did not stop deadlocks the bubble
	})
}

func TestLoopReloadKeepsTheOldConfigWhenTheNewIsBad(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		mod := &fileModule{path: filepath.Join(dir, "f"), want: "x"}
		log := logrus.New()
		var logs bytes.Buffer
		log.SetOutput(&logs)
		reload := make(chan struct{}, 1)
		loads := 0
		out := make(chan string, 10)
		l := &Loop{
			Load: func() (*Engine, LoopSettings, error) {
				loads++
				if loads > 1 {
					return nil, LoopSettings{}, os.ErrInvalid
				}
				return &Engine{Modules: []Module{mod}, StateDir: filepath.Join(dir, "state"), Log: log}, LoopSettings{Interval: time.Hour}, nil
			},
			Reload: reload, Log: log, WatchFiles: newFakeFiles().watch,
			OnConverge: func(rep *Report, trigger string) { out <- trigger },
		}
		stop := runLoop(t, l)
		<-out
		reload <- struct{}{}
		synctest.Wait() // the loop took the reload in and waits again
		stop()
		if loads != 2 || !bytes.Contains(logs.Bytes(), []byte("keeping the running one")) {
			t.Fatalf("loads=%d logs:\n%s", loads, logs.String())
		}
		select {
		case tr := <-out:
			t.Fatalf("converged after a bad reload: %s", tr)
		default:
		}
	})
}

// The real inotify watch sees a file replaced by rename in its directory.
func TestInotifySeesReplace(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "daemon.json")
	l := &Loop{Log: logrus.New()}
	w := l.inotify([]string{path})
	if w == nil {
		t.Skip("inotify unavailable")
	}
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan string, 16)
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx, func(p string) { got <- p }) }()
	defer func() { cancel(); <-done }()
	tmp := filepath.Join(dir, ".tmp")
	if err := os.WriteFile(tmp, []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	nextChange(t, got, path, "a rename over the file")
}

// nextChange waits for the real inotify watch's next change and checks it
// is want's; what names the change in the failure.
func nextChange(t *testing.T, got <-chan string, want, what string) {
	t.Helper()
	select {
	case p := <-got:
		if p != want {
			t.Fatalf("%s: changed %q, want %q", what, p, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no inotify event within 10s for %s", what)
	}
}

// BenchmarkDriftReactionFile measures from a tampering write to the file
// being correct again, through real inotify, debounce and apply.
func BenchmarkDriftReactionFile(b *testing.B) {
	dir := b.TempDir()
	mod := &fileModule{path: filepath.Join(dir, "daemon.json"), want: "{}\n"}
	out, stop := startLoop(b, mod, filepath.Join(dir, "state"), nil, nil)
	defer stop()
	<-out
	for b.Loop() {
		start := time.Now()
		if err := os.WriteFile(mod.path, []byte("tampered"), 0o644); err != nil {
			b.Fatal(err)
		}
		for {
			// Skip the converges the echo of the previous correction
			// caused: they found nothing to do.
			c := <-out
			if c.rep.Changed() {
				b.ReportMetric(float64(c.at.Sub(start).Microseconds())/1000, "ms/reaction")
				break
			}
		}
	}
}

// A change made inside the echo window of the loop's own write (someone
// deletes what the agent just rebuilt) is still corrected within the
// debounce, not only at the backstop: echoes are verified, not dropped.
func TestLoopCorrectsAChangeMadeDuringItsOwnEcho(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		files := newFakeFiles()
		mod := &fileModule{path: filepath.Join(dir, "daemon.json"), want: "{}\n", files: files, echo: 50 * time.Millisecond}
		out, stop := startLoop(t, mod, filepath.Join(dir, "state"), nil, files)
		defer stop()

		if first := <-out; first.trigger != "start" || !first.rep.Changed() {
			t.Fatalf("first converge: %s %+v", first.trigger, first.rep)
		}
		// 20 ms after the loop's write, well inside the grace of its echo,
		// someone rewrites the file.
		advance(20 * time.Millisecond)
		files.write(t, mod.path, `{"debug":true}`)
		c := <-out
		if !c.rep.Changed() || !strings.Contains(c.trigger, "after its own write") {
			t.Fatalf("converge after the tamper: %s %+v", c.trigger, c.rep)
		}
		if b, _ := os.ReadFile(mod.path); string(b) != mod.want {
			t.Fatalf("file = %q", b)
		}
		// The correction's own echo is verified and found clean: no third
		// converge.
		advance(2 * time.Second)
		select {
		case c := <-out:
			t.Fatalf("converged again after verifying its own echo: %s", c.trigger)
		default:
		}
	})
}

// TestInotifySeesDropIns: a path ending in "/" watches the *.hcl files of
// that directory (conf.d); an editor's swap file there is not a change.
func TestInotifySeesDropIns(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "conf.d")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	l := &Loop{Log: logrus.New()}
	w := l.inotify([]string{dir, dir + "/"})
	if w == nil {
		t.Skip("inotify unavailable")
	}
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan string, 16)
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx, func(p string) { got <- p }) }()
	defer func() { cancel(); <-done }()
	for _, n := range []string{".20-role.hcl.swp", "20-role.hcl~", "20-role.hcl"} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("{}"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want := filepath.Join(dir, "20-role.hcl")
	nextChange(t, got, want, "a new drop-in") // the first event must be the drop-in
	// Removing it is a change too.
	for len(got) > 0 {
		<-got
	}
	if err := os.Remove(want); err != nil {
		t.Fatal(err)
	}
	nextChange(t, got, want, "a removed drop-in")
}
