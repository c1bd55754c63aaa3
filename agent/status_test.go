package agent

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dockward/dockward/agent/agenttest"
	"github.com/google/go-cmp/cmp"
	"github.com/sirupsen/logrus"
)

func quietLog() *logrus.Entry {
	log := logrus.New()
	log.SetOutput(&bytes.Buffer{})
	return logrus.NewEntry(log)
}

// The state the agent publishes reads back as it was written, and the agent
// that wrote it counts as running while it holds the agent lock.
func TestResidentStateRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	r, err := StartResident("", dir, []string{"/etc/dockward/dockward.hcl"}, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	v, err := ReadStatus("", dir)
	if err != nil {
		t.Fatal(err)
	}
	if !v.Running || v.PID != os.Getpid() || v.Agent == nil || v.Agent.LastRun != nil || v.Health != "ok" {
		t.Fatalf("right after the start: %+v", v)
	}

	eng := &Engine{Modules: []Module{&fakeModule{id: "a"}, &fakeModule{id: "b"}}}
	cur := &current{eng: eng, set: LoopSettings{ConfigFiles: []string{"/etc/dockward/dockward.hcl", "/etc/dockward/conf.d/10-site.hcl"}}}
	t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	r.ran("start", []string{"a", "b"}, &Report{Command: "apply", Start: t0, Duration: 1.5, Modules: []ModuleResult{
		{ID: "a", Status: StatusChanged}, {ID: "b", Status: StatusFailed, Error: "boom"},
	}}, nil)
	r.ran("retry: b", []string{"b"}, &Report{Command: "apply", Start: t0.Add(2 * time.Second), Modules: []ModuleResult{
		{ID: "b", Status: StatusFailed, Error: "boom again", Pending: []Pending{{Target: "docker network app"}}},
	}}, nil)
	sch := scheduleState{failing: []string{"b"}, failures: 2, retryAt: t0.Add(6 * time.Second), backoff: 4 * time.Second, backstop: t0.Add(time.Hour)}
	st, changed := r.update(cur, sch, t0.Add(3*time.Second))
	if !changed {
		t.Fatal("a new state was not seen as changed")
	}
	if err := r.write(st); err != nil {
		t.Fatal(err)
	}
	if _, again := r.update(cur, sch, t0.Add(4*time.Second)); again {
		t.Error("the same state a second later was seen as changed: it would be written again")
	}
	if fi, err := os.Stat(filepath.Join(dir, agentStateFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("state file: %v, mode %v", err, fi.Mode())
	}

	v, err = ReadStatus("", dir)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(&st, v.Agent); diff != "" {
		t.Errorf("read back (-written +read):\n%s", diff)
	}
	if v.Health != "failing" || v.ExitCode() != ExitFailed {
		t.Errorf("health %q exit %d, want failing 4", v.Health, v.ExitCode())
	}
	b := v.Agent.Modules[1]
	if b.ConsecutiveFailures != 2 || !b.FailingSince.Equal(t0) || b.Error != "boom again" || !b.RetryAt.Equal(sch.retryAt) || b.Backoff != 4 || len(b.Pending) != 1 {
		t.Errorf("module b: %+v", b)
	}

	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	v, err = ReadStatus("", dir)
	if err != nil {
		t.Fatal(err)
	}
	if v.Running || v.Health != "not_running" || v.ExitCode() != ExitNotRunning || v.Agent.Stopped.IsZero() {
		t.Errorf("after Close: running %v health %q stopped %v", v.Running, v.Health, v.Agent.Stopped)
	}

	// The next agent carries the failure streak over.
	r2, err := StartResident("", dir, nil, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	r2.ran("start", []string{"a", "b"}, &Report{Command: "apply", Start: t0.Add(time.Hour), Modules: []ModuleResult{
		{ID: "a", Status: StatusOK}, {ID: "b", Status: StatusFailed, Error: "still"},
	}}, nil)
	st, _ = r2.update(cur, scheduleState{}, t0.Add(time.Hour))
	if b := st.Modules[1]; b.ConsecutiveFailures != 3 || !b.FailingSince.Equal(t0) {
		t.Errorf("after a restart, module b: %+v", b)
	}
}

// A state directory nobody used is "not running", and status creates
// nothing in it.
func TestReadStatusOfAnUnusedStateDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	v, err := ReadStatus("", dir)
	if err != nil || v.Running || v.Agent != nil || v.LastReport != nil || v.ExitCode() != ExitNotRunning {
		t.Fatalf("%+v %v", v, err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadStatus("", dir); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("status created %v", ents)
	}
}

// residentChildEnv makes this test binary a child that holds the agent
// lock of a state directory until its stdin closes (then stops cleanly) or
// it is killed.
const residentChildEnv = "DOCKWARD_TEST_RESIDENT_CHILD"

func TestMain(m *testing.M) {
	if dir := os.Getenv(residentChildEnv); dir != "" {
		residentChild(dir)
	}
	os.Exit(m.Run())
}

func residentChild(dir string) {
	r, err := StartResident("", dir, []string{"child.hcl"}, quietLog())
	if err != nil {
		os.Stdout.WriteString("error: " + err.Error() + "\n")
		os.Exit(1)
	}
	os.Stdout.WriteString("ready\n")
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
	r.Close()
	os.Exit(0)
}

// startResidentChild starts a process that holds the agent lock of dir.
func startResidentChild(t *testing.T, dir string) (*exec.Cmd, func()) {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), residentChildEnv+"="+dir)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if line != "ready\n" {
		t.Fatalf("child: %q %v", line, err)
	}
	return cmd, func() { stdin.Close() }
}

