package agent

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sirupsen/logrus"
)

// flakyModule fails its first `fails` plans, then converges.
type flakyModule struct {
	mu    sync.Mutex
	fails int
	plans int
}

func (f *flakyModule) ID() string { return "flaky" }
func (f *flakyModule) Plan(ctx context.Context, env *Env) (*Plan, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.plans++
	if f.plans <= f.fails {
		return nil, errors.New("not yet")
	}
	return &Plan{}, nil
}
func (f *flakyModule) Apply(ctx context.Context, env *Env, p *Plan) error { return nil }

// runLoopWith runs a loop over mods with fake file watches; call stop
// before the bubble ends.
func runLoopWith(t *testing.T, mods []Module, backoff Backoff, files *fakeFiles) (chan converged, func()) {
	t.Helper()
	dir := t.TempDir()
	log := logrus.New()
	log.SetOutput(&bytes.Buffer{})
	out := make(chan converged, 100)
	l := &Loop{
		Load: func() (*Engine, LoopSettings, error) {
			return &Engine{Modules: mods, StateDir: filepath.Join(dir, "state"), Log: log},
				LoopSettings{Interval: time.Hour, Watch: true}, nil
		},
		Log:        log,
		Backoff:    backoff,
		WatchFiles: files.watch,
		OnConverge: func(rep *Report, trigger string) { out <- converged{rep, trigger, time.Now()} },
	}
	return out, runLoop(t, l)
}

// nextConverge waits for the next converge, at most 10 s on the bubble's
// clock (the backstop is an hour away).
func nextConverge(t *testing.T, out chan converged, what string) converged {
	t.Helper()
	select {
	case c := <-out:
		return c
	case <-time.After(10 * time.Second):
		t.Fatalf("no converge within 10s: %s", what)
	}
	return converged{}
}

// noConverge checks that nothing converges while d passes.
func noConverge(t *testing.T, out chan converged, d time.Duration, what string) {
	t.Helper()
	advance(d)
	select {
	case c := <-out:
		t.Errorf("%s: converged again: %s", what, c.trigger)
	default:
	}
}

// A module that fails is retried on its own, with backoff, until it
// converges; then the retries stop.
func TestLoopRetriesAFailedModule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		flaky := &flakyModule{fails: 3}
		out, stop := runLoopWith(t, []Module{flaky}, Backoff{Base: 20 * time.Millisecond, Max: 80 * time.Millisecond}, newFakeFiles())
		defer stop()
		first := nextConverge(t, out, "start")
		if first.trigger != "start" || !first.rep.Failed() {
			t.Fatalf("start: %s %+v", first.trigger, first.rep)
		}
		prev := first.at
		var gaps []time.Duration
		for i := range 3 {
			c := nextConverge(t, out, "retry")
			if c.trigger != "retry: flaky" {
				t.Fatalf("converge %d: trigger %q", i, c.trigger)
			}
			gaps = append(gaps, c.at.Sub(prev))
			prev = c.at
			if failed := c.rep.Failed(); failed != (i < 2) {
				t.Fatalf("retry %d failed = %v", i, failed)
			}
		}
		// Backoff doubles: 20, 40, 80 ms (on the bubble's clock, exactly).
		for i, min := range []time.Duration{20, 40, 80} {
			if gaps[i] < min*time.Millisecond {
				t.Errorf("retry %d came %s after the previous run, want >= %dms", i, gaps[i], min)
			}
		}
		noConverge(t, out, 300*time.Millisecond, "after success")
	})
}

// While one module backs off, another module's drift is corrected at once.
func TestLoopBackoffDoesNotDelayOtherModules(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		files := newFakeFiles()
		file := &fileModule{path: filepath.Join(dir, "daemon.json"), want: "{}\n", files: files}
		flaky := &flakyModule{fails: 1 << 30}
		out, stop := runLoopWith(t, []Module{file, flaky}, Backoff{Base: time.Hour, Max: time.Hour}, files)
		defer stop()
		if c := nextConverge(t, out, "start"); !c.rep.Failed() {
			t.Fatalf("start: %+v", c.rep)
		}
		advance(200 * time.Millisecond) // past the echo grace
		start := time.Now()
		files.write(t, file.path, "tampered")
		c := nextConverge(t, out, "tampered file")
		if !strings.HasPrefix(c.trigger, "event: file (") || len(c.rep.Modules) != 1 || c.rep.Modules[0].ID != "file" {
			t.Fatalf("converge %q %+v, want the file module only", c.trigger, c.rep.Modules)
		}
		t.Logf("corrected %s after the write while flaky backs off for an hour", c.at.Sub(start).Round(time.Millisecond))
		if b, _ := os.ReadFile(file.path); string(b) != file.want {
			t.Errorf("file = %q", b)
		}
	})
}

