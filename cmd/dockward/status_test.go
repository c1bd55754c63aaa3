package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// statusJSON is the part of `dockward status --format json` the tests read.
type statusJSON struct {
	FormatVersion string `json:"format_version"`
	Running       bool   `json:"running"`
	PID           int    `json:"pid"`
	Health        string `json:"health"`
	Agent         *struct {
		PID     int       `json:"pid"`
		Stopped time.Time `json:"stopped"`
		Config  struct {
			Files       []string `json:"files"`
			ReloadError string   `json:"reload_error"`
		} `json:"config"`
		LastRun *struct {
			Trigger  string `json:"trigger"`
			Result   string `json:"result"`
			ExitCode int    `json:"exit_code"`
		} `json:"last_run"`
		NextBackstop time.Time `json:"next_backstop"`
		Retry        *struct {
			Modules []string `json:"modules"`
		} `json:"retry"`
		Modules []struct {
			ID                  string `json:"id"`
			Status              string `json:"status"`
			ConsecutiveFailures int    `json:"consecutive_failures"`
			Error               string `json:"error"`
		} `json:"modules"`
	} `json:"agent"`
	LastReport *struct {
		Command string `json:"command"`
	} `json:"last_report"`
}

func status(t *testing.T, args ...string) (int, statusJSON, string) {
	t.Helper()
	code, stdout, stderr := runBin(t, append([]string{"status", "--format", "json"}, args...)...)
	var v statusJSON
	if err := json.Unmarshal([]byte(stdout), &v); err != nil {
		t.Fatalf("status --format json: exit %d, %v:\n%s\n%s", code, err, stdout, stderr)
	}
	return code, v, stdout
}

