package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Regression tests for issue 11's file-handling items (2, 3, 5, 6, 9, 10):
// what a hostile --root tree, state directory or umask did to the files
// dockward writes. Each runs the command line on a temp --root tree.

// fileConfig writes a configuration with the given agent block and no
// user creation (useradd is not what these tests are about).
func fileConfig(t *testing.T, agentBlock string) string {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "dockward.hcl")
	src := agentBlock + `
docker_daemon {
  userns_remap = "default"
  log_driver   = "json-file"
  log_opts     = { max-size = "10m", max-file = 3 }
}
subordinate_ids "dockremap" {
  count       = 65536
  create_user = false
}
`
	writeFile(t, cfg, src, 0o600)
	return cfg
}

// outsideDir is a directory outside every --root tree of a test, removed
// afterwards (today's code wrote there).
func outsideDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "dockward-outside-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// dockwardProcess runs the command line in a child process (this test
// binary, re-executed): for umask, which is per process, and for inputs
// that could hang or exhaust the process. A child still running after a
// minute is killed and fails the test: that is a hang, not slowness.
func dockwardProcess(t *testing.T, umask int, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperDockward$")
	cmd.Env = append(os.Environ(), "DOCKWARD_HELPER_ARGS="+strings.Join(args, "\x1f"), "DOCKWARD_HELPER_UMASK="+strconv.Itoa(umask))
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("dockward %s did not end within a minute (hangs)\n%s", strings.Join(args, " "), errb.String())
	}
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, out.String(), errb.String()
}

// TestHelperDockward is the child of dockwardProcess.
func TestHelperDockward(t *testing.T) {
	args := os.Getenv("DOCKWARD_HELPER_ARGS")
	if args == "" {
		t.Skip("only as the child of dockwardProcess")
	}
	if u, err := strconv.Atoi(os.Getenv("DOCKWARD_HELPER_UMASK")); err == nil && u >= 0 {
		syscall.Umask(u)
	}
	// A memory bound, so that reading an endless file fails the child
	// instead of the machine.
	lim := &syscall.Rlimit{Cur: 4 << 30, Max: 4 << 30}
	if err := syscall.Setrlimit(syscall.RLIMIT_AS, lim); err != nil {
		t.Fatal(err)
	}
	os.Exit(run(strings.Split(args, "\x1f"), os.Stdout, os.Stderr))
}

// Item 2: a state_dir climbing out of --root stays inside it.
func TestRootContainsStateDir(t *testing.T) {
	root := newRoot(t)
	out := outsideDir(t)
	climb := "/../../../../../../../../.." + out + "/state"
	cfg := fileConfig(t, fmt.Sprintf("agent {\n  state_dir = %q\n}\n", climb))
	code, stdout, stderr := dockward(t, "apply", "-c", cfg, "--root", root)
	if code != 2 {
		t.Fatalf("apply exit %d, want 2\n%s\n%s", code, stdout, stderr)
	}
	if _, err := os.Lstat(filepath.Join(out, "state")); !os.IsNotExist(err) {
		t.Fatalf("state written outside --root, in %s (err %v)", out, err)
	}
	if _, err := os.Stat(filepath.Join(root, out, "state", "last-report.json")); err != nil {
		t.Fatalf("report not inside --root: %v", err)
	}
}

// Item 2: a symlinked parent directory pointing out of --root is not followed.
func TestRootRefusesParentLinkOut(t *testing.T) {
	root := newRoot(t)
	out := outsideDir(t)
	writeFile(t, out+"/daemon.json", existingDaemonJSON, 0o644)
	if err := os.RemoveAll(root + "/etc/docker"); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(out, root+"/etc/docker"); err != nil {
		t.Fatal(err)
	}
	cfg := fileConfig(t, "")
	code, stdout, stderr := dockward(t, "apply", "-c", cfg, "--root", root)
	if code == 0 || code == 2 {
		t.Fatalf("apply exit %d, want a failure\n%s\n%s", code, stdout, stderr)
	}
	if b, _ := os.ReadFile(out + "/daemon.json"); string(b) != existingDaemonJSON {
		t.Fatalf("the file outside --root was rewritten:\n%s", b)
	}
	if names, _ := os.ReadDir(out); len(names) != 1 {
		t.Fatalf("litter outside --root: %v", names)
	}
}

