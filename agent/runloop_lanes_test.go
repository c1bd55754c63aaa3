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

// named is a fileModule under another ID, so that a loop can have two.
type named struct {
	*fileModule
	id string
}

func (n named) ID() string { return n.id }

// slowUnit is a Restarter whose restart takes `takes` to verify (dockerd's
// start), or until its context ends. It records what it saw.
type slowUnit struct {
	deps    []string
	takes   time.Duration
	entered chan struct{} // if set, told when a restart begins

	mu        sync.Mutex
	restarts  int
	began     time.Time
	cancelled bool
}

func (u *slowUnit) ID() string          { return "service.slow" }
func (u *slowUnit) Unit() string        { return "slow.service" }
func (u *slowUnit) RestartOn() []string { return u.deps }
func (u *slowUnit) RollsBack() bool     { return true }
func (u *slowUnit) Plan(ctx context.Context, env *Env) (*Plan, error) {
	if !env.Due.Owed() {
		return &Plan{}, nil
	}
	return &Plan{Changes: []Change{{Action: Update, Target: "slow.service", New: "restarted"}}}, nil
}
func (u *slowUnit) Apply(ctx context.Context, env *Env, p *Plan) error {
	u.mu.Lock()
	u.restarts++
	u.began = time.Now()
	u.mu.Unlock()
	if u.entered != nil {
		u.entered <- struct{}{}
	}
	select {
	case <-time.After(u.takes):
		return nil
	case <-ctx.Done():
		u.mu.Lock()
		u.cancelled = true
		u.mu.Unlock()
		return &VerifyError{Err: ctx.Err()}
	}
}
func (u *slowUnit) Retry(ctx context.Context, env *Env, p *Plan) error { return nil }

// restartLoop runs a loop over an upstream file module (daemon), a unit
// that restarts on it and takes 10 s to verify, and an independent file
// module (fw), all drifted, so that the start converge restarts the unit.
func restartLoop(t *testing.T) (l *Loop, daemon, fw *fileModule, unit *slowUnit, files *fakeFiles, out chan converged, stop func()) {
	dir := t.TempDir()
	files = newFakeFiles()
	daemon = &fileModule{path: filepath.Join(dir, "daemon.json"), want: "{}\n", files: files}
	fw = &fileModule{path: filepath.Join(dir, "table"), want: "rules\n", files: files}
	unit = &slowUnit{deps: []string{"daemon"}, takes: 10 * time.Second}
	log := logrus.New()
	log.SetOutput(&bytes.Buffer{})
	out = make(chan converged, 100)
	l = &Loop{
		Load: func() (*Engine, LoopSettings, error) {
			return &Engine{Modules: []Module{named{daemon, "daemon"}, unit, named{fw, "fw"}}, StateDir: filepath.Join(dir, "state"), Log: log},
				LoopSettings{Interval: time.Hour, Watch: true}, nil
		},
		Log: log, WatchFiles: files.watch,
		OnConverge: func(rep *Report, trigger string) { out <- converged{rep, trigger, time.Now()} },
	}
	stop = runLoop(t, l)
	return
}

// While a restart is being verified, a module that does not depend on it
// (the firewall) is still corrected at once: the issue measured a deleted
// table coming back only after dockerd's start, 6.6 s later.
func TestLoopCorrectsIndependentModulesWhileARestartIsVerified(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l, _, fw, unit, files, out, stop := restartLoop(t)
		defer stop()
		advance(time.Second) // the start converge waits for the restart now
		unit.mu.Lock()
		restarting := unit.restarts == 1 && time.Since(unit.began) < unit.takes
		unit.mu.Unlock()
		if !restarting {
			t.Fatalf("the start converge is not waiting for the restart (restarts=%d)", unit.restarts)
		}
		// dockward status shows the converge that waits.
		l.Resident.mu.Lock()
		converging := l.Resident.st.Converging
		l.Resident.mu.Unlock()
		if len(converging) != 1 || converging[0].Lane != "main" || converging[0].Trigger != "start" {
			t.Errorf("published converging = %+v, want the start converge in the main lane", converging)
		}
		tampered := time.Now()
		files.write(t, fw.path, "deleted")
		c := nextConverge(t, out, "the tampered independent module")
		if c.trigger == "start" {
			t.Fatalf("the correction waited for the start converge's restart (%s after the tampering)", c.at.Sub(tampered))
		}
		if !strings.HasPrefix(c.trigger, "event after its own write: fw") && !strings.HasPrefix(c.trigger, "event: fw") {
			t.Fatalf("trigger %q", c.trigger)
		}
		if b, _ := os.ReadFile(fw.path); string(b) != fw.want {
			t.Fatalf("fw = %q after the side converge", b)
		}
		t.Logf("corrected %s after the tampering, while the restart had %s to go", c.at.Sub(tampered), unit.takes-time.Since(unit.began))
		if s := nextConverge(t, out, "start"); s.trigger != "start" || s.rep.Failed() {
			t.Fatalf("then %q failed=%v", s.trigger, s.rep.Failed())
		}
	})
}

// A SIGTERM while a restart is being verified ends the agent at once; the
// restart stays owed for the next start.
func TestLoopStopsPromptlyDuringARestartWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, _, _, unit, _, _, stop := restartLoop(t)
		advance(time.Second)
		stopped := time.Now()
		stop()
		if waited := time.Since(stopped); waited > 0 {
			t.Fatalf("the agent stopped %s after SIGTERM: it waited for the restart", waited)
		}
		unit.mu.Lock()
		defer unit.mu.Unlock()
		if !unit.cancelled {
			t.Fatal("the restart wait was not cancelled")
		}
	})
}
