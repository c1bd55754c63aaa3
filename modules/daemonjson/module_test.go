package daemonjson

import (
	"context"
	"errors"
	"github.com/dockward/dockward/agent/moduletest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/dockward/dockward/agent"
	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"
)

// rootEnv is a --root run on a temporary tree: only files, nothing live.
func rootEnv(t testing.TB) *agent.Env {
	t.Helper()
	root := t.TempDir()
	log, _ := test.NewNullLogger()
	return &agent.Env{Root: root, StateDir: filepath.Join(root, "var/lib/dockward"), Log: logrus.NewEntry(log)}
}

func writeFile(t testing.TB, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func apply(t testing.TB, m agent.Module, env *agent.Env) *agent.Plan {
	t.Helper()
	p := moduletest.Plan(t, m, env)
	if err := m.Apply(context.Background(), env, p); err != nil {
		t.Fatalf("apply: %v", err)
	}
	return p
}

func dirNames(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names
}

func TestApplyThenPlanEmpty(t *testing.T) {
	cases := map[string]string{
		"no file":             "",
		"empty file":          "",
		"unmanaged keys":      `{"debug": true, "storage-driver": "overlay2"}`,
		"managed keys differ": `{"log-driver": "journald", "log-opts": {"max-file": 3}, "icc": true}`,
		"already converged":   "{\n  \"userns-remap\": \"default\"\n}\n",
	}
	for name, existing := range cases {
		t.Run(name, func(t *testing.T) {
			env := rootEnv(t)
			path := env.Path(DefaultPath)
			if name != "no file" {
				writeFile(t, path, existing)
			}
			m := New(mustDecode(t, designExample))
			apply(t, m, env)
			if p := moduletest.Plan(t, m, env); !p.Empty() {
				t.Fatalf("plan after apply: %v", p.Changes)
			}
			// And a fresh module instance (a new run) agrees.
			if p := moduletest.Plan(t, New(mustDecode(t, designExample)), env); !p.Empty() {
				t.Fatalf("plan after apply, new run: %v", p.Changes)
			}
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o644 {
				t.Errorf("mode = %v, want 0644", fi.Mode().Perm())
			}
			if st := fi.Sys().(*syscall.Stat_t); os.Geteuid() == 0 && (st.Uid != 0 || st.Gid != 0) {
				t.Errorf("owner = %d:%d, want 0:0", st.Uid, st.Gid)
			}
		})
	}
}

func TestPlanChangesNothing(t *testing.T) {
	env := rootEnv(t)
	path := env.Path(DefaultPath)
	const existing = `{"debug":true}`
	writeFile(t, path, existing)
	p := moduletest.Plan(t, New(mustDecode(t, designExample)), env)
	if p.Empty() {
		t.Fatal("plan is empty, want changes")
	}
	if got := readFile(t, path); got != existing {
		t.Errorf("plan changed the file: %q", got)
	}
	if _, err := os.Stat(env.StateDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("plan created the state dir: %v", err)
	}
}

func TestUnmanagedKeysKeepValueAndPlace(t *testing.T) {
	env := rootEnv(t)
	path := env.Path(DefaultPath)
	writeFile(t, path, `{"data-root":"/srv/docker","icc":true,"registry-mirrors":["https://m.example"],"mtu":1450.0}`)
	apply(t, New(mustDecode(t, `docker_daemon {
  settings = { icc = false, "live-restore" = true }
}`)), env)
	want := `{
  "data-root": "/srv/docker",
  "icc": false,
  "registry-mirrors": [
    "https://m.example"
  ],
  "mtu": 1450.0,
  "live-restore": true
}
`
	if got := readFile(t, path); got != want {
		t.Errorf("file:\n%s\nwant:\n%s", got, want)
	}
}

func TestFormattingAloneIsNoChange(t *testing.T) {
	env := rootEnv(t)
	path := env.Path(DefaultPath)
	// Managed keys semantically right, written differently; unmanaged keys
	// in odd formatting. Nothing to do, nothing rewritten.
	const existing = "{\"icc\":false,   \"log-opts\":{\"max-file\":\"3\",\"max-size\":\"10m\"},\n\"mtu\": 15e2}"
	writeFile(t, path, existing)
	m := New(mustDecode(t, `docker_daemon {
  log_opts = { max-size = "10m", max-file = 3 }
  settings = { icc = false }
}`))
	if p := moduletest.Plan(t, m, env); !p.Empty() {
		t.Fatalf("plan = %v, want empty", p.Changes)
	}
}

func TestDroppedKeyRemovedOnlyIfOwned(t *testing.T) {
	env := rootEnv(t)
	path := env.Path(DefaultPath)
	// icc was there before dockward; debug and live-restore are added by it.
	writeFile(t, path, `{"icc": false}`)
	apply(t, New(mustDecode(t, `docker_daemon {
  settings = { icc = false, debug = true, "live-restore" = true }
}`)), env)

	// The operator edits live-restore by hand: it is theirs now.
	doc, _ := Parse([]byte(readFile(t, path)))
	for i := range doc.Members {
		if doc.Members[i].Key == "live-restore" {
			doc.Members[i].Value = []byte("false")
		}
	}
	writeFile(t, path, string(Render(doc)))

	// All three dropped from the configuration.
	m := New(mustDecode(t, `docker_daemon {}`))
	p := apply(t, m, env)
	if len(p.Changes) != 1 || p.Changes[0].Target != "debug" || p.Changes[0].Action != agent.Delete {
		t.Fatalf("changes = %v, want only - debug", p.Changes)
	}
	want := "{\n  \"icc\": false,\n  \"live-restore\": false\n}\n"
	if got := readFile(t, path); got != want {
		t.Errorf("file:\n%s\nwant:\n%s", got, want)
	}
	if p := moduletest.Plan(t, m, env); !p.Empty() {
		t.Errorf("plan after apply: %v", p.Changes)
	}
	// Nothing is owned any more: adding debug by hand later is safe.
	owned, err := loadOwned(env.StateDir, DefaultPath)
	if err != nil || len(owned) != 0 {
		t.Errorf("owned = %v, %v; want none", owned, err)
	}
}

func TestOwnershipIsPerFile(t *testing.T) {
	env := rootEnv(t)
	apply(t, New(mustDecode(t, `docker_daemon {
  settings = { debug = true }
}`)), env)
	// Same key in another file: not ours, so dropping it there keeps it.
	other := env.Path("/srv/daemon.json")
	writeFile(t, other, `{"debug": true}`)
	if p := moduletest.Plan(t, New(mustDecode(t, `docker_daemon {
  path = "/srv/daemon.json"
}`)), env); !p.Empty() {
		t.Errorf("plan = %v, want empty", p.Changes)
	}
}

func TestMalformedFileLeftAlone(t *testing.T) {
	env := rootEnv(t)
	path := env.Path(DefaultPath)
	const bad = "{\n  \"debug\": true,\n  \"icc\": tru\n}\n"
	writeFile(t, path, bad)
	m := New(mustDecode(t, designExample))
	_, err := m.Plan(context.Background(), env)
	var fe *FileError
	if !errors.As(err, &fe) {
		t.Fatalf("plan err = %v, want *FileError", err)
	}
	if want := path + ":3:13: "; !strings.HasPrefix(err.Error(), want) {
		t.Errorf("err = %q, want prefix %q", err, want)
	}
	if got := readFile(t, path); got != bad {
		t.Errorf("file changed: %q", got)
	}
}

func TestApplyRefusesFileChangedSincePlan(t *testing.T) {
	env := rootEnv(t)
	path := env.Path(DefaultPath)
	writeFile(t, path, `{"debug": true}`)
	m := New(mustDecode(t, designExample))
	p := moduletest.Plan(t, m, env)
	writeFile(t, path, `{"debug": false}`)
	err := m.Apply(context.Background(), env, p)
	if err == nil || !strings.Contains(err.Error(), "changed since it was planned") {
		t.Fatalf("apply err = %v", err)
	}
	if got := readFile(t, path); got != `{"debug": false}` {
		t.Errorf("file = %q", got)
	}
}

func TestApplyCreatesDirectory(t *testing.T) {
	env := rootEnv(t)
	// A hardened umask must not make /etc/docker unreadable.
	defer syscall.Umask(syscall.Umask(0o077))
	apply(t, New(mustDecode(t, designExample)), env)
	fi, err := os.Stat(filepath.Dir(env.Path(DefaultPath)))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o755 {
		t.Errorf("/etc/docker mode = %v, want 0755", fi.Mode().Perm())
	}
}

func TestSymlinkRefused(t *testing.T) {
	env := rootEnv(t)
	path := env.Path(DefaultPath)
	writeFile(t, env.Path("/srv/real.json"), `{}`)
	os.MkdirAll(filepath.Dir(path), 0o755)
	if err := os.Symlink(env.Path("/srv/real.json"), path); err != nil {
		t.Fatal(err)
	}
	_, err := New(mustDecode(t, designExample)).Plan(context.Background(), env)
	if err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Fatalf("plan err = %v, want a symlink refusal", err)
	}
}