// Liveness is the kernel's: an agent in another process is running while
// it holds the agent lock, a second agent is refused meanwhile, and once it
// is killed its state, still on disk, reads "not running".
func TestAgentLockOfAnotherProcess(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	child, _ := startResidentChild(t, dir)
	pid := child.Process.Pid

	v, err := ReadStatus("", dir)
	if err != nil {
		t.Fatal(err)
	}
	if !v.Running || v.PID != pid || v.Agent == nil || v.Agent.PID != pid {
		t.Fatalf("while the child holds the lock: running %v pid %d (child %d), agent %+v", v.Running, v.PID, pid, v.Agent)
	}
	_, err = StartResident("", dir, nil, quietLog())
	var running *AgentRunningError
	if !errors.As(err, &running) || running.PID != pid || !strings.Contains(err.Error(), "pid "+strconv.Itoa(pid)) {
		t.Fatalf("a second agent: %v, want *AgentRunningError naming pid %d", err, pid)
	}

	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = child.Wait()
	v, err = ReadStatus("", dir)
	if err != nil {
		t.Fatal(err)
	}
	if v.Running || v.Agent == nil || v.Agent.PID != pid || !v.Agent.Stopped.IsZero() || v.ExitCode() != ExitNotRunning {
		t.Fatalf("after SIGKILL: running %v, agent %+v", v.Running, v.Agent)
	}
	var out bytes.Buffer
	if err := WriteStatusText(&out, v, time.Now(), time.UTC); err != nil {
		t.Fatal(err)
	}
	if want := "not running (last seen "; !strings.Contains(out.String(), want) || !strings.Contains(out.String(), "killed or crashed") {
		t.Errorf("status text lacks %q:\n%s", want, out.String())
	}

	// The lock is free again: the next agent starts.
	r, err := StartResident("", dir, nil, quietLog())
	if err != nil {
		t.Fatalf("after the holder died: %v", err)
	}
	r.Close()

	// A clean stop says so.
	child, stop := startResidentChild(t, dir)
	stop()
	if err := child.Wait(); err != nil {
		t.Fatal(err)
	}
	if v, err = ReadStatus("", dir); err != nil || v.Running || v.Agent.Stopped.IsZero() {
		t.Fatalf("after a clean stop: %+v %v", v, err)
	}
}

