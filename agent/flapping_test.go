package agent

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sirupsen/logrus"
)

func correction(module string, targets ...string) *Report {
	mr := ModuleResult{ID: module, Status: StatusChanged}
	for _, t := range targets {
		mr.Changes = append(mr.Changes, Change{Action: Update, Target: t})
	}
	return &Report{Modules: []ModuleResult{mr}}
}

func TestFlapsNeedsRepeatedCorrectionsOfOneTargetWithinTheWindow(t *testing.T) {
	p := FlapPolicy{Count: 3, Window: 10 * time.Minute, Backoff: Backoff{Base: 5 * time.Minute, Max: time.Hour}}
	f := newFlaps(p)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	// Different targets, and corrections spread wider than the window,
	// are not flapping.
	for i, tg := range []string{"log-opts", "icc", "log-opts"} {
		if began := f.corrected(t0.Add(time.Duration(i)*6*time.Minute), correction("docker_daemon", tg)); len(began) > 0 {
			t.Fatalf("correction %d flapped: %+v", i, began)
		}
	}
	// One correction with many changes of one target (a table's rules) is
	// one correction.
	if began := f.corrected(t0, correction("firewall", "chain forward", "chain forward", "chain forward", "set ports")); len(began) > 0 {
		t.Fatalf("one converge's changes of one target flapped: %+v", began)
	}
	// A third correction of log-opts within ten minutes of two others is.
	now := t0.Add(13 * time.Minute)
	f.corrected(now.Add(-time.Minute), correction("docker_daemon", "log-opts"))
	began := f.corrected(now, correction("docker_daemon", "log-opts", "icc"))
	if len(began) != 1 || began[0].Module != "docker_daemon" || strings.Join(began[0].Targets, ",") != "log-opts" || began[0].Corrections != 3 {
		t.Fatalf("began = %+v", began)
	}
	if !f.held(now, "docker_daemon") || !f.held(now.Add(5*time.Minute-1), "docker_daemon") || f.held(now.Add(5*time.Minute), "docker_daemon") {
		t.Fatal("not held for exactly the 5 minute back-off")
	}
	if f.held(now, "firewall") {
		t.Fatal("another module is held")
	}
	// After the back-off, one converge; a correction by it means the other
	// side is still at it: back off again at once, twice as long.
	end := now.Add(5 * time.Minute)
	if got := f.ended(end); len(got) != 1 || got[0] != "docker_daemon" {
		t.Fatalf("ended = %v", got)
	}
	if got := f.ended(end); len(got) != 0 {
		t.Fatalf("the converge after the back-off was handed out twice: %v", got)
	}
	again := f.corrected(end, correction("docker_daemon", "log-opts"))
	if len(again) != 1 || again[0].Rounds != 2 || again[0].Until != end.Add(10*time.Minute) {
		t.Fatalf("flapping again = %+v", again)
	}
	// Quiet for a window after the back-off: it calmed down and is
	// forgotten; the count starts afresh.
	f.calm(again[0].Until.Add(p.Window))
	if len(f.list()) != 0 {
		t.Fatalf("still flapping after a quiet window: %+v", f.list())
	}
}

// fighter rewrites a file every period until stop, as another
// configuration tool fighting over daemon.json would.
func fighter(t *testing.T, files *fakeFiles, path string, period, stop time.Duration) {
	end := time.Now().Add(stop)
	for time.Now().Before(end) {
		files.write(t, path, "theirs")
		<-time.After(period)
	}
}