// makeReadOnly makes dir refuse new files, also for root (who ignores
// mode bits): the immutable attribute, on file systems that have it.
func makeReadOnly(t *testing.T, dir string) {
	t.Helper()
	if os.Geteuid() != 0 {
		if err := os.Chmod(dir, 0o555); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Chmod(dir, 0o755) })
		return
	}
	if out, err := exec.Command("chattr", "+i", dir).CombinedOutput(); err != nil {
		t.Skipf("needs chattr +i on the temp dir's file system: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("chattr", "-i", dir).Run() })
}

func TestReadOnlyDirectory(t *testing.T) {
	env := rootEnv(t)
	path := env.Path(DefaultPath)
	const old = `{"debug": true}`
	writeFile(t, path, old)
	makeReadOnly(t, filepath.Dir(path))
	m := New(mustDecode(t, designExample))
	p := moduletest.Plan(t, m, env)
	err := m.Apply(context.Background(), env, p)
	if err == nil || !strings.Contains(err.Error(), "write "+path) {
		t.Fatalf("apply err = %v, want a write error naming %s", err, path)
	}
	if got := readFile(t, path); got != old {
		t.Errorf("file = %q, want the old one", got)
	}
	if names := dirNames(t, filepath.Dir(path)); len(names) != 1 || names[0] != "daemon.json" {
		t.Errorf("directory holds %v, want only daemon.json (no temp file)", names)
	}
	if _, err := os.Stat(filepath.Join(stateDir(env.StateDir), ownedFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("owned keys recorded although nothing was written: %v", err)
	}
}

func TestFullFileSystem(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: mounts a tiny tmpfs")
	}
	env := rootEnv(t)
	dir := filepath.Dir(env.Path(DefaultPath))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=8k", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	path := env.Path(DefaultPath)
	const old = `{"debug": true}`
	writeFile(t, path, old)
	// Fill what is left.
	fill, _ := os.Create(filepath.Join(dir, "fill"))
	for {
		if _, err := fill.Write(make([]byte, 1024)); err != nil {
			break
		}
	}
	fill.Close()

	m := New(mustDecode(t, designExample))
	p := moduletest.Plan(t, m, env)
	if err := m.Apply(context.Background(), env, p); err == nil || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("apply err = %v, want ENOSPC", err)
	}
	if got := readFile(t, path); got != old {
		t.Errorf("file = %q, want the old one", got)
	}
	if names := dirNames(t, dir); len(names) != 2 {
		t.Errorf("directory holds %v, want daemon.json and fill only", names)
	}
}

