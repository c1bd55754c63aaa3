package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// These tests drive the command line end to end on a --root tree: the
// file modules for real, the live modules skipped (offline).

const existingDaemonJSON = `{
  "data-root": "/srv/docker",
  "log-opts": {"max-size": "50m"},
  "debug": false,
  "registry-mirrors": ["https://mirror.internal"]
}
`

const existingSubuid = "# local ranges\nalice:100000:65536\n1001:165536:65536\n"

func writeFile(t *testing.T, path, data string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
}

// newRoot makes a small host tree: passwd/group, a daemon.json with keys
// dockward does not manage, and subuid/subgid with other users' ranges.
func newRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	writeFile(t, root+"/etc/passwd", "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/bash\nbob:x:1001:1001::/home/bob:/bin/bash\n", 0o644)
	writeFile(t, root+"/etc/group", "root:x:0:\nalice:x:1000:\nbob:x:1001:\n", 0o644)
	writeFile(t, root+"/etc/shadow", "root:*:19000:0:99999:7:::\n", 0o640)
	writeFile(t, root+"/etc/gshadow", "root:*::\n", 0o640)
	writeFile(t, root+"/etc/docker/daemon.json", existingDaemonJSON, 0o644)
	writeFile(t, root+"/etc/subuid", existingSubuid, 0o644)
	writeFile(t, root+"/etc/subgid", existingSubuid, 0o644)
	return root
}

// configFor writes a configuration; create_user needs useradd --root, so
// only as root.
func configFor(t *testing.T, extra string) string {
	t.Helper()
	createUser := os.Geteuid() == 0
	if createUser {
		if _, err := exec.LookPath("useradd"); err != nil {
			createUser = false
		}
	}
	cfg := filepath.Join(t.TempDir(), "dockward.hcl")
	src := `docker_daemon {
  userns_remap = "default"
  log_driver   = "json-file"
  log_opts     = { max-size = "10m", max-file = 3 }
  settings = {
    "no-new-privileges" = true
    "icc"               = false
` + extra + `
  }
}
subordinate_ids "dockremap" {
  count       = 65536
  create_user = ` + map[bool]string{true: "true", false: "false"}[createUser] + `
}
`
	writeFile(t, cfg, src, 0o600)
	return cfg
}

func dockward(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestValidateMisspeltBlock(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "c.hcl")
	writeFile(t, cfg, "agent {}\ndocker_deamon {\n}\n", 0o600)
	code, _, stderr := dockward(t, "validate", "-c", cfg)
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	if !strings.Contains(stderr, cfg+":2:1:") || !strings.Contains(stderr, `Did you mean "docker_daemon"?`) {
		t.Fatalf("stderr:\n%s", stderr)
	}
	code, stdout, _ := dockward(t, "validate", "-c", cfg, "--format", "json")
	var v map[string]any
	if err := json.Unmarshal([]byte(stdout), &v); err != nil || code != 1 {
		t.Fatalf("exit %d, json %v: %s", code, err, stdout)
	}
	if v["format_version"] != "1" || v["valid"] != false {
		t.Fatalf("json: %v", v)
	}
}

func TestGroupWritableConfigIsRefused(t *testing.T) {
	cfg := configFor(t, "")
	if err := os.Chmod(cfg, 0o664); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"validate", "plan", "apply"} {
		code, _, stderr := dockward(t, cmd, "-c", cfg, "--root", t.TempDir())
		if code != 1 || !strings.Contains(stderr, "group- or world-writable") {
			t.Errorf("%s: exit %d, stderr %s", cmd, code, stderr)
		}
	}
}