// Item 2: subuid as a symlink is refused, as daemon.json is, not read
// through and replaced by a regular file.
func TestSubuidSymlinkRefused(t *testing.T) {
	root := newRoot(t)
	writeFile(t, root+"/srv/subuid", existingSubuid, 0o644)
	os.Remove(root + "/etc/subuid")
	if err := os.Symlink("../srv/subuid", root+"/etc/subuid"); err != nil {
		t.Fatal(err)
	}
	cfg := fileConfig(t, "")
	code, stdout, stderr := dockward(t, "plan", "-c", cfg, "--root", root)
	if code != 1 || !strings.Contains(stdout+stderr, "symbolic link") {
		t.Fatalf("plan exit %d, want 1 and a symlink refusal\n%s\n%s", code, stdout, stderr)
	}
	dockward(t, "apply", "-c", cfg, "--root", root)
	if fi, err := os.Lstat(root + "/etc/subuid"); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("the link was replaced: %v %v", fi.Mode(), err)
	}
	if b, _ := os.ReadFile(root + "/srv/subuid"); string(b) != existingSubuid {
		t.Fatalf("the link's target changed:\n%s", b)
	}
}

// Item 3: device files and FIFOs are refused promptly, not read forever.
func TestSpecialFilesRefused(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for mknod")
	}
	cases := []struct {
		file string
		make func(string) error
	}{
		{"etc/subuid", func(p string) error { return syscall.Mknod(p, syscall.S_IFCHR|0o644, 1<<8|5) }}, // /dev/zero
		{"etc/subuid", func(p string) error { return syscall.Mkfifo(p, 0o644) }},
		{"etc/passwd", func(p string) error { return syscall.Mkfifo(p, 0o644) }},
		{"etc/docker/daemon.json", func(p string) error { return syscall.Mkfifo(p, 0o644) }},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			root := newRoot(t)
			p := filepath.Join(root, c.file)
			os.Remove(p)
			if err := c.make(p); err != nil {
				t.Fatal(err)
			}
			cfg := fileConfig(t, "")
			code, stdout, stderr := dockwardProcess(t, -1, "plan", "-c", cfg, "--root", root)
			if code != 1 || !strings.Contains(stdout+stderr, "not a regular file") {
				t.Fatalf("plan exit %d, want 1 and a refusal\n%s\n%s", code, stdout, stderr)
			}
		})
	}
}

// Item 5: the files' modes do not depend on the caller's umask.
func TestModesIgnoreUmask(t *testing.T) {
	root := newRoot(t)
	for _, f := range []string{"/etc/subuid", "/etc/subgid", "/etc/docker"} {
		if err := os.RemoveAll(root + f); err != nil {
			t.Fatal(err)
		}
	}
	cfg := fileConfig(t, "")
	if code, stdout, stderr := dockwardProcess(t, 0o077, "apply", "-c", cfg, "--root", root); code != 2 {
		t.Fatalf("apply exit %d, want 2\n%s\n%s", code, stdout, stderr)
	}
	for f, want := range map[string]os.FileMode{"/etc/docker/daemon.json": 0o644, "/etc/subuid": 0o644, "/etc/subgid": 0o644, "/etc/docker": 0o755, "/var/lib/dockward": 0o700} {
		fi, err := os.Stat(root + f)
		if err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v (%v), want %04o", f, fi.Mode().Perm(), err, want)
		}
	}
	if code, stdout, stderr := dockwardProcess(t, 0o077, "apply", "-c", cfg, "--root", root); code != 0 {
		t.Fatalf("second apply exit %d, want 0\n%s\n%s", code, stdout, stderr)
	}
}