// needsFile fails until its file exists (a firewall whose declared network
// is not created yet); the file appearing is its event.
type needsFile struct{ path string }

func (n *needsFile) ID() string { return "needs" }
func (n *needsFile) Plan(ctx context.Context, env *Env) (*Plan, error) {
	if _, err := os.Stat(n.path); err != nil {
		return nil, err
	}
	return &Plan{}, nil
}
func (n *needsFile) Apply(ctx context.Context, env *Env, p *Plan) error { return nil }
func (n *needsFile) WatchedFiles(env *Env) []string                     { return []string{n.path} }

// An event is not a retry: the change it reports may be what the failing
// module waited for, so it goes ahead of the backed-off retry.
func TestLoopEventForAFailingModuleGoesAhead(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mod := &needsFile{path: filepath.Join(t.TempDir(), "network")}
		files := newFakeFiles()
		out, stop := runLoopWith(t, []Module{mod}, Backoff{Base: 50 * time.Millisecond, Max: time.Hour}, files)
		defer stop()
		// start, then retries after 50, 100, 200, 400 ms: the next is 800 ms away.
		for i := range 5 {
			if c := nextConverge(t, out, "failing"); !c.rep.Failed() {
				t.Fatalf("converge %d (%s) did not fail", i, c.trigger)
			}
		}
		// At once: a failed run wrote nothing, so no echo grace applies.
		files.write(t, mod.path, "")
		c := nextConverge(t, out, "after the file appeared")
		if !strings.HasPrefix(c.trigger, "event: needs (") || c.rep.Failed() {
			t.Fatalf("converge %q failed=%v, want the event's, succeeding", c.trigger, c.rep.Failed())
		}
		noConverge(t, out, time.Second, "after success")
	})
}

// Writes to the configuration file reload it once, after they stop: an
// editor's truncate-then-write must not load the empty file in between.
func TestLoopConfigFileChangeReloadsOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		conf := filepath.Join(dir, "dockward.hcl")
		files := newFakeFiles()
		if err := os.WriteFile(conf, []byte("v1"), 0o600); err != nil {
			t.Fatal(err)
		}
		mod := &fileModule{path: filepath.Join(dir, "f"), want: "x"}
		log := logrus.New()
		log.SetOutput(&bytes.Buffer{})
		var mu sync.Mutex
		var loaded []string
		out := make(chan string, 10)
		l := &Loop{
			Load: func() (*Engine, LoopSettings, error) {
				b, _ := os.ReadFile(conf)
				mu.Lock()
				loaded = append(loaded, string(b))
				mu.Unlock()
				return &Engine{Modules: []Module{mod}, StateDir: filepath.Join(dir, "state"), Log: log}, LoopSettings{Interval: time.Hour, Watch: true}, nil
			},
			ConfigPath: conf, Log: log, WatchFiles: files.watch,
			OnConverge: func(rep *Report, trigger string) { out <- trigger },
		}
		defer runLoop(t, l)()
		<-out
		for _, s := range []string{"", "v", "v2"} { // truncate, partial write, full write
			if err := os.WriteFile(conf, []byte(s), 0o600); err != nil {
				t.Fatal(err)
			}
			files.Touch(conf)
		}
		select {
		case tr := <-out:
			if tr != "reload" {
				t.Fatalf("converge %q, want reload", tr)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no reload")
		}
		advance(300 * time.Millisecond)
		select {
		case tr := <-out:
			t.Errorf("converged again: %q", tr)
		default:
		}
		mu.Lock()
		defer mu.Unlock()
		if len(loaded) != 2 || loaded[1] != "v2" {
			t.Errorf("loaded %q, want the start's and one reload of the final file", loaded)
		}
	})
}

// A change right after a run that did not write the module is someone
// else's, however soon it comes: the agent's start on a converged host,
// then an operator's edit at once.
func TestLoopChangeRightAfterAQuietRunIsSeen(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		mod := &fileModule{path: filepath.Join(dir, "daemon.json"), want: "{}\n"}
		if err := os.WriteFile(mod.path, []byte(mod.want), 0o644); err != nil {
			t.Fatal(err)
		}
		files := newFakeFiles()
		out, stop := runLoopWith(t, []Module{mod}, Backoff{Base: time.Hour, Max: time.Hour}, files)
		defer stop()
		if c := nextConverge(t, out, "start"); c.rep.Changed() {
			t.Fatalf("start changed something: %+v", c.rep)
		}
		files.write(t, mod.path, "tampered")
		if c := nextConverge(t, out, "tamper right after start"); !c.rep.Changed() {
			t.Fatalf("converge %q changed nothing", c.trigger)
		}
		if b, _ := os.ReadFile(mod.path); string(b) != mod.want {
			t.Errorf("file = %q", b)
		}
	})
}