// statusFixture is a failing agent's state, a clean one's, and the last
// report, at fixed times.
func statusFixture() (now time.Time, failing *StatusView) {
	t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	now = t0.Add(3*time.Hour + 9*time.Minute + 5*time.Second)
	last := t0.Add(3*time.Hour + 9*time.Minute)
	st := &AgentState{
		FormatVersion: StatusFormatVersion, PID: 4242, Started: t0, Updated: last.Add(2 * time.Second),
		Config: ConfigState{Files: []string{"/etc/dockward/dockward.hcl", "/etc/dockward/conf.d/10-site.hcl"}, Loaded: t0.Add(time.Hour),
			ReloadError: "/etc/dockward/dockward.hcl:3,1-2: Unclosed configuration block", ReloadFailed: t0.Add(2 * time.Hour)},
		LastRun:      &RunState{Start: last, Duration: 1.234, Trigger: "retry: firewall", Result: "failed", ExitCode: 4, Modules: []string{"firewall"}},
		LastSuccess:  t0.Add(3 * time.Hour),
		NextBackstop: t0.Add(3*time.Hour + 14*time.Minute + 41*time.Second),
		Retry:        &RetryState{At: last.Add(8 * time.Second), Backoff: 8, Failures: 3, Modules: []string{"firewall"}},
		Modules: []ModuleState{
			{ID: "subordinate_ids.dockremap", Status: StatusOK, LastRun: t0.Add(3 * time.Hour), LastSuccess: t0.Add(3 * time.Hour)},
			{ID: "docker_daemon", Status: StatusChanged, LastRun: t0.Add(3 * time.Hour), LastSuccess: t0.Add(3 * time.Hour), DriftCorrections: 2},
			{ID: "service.docker.service", Status: StatusRolledBack, LastRun: t0.Add(3 * time.Hour), ConsecutiveFailures: 1,
				FailingSince: t0.Add(3 * time.Hour), Error: "restart docker.service: not active after 90s; rolled back"},
			{ID: "firewall", Status: StatusFailed, LastRun: last, LastSuccess: t0.Add(2 * time.Hour), ConsecutiveFailures: 3,
				FailingSince: t0.Add(3*time.Hour + 8*time.Minute), Error: "add table inet dockward: operation not permitted",
				RetryAt: last.Add(8 * time.Second), Backoff: 8,
				Pending: []Pending{{Target: "docker network app", Detail: "declared at dockward.hcl:12,3-17; does not exist in Docker yet"}}},
		},
	}
	rep := &Report{FormatVersion: ReportFormatVersion, Command: "apply", Start: last, Duration: 1.234, Modules: []ModuleResult{
		{ID: "firewall", Status: StatusFailed, Changes: []Change{}, Error: "add table inet dockward: operation not permitted"},
	}}
	return now, &StatusView{FormatVersion: StatusFormatVersion, Running: true, PID: 4242, Health: "failing", Agent: st, LastReport: rep, StateDir: "/var/lib/dockward"}
}

