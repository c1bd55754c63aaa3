package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// deepConfig nests a value 60,000 levels deep (120 KB, under the size
// limit): before the nesting limit this ended in "fatal error: stack
// overflow", exit 2, as the probe's 100,000 levels did.
func deepConfig() string {
	return "docker_daemon {\n  settings = { x = " + strings.Repeat("[", 60000) + strings.Repeat("]", 60000) + " }\n}\n"
}

func TestDeepNestingExitsOneWithAPosition(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "deep.hcl")
	writeFile(t, cfg, deepConfig(), 0o600)
	// The probe's file: 100,000 levels, 200 KB, now over the size limit.
	probe := filepath.Join(t.TempDir(), "probe.hcl")
	writeFile(t, probe, "docker_daemon {\n  settings = { x = "+strings.Repeat("[", 100000)+strings.Repeat("]", 100000)+" }\n}\n", 0o600)
	for _, cmd := range []string{"validate", "plan", "apply"} {
		code, _, stderr := dockward(t, cmd, "-c", cfg, "--root", t.TempDir())
		if code != 1 || !strings.Contains(stderr, cfg+":2:") || !strings.Contains(stderr, "Nested too deeply") {
			t.Errorf("%s: exit %d, want 1 and a diagnostic at %s:2: %.300s", cmd, code, cfg, stderr)
		}
		code, _, stderr = dockward(t, cmd, "-c", probe, "--root", t.TempDir())
		if code != 1 || !strings.Contains(stderr, probe+":1:1:") || !strings.Contains(stderr, "too large") {
			t.Errorf("%s: exit %d, want 1 and a diagnostic at %s:1:1: %.300s", cmd, code, probe, stderr)
		}
	}
}

// TestReloadOfDeeplyNestedFileKeepsRunning: the resident agent, sent
// SIGHUP after its configuration was replaced by a hostile one, reports
// the position and keeps running on the configuration it has; SIGTERM
// then stops it cleanly.
func TestReloadOfDeeplyNestedFileKeepsRunning(t *testing.T) {
	root := newRoot(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "dockward.hcl")
	writeFile(t, cfg, "agent {\n  watch = false\n  interval = \"1h\"\n}\ndocker_daemon {\n  settings = { debug = true }\n  validate = false\n}\n", 0o600)

	agent := startAgent(t, "-c", cfg, "--root", root, "--log-format", "json", "--log-level", "debug")
	waitFor, cmd := agent.waitFor, agent.cmd
	waitFor(`"trigger":"start"`)

	tmp := cfg + ".new"
	writeFile(t, tmp, deepConfig(), 0o600)
	if err := os.Rename(tmp, cfg); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	l := waitFor("keeping the running one")
	if !strings.Contains(l, cfg+":2,") {
		t.Errorf("reload error does not name %s:2: %s", cfg, l)
	}
	agent.stop()
}

// runningAgent is `dockward run` as a child process whose log lines a test
// waits for.
type runningAgent struct {
	t      *testing.T
	cmd    *exec.Cmd
	lines  chan string
	exited chan error
}

// startAgent starts `dockward run` with args (the binary under test) and
// kills it when the test ends, if it is still running.
func startAgent(t *testing.T, args ...string) *runningAgent {
	t.Helper()
	a := &runningAgent{t: t, cmd: exec.Command(dockwardBin(t), append([]string{"run"}, args...)...), lines: make(chan string, 100), exited: make(chan error, 1)}
	stderr, err := a.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			a.lines <- sc.Text()
		}
		close(a.lines)
		a.exited <- a.cmd.Wait()
	}()
	t.Cleanup(func() {
		if a.cmd.ProcessState == nil {
			_ = a.cmd.Process.Kill()
		}
	})
	return a
}

// stop sends SIGTERM, waits for the agent to log its stop and to exit 0.
func (a *runningAgent) stop() {
	a.t.Helper()
	if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		a.t.Fatal(err)
	}
	a.waitFor("stopping")
	for range a.lines {
	}
	if err := <-a.exited; err != nil {
		a.t.Fatalf("dockward run after SIGTERM: %v", err)
	}
}

// waitFor returns the first log line containing what, failing after 60 s
// or when the agent exits first.
func (a *runningAgent) waitFor(what string) string {
	a.t.Helper()
	timeout := time.After(60 * time.Second)
	for {
		select {
		case l, ok := <-a.lines:
			if !ok {
				a.t.Fatalf("dockward run exited (%v) before logging %q", <-a.exited, what)
			}
			if strings.Contains(l, what) {
				return l
			}
		case <-timeout:
			a.t.Fatalf("no %q logged in 60 s", what)
		}
	}
}