func TestPlanApplyOnARootTree(t *testing.T) {
	root := newRoot(t)
	cfg := configFor(t, "")
	before := snapshot(t, root)

	code, stdout, stderr := dockward(t, "plan", "-c", cfg, "--root", root)
	if code != 2 {
		t.Fatalf("plan exit %d, want 2\n%s\n%s", code, stdout, stderr)
	}
	for _, want := range []string{"+ userns-remap", "~ log-opts", "dockremap:"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("plan output lacks %q:\n%s", want, stdout)
		}
	}
	if after := snapshot(t, root); after != before {
		t.Fatalf("plan changed the tree")
	}

	code, stdout, stderr = dockward(t, "apply", "-c", cfg, "--root", root)
	if code != 2 {
		t.Fatalf("apply exit %d, want 2\n%s\n%s", code, stdout, stderr)
	}
	var doc map[string]any
	b, _ := os.ReadFile(root + "/etc/docker/daemon.json")
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if doc["userns-remap"] != "default" || doc["data-root"] != "/srv/docker" || doc["debug"] != false {
		t.Fatalf("daemon.json: %s", b)
	}
	lo := doc["log-opts"].(map[string]any)
	if lo["max-size"] != "10m" || lo["max-file"] != "3" {
		t.Fatalf("log-opts not strings: %v", lo)
	}
	// Unmanaged keys keep their place: data-root first, registry-mirrors after debug.
	if i, j := bytes.Index(b, []byte(`"data-root"`)), bytes.Index(b, []byte(`"registry-mirrors"`)); i < 0 || j < i {
		t.Fatalf("order changed:\n%s", b)
	}
	if fi, _ := os.Stat(root + "/etc/docker/daemon.json"); fi.Mode().Perm() != 0o644 {
		t.Fatalf("mode %o", fi.Mode().Perm())
	}
	for _, f := range []string{"subuid", "subgid"} {
		b, _ := os.ReadFile(root + "/etc/" + f)
		if !strings.HasPrefix(string(b), existingSubuid) || !strings.Contains(string(b), "dockremap:231072:65536\n") {
			t.Fatalf("%s:\n%s", f, b)
		}
	}
	if os.Geteuid() == 0 {
		if b, _ := os.ReadFile(root + "/etc/passwd"); !strings.Contains(string(b), "\ndockremap:") {
			t.Fatalf("user not created:\n%s", b)
		}
	}
	rep, err := os.ReadFile(root + "/var/lib/dockward/last-report.json")
	if err != nil || !strings.Contains(string(rep), `"format_version": "1"`) {
		t.Fatalf("report: %v\n%s", err, rep)
	}

	converged := snapshot(t, root)
	code, stdout, _ = dockward(t, "apply", "-c", cfg, "--root", root)
	if code != 0 {
		t.Fatalf("second apply exit %d, want 0\n%s", code, stdout)
	}
	if snapshot(t, root) != converged {
		t.Fatal("second apply rewrote something")
	}
	if code, stdout, _ = dockward(t, "plan", "-c", cfg, "--root", root); code != 0 {
		t.Fatalf("plan after apply exit %d\n%s", code, stdout)
	}
}