// Item 6: a state directory others can write, or a link, is refused.
func TestUnsafeStateDirRefused(t *testing.T) {
	for _, c := range []struct {
		name  string
		setup func(t *testing.T, root, state string)
		want  string
	}{
		{"world-writable", func(t *testing.T, root, state string) {
			os.MkdirAll(state+"/docker_daemon", 0o700)
			os.Chmod(state, 0o777)
			// A planted record claiming the operator's registry-mirrors.
			writeFile(t, state+"/docker_daemon/owned.json", `{"format_version":"1","path":"/etc/docker/daemon.json","keys":{"registry-mirrors":["https://mirror.internal"]}}`, 0o600)
		}, "writable"},
		{"symlink", func(t *testing.T, root, state string) {
			elsewhere := outsideDir(t)
			os.MkdirAll(filepath.Dir(state), 0o755)
			if err := os.Symlink(elsewhere, state); err != nil {
				t.Fatal(err)
			}
		}, "symbolic link"},
	} {
		t.Run(c.name, func(t *testing.T) {
			root := newRoot(t)
			state := root + "/var/lib/dockward"
			c.setup(t, root, state)
			cfg := fileConfig(t, "")
			for _, cmd := range []string{"plan", "apply"} {
				code, stdout, stderr := dockward(t, cmd, "-c", cfg, "--root", root)
				if code != 1 || !strings.Contains(stderr, c.want) {
					t.Errorf("%s: exit %d, want 1 and %q\n%s\n%s", cmd, code, c.want, stdout, stderr)
				}
			}
			if b, _ := os.ReadFile(root + "/etc/docker/daemon.json"); string(b) != existingDaemonJSON {
				t.Fatalf("daemon.json changed:\n%s", b)
			}
		})
	}
}

// Item 6: links inside the state directory are not followed.
func TestStateDirLinksNotFollowed(t *testing.T) {
	root := newRoot(t)
	out := outsideDir(t)
	state := root + "/var/lib/dockward"
	os.MkdirAll(state, 0o700)
	if err := os.Symlink(out, state+"/docker_daemon"); err != nil {
		t.Fatal(err)
	}
	cfg := fileConfig(t, "")
	dockward(t, "apply", "-c", cfg, "--root", root)
	if names, _ := os.ReadDir(out); len(names) != 0 {
		t.Fatalf("wrote through a link in the state directory: %v", names)
	}
}

// deadPID returns the PID of a process that has exited.
func deadPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

// Item 9: a run cleans what a killed run left: shadow locks of dead
// processes, temp files of atomic writes.
func TestKilledRunLitterCleaned(t *testing.T) {
	root := newRoot(t)
	cfg := fileConfig(t, "")
	if code, stdout, stderr := dockward(t, "apply", "-c", cfg, "--root", root); code != 2 {
		t.Fatalf("apply exit %d\n%s\n%s", code, stdout, stderr)
	}
	pid := deadPID(t)
	p := strconv.Itoa(pid)
	litter := []string{
		"/etc/subuid.lock", "/etc/subgid.lock", "/etc/subuid." + p,
		"/etc/docker/.daemon.json.dockward-" + p + "-1a2b.tmp",
		"/etc/.subgid.dockward-" + p + "-1a2b.tmp",
		"/var/lib/dockward/docker_daemon/.last-known-good.json.dockward-" + p + "-1a2b.tmp",
	}
	for _, l := range litter {
		writeFile(t, root+l, p+"\x00", 0o600)
	}
	// The killed run held the run lock: its PID is in the lock file.
	writeFile(t, root+"/var/lib/dockward/lock", p+"\n", 0o600)
	// Not litter: a lock of a live process, another program's file.
	writeFile(t, root+"/etc/docker/.daemon.json.swp", "x", 0o600)
	if code, stdout, stderr := dockward(t, "apply", "-c", cfg, "--root", root); code != 0 {
		t.Fatalf("converged apply exit %d\n%s\n%s", code, stdout, stderr)
	}
	for _, l := range litter {
		if _, err := os.Lstat(root + l); !os.IsNotExist(err) {
			t.Errorf("%s left behind (%v)", l, err)
		}
	}
	if _, err := os.Stat(root + "/etc/docker/.daemon.json.swp"); err != nil {
		t.Errorf("removed a file that is not dockward's: %v", err)
	}
}

// Item 9: a lock held by a live process is not litter.
func TestLiveShadowLockKept(t *testing.T) {
	root := newRoot(t)
	cfg := fileConfig(t, "")
	dockward(t, "apply", "-c", cfg, "--root", root)
	writeFile(t, root+"/etc/subuid.lock", strconv.Itoa(os.Getppid())+"\x00", 0o600)
	dockward(t, "apply", "-c", cfg, "--root", root)
	if _, err := os.Stat(root + "/etc/subuid.lock"); err != nil {
		t.Fatalf("removed a live process's lock: %v", err)
	}
}