// The backstop converges everything every interval (splay 0: exactly).
func TestLoopBackstopInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		mod := &fileModule{path: filepath.Join(dir, "f"), want: "x"}
		log := logrus.New()
		log.SetOutput(&bytes.Buffer{})
		out := make(chan converged, 10)
		l := &Loop{
			Load: func() (*Engine, LoopSettings, error) {
				return &Engine{Modules: []Module{mod}, StateDir: filepath.Join(dir, "state"), Log: log},
					LoopSettings{Interval: 5 * time.Minute}, nil
			},
			Log: log, WatchFiles: newFakeFiles().watch,
			OnConverge: func(rep *Report, trigger string) { out <- converged{rep, trigger, time.Now()} },
		}
		defer runLoop(t, l)()
		start := <-out
		for i := range 3 {
			c := <-out
			if c.trigger != "interval" || c.at.Sub(start.at) != time.Duration(i+1)*5*time.Minute {
				t.Fatalf("converge %d: %q after %s, want interval after %s", i, c.trigger, c.at.Sub(start.at), time.Duration(i+1)*5*time.Minute)
			}
		}
	})
}

// A burst of events is one converge, once the burst is quiet; a steady
// trickle is converged no later than MaxDelay after its first event.
func TestLoopBurstIsOneConverge(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		files := newFakeFiles()
		mod := &fileModule{path: filepath.Join(dir, "daemon.json"), want: "{}\n"}
		out, stop := runLoopWith(t, []Module{mod}, Backoff{Base: time.Hour, Max: time.Hour}, files)
		defer stop()
		nextConverge(t, out, "start")
		advance(time.Second) // past the echo grace
		first := time.Now()
		for range 10 { // 10 writes, 5 ms apart: quieter than Debounce (20 ms) never
			files.write(t, mod.path, "tampered")
			advance(5 * time.Millisecond)
		}
		c := nextConverge(t, out, "after the burst")
		if !c.rep.Changed() || c.at.Sub(first) != 45*time.Millisecond+20*time.Millisecond {
			t.Errorf("converge %q changed=%v %s after the first write, want one, 20 ms after the last (65 ms)", c.trigger, c.rep.Changed(), c.at.Sub(first))
		}
		noConverge(t, out, time.Second, "after the burst")

		// A trickle: a write every 15 ms never leaves 20 ms of quiet.
		first = time.Now()
		for range 60 {
			files.write(t, mod.path, "tampered again")
			advance(15 * time.Millisecond)
			if len(out) > 0 {
				break
			}
		}
		c = nextConverge(t, out, "during the trickle")
		if d := c.at.Sub(first); d > 500*time.Millisecond {
			t.Errorf("trickle converged %s after its first event, want at most MaxDelay (500 ms)", d)
		}
	})
}

// failingSource is an EventSource whose watch fails at once, as when its
// daemon is down.
type failingSource struct {
	mu      sync.Mutex
	watches []time.Time
}

func (f *failingSource) ID() string                                         { return "source" }
func (f *failingSource) Plan(ctx context.Context, env *Env) (*Plan, error)  { return &Plan{}, nil }
func (f *failingSource) Apply(ctx context.Context, env *Env, p *Plan) error { return nil }
func (f *failingSource) Watch(ctx context.Context, env *Env, emit func(string)) error {
	f.mu.Lock()
	f.watches = append(f.watches, time.Now())
	f.mu.Unlock()
	return errors.New("connection refused")
}

// An event source that fails is restarted with backoff (1 s, 2 s, 4 s, ...)
// and each restart converges its module: something may have changed while
// nobody watched.
func TestLoopRestartsAFailingEventSource(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := &failingSource{}
		out, stop := runLoopWith(t, []Module{src}, Backoff{Base: time.Hour, Max: time.Hour}, newFakeFiles())
		defer stop()
		start := nextConverge(t, out, "start")
		for i := range 3 {
			c := nextConverge(t, out, "source restarted")
			if c.trigger != "event: source (event source restarted)" {
				t.Fatalf("converge %d: trigger %q", i, c.trigger)
			}
		}
		src.mu.Lock()
		defer src.mu.Unlock()
		var gaps []time.Duration
		for i := 1; i < len(src.watches); i++ {
			gaps = append(gaps, src.watches[i].Sub(src.watches[i-1]))
		}
		if len(gaps) < 3 || gaps[0] != time.Second || gaps[1] != 2*time.Second || gaps[2] != 4*time.Second {
			t.Errorf("watch restarts %v apart (start converge at %s), want 1s, 2s, 4s", gaps, start.at.Format(time.StampMilli))
		}
	})
}