func TestDroppedManagedKeyLeavesUnmanagedStays(t *testing.T) {
	root := newRoot(t)
	cfg := configFor(t, `    "live-restore" = true`)
	if code, out, errs := dockward(t, "apply", "-c", cfg, "--root", root); code != 2 {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	cfg2 := configFor(t, "")
	code, stdout, _ := dockward(t, "plan", "-c", cfg2, "--root", root)
	if code != 2 || !strings.Contains(stdout, "- live-restore") {
		t.Fatalf("plan exit %d:\n%s", code, stdout)
	}
	if code, _, _ = dockward(t, "apply", "-c", cfg2, "--root", root); code != 2 {
		t.Fatalf("apply exit %d", code)
	}
	b, _ := os.ReadFile(root + "/etc/docker/daemon.json")
	if strings.Contains(string(b), "live-restore") || !strings.Contains(string(b), "registry-mirrors") || !strings.Contains(string(b), "data-root") {
		t.Fatalf("daemon.json:\n%s", b)
	}
}

func TestMalformedDaemonJSONIsLeftAlone(t *testing.T) {
	root := newRoot(t)
	bad := "{\n  \"debug\": true,\n  \"icc\": flase\n}\n"
	writeFile(t, root+"/etc/docker/daemon.json", bad, 0o644)
	cfg := configFor(t, "")
	code, stdout, stderr := dockward(t, "apply", "-c", cfg, "--root", root)
	if code != 4 && code != 6 {
		t.Fatalf("exit %d, want 4 or 6\n%s%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout+stderr, "daemon.json:3:") {
		t.Fatalf("error does not name file:line:\n%s\n%s", stdout, stderr)
	}
	if b, _ := os.ReadFile(root + "/etc/docker/daemon.json"); string(b) != bad {
		t.Fatalf("malformed file rewritten:\n%s", b)
	}
}

func TestInvalidConfigChangesNothing(t *testing.T) {
	root := newRoot(t)
	cfg := filepath.Join(t.TempDir(), "bad.hcl")
	writeFile(t, cfg, "docker_daemon {\n  userns_remap = 5\n  log_opts = { max-size = \"10m\" }\n  bogus = 1\n}\n", 0o600)
	before := snapshot(t, root)
	code, _, stderr := dockward(t, "apply", "-c", cfg, "--root", root)
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s", code, stderr)
	}
	if snapshot(t, root) != before {
		t.Fatal("an invalid configuration changed the tree")
	}
}

func TestPlanJSON(t *testing.T) {
	root := newRoot(t)
	cfg := configFor(t, "")
	code, stdout, _ := dockward(t, "plan", "-c", cfg, "--root", root, "--format", "json")
	var rep struct {
		FormatVersion string `json:"format_version"`
		Modules       []struct {
			ID      string
			Status  string
			Changes []map[string]string
		}
	}
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil || code != 2 {
		t.Fatalf("exit %d: %v\n%s", code, err, stdout)
	}
	if rep.FormatVersion != "1" || len(rep.Modules) != 2 || rep.Modules[0].ID != "subordinate_ids.dockremap" || rep.Modules[1].Status != "changed" {
		t.Fatalf("%+v", rep)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{{}, {"frobnicate"}, {"plan", "--format", "yaml"}, {"plan", "extra"}, {"--log-level", "loud", "version"}} {
		if code, _, _ := dockward(t, args...); code != 1 {
			t.Errorf("%v: exit %d, want 1", args, code)
		}
	}
	code, stdout, _ := dockward(t, "init")
	if code != 0 || !strings.Contains(stdout, "docker_daemon {") {
		t.Fatalf("init: %d", code)
	}
}

// snapshot is the content and mode of every file under root except the
// state directory, as one comparable string.
func snapshot(t *testing.T, root string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if strings.HasPrefix(rel, "var/lib/dockward") {
			return nil
		}
		b.WriteString(rel + " " + fi.Mode().String() + "\n")
		if fi.Mode().IsRegular() {
			data, _ := os.ReadFile(p)
			b.Write(data)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// audit takes junit and sarif as formats (the other commands do not), and a
// configuration that waives an unknown check is refused with "Did you mean".
func TestAuditFormatsAndWaivers(t *testing.T) {
	root := newRoot(t)
	var out, errOut bytes.Buffer
	if code := run([]string{"plan", "--root", root, "--format", "sarif"}, &out, &errOut); code != 1 {
		t.Errorf("plan --format sarif: exit %d, want 1", code)
	}
	for _, format := range []string{"junit", "sarif", "json", "text"} {
		out.Reset()
		errOut.Reset()
		code := run([]string{"audit", "--root", root, "--format", format}, &out, &errOut)
		if code != 0 && code != 4 || out.Len() == 0 {
			t.Errorf("audit --format %s: exit %d, %d bytes\n%s", format, code, out.Len(), errOut.String())
		}
	}
	cfg := filepath.Join(t.TempDir(), "c.hcl")
	writeFile(t, cfg, "audit {\n  waive \"2.133\" { reason = \"x\" }\n}\n", 0o600)
	errOut.Reset()
	if code := run([]string{"audit", "--root", root, "-c", cfg}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), `Did you mean "2.13"?`) {
		t.Errorf("unknown waiver: exit %d\n%s", code, errOut.String())
	}
}