// Item 10: plan creates nothing, not even the lock, not through a link.
func TestPlanCreatesNoLock(t *testing.T) {
	root := newRoot(t)
	out := outsideDir(t)
	state := root + "/var/lib/dockward"
	if err := os.MkdirAll(state, 0o700); err != nil {
		t.Fatal(err)
	}
	cfg := fileConfig(t, "")
	before := fullSnapshot(t, root)
	if code, stdout, stderr := dockward(t, "plan", "-c", cfg, "--root", root); code != 2 {
		t.Fatalf("plan exit %d\n%s\n%s", code, stdout, stderr)
	}
	if after := fullSnapshot(t, root); after != before {
		t.Fatalf("plan changed the tree:\n%s\nwas\n%s", after, before)
	}
	if err := os.Symlink(out+"/lock", state+"/lock"); err != nil {
		t.Fatal(err)
	}
	dockward(t, "plan", "-c", cfg, "--root", root)
	if _, err := os.Lstat(out + "/lock"); !os.IsNotExist(err) {
		t.Fatalf("plan created the lock through a link (%v)", err)
	}
}

// fullSnapshot is snapshot with the state directory.
func fullSnapshot(t *testing.T, root string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		fmt.Fprintf(&b, "%s %s\n", rel, fi.Mode())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// Item 2: run's metrics textfile stays inside --root. A climbing path
// ("/../../x") is refused at decode now (config's metrics_textfile rules),
// so the escape tried here is a directory inside DIR that links out: the
// textfile must not be written through it.
func TestRunMetricsTextfileInsideRoot(t *testing.T) {
	root := newRoot(t)
	out := outsideDir(t)
	climb := strings.Repeat("../", strings.Count(root, "/")+1) + strings.TrimPrefix(out, "/")
	if err := os.Symlink(climb, filepath.Join(root, "srv")); err != nil {
		t.Fatal(err)
	}
	cfg := fileConfig(t, "agent {\n  metrics_textfile = \"/srv/dockward.prom\"\n  watch = false\n  interval = \"1h\"\n}\n")
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperDockward$")
	cmd.Env = append(os.Environ(), "DOCKWARD_HELPER_ARGS="+strings.Join([]string{"run", "-c", cfg, "--root", root}, "\x1f"), "DOCKWARD_HELPER_UMASK=-1")
	errb := &lockedBuffer{}
	cmd.Stderr = errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}()
	// The first converge ends with the textfile written or refused: wait
	// for the one or the other, then look outside.
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(errb.String(), "metrics textfile") {
		if _, err := os.Stat(out + "/dockward.prom"); err == nil {
			t.Fatalf("metrics textfile written outside --root: %s", out+"/dockward.prom")
		}
		if time.Now().After(deadline) {
			t.Fatalf("the metrics textfile was neither written nor refused after a minute\n%s", errb.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := os.Stat(out + "/dockward.prom"); err == nil {
		t.Fatalf("metrics textfile written outside --root: %s", out+"/dockward.prom")
	}
}

// lockedBuffer is a stderr sink a test can read while the child writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// waitFor waits for a file another process makes (the event), failing
// after a minute.
func waitFor(t *testing.T, path string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not appear within a minute", path)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Item 9, as the probe did it: dockward is killed while useradd runs
// (holding the shadow locks of subuid and subgid); useradd finishes on its
// own. The next runs have nothing to write, and must still remove the dead
// run's locks, which a reused PID would make block shadow-utils.
func TestKillDuringUseraddLeavesNoLocks(t *testing.T) {
	root := newRoot(t)
	bin := t.TempDir()
	mark := filepath.Join(t.TempDir(), "useradd")
	// A useradd that says it started, waits to be let go, then adds the
	// user to the tree as the real one would (its last argument).
	script := `#!/bin/sh
touch "$USERADD_MARK.started"
while [ ! -e "$USERADD_MARK.go" ]; do sleep 0.01; done
for a; do name=$a; done
echo "$name:x:999:999::/nonexistent:/usr/sbin/nologin" >> "$2/etc/passwd"
echo "$name:x:999:" >> "$2/etc/group"
touch "$USERADD_MARK.done"
`
	writeFile(t, bin+"/useradd", script, 0o755)
	cfg := filepath.Join(t.TempDir(), "c.hcl")
	writeFile(t, cfg, "docker_daemon {\n  userns_remap = \"default\"\n}\nsubordinate_ids \"dockremap\" {\n  create_user = true\n}\n", 0o600)

	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperDockward$")
	cmd.Env = append(os.Environ(), "DOCKWARD_HELPER_ARGS="+strings.Join([]string{"apply", "-c", cfg, "--root", root}, "\x1f"),
		"DOCKWARD_HELPER_UMASK=-1", "USERADD_MARK="+mark, "PATH="+bin+":"+os.Getenv("PATH"))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, mark+".started")
	for _, l := range []string{"/etc/subuid.lock", "/etc/subgid.lock"} {
		if _, err := os.Stat(root + l); err != nil {
			t.Fatalf("%s not held during useradd: %v", l, err)
		}
	}
	cmd.Process.Kill()
	cmd.Wait()
	writeFile(t, mark+".go", "", 0o600)
	waitFor(t, mark+".done")

	// The first run writes daemon.json, which the killed run did not get
	// to; the second has nothing to do.
	for i, want := range []int{2, 0} {
		if code, stdout, stderr := dockward(t, "apply", "-c", cfg, "--root", root); code != want {
			t.Fatalf("apply %d after the kill: exit %d, want %d\n%s\n%s", i+1, code, want, stdout, stderr)
		}
	}
	for _, l := range []string{"/etc/subuid.lock", "/etc/subgid.lock"} {
		if _, err := os.Lstat(root + l); !os.IsNotExist(err) {
			t.Errorf("%s of the killed run is still there (%v)", l, err)
		}
	}
}

// --root names a tree that must exist: every path resolves inside it.
func TestMissingRootIsAUsageError(t *testing.T) {
	cfg := fileConfig(t, "")
	missing := filepath.Join(t.TempDir(), "missing")
	for _, cmd := range []string{"plan", "apply"} {
		code, _, stderr := dockward(t, cmd, "-c", cfg, "--root", missing)
		if code != 1 || !strings.Contains(stderr, "--root "+missing) {
			t.Errorf("%s: exit %d, stderr %s", cmd, code, stderr)
		}
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Errorf("made the --root tree: %v", err)
	}
	if code, _, _ := dockward(t, "version", "--root", missing); code != 0 {
		t.Errorf("version with a missing --root: exit %d", code)
	}
}

// Item 3's other half: SIGTERM ends a run promptly, also one that waits
// (here for the run lock another run holds).
func TestSigtermEndsAWaitingRun(t *testing.T) {
	root := newRoot(t)
	cfg := fileConfig(t, "")
	if code, stdout, stderr := dockward(t, "apply", "-c", cfg, "--root", root); code != 2 {
		t.Fatalf("apply exit %d\n%s\n%s", code, stdout, stderr)
	}
	f, err := os.OpenFile(root+"/var/lib/dockward/lock", os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperDockward$")
	cmd.Env = append(os.Environ(), "DOCKWARD_HELPER_ARGS="+strings.Join([]string{"apply", "-c", cfg, "--root", root}, "\x1f"), "DOCKWARD_HELPER_UMASK=-1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The event: the run says it waits for the lock.
	buf := make([]byte, 4096)
	var seen strings.Builder
	for !strings.Contains(seen.String(), "waiting up to") {
		n, err := stderr.Read(buf)
		seen.Write(buf[:n])
		if err != nil {
			t.Fatalf("the run ended before it waited: %v\n%s", err, seen.String())
		}
	}
	cmd.Process.Signal(syscall.SIGTERM)
	go io.Copy(io.Discard, stderr)
	err = cmd.Wait()
	if ctx.Err() != nil {
		t.Fatal("SIGTERM did not end the waiting run within a minute")
	}
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() == 0 || ee.ExitCode() == 2 {
		t.Fatalf("exit %v, want a failure: nothing was applied", err)
	}
}