// A tool rewriting daemon.json every 200 ms for 30 s: the agent corrects
// it a few times, notices that it flaps, names the target, and leaves it
// alone instead of restarting docker every time; when the back-off ends
// it corrects it once more.
func TestLoopBacksOffAFlappingModule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		files := newFakeFiles()
		daemon := &fileModule{path: filepath.Join(dir, "daemon.json"), want: "ours", files: files}
		unit := &slowUnit{deps: []string{"daemon"}, takes: 3 * time.Second} // dockerd's start
		log := logrus.New()
		var logs bytes.Buffer
		log.SetOutput(&logs)
		out := make(chan converged, 1000)
		l := &Loop{
			Load: func() (*Engine, LoopSettings, error) {
				return &Engine{Modules: []Module{named{daemon, "daemon"}, unit}, StateDir: filepath.Join(dir, "state"), Log: log},
					LoopSettings{Interval: time.Minute, Watch: true}, nil
			},
			Log: log, WatchFiles: files.watch,
			OnConverge: func(rep *Report, trigger string) { out <- converged{rep, trigger, time.Now()} },
		}
		defer runLoop(t, l)()
		advance(5 * time.Second) // the start converge and its restart
		unit.mu.Lock()
		start := unit.restarts
		unit.mu.Unlock()

		fighter(t, files, daemon.path, 200*time.Millisecond, 30*time.Second)
		unit.mu.Lock()
		during := unit.restarts - start
		unit.mu.Unlock()
		t.Logf("docker restarted %d times during 30 s of a fighter rewriting daemon.json every 200 ms", during)
		for _, line := range strings.Split(logs.String(), "\n") {
			if strings.Contains(line, "flapping") {
				t.Log(line)
			}
		}
		if during > DefaultFlapPolicy.Count {
			t.Errorf("docker restarted %d times while the file flapped, want at most %d", during, DefaultFlapPolicy.Count)
		}
		if !strings.Contains(logs.String(), "daemon is flapping: dockward had to change "+daemon.path+" 3 times within 10m0s") {
			t.Errorf("no flapping warning naming the module and its target:\n%s", logs.String())
		}
		if b, _ := os.ReadFile(daemon.path); string(b) != "theirs" {
			t.Fatalf("the file was corrected during the back-off: %q", b)
		}
		// dockward status and the metrics see it.
		l.Resident.mu.Lock()
		var fl *Flapping
		for _, m := range l.Resident.st.Modules {
			if m.ID == "daemon" {
				fl = m.Flapping
			}
		}
		l.Resident.mu.Unlock()
		if fl == nil || fl.Targets[0] != daemon.path || !time.Now().Before(fl.Until) {
			t.Errorf("the agent's published state does not show daemon flapping: %+v", fl)
		}
		// The fighter stopped; the back-off (5 minutes) ends and the file
		// is corrected once more, with one restart.
		advance(DefaultFlapPolicy.Backoff.Base)
		if b, _ := os.ReadFile(daemon.path); string(b) != daemon.want {
			t.Fatalf("not corrected after the back-off: %q", b)
		}
		unit.mu.Lock()
		after := unit.restarts - start - during
		unit.mu.Unlock()
		if after != 1 {
			t.Errorf("%d restarts after the back-off, want 1", after)
		}
	})
}

// agent.flap_corrections = 0: the agent corrects every time, as before
// flapping existed (an operator who prefers the fight).
func TestLoopNeverBacksOffWhenFlappingIsOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		files := newFakeFiles()
		daemon := &fileModule{path: filepath.Join(dir, "daemon.json"), want: "ours", files: files}
		unit := &slowUnit{deps: []string{"daemon"}, takes: time.Second}
		log := logrus.New()
		log.SetOutput(&bytes.Buffer{})
		l := &Loop{
			Load: func() (*Engine, LoopSettings, error) {
				return &Engine{Modules: []Module{named{daemon, "daemon"}, unit}, StateDir: filepath.Join(dir, "state"), Log: log},
					LoopSettings{Interval: time.Hour, Watch: true, Flap: &FlapPolicy{Window: 10 * time.Minute}}, nil
			},
			Log: log, WatchFiles: files.watch,
		}
		defer runLoop(t, l)()
		advance(5 * time.Second)
		fighter(t, files, daemon.path, 200*time.Millisecond, 10*time.Second)
		advance(5 * time.Second)
		unit.mu.Lock()
		defer unit.mu.Unlock()
		if unit.restarts < 6 {
			t.Errorf("%d restarts in 10 s of fighting with flapping off, want one per second or so", unit.restarts)
		}
	})
}