// waitStatus polls `dockward status` until ok says it shows what is
// awaited (the agent publishes after its converge, not with its log line);
// at most 60 s.
func waitStatus(t *testing.T, what string, ok func(code int, v statusJSON) bool, args ...string) (int, statusJSON) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		code, v, out := status(t, args...)
		if ok(code, v) {
			return code, v
		}
		if time.Now().After(deadline) {
			t.Fatalf("status never showed %s; last (exit %d):\n%s", what, code, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestStatusEndToEnd runs the real binary under --root: status before any
// agent, of a running agent (text and JSON), a second `dockward run`
// refused, a module failing with its retry, the agent killed, and stopped.
func TestStatusEndToEnd(t *testing.T) {
	root := newRoot(t)
	cfg := filepath.Join(t.TempDir(), "dockward.hcl")
	writeFile(t, cfg, `agent {
  interval = "1h"
}
docker_daemon {
  userns_remap = "default"
  validate     = false
}
subordinate_ids "dockremap" {
  create_user = false
}
`, 0o600)
	args := []string{"-c", cfg, "--root", root}

	code, stdout, stderr := runBin(t, append([]string{"status"}, args...)...)
	if code != 3 || !strings.Contains(stdout, "not running (no agent has run with state directory "+root+"/var/lib/dockward)") {
		t.Fatalf("before any agent: exit %d, want 3:\n%s%s", code, stdout, stderr)
	}
	if _, err := os.Stat(root + "/var/lib/dockward"); err == nil {
		t.Fatal("status created the state directory")
	}

	a := startAgent(t, append(args, "--log-format", "json")...)
	a.waitFor(`"trigger":"start"`)
	pid := a.cmd.Process.Pid
	_, v := waitStatus(t, "the start converge", func(code int, v statusJSON) bool {
		return code == 0 && v.Agent != nil && v.Agent.LastRun != nil
	}, args...)
	if !v.Running || v.PID != pid || v.Health != "ok" || v.FormatVersion != "1" || v.Agent.PID != pid ||
		v.Agent.LastRun.Trigger != "start" || v.Agent.LastRun.Result != "changed" || v.Agent.LastRun.ExitCode != 2 ||
		v.Agent.NextBackstop.Before(time.Now().Add(50*time.Minute)) || len(v.Agent.Modules) != 2 || v.LastReport == nil {
		t.Errorf("running agent: %+v", v)
	}
	if len(v.Agent.Config.Files) != 1 || v.Agent.Config.Files[0] != cfg {
		t.Errorf("configuration files %v, want [%s]", v.Agent.Config.Files, cfg)
	}
	code, stdout, _ = runBin(t, append([]string{"status"}, args...)...)
	for _, want := range []string{"Agent:          running, pid " + strconv.Itoa(pid) + ", since ", "Configuration:  " + cfg, "trigger: start", "Next backstop:  ", "docker_daemon              changed\n", "Nothing failing.\n"} {
		if code != 0 || !strings.Contains(stdout, want) {
			t.Errorf("status text: exit %d, lacks %q:\n%s", code, want, stdout)
		}
	}

	// A second agent on the same state directory is refused.
	code, _, stderr = runBin(t, append([]string{"run"}, args...)...)
	if code != 1 || !strings.Contains(stderr, "another dockward agent (pid "+strconv.Itoa(pid)) {
		t.Errorf("a second dockward run: exit %d, want 1 naming pid %d:\n%s", code, pid, stderr)
	}

	// A bad edit of the configuration: the agent refuses the reload and
	// keeps running the one it had; status says so, with the errors.
	good, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, cfg, string(good)+"docker_daemon {\n", 0o600)
	a.waitFor("keeping the running one")
	var refused string
	waitStatus(t, "the refused reload", func(_ int, v statusJSON) bool {
		return v.Agent != nil && v.Agent.Config.ReloadError != ""
	}, args...)
	code, refused, stderr = runBin(t, append([]string{"status"}, args...)...)
	if code != 0 || !strings.Contains(refused, "reload REFUSED") {
		t.Errorf("status after a refused reload: exit %d, want 0 and the refusal:\n%s", code, refused)
	}
	if !strings.Contains(stderr, cfg+":") || !strings.Contains(stderr, "reading the state directory "+root+"/var/lib/dockward") {
		t.Errorf("status with a bad configuration: stderr lacks the diagnostics or the state directory read:\n%s", stderr)
	}
	writeFile(t, cfg, string(good), 0o600)
	a.waitFor("reload: configuration reloaded")

	// daemon.json broken by hand: the agent fails it, retries with backoff.
	writeFile(t, root+"/etc/docker/daemon.json", "{\"debug\": tru\n", 0o644)
	_, v = waitStatus(t, "docker_daemon failing", func(code int, v statusJSON) bool { return code == 4 }, args...)
	if v.Health != "failing" || v.Agent.Retry == nil || v.Agent.Retry.Modules[0] != "docker_daemon" {
		t.Errorf("failing: %+v", v)
	}
	for _, m := range v.Agent.Modules {
		if m.ID == "docker_daemon" && (m.ConsecutiveFailures < 1 || !strings.Contains(m.Error, "daemon.json")) {
			t.Errorf("docker_daemon: %+v", m)
		}
	}
	code, stdout, _ = runBin(t, append([]string{"status"}, args...)...)
	if code != 4 || !strings.Contains(stdout, "docker_daemon              FAILED: failing since ") || !strings.Contains(stdout, "1 module failing: docker_daemon.") {
		t.Errorf("failing, text: exit %d:\n%s", code, stdout)
	}

	// Killed: the state stays, the lock goes with the process.
	if err := a.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for range a.lines {
	}
	<-a.exited
	code, v, _ = status(t, args...)
	if code != 3 || v.Running || v.Health != "not_running" || v.Agent == nil || v.Agent.PID != pid || !v.Agent.Stopped.IsZero() {
		t.Errorf("killed: exit %d %+v", code, v)
	}
	_, stdout, _ = runBin(t, append([]string{"status"}, args...)...)
	if !strings.Contains(stdout, "not running (last seen ") || !strings.Contains(stdout, "killed or crashed") {
		t.Errorf("killed, text:\n%s", stdout)
	}

	// Started again (the lock is free), then stopped with SIGTERM.
	writeFile(t, root+"/etc/docker/daemon.json", "{}\n", 0o644)
	a = startAgent(t, append(args, "--log-format", "json")...)
	a.waitFor(`"trigger":"start"`)
	waitStatus(t, "the new agent", func(code int, v statusJSON) bool {
		return code == 0 && v.Agent != nil && v.Agent.PID == a.cmd.Process.Pid && v.Agent.LastRun != nil
	}, args...)
	if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for range a.lines {
	}
	if err := <-a.exited; err != nil {
		t.Fatalf("dockward run after SIGTERM: %v", err)
	}
	code, stdout, _ = runBin(t, append([]string{"status"}, args...)...)
	if code != 3 || !strings.Contains(stdout, "not running (stopped ") {
		t.Errorf("stopped: exit %d:\n%s", code, stdout)
	}
}
