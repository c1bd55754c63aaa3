package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

// TestVersionSortsForDpkg makes a git history with dist/version.sh's every
// case (no tag yet, a tag, commits after it, a release candidate, uncommitted
// changes) and asks dpkg whether the versions sort in commit order.
func TestVersionSortsForDpkg(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("SKIP: git not installed; dist/version.sh is not tested")
	}
	if _, err := exec.LookPath("dpkg"); err != nil {
		t.Skip("SKIP: dpkg not installed; the .deb version order is not tested")
	}
	script, err := filepath.Abs("../../dist/version.sh")
	if err != nil {
		t.Fatal(err)
	}
	repo := t.TempDir()
	git := func(date string, args ...string) string {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = repo
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_DATE="+date, "GIT_COMMITTER_DATE="+date,
			"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@localhost", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@localhost",
			"GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	versionOf := func() string {
		t.Helper()
		out, err := exec.Command(script, repo).Output()
		if err != nil {
			t.Fatalf("version.sh: %v", err)
		}
		return strings.TrimSpace(string(out))
	}
	n := 0
	commit := func(date string) {
		n++
		writeFile(t, filepath.Join(repo, "f"), strings.Repeat("x", n), 0o644)
		git(date, "add", "f")
		git(date, "commit", "-q", "-m", "c")
	}
	git("", "init", "-q")

	type step struct{ what, version string }
	var steps []step
	record := func(what string) { steps = append(steps, step{what, versionOf()}) }

	commit("2026-01-01T10:00:00+02:00") // 08:00 UTC
	record("first commit, no tag")
	short := git("", "rev-parse", "--short=7", "HEAD")
	if want := "0.0.0~git20260101080000." + short; steps[0].version != want {
		t.Errorf("untagged version %q, want %q (commit time in UTC)", steps[0].version, want)
	}
	commit("2026-01-01T08:00:01Z")
	record("a second later")
	commit("2026-01-02T00:00:00Z")
	git("", "tag", "v0.1.0")
	record("tag v0.1.0")
	if steps[2].version != "0.1.0" {
		t.Errorf("tagged version %q, want 0.1.0", steps[2].version)
	}
	commit("2026-01-03T00:00:00Z")
	record("after v0.1.0")
	writeFile(t, filepath.Join(repo, "f"), "uncommitted", 0o644)
	record("after v0.1.0, uncommitted changes")
	if !strings.HasSuffix(steps[4].version, ".dirty") {
		t.Errorf("uncommitted changes: %q lacks .dirty", steps[4].version)
	}
	commit("2026-01-04T00:00:00Z")
	git("", "tag", "v0.2.0-rc1")
	record("tag v0.2.0-rc1")
	if steps[5].version != "0.2.0~rc1" {
		t.Errorf("release candidate %q, want 0.2.0~rc1", steps[5].version)
	}
	commit("2026-01-05T00:00:00Z")
	record("after v0.2.0-rc1")
	commit("2026-01-06T00:00:00Z")
	record("later still")
	git("", "tag", "v0.2.0")
	record("tag v0.2.0 on it")
	commit("2027-01-01T00:00:00Z")
	record("a year later")

	for _, s := range steps {
		if !regexp.MustCompile(`^[0-9][0-9A-Za-z.+~]*$`).MatchString(s.version) {
			t.Errorf("%s: %q is not a Debian upstream version without a revision", s.what, s.version)
		}
	}
	for i := 1; i < len(steps); i++ {
		a, b := steps[i-1], steps[i]
		cmd := exec.Command("dpkg", "--compare-versions", a.version, "lt", b.version)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil || stderr.Len() > 0 {
			t.Errorf("dpkg does not sort %q (%s) before %q (%s): %v %s", a.version, a.what, b.version, b.what, err, stderr.String())
		}
	}
	t.Logf("versions in commit order: %v", steps)
}

// TestVersionPrintsCommitAndGo sets what the Makefile's LDFLAGS set and
// reads `dockward version` in both formats; the built binary's first line
// is "dockward VERSION" (integration's TestPackage checks it against the
// installed .deb's version).
func TestVersionPrintsCommitAndGo(t *testing.T) {
	mk, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range []string{"-X main.version=$(VERSION)", "-X main.commit=$(COMMIT)", "-X main.commitTime=$(COMMIT_TIME)"} {
		if !bytes.Contains(mk, []byte(x)) {
			t.Errorf("the Makefile's LDFLAGS lack %s", x)
		}
	}
	if code, out, _ := runBin(t, "version"); code != 0 || !regexp.MustCompile(`^dockward \S+\ncommit: +\S.*\ngo: +go`).MatchString(out) {
		t.Errorf("built binary: version exit %d:\n%s", code, out)
	}

	const hash = "58b4e866d20f3c6045e9021b03feee8e37220eff"
	defer func(v, c, ct string) { version, commit, commitTime = v, c, ct }(version, commit, commitTime)
	version, commit, commitTime = "0.0.0~git20261127092518.58b4e86.dirty", hash, "2026-11-27T09:25:18Z"
	code, out, _ := dockward(t, "version")
	want := "dockward 0.0.0~git20261127092518.58b4e86.dirty\n" +
		"commit:   " + hash + " with uncommitted changes (2026-11-27T09:25:18Z)\n" +
		"go:       " + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH + "\n"
	if code != 0 || out != want {
		t.Errorf("version: exit %d\n%s\nwant:\n%s", code, out, want)
	}
	code, out, _ = dockward(t, "version", "--format", "json")
	var v map[string]any
	if err := json.Unmarshal([]byte(out), &v); err != nil || code != 0 {
		t.Fatalf("exit %d: %v\n%s", code, err, out)
	}
	if v["version"] != "0.0.0~git20261127092518.58b4e86.dirty" || v["commit"] != hash || v["commit_time"] != "2026-11-27T09:25:18Z" ||
		v["modified"] != true || v["go"] != runtime.Version() || v["platform"] != runtime.GOOS+"/"+runtime.GOARCH {
		t.Errorf("version --format json: %s", out)
	}
}