func TestRollbackRestoresPrevious(t *testing.T) {
	env := rootEnv(t)
	path := env.Path(DefaultPath)
	const old = `{"debug": true}`
	writeFile(t, path, old)
	m := New(mustDecode(t, designExample))
	apply(t, m, env)
	if readFile(t, path) == old {
		t.Fatal("apply did not write")
	}
	if err := m.Rollback(context.Background(), env); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, path); got != old {
		t.Errorf("after rollback file = %q, want %q", got, old)
	}
	// The owned record went back too: nothing was owned before.
	if _, err := os.Stat(filepath.Join(stateDir(env.StateDir), ownedFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("owned record after rollback: %v", err)
	}
	// Applying again converges again.
	apply(t, m, env)
	if p := moduletest.Plan(t, m, env); !p.Empty() {
		t.Errorf("plan = %v", p.Changes)
	}
}

func TestRollbackRestoresOwnedRecord(t *testing.T) {
	env := rootEnv(t)
	path := env.Path(DefaultPath)
	apply(t, New(mustDecode(t, `docker_daemon {
  settings = { debug = true }
}`)), env)
	before := readFile(t, path)
	owned := readFile(t, filepath.Join(stateDir(env.StateDir), ownedFile))

	m := New(mustDecode(t, `docker_daemon {
  settings = { debug = true, icc = false }
}`))
	apply(t, m, env)
	if err := m.Rollback(context.Background(), env); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, path); got != before {
		t.Errorf("file = %q, want %q", got, before)
	}
	if got := readFile(t, filepath.Join(stateDir(env.StateDir), ownedFile)); got != owned {
		t.Errorf("owned = %q, want %q", got, owned)
	}
}

func TestRollbackRemovesNewFile(t *testing.T) {
	env := rootEnv(t)
	path := env.Path(DefaultPath)
	m := New(mustDecode(t, designExample))
	apply(t, m, env)
	if err := m.Rollback(context.Background(), env); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("file after rollback: %v, want it gone (there was none)", err)
	}
}

func TestRollbackWithoutCopy(t *testing.T) {
	env := rootEnv(t)
	err := New(mustDecode(t, designExample)).Rollback(context.Background(), env)
	if err == nil || !strings.Contains(err.Error(), "no last-known-good copy") {
		t.Fatalf("rollback err = %v", err)
	}
}