// The text and JSON of `dockward status`, for a running agent with a
// failing module, a killed one, a stopped one, and a host where only
// `dockward apply` ever ran.
func TestStatusGolden(t *testing.T) {
	now, failing := statusFixture()
	render := func(v *StatusView) string {
		var b strings.Builder
		if err := WriteStatusText(&b, v, now, time.UTC); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	agenttest.Golden(t, "testdata/status-failing.golden", render(failing))

	b, err := json.MarshalIndent(failing, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	agenttest.Golden(t, "testdata/status-failing.json.golden", string(b)+"\n")

	_, killed := statusFixture()
	killed.Running, killed.PID, killed.Health = false, 0, "not_running"
	agenttest.Golden(t, "testdata/status-killed.golden", render(killed))

	_, stopped := statusFixture()
	stopped.Running, stopped.PID, stopped.Health = false, 0, "not_running"
	stopped.Agent.Stopped = stopped.Agent.Updated.Add(time.Minute)
	agenttest.Golden(t, "testdata/status-stopped.golden", render(stopped))

	_, flapping := statusFixture()
	for i := range flapping.Agent.Modules {
		if m := &flapping.Agent.Modules[i]; m.ID == "docker_daemon" {
			since := flapping.Agent.Updated.Add(-time.Minute)
			m.Flapping = &Flapping{Module: m.ID, Targets: []string{"log-opts"}, Corrections: 3, Since: since, Until: since.Add(5 * time.Minute), Rounds: 1, Window: 10 * time.Minute}
		}
	}
	flapping.Agent.Converging = []InFlight{{Lane: "main", Start: flapping.Agent.Updated.Add(-4 * time.Second), Trigger: "event: subordinate_ids.dockremap (changed /etc/subuid)", Modules: []string{"subordinate_ids.dockremap", "service.docker.service"}}}
	agenttest.Golden(t, "testdata/status-flapping.golden", render(flapping))
	b, err = json.MarshalIndent(flapping.Agent.Modules[1], "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	agenttest.Golden(t, "testdata/status-flapping-module.json.golden", string(b)+"\n")

	_, applyOnly := statusFixture()
	applyOnly.Running, applyOnly.PID, applyOnly.Health, applyOnly.Agent = false, 0, "not_running", nil
	agenttest.Golden(t, "testdata/status-apply-only.golden", render(applyOnly))
}

// The loop publishes its state (and the metrics textfile) once it has
// converged and scheduled what comes next: at the start, after a failure
// (with the retry and its backoff), after the retry that converges, and it
// reads "stopped" after Close.
func TestLoopPublishesItsState(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		stateDir := filepath.Join(dir, "state")
		textfile := filepath.Join(dir, "metrics", "dockward.prom")
		res, err := StartResident("", stateDir, nil, quietLog())
		if err != nil {
			t.Fatal(err)
		}
		flaky := &flakyModule{fails: 2}
		log := logrus.New()
		log.SetOutput(&bytes.Buffer{})
		out := make(chan converged, 100)
		l := &Loop{
			Load: func() (*Engine, LoopSettings, error) {
				return &Engine{Modules: []Module{flaky}, StateDir: stateDir, Log: log},
					LoopSettings{Interval: time.Hour, MetricsTextfile: textfile, ConfigFiles: []string{"/x.hcl"}}, nil
			},
			Log:        log,
			Backoff:    Backoff{Base: time.Second, Max: time.Minute},
			WatchFiles: newFakeFiles().watch,
			Resident:   res,
			Metrics:    NewMetrics(),
			OnConverge: func(rep *Report, trigger string) { out <- converged{rep, trigger, time.Now()} },
		}
		stop := runLoop(t, l)
		defer stop() // also when a check fails: the bubble must end with no goroutine

		read := func(what string) *AgentState {
			t.Helper()
			synctest.Wait() // the loop published and waits
			v, err := ReadStatus("", stateDir)
			if err != nil || !v.Running || v.Agent == nil || len(v.Agent.Modules) != 1 {
				t.Fatalf("%s: %+v %v", what, v, err)
			}
			return v.Agent
		}
		start := nextConverge(t, out, "start")
		st := read("after the start")
		if st.LastRun == nil || st.LastRun.Trigger != "start" || st.LastRun.Result != "failed" {
			t.Errorf("after the start, last run %+v", st.LastRun)
		}
		if want := start.at.Add(time.Hour); st.NextBackstop.Before(want) {
			t.Errorf("next backstop %v, want the one after the start converge (>= %v)", st.NextBackstop, want)
		}
		if st.Retry == nil || !st.Retry.At.Equal(start.at.Add(time.Second)) || st.Retry.Backoff != 1 || st.Modules[0].ConsecutiveFailures != 1 {
			t.Errorf("after the start, retry %+v, module %+v", st.Retry, st.Modules[0])
		}
		if diff := cmp.Diff([]string{"/x.hcl"}, st.Config.Files); diff != "" {
			t.Error(diff)
		}
		b, err := os.ReadFile(textfile)
		if err != nil {
			t.Error(err)
		}
		for _, want := range []string{
			"dockward_module_consecutive_failures{module=\"flaky\"} 1\n",
			"dockward_agent_next_backstop_timestamp_seconds " + strconv.FormatFloat(unixSeconds(st.NextBackstop), 'g', -1, 64) + "\n",
		} {
			if !strings.Contains(string(b), want) {
				t.Errorf("textfile lacks %q:\n%s", want, b)
			}
		}

		nextConverge(t, out, "first retry")
		st = read("after the first retry")
		if st.Retry == nil || st.Retry.Backoff != 2 || st.Modules[0].ConsecutiveFailures != 2 {
			t.Errorf("after the first retry, retry %+v, module %+v", st.Retry, st.Modules[0])
		}
		c := nextConverge(t, out, "second retry")
		st = read("after the second retry")
		if st.Retry != nil || st.Modules[0].ConsecutiveFailures != 0 || !st.Modules[0].LastSuccess.Equal(c.rep.Start) || !st.LastSuccess.Equal(c.rep.Start) {
			t.Errorf("after it converged, retry %+v, module %+v", st.Retry, st.Modules[0])
		}

		stop()
		res.Close()
		v, err := ReadStatus("", stateDir)
		if err != nil || v.Running || v.Agent.Stopped.IsZero() {
			t.Fatalf("after the stop: %+v %v", v, err)
		}
	})
}

// BenchmarkResidentUpdate is what the loop pays per wake-up (every event)
// to learn that its state did not change: building it and comparing it with
// the last written, six modules.
func BenchmarkResidentUpdate(b *testing.B) {
	var mods []Module
	for _, id := range []string{"subordinate_ids.dockremap", "docker_daemon", "service.docker.service", "docker_files", "audit_rules", "firewall"} {
		mods = append(mods, &fakeModule{id: id})
	}
	cur := &current{eng: &Engine{Modules: mods}, set: LoopSettings{ConfigFiles: []string{"/etc/dockward/dockward.hcl"}}}
	r := &Resident{}
	now := time.Now()
	r.update(cur, scheduleState{backstop: now.Add(time.Hour)}, now)
	for b.Loop() {
		if _, changed := r.update(cur, scheduleState{backstop: now.Add(time.Hour)}, now); changed {
			b.Fatal("changed")
		}
	}
}

// BenchmarkResidentWrite is the write of a changed state (atomic: temp
// file, fsync, rename, directory fsync), as after a converge.
func BenchmarkResidentWrite(b *testing.B) {
	r, err := StartResident("", filepath.Join(b.TempDir(), "state"), nil, quietLog())
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	st := r.st
	for b.Loop() {
		if err := r.write(st); err != nil {
			b.Fatal(err)
		}
	}
}
