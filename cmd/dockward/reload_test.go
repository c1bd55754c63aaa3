package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// reloadAgent runs `dockward reload` as systemd's ExecReload= does: the
// built binary, with MAINPID set to pid (none when 0).
func reloadAgent(t *testing.T, root string, pid int) (int, string, string) {
	t.Helper()
	cmd := exec.Command(dockwardBin(t), "reload", "--root", root)
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "MAINPID=") {
			cmd.Env = append(cmd.Env, e)
		}
	}
	if pid != 0 {
		cmd.Env = append(cmd.Env, "MAINPID="+strconv.Itoa(pid))
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatal(err)
	}
	return cmd.ProcessState.ExitCode(), out.String(), errb.String()
}

// replaceFile writes path by rename, as editors and configuration tools do.
func replaceFile(t *testing.T, path, data string) {
	t.Helper()
	writeFile(t, path+".new", data, 0o600)
	if err := os.Rename(path+".new", path); err != nil {
		t.Fatal(err)
	}
}

// TestReloadWaitsForTheAgent: `dockward reload` (dockward.service's
// ExecReload=) returns once the agent has converged on the new
// configuration, so the change it declares is on disk when it returns;
// it exits 1 with the agent's reason when the agent refuses the
// configuration, the agent running on as before; and a later good reload
// works.
func TestReloadWaitsForTheAgent(t *testing.T) {
	root := newRoot(t)
	cfg := filepath.Join(t.TempDir(), "dockward.hcl")
	conf := func(debug bool) string {
		return "agent {\n  watch = false\n  interval = \"1h\"\n}\ndocker_daemon {\n  settings = { debug = " + strconv.FormatBool(debug) + " }\n  validate = false\n}\n"
	}
	writeFile(t, cfg, conf(true), 0o600)
	daemonJSON := filepath.Join(root, "etc/docker/daemon.json")
	debugIs := func(want bool) bool {
		b, err := os.ReadFile(daemonJSON)
		if err != nil {
			t.Fatal(err)
		}
		return strings.Contains(string(b), `"debug": `+strconv.FormatBool(want))
	}

	a := startAgent(t, "-c", cfg, "--root", root, "--log-format", "json")
	a.waitFor(`"trigger":"start"`)
	pid := a.cmd.Process.Pid
	if !debugIs(true) {
		t.Fatal("the start converge did not write debug = true")
	}

	// A change: applied by the time reload returns.
	replaceFile(t, cfg, conf(false))
	code, stdout, stderr := reloadAgent(t, root, pid)
	if code != 0 || !debugIs(false) {
		t.Fatalf("reload: exit %d, daemon.json has debug = false: %v; stdout %q stderr %q", code, debugIs(false), stdout, stderr)
	}
	if want := "the agent (pid " + strconv.Itoa(pid) + ") runs the new configuration"; !strings.Contains(stdout, want) {
		t.Errorf("stdout %q, want %q", stdout, want)
	}

	// A bad configuration: refused, exit 1, why, the old one runs on.
	replaceFile(t, cfg, conf(true)+"docker_daemon {\n")
	code, _, stderr = reloadAgent(t, root, pid)
	if code != 1 || !strings.Contains(stderr, "refused the new configuration and keeps running the previous one") || !strings.Contains(stderr, cfg+":") {
		t.Fatalf("bad reload: exit %d, stderr %q; want 1 naming %s", code, stderr, cfg)
	}
	if err := syscall.Kill(pid, 0); err != nil || a.cmd.ProcessState != nil {
		t.Fatalf("the agent is gone after a refused reload: %v", err)
	}
	if !debugIs(false) {
		t.Error("a refused configuration changed daemon.json")
	}

	// Good again.
	replaceFile(t, cfg, conf(true))
	if code, _, stderr = reloadAgent(t, root, pid); code != 0 || !debugIs(true) {
		t.Fatalf("reload after a refused one: exit %d, debug = true: %v; %s", code, debugIs(true), stderr)
	}

	// Without MAINPID it finds the agent by its report.
	if code, _, stderr = reloadAgent(t, root, 0); code != 0 {
		t.Fatalf("reload without MAINPID: exit %d: %s", code, stderr)
	}

	// An agent that does not report (an older dockward's): signalled, not
	// waited for, and said so.
	if err := os.Remove(filepath.Join(root, reloadStateFile)); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = reloadAgent(t, root, pid)
	if code != 0 || !strings.Contains(stderr, "without waiting") {
		t.Fatalf("reload of an agent that does not report: exit %d: %q", code, stderr)
	}
	// The agent took the SIGHUP: it reports the reload again. (Not its
	// log: earlier reloads logged the same line.)
	deadline := time.Now().Add(30 * time.Second)
	for st, err := readReloadState(&globals{root: root}); st == nil || st.Reload == nil; st, err = readReloadState(&globals{root: root}) {
		if err != nil || time.Now().After(deadline) {
			t.Fatalf("no reload reported after SIGHUP: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}

	a.stop()

	// No agent: it took its report with it.
	if _, err := os.Stat(filepath.Join(root, reloadStateFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s after the agent stopped: %v", reloadStateFile, err)
	}
	if code, _, stderr = reloadAgent(t, root, pid); code != 4 {
		t.Errorf("reload of a stopped agent: exit %d, want 4: %s", code, stderr)
	}
	if code, _, stderr = reloadAgent(t, t.TempDir(), 0); code != 4 || !strings.Contains(stderr, "no agent is running") {
		t.Errorf("reload with no agent: exit %d, want 4: %s", code, stderr)
	}
}
