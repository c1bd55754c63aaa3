package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/dockward/dockward/agent/agenttest"
)

// TestDropInsUnderRoot: validate, plan and apply read
// <root>/etc/dockward/dockward.hcl and its conf.d drop-ins, the built
// binary end to end.
func TestDropInsUnderRoot(t *testing.T) {
	root := newRoot(t)
	main, err := os.ReadFile(configFor(t, ""))
	if err != nil {
		t.Fatal(err)
	}
	etc := filepath.Join(root, "etc/dockward")
	writeFile(t, filepath.Join(etc, "dockward.hcl"), string(main), 0o600)
	role := filepath.Join(etc, "conf.d/20-role.hcl")
	writeFile(t, role, "docker_daemon {\n  settings = {\n    \"icc\" = true\n    \"live-restore\" = true\n  }\n}\n", 0o600)
	// Read first (lexical order), overridden by 20-role.
	writeFile(t, filepath.Join(etc, "conf.d/10-site.hcl"), "docker_daemon {\n  settings = { \"live-restore\" = false }\n}\n", 0o600)
	writeFile(t, filepath.Join(etc, "conf.d/20-role.hcl.dpkg-old"), "not hcl {", 0o600)

	if code, out, errs := runBin(t, "validate", "--root", root); code != 0 {
		t.Fatalf("validate exit %d\n%s%s", code, out, errs)
	}
	code, out, errs := runBin(t, "plan", "--root", root)
	if code != 2 || !strings.Contains(out, "+ live-restore") {
		t.Fatalf("plan exit %d\n%s%s", code, out, errs)
	}
	// The plan names the drop-in that set a value.
	agenttest.Golden(t, "testdata/dropin-plan.golden", strings.ReplaceAll(out, root, "ROOT"))
	if code, out, errs := runBin(t, "apply", "--root", root); code != 2 {
		t.Fatalf("apply exit %d\n%s%s", code, out, errs)
	}
	var doc map[string]any
	b, _ := os.ReadFile(root + "/etc/docker/daemon.json")
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if doc["icc"] != true || doc["live-restore"] != true || doc["no-new-privileges"] != true {
		t.Fatalf("daemon.json does not carry the merged settings:\n%s", b)
	}

	// A block declared again in a drop-in: both places named.
	dup := filepath.Join(etc, "conf.d/30-dup.hcl")
	writeFile(t, dup, "\nsubordinate_ids \"dockremap\" {\n  count = 65536\n}\n", 0o600)
	code, _, errs = runBin(t, "validate", "--root", root)
	if code != 1 || !strings.Contains(errs, dup+":2:1: error: Duplicate subordinate_ids block") ||
		!strings.Contains(strings.ReplaceAll(errs, "\n", " "), filepath.Join(etc, "dockward.hcl")+":") {
		t.Fatalf("validate exit %d\n%s", code, errs)
	}
	if err := os.Remove(dup); err != nil {
		t.Fatal(err)
	}

	// A drop-in others can write is refused, for plan as for validate.
	if err := os.Chmod(role, 0o620); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"validate", "plan", "apply"} {
		code, _, errs := runBin(t, cmd, "--root", root)
		if code == 0 || code == 2 || !strings.Contains(errs, role+": refusing a configuration that is group- or world-writable") {
			t.Fatalf("%s exit %d\n%s", cmd, code, errs)
		}
	}
}

// TestReloadReadsDropIns: the resident agent's reload (the conf.d watch
// and SIGHUP) reads the drop-ins: a broken one added is named in the
// refusal and the running configuration kept; once fixed, SIGHUP loads it.
func TestReloadReadsDropIns(t *testing.T) {
	root := newRoot(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "dockward.hcl")
	writeFile(t, cfg, "agent {\n  watch = false\n  interval = \"1h\"\n}\ndocker_daemon {\n  settings = { debug = true }\n  validate = false\n}\n", 0o600)
	if err := os.Mkdir(filepath.Join(dir, "conf.d"), 0o755); err != nil {
		t.Fatal(err)
	}

	agent := startAgent(t, "-c", cfg, "--root", root, "--log-format", "json", "--log-level", "debug")
	waitFor, cmd := agent.waitFor, agent.cmd
	waitFor(`"trigger":"start"`)

	// A drop-in added is seen by the watch (no SIGHUP sent).
	bad := filepath.Join(dir, "conf.d", "50-bad.hcl")
	tmp := filepath.Join(dir, "50-bad.hcl.new")
	writeFile(t, tmp, "docker_daemon {\n  settings = { debug = false }\n  validate = true\n}\n", 0o600)
	if err := os.Rename(tmp, bad); err != nil {
		t.Fatal(err)
	}
	l := waitFor("keeping the running one")
	if !strings.Contains(l, bad+":3,") || !strings.Contains(l, "Duplicate argument") {
		t.Errorf("reload error does not name %s:3: %s", bad, l)
	}

	// Fixed, and SIGHUP: the reload loads it.
	writeFile(t, tmp, "docker_daemon {\n  settings = { debug = false }\n}\n", 0o600)
	if err := os.Rename(tmp, bad); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor("reload: configuration reloaded")
	agent.stop()
}
