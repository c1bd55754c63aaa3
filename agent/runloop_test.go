package agent

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
)

// fileModule keeps a file's content equal to want.
type fileModule struct {
	path, want string
	mu         sync.Mutex
	applies    int
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
	return WriteFileAtomic(f.path, []byte(f.want), 0o644)
}
func (f *fileModule) WatchedFiles(env *Env) []string { return []string{f.path} }

type converged struct {
	rep     *Report
	trigger string
	at      time.Time
}

func startLoop(t testing.TB, mod *fileModule, stateDir string, reload chan struct{}) (chan converged, context.CancelFunc, chan error) {
	t.Helper()
	log := logrus.New()
	log.SetOutput(&bytes.Buffer{})
	out := make(chan converged, 100)
	ctx, cancel := context.WithCancel(context.Background())
	l := &Loop{
		Load: func() (*Engine, LoopSettings, error) {
			return &Engine{Modules: []Module{mod}, StateDir: stateDir, Log: log},
				LoopSettings{Interval: time.Hour, Watch: true}, nil
		},
		Reload:     reload,
		Log:        log,
		OnConverge: func(rep *Report, trigger string) { out <- converged{rep, trigger, time.Now()} },
	}
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	return out, cancel, done
}

func TestLoopCorrectsATamperedFileAndIgnoresItsOwnWrite(t *testing.T) {
	dir := t.TempDir()
	mod := &fileModule{path: filepath.Join(dir, "daemon.json"), want: "{}\n"}
	out, cancel, done := startLoop(t, mod, filepath.Join(dir, "state"), nil)
	defer func() { cancel(); <-done }()

	first := <-out
	if first.trigger != "start" || !first.rep.Changed() {
		t.Fatalf("first converge: %s %+v", first.trigger, first.rep)
	}
	// The loop's own write must not cause a second converge.
	select {
	case c := <-out:
		t.Fatalf("converged again after its own write: %s", c.trigger)
	case <-time.After(300 * time.Millisecond):
	}
	// Someone replaces the file by rename, as editors do.
	tmp := filepath.Join(dir, ".tmp")
	if err := os.WriteFile(tmp, []byte(`{"debug":true}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, mod.path); err != nil {
		t.Fatal(err)
	}
	select {
	case c := <-out:
		if !c.rep.Changed() {
			t.Fatalf("event converge changed nothing: %+v", c.rep)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("tamper not corrected")
	}
	if b, _ := os.ReadFile(mod.path); string(b) != mod.want {
		t.Fatalf("file = %q", b)
	}
}

func TestLoopStopsAfterTheRunInFlight(t *testing.T) {
	dir := t.TempDir()
	mod := &fileModule{path: filepath.Join(dir, "f"), want: "x"}
	out, cancel, done := startLoop(t, mod, filepath.Join(dir, "state"), nil)
	<-out
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("loop did not stop")
	}
}

func TestLoopReloadKeepsTheOldConfigWhenTheNewIsBad(t *testing.T) {
	dir := t.TempDir()
	mod := &fileModule{path: filepath.Join(dir, "f"), want: "x"}
	log := logrus.New()
	var logs bytes.Buffer
	log.SetOutput(&logs)
	reload := make(chan struct{}, 1)
	loads := 0
	out := make(chan string, 10)
	ctx, cancel := context.WithCancel(context.Background())
	l := &Loop{
		Load: func() (*Engine, LoopSettings, error) {
			loads++
			if loads > 1 {
				return nil, LoopSettings{}, os.ErrInvalid
			}
			return &Engine{Modules: []Module{mod}, StateDir: filepath.Join(dir, "state"), Log: log}, LoopSettings{Interval: time.Hour}, nil
		},
		Reload: reload, Log: log,
		OnConverge: func(rep *Report, trigger string) { out <- trigger },
	}
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	<-out
	reload <- struct{}{}
	time.Sleep(200 * time.Millisecond)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if loads != 2 || !bytes.Contains(logs.Bytes(), []byte("keeping the running one")) {
		t.Fatalf("loads=%d logs:\n%s", loads, logs.String())
	}
}

// BenchmarkDriftReactionFile measures from a tampering write to the file
// being correct again, through inotify, debounce and apply.
func BenchmarkDriftReactionFile(b *testing.B) {
	dir := b.TempDir()
	mod := &fileModule{path: filepath.Join(dir, "daemon.json"), want: "{}\n"}
	out, cancel, done := startLoop(b, mod, filepath.Join(dir, "state"), nil)
	defer func() { cancel(); <-done }()
	<-out
	time.Sleep(200 * time.Millisecond)
	for b.Loop() {
		start := time.Now()
		if err := os.WriteFile(mod.path, []byte("tampered"), 0o644); err != nil {
			b.Fatal(err)
		}
		c := <-out
		b.ReportMetric(float64(c.at.Sub(start).Microseconds())/1000, "ms/reaction")
		time.Sleep(150 * time.Millisecond) // past the echo grace
	}
}