func TestLastKnownGoodKept(t *testing.T) {
	env := rootEnv(t)
	path := env.Path(DefaultPath)
	const old = `{"debug": true}`
	writeFile(t, path, old)
	apply(t, New(mustDecode(t, designExample)), env)
	if got := readFile(t, filepath.Join(stateDir(env.StateDir), lkgFile)); got != old {
		t.Errorf("last-known-good = %q, want %q", got, old)
	}
	// A no-op run leaves it alone.
	first := readFile(t, path)
	apply(t, New(mustDecode(t, designExample)), env)
	if got := readFile(t, filepath.Join(stateDir(env.StateDir), lkgFile)); got != old {
		t.Errorf("last-known-good after no-op = %q", got)
	}
	if readFile(t, path) != first {
		t.Error("no-op apply rewrote the file")
	}
}

func TestOwnedRecordUnreadableIsSafe(t *testing.T) {
	env := rootEnv(t)
	path := env.Path(DefaultPath)
	writeFile(t, path, `{"debug": true}`)
	writeFile(t, filepath.Join(stateDir(env.StateDir), ownedFile), `{not json`)
	// debug would be removed if owned; with the record unreadable it stays.
	if p := moduletest.Plan(t, New(mustDecode(t, `docker_daemon {}`)), env); !p.Empty() {
		t.Errorf("plan = %v, want empty", p.Changes)
	}
}

// A converged root: plan finds nothing, apply does nothing.
func BenchmarkNoopPlanApply(b *testing.B) {
	env := rootEnv(b)
	writeFile(b, env.Path(DefaultPath), `{"debug": true, "storage-driver": "overlay2", "dns": ["10.0.0.2"]}`)
	m := New(mustDecode(b, designExample))
	apply(b, m, env)
	ctx := context.Background()
	for b.Loop() {
		p, err := m.Plan(ctx, env)
		if err != nil {
			b.Fatal(err)
		}
		if !p.Empty() {
			b.Fatalf("not converged: %v", p.Changes)
		}
		if err := m.Apply(ctx, env, p); err != nil {
			b.Fatal(err)
		}
	}
}

// After a fully successful run the file is committed as verified; a later
// write that corrects a bad hand edit keeps the verified copy, so a failed
// restart rolls back to what docker ran, not to the bad edit.
func TestVerifiedLastKnownGoodSurvivesDrift(t *testing.T) {
	env := rootEnv(t)
	path := env.Path(DefaultPath)
	m := New(mustDecode(t, designExample))
	apply(t, m, env)
	good := readFile(t, path)
	if err := m.Commit(context.Background(), env); err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(good, `"10m"`, `"500m"`, 1)
	if bad == good {
		t.Fatal("test file has no 10m")
	}
	writeFile(t, path, bad)
	apply(t, m, env)
	if got := readFile(t, path); got != good {
		t.Fatalf("apply did not correct the drift: %s", got)
	}
	if err := m.Rollback(context.Background(), env); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, path); got != good {
		t.Errorf("rolled back to %q, want the verified %q", got, good)
	}
}

func TestCommitOfUnchangedFileWritesNothing(t *testing.T) {
	env := rootEnv(t)
	m := New(mustDecode(t, designExample))
	apply(t, m, env)
	var c agent.Committer = m
	if err := c.Commit(context.Background(), env); err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(stateDir(env.StateDir), lkgVerifiedFile)
	fi1, err := os.Stat(marker)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Commit(context.Background(), env); err != nil {
		t.Fatal(err)
	}
	fi2, _ := os.Stat(marker)
	if !os.SameFile(fi1, fi2) {
		t.Error("a commit of the same content rewrote the marker")
	}
}

func TestPermissionDriftIsCorrected(t *testing.T) {
	env := rootEnv(t)
	path := env.Path(DefaultPath)
	m := New(mustDecode(t, designExample))
	apply(t, m, env)
	content := readFile(t, path)
	if err := os.Chmod(path, 0o666); err != nil {
		t.Fatal(err)
	}
	p := moduletest.Plan(t, m, env)
	if len(p.Changes) != 1 || p.Changes[0].Target != "permissions" || !strings.Contains(p.Changes[0].Old, "mode 0666") {
		t.Fatalf("plan = %+v", p.Changes)
	}
	apply(t, m, env)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o644 || readFile(t, path) != content {
		t.Fatalf("mode %o, content changed: %v", fi.Mode().Perm(), readFile(t, path) != content)
	}
	if p := moduletest.Plan(t, m, env); !p.Empty() {
		t.Fatalf("plan after fix = %+v", p.Changes)
	}
}
