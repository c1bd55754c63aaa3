package subid

import (
	"context"
	"errors"
	"github.com/dockward/dockward/agent/moduletest"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dockward/dockward/agent"
	"github.com/google/go-cmp/cmp"
)

// Other users' lines, written the ways real files are: comments, a blank
// line, a numeric UID entry, a missing final newline.
const (
	basePasswd = "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/bash\n"
	baseGroup  = "root:x:0:\nalice:x:1000:\n"
	baseSubuid = "# local ranges\nalice:100000:65536\n\n1001:231072:65536\n"
	baseSubgid = "alice:100000:65536\n1001:231072:65536"
)

type tree struct {
	root string
	env  *agent.Env
}

// newTree makes a --root tree with the given files (paths relative to it).
func newTree(t testing.TB, files map[string]string) *tree {
	t.Helper()
	root := t.TempDir()
	for rel, content := range files {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	return &tree{root: root, env: &agent.Env{Root: root, StateDir: filepath.Join(root, "var/lib/dockward")}}
}

func baseTree(t testing.TB) *tree {
	return newTree(t, map[string]string{
		"etc/passwd": basePasswd, "etc/group": baseGroup,
		"etc/subuid": baseSubuid, "etc/subgid": baseSubgid,
	})
}

func (tr *tree) read(t testing.TB, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(tr.root, rel))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// snapshot maps every file under the tree to its mode and content, to show
// that something changed nothing, and that no temp or lock file is left.
func (tr *tree) snapshot(t testing.TB) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(tr.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(tr.root, p)
		out[rel] = fi.Mode().String() + " " + string(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// etcNames lists etc/, to catch leftover temp and lock files.
func (tr *tree) etcNames(t testing.TB) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(tr.root, "etc"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// fakeTool writes a stand-in for useradd or userdel: it records its
// arguments in ARGS and runs body with $root (the --root value) and $name
// (the last argument) set.
func fakeTool(t testing.TB, body string) (path, argsFile string) {
	t.Helper()
	dir := t.TempDir()
	path, argsFile = filepath.Join(dir, "tool"), filepath.Join(dir, "args")
	script := "#!/bin/sh\necho \"$@\" >> " + argsFile + "\nroot=\nwhile [ $# -gt 1 ]; do case \"$1\" in --root) root=$2; shift 2;; *) shift;; esac; done\nname=$1\n" + body + "\n"
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path, argsFile
}

const (
	addsUser   = `printf '%s:!:998:998::/home/%s:/usr/sbin/nologin\n' "$name" "$name" >> "$root/etc/passwd"`
	removeUser = `sed -i "/^$name:/d" "$root/etc/passwd"`
)

func newModule(t testing.TB, b *Block) *Module {
	t.Helper()
	m := NewModule(b)
	m.UserAdd, _ = fakeTool(t, addsUser)
	m.UserDel, _ = fakeTool(t, removeUser)
	m.LockWait = 500 * time.Millisecond
	return m
}

func dockremap() *Block { return &Block{User: "dockremap", Count: 65536, CreateUser: true} }

func TestPlanApply(t *testing.T) {
	tests := []struct {
		name     string
		files    map[string]string // over baseTree's
		block    *Block
		changes  []agent.Change
		subuid   string
		subgid   string
		userArgs string // useradd's arguments, "" if it must not run
	}{
		{
			name:  "fresh host",
			block: dockremap(),
			changes: []agent.Change{
				{Action: "+", Target: "/etc/subuid", New: "dockremap:165536:65536"},
				{Action: "+", Target: "/etc/subgid", New: "dockremap:165536:65536"},
				{Action: "+", Target: "user dockremap", Detail: "system user, no login shell, no home, own group (useradd --system)"},
			},
			subuid:   baseSubuid + "dockremap:165536:65536\n",
			subgid:   baseSubgid + "\ndockremap:165536:65536\n",
			userArgs: "--root ROOT --system --no-create-home --shell /usr/sbin/nologin --user-group dockremap",
		},
		{
			name:  "same start in both files when the first free ones differ",
			files: map[string]string{"etc/subgid": "alice:100000:65536\nbob:165536:65536\n"},
			block: dockremap(),
			changes: []agent.Change{
				{Action: "+", Target: "/etc/subuid", New: "dockremap:296608:65536"},
				{Action: "+", Target: "/etc/subgid", New: "dockremap:296608:65536"},
				{Action: "+", Target: "user dockremap", Detail: "system user, no login shell, no home, own group (useradd --system)"},
			},
			subuid:   baseSubuid + "dockremap:296608:65536\n",
			subgid:   "alice:100000:65536\nbob:165536:65536\ndockremap:296608:65536\n",
			userArgs: "--root ROOT --system --no-create-home --shell /usr/sbin/nologin --user-group dockremap",
		},
		{
			name: "user exists, numeric UID entry in subuid, subgid follows it",
			files: map[string]string{
				"etc/passwd": basePasswd + "dockremap:!:998:998::/home/dockremap:/usr/sbin/nologin\n",
				"etc/subuid": baseSubuid + "998:400000:65536\n",
			},
			block:   dockremap(),
			changes: []agent.Change{{Action: "+", Target: "/etc/subgid", New: "dockremap:400000:65536"}},
			subuid:  baseSubuid + "998:400000:65536\n",
			subgid:  baseSubgid + "\ndockremap:400000:65536\n",
		},
		{
			name:  "overlapping and too small entries replaced in place",
			files: map[string]string{"etc/subuid": "dockremap:120000:65536\n" + baseSubuid, "etc/subgid": "dockremap:400000:10\n" + baseSubgid},
			block: dockremap(),
			changes: []agent.Change{
				{Action: "~", Target: "/etc/subuid", Old: "dockremap:120000:65536", New: "dockremap:165536:65536",
					Detail: `line 1: overlaps "alice:100000:65536" (line 3)`},
				{Action: "~", Target: "/etc/subgid", Old: "dockremap:400000:10", New: "dockremap:165536:65536",
					Detail: "line 1: holds 10 IDs, fewer than 65536"},
				{Action: "+", Target: "user dockremap", Detail: "system user, no login shell, no home, own group (useradd --system)"},
			},
			subuid:   "dockremap:165536:65536\n" + baseSubuid,
			subgid:   "dockremap:165536:65536\n" + baseSubgid,
			userArgs: "--root ROOT --system --no-create-home --shell /usr/sbin/nologin --user-group dockremap",
		},
		{
			name:  "group exists: useradd --gid",
			files: map[string]string{"etc/group": baseGroup + "dockremap:x:997:\n"},
			block: &Block{User: "dockremap", Count: 65536, Start: 500000, CreateUser: true},
			changes: []agent.Change{
				{Action: "+", Target: "/etc/subuid", New: "dockremap:500000:65536"},
				{Action: "+", Target: "/etc/subgid", New: "dockremap:500000:65536"},
				{Action: "+", Target: "user dockremap", Detail: "system user, no login shell, no home, in the existing group dockremap (useradd --system)"},
			},
			subuid:   baseSubuid + "dockremap:500000:65536\n",
			subgid:   baseSubgid + "\ndockremap:500000:65536\n",
			userArgs: "--root ROOT --system --no-create-home --shell /usr/sbin/nologin --gid dockremap dockremap",
		},
		{
			name:  "create_user = false",
			block: &Block{User: "dockremap", Count: 65536},
			changes: []agent.Change{
				{Action: "+", Target: "/etc/subuid", New: "dockremap:165536:65536", Detail: "user dockremap does not exist and create_user = false"},
				{Action: "+", Target: "/etc/subgid", New: "dockremap:165536:65536", Detail: "user dockremap does not exist and create_user = false"},
			},
			subuid: baseSubuid + "dockremap:165536:65536\n",
			subgid: baseSubgid + "\ndockremap:165536:65536\n",
		},
		{
			name:  "ranges there from a run that crashed before useradd",
			files: map[string]string{"etc/subuid": baseSubuid + "dockremap:165536:65536\n", "etc/subgid": baseSubgid + "\ndockremap:165536:65536\n"},
			block: dockremap(),
			changes: []agent.Change{
				{Action: "+", Target: "user dockremap", Detail: "system user, no login shell, no home, own group (useradd --system)"},
			},
			subuid:   baseSubuid + "dockremap:165536:65536\n",
			subgid:   baseSubgid + "\ndockremap:165536:65536\n",
			userArgs: "--root ROOT --system --no-create-home --shell /usr/sbin/nologin --user-group dockremap",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := baseTree(t)
			for rel, c := range tt.files {
				if err := os.WriteFile(filepath.Join(tr.root, rel), []byte(c), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			// A mode other than 0644 must survive the rewrite.
			if err := os.Chmod(filepath.Join(tr.root, "etc/subgid"), 0o640); err != nil {
				t.Fatal(err)
			}
			origUID, origGID := tr.read(t, "etc/subuid"), tr.read(t, "etc/subgid")
			m := newModule(t, tt.block)
			var argsFile string
			m.UserAdd, argsFile = fakeTool(t, addsUser)

			before := tr.snapshot(t)
			p := moduletest.Plan(t, m, tr.env)
			if diff := cmp.Diff(tt.changes, p.Changes); diff != "" {
				t.Fatalf("plan (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(before, tr.snapshot(t)); diff != "" {
				t.Fatalf("Plan changed the tree:\n%s", diff)
			}

			if err := m.Apply(context.Background(), tr.env, p); err != nil {
				t.Fatalf("Apply: %v", err)
			}
			if got := tr.read(t, "etc/subuid"); got != tt.subuid {
				t.Errorf("subuid:\n got %q\nwant %q", got, tt.subuid)
			}
			if got := tr.read(t, "etc/subgid"); got != tt.subgid {
				t.Errorf("subgid:\n got %q\nwant %q", got, tt.subgid)
			}
			if fi, _ := os.Stat(filepath.Join(tr.root, "etc/subgid")); fi.Mode().Perm() != 0o640 {
				t.Errorf("subgid mode %v, want 0640 kept", fi.Mode().Perm())
			}
			args, _ := os.ReadFile(argsFile)
			if want := strings.ReplaceAll(tt.userArgs, "ROOT", tr.root); strings.TrimSpace(string(args)) != want {
				t.Errorf("useradd args %q, want %q", strings.TrimSpace(string(args)), want)
			}
			// Last-known-good copies of what changed.
			lkg := filepath.Join(tr.env.StateDir, "subordinate_ids/dockremap")
			for name, orig := range map[string]string{"subuid": origUID, "subgid": origGID} {
				b, err := os.ReadFile(filepath.Join(lkg, name))
				changed := tr.read(t, "etc/"+name) != orig
				if changed && (err != nil || string(b) != orig) {
					t.Errorf("last-known-good %s = %q, %v; want the original", name, b, err)
				}
			}
			if diff := cmp.Diff([]string{"group", "passwd", "subgid", "subuid"}, tr.etcNames(t)); diff != "" {
				t.Errorf("leftover files in etc:\n%s", diff)
			}

			after := tr.snapshot(t)
			if p := moduletest.Plan(t, m, tr.env); !p.Empty() {
				t.Fatalf("plan after apply: %+v", p.Changes)
			}
			// A second apply of an empty plan rewrites nothing.
			if err := m.Apply(context.Background(), tr.env, moduletest.Plan(t, m, tr.env)); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(after, tr.snapshot(t)); diff != "" {
				t.Errorf("second apply changed the tree:\n%s", diff)
			}
		})
	}
}

// TestApplyRealUseradd runs the real useradd --root on a tree.
func TestApplyRealUseradd(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: useradd --root chroots into the tree")
	}
	useradd, err := exec.LookPath("useradd")
	if err != nil {
		t.Skip("needs useradd (shadow-utils passwd package): ", err)
	}
	userdel, err := exec.LookPath("userdel")
	if err != nil {
		t.Skip("needs userdel (shadow-utils passwd package): ", err)
	}
	tr := baseTree(t)
	m := NewModule(dockremap())
	m.UserAdd, m.UserDel = useradd, userdel
	p := moduletest.Plan(t, m, tr.env)
	if len(p.Changes) != 3 {
		t.Fatalf("plan: %+v", p.Changes)
	}
	if err := m.Apply(context.Background(), tr.env, p); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	uid, ok := lookupUID([]byte(tr.read(t, "etc/passwd")), "dockremap")
	if !ok || uid == "" {
		t.Fatalf("no dockremap in passwd:\n%s", tr.read(t, "etc/passwd"))
	}
	for _, l := range strings.Split(tr.read(t, "etc/passwd"), "\n") {
		if strings.HasPrefix(l, "dockremap:") && !strings.HasSuffix(l, ":/usr/sbin/nologin") {
			t.Errorf("dockremap has a login shell: %q", l)
		}
	}
	if !hasName([]byte(tr.read(t, "etc/group")), "dockremap") {
		t.Errorf("no dockremap group")
	}
	if got, want := tr.read(t, "etc/subuid"), baseSubuid+"dockremap:165536:65536\n"; got != want {
		t.Errorf("subuid %q, want %q", got, want)
	}
	if p := moduletest.Plan(t, m, tr.env); !p.Empty() {
		t.Fatalf("plan after apply: %+v", p.Changes)
	}
	for _, f := range []string{"etc/subuid.lock", "etc/subgid.lock"} {
		if _, err := os.Stat(filepath.Join(tr.root, f)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s left behind: %v", f, err)
		}
	}

	// Rollback takes the user away first, then the ranges.
	if err := m.Rollback(context.Background(), tr.env); err != nil {
		t.Fatalf("Rollback: %v", err)
	}
	if _, ok := lookupUID([]byte(tr.read(t, "etc/passwd")), "dockremap"); ok {
		t.Errorf("dockremap still in passwd after rollback")
	}
	if tr.read(t, "etc/subuid") != baseSubuid || tr.read(t, "etc/subgid") != baseSubgid {
		t.Errorf("files not restored by rollback")
	}
}

func TestMalformedFileUntouched(t *testing.T) {
	tr := baseTree(t)
	bad := "alice:100000:65536\n# ok\nbob:165536\n"
	if err := os.WriteFile(filepath.Join(tr.root, "etc/subgid"), []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	m := newModule(t, dockremap())
	before := tr.snapshot(t)
	_, err := m.Plan(context.Background(), tr.env)
	want := filepath.Join(tr.root, "etc/subgid") + ":3: expected name:start:count"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Plan error %v, want it to name %q", err, want)
	}
	// Apply of a plan made before the file went bad fails the same way.
	p := &agent.Plan{Changes: []agent.Change{{Action: "+", Target: "/etc/subuid", New: "dockremap:165536:65536"}}}
	err = m.Apply(context.Background(), tr.env, p)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Apply error %v, want it to name %q", err, want)
	}
	if diff := cmp.Diff(before, tr.snapshot(t)); diff != "" {
		t.Errorf("tree changed:\n%s", diff)
	}
}

func TestUseraddFailsRestoresBoth(t *testing.T) {
	tr := baseTree(t)
	m := newModule(t, dockremap())
	m.UserAdd, _ = fakeTool(t, `echo "useradd: cannot lock /etc/passwd; try again later." >&2; exit 1`)
	before := tr.snapshot(t)
	p := moduletest.Plan(t, m, tr.env)
	err := m.Apply(context.Background(), tr.env, p)
	if err == nil || !strings.Contains(err.Error(), "put back "+filepath.Join(tr.root, "etc/subuid")+" and "+filepath.Join(tr.root, "etc/subgid")+" as they were") {
		t.Fatalf("Apply = %v, want an error saying both files were put back", err)
	}
	if !strings.Contains(err.Error(), "cannot lock /etc/passwd") || !strings.Contains(err.Error(), "exit status 1") {
		t.Errorf("error %q lacks useradd's message", err)
	}
	after := tr.snapshot(t)
	for _, f := range []string{"etc/subuid", "etc/subgid", "etc/passwd", "etc/group"} {
		if before[f] != after[f] {
			t.Errorf("%s not restored:\n was %q\n now %q", f, before[f], after[f])
		}
	}
	if diff := cmp.Diff([]string{"group", "passwd", "subgid", "subuid"}, tr.etcNames(t)); diff != "" {
		t.Errorf("leftover files in etc:\n%s", diff)
	}
	if err := m.Rollback(context.Background(), tr.env); err != nil {
		t.Errorf("Rollback after a rolled-back Apply: %v", err)
	}
}

func TestUseraddSucceedsWithoutUser(t *testing.T) {
	tr := baseTree(t)
	m := newModule(t, dockremap())
	m.UserAdd, _ = fakeTool(t, "exit 0")
	err := m.Apply(context.Background(), tr.env, moduletest.Plan(t, m, tr.env))
	if err == nil || !strings.Contains(err.Error(), "has no user dockremap") || !strings.Contains(err.Error(), "put back") {
		t.Fatalf("Apply = %v", err)
	}
	if tr.read(t, "etc/subuid") != baseSubuid || tr.read(t, "etc/subgid") != baseSubgid {
		t.Errorf("files not restored")
	}
}

func TestSecondWriteFailsRestoresFirst(t *testing.T) {
	tr := baseTree(t)
	m := newModule(t, dockremap())
	var argsFile string
	m.UserAdd, argsFile = fakeTool(t, addsUser)
	gid := filepath.Join(tr.root, "etc/subgid")
	m.writeFile = func(path string, data []byte, perm os.FileMode) error {
		if path == gid && string(data) != baseSubgid { // fail the write, not the restore
			return errors.New("write " + path + ": no space left on device")
		}
		return agent.WriteFileAtomic(path, data, perm)
	}
	err := m.Apply(context.Background(), tr.env, moduletest.Plan(t, m, tr.env))
	if err == nil || !strings.Contains(err.Error(), "no space left") || !strings.Contains(err.Error(), "put back "+filepath.Join(tr.root, "etc/subuid")+" as it was") {
		t.Fatalf("Apply = %v, want the subgid write's error and subuid put back", err)
	}
	if tr.read(t, "etc/subuid") != baseSubuid || tr.read(t, "etc/subgid") != baseSubgid {
		t.Errorf("files not restored")
	}
	if _, err := os.Stat(argsFile); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("useradd ran although the ranges were not written")
	}
}

func TestStalePlan(t *testing.T) {
	tr := baseTree(t)
	m := newModule(t, dockremap())
	p := moduletest.Plan(t, m, tr.env)
	changed := baseSubuid + "bob:165536:65536\n"
	if err := os.WriteFile(filepath.Join(tr.root, "etc/subuid"), []byte(changed), 0o644); err != nil {
		t.Fatal(err)
	}
	before := tr.snapshot(t)
	err := m.Apply(context.Background(), tr.env, p)
	if err == nil || !strings.Contains(err.Error(), "changed since plan") {
		t.Fatalf("Apply = %v", err)
	}
	if diff := cmp.Diff(before, tr.snapshot(t)); diff != "" {
		t.Errorf("tree changed:\n%s", diff)
	}
}

func TestRollback(t *testing.T) {
	tr := baseTree(t)
	m := newModule(t, dockremap())
	if err := m.Rollback(context.Background(), tr.env); err != nil {
		t.Fatalf("Rollback before any Apply: %v", err)
	}
	var delArgs string
	m.UserDel, delArgs = fakeTool(t, removeUser)
	before := tr.snapshot(t)
	if err := m.Apply(context.Background(), tr.env, moduletest.Plan(t, m, tr.env)); err != nil {
		t.Fatal(err)
	}
	if err := m.Rollback(context.Background(), tr.env); err != nil {
		t.Fatalf("Rollback: %v", err)
	}
	after := tr.snapshot(t)
	for _, f := range []string{"etc/subuid", "etc/subgid", "etc/passwd"} {
		if before[f] != after[f] {
			t.Errorf("%s not restored:\n was %q\n now %q", f, before[f], after[f])
		}
	}
	if b, _ := os.ReadFile(delArgs); strings.TrimSpace(string(b)) != "--root "+tr.root+" dockremap" {
		t.Errorf("userdel args %q", b)
	}
	// Only once: a second Rollback has nothing of this run left to undo.
	if err := m.Rollback(context.Background(), tr.env); err != nil {
		t.Fatal(err)
	}
}

func TestRollbackUserdelFailsKeepsRanges(t *testing.T) {
	tr := baseTree(t)
	m := newModule(t, dockremap())
	m.UserDel, _ = fakeTool(t, `echo "userdel: user dockremap is currently used by process 1" >&2; exit 8`)
	if err := m.Apply(context.Background(), tr.env, moduletest.Plan(t, m, tr.env)); err != nil {
		t.Fatal(err)
	}
	applied := tr.snapshot(t)
	err := m.Rollback(context.Background(), tr.env)
	if err == nil || !strings.Contains(err.Error(), "currently used") {
		t.Fatalf("Rollback = %v", err)
	}
	// The user stays, so its ranges must stay too.
	if diff := cmp.Diff(applied, tr.snapshot(t)); diff != "" {
		t.Errorf("tree changed:\n%s", diff)
	}
}

func TestRollbackOfCreatedFiles(t *testing.T) {
	tr := newTree(t, map[string]string{"etc/passwd": basePasswd, "etc/group": baseGroup})
	m := newModule(t, &Block{User: "dockremap", Count: 65536})
	if err := m.Apply(context.Background(), tr.env, moduletest.Plan(t, m, tr.env)); err != nil {
		t.Fatal(err)
	}
	if got := tr.read(t, "etc/subuid"); got != "dockremap:100000:65536\n" {
		t.Fatalf("subuid %q", got)
	}
	if fi, _ := os.Stat(filepath.Join(tr.root, "etc/subuid")); fi.Mode().Perm() != 0o644 {
		t.Errorf("new subuid mode %v, want 0644", fi.Mode().Perm())
	}
	if err := m.Rollback(context.Background(), tr.env); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"group", "passwd"}, tr.etcNames(t)); diff != "" {
		t.Errorf("rollback of files that did not exist:\n%s", diff)
	}
}

// TestReadOnly: a read-only file system fails the run, leaves the old files
// intact and no temp file behind. As root a read-only bind mount is needed
// (root ignores permissions); it is made in a private mount namespace of a
// child process (unshare -m), so the host's mount table is never touched.
func TestReadOnly(t *testing.T) {
	for _, mode := range []string{"dir", "file"} {
		t.Run(mode, func(t *testing.T) {
			tr := baseTree(t)
			before := tr.snapshot(t)
			if os.Geteuid() != 0 {
				if mode == "file" {
					t.Skip("needs root: a read-only mount point over one file")
				}
				etc := filepath.Join(tr.root, "etc")
				if err := os.Chmod(etc, 0o555); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { os.Chmod(etc, 0o755) })
				m := newModule(t, dockremap())
				err := m.Apply(context.Background(), tr.env, moduletest.Plan(t, m, tr.env))
				if err == nil || !strings.Contains(err.Error(), "permission denied") {
					t.Fatalf("Apply = %v", err)
				}
			} else {
				unshare, err := exec.LookPath("unshare")
				if err != nil {
					t.Skip("needs unshare(1) for a private mount namespace: ", err)
				}
				cmd := exec.Command(unshare, "-m", "--propagation", "private", os.Args[0], "-test.run=^TestReadOnlyChild$", "-test.v")
				cmd.Env = append(os.Environ(), "SUBID_RO_ROOT="+tr.root, "SUBID_RO_MODE="+mode)
				out, err := cmd.CombinedOutput()
				if err != nil || !strings.Contains(string(out), "--- PASS: TestReadOnlyChild") {
					t.Fatalf("child: %v\n%s", err, out)
				}
			}
			after := tr.snapshot(t)
			for _, f := range []string{"etc/subuid", "etc/subgid", "etc/passwd", "etc/group"} {
				if before[f] != after[f] {
					t.Errorf("%s changed:\n was %q\n now %q", f, before[f], after[f])
				}
			}
			if diff := cmp.Diff([]string{"group", "passwd", "subgid", "subuid"}, tr.etcNames(t)); diff != "" {
				t.Errorf("leftover files in etc:\n%s", diff)
			}
		})
	}
}

// TestReadOnlyChild is TestReadOnly's child, in its own mount namespace.
func TestReadOnlyChild(t *testing.T) {
	root, mode := os.Getenv("SUBID_RO_ROOT"), os.Getenv("SUBID_RO_MODE")
	if root == "" {
		t.Skip("only run by TestReadOnly, in a private mount namespace")
	}
	target := filepath.Join(root, "etc")
	if mode == "file" {
		target = filepath.Join(root, "etc/subgid")
	}
	if err := syscall.Mount(target, target, "", syscall.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("", target, "", syscall.MS_REMOUNT|syscall.MS_BIND|syscall.MS_RDONLY, ""); err != nil {
		t.Fatal(err)
	}
	tr := &tree{root: root, env: &agent.Env{Root: root, StateDir: filepath.Join(root, "var/lib/dockward")}}
	m := newModule(t, dockremap())
	err := m.Apply(context.Background(), tr.env, moduletest.Plan(t, m, tr.env))
	t.Logf("Apply: %v", err)
	switch mode {
	case "dir": // the lock cannot even be taken
		if err == nil || !strings.Contains(err.Error(), "read-only file system") || strings.Contains(err.Error(), "put back") {
			t.Fatalf("Apply = %v", err)
		}
	case "file": // subuid written, subgid's rename refused, subuid put back
		if err == nil || !strings.Contains(err.Error(), "write "+target) || !strings.Contains(err.Error(), "put back "+filepath.Join(root, "etc/subuid")) {
			t.Fatalf("Apply = %v, want subgid's write error and subuid put back", err)
		}
	}
}

func TestLockFile(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	file := filepath.Join(dir, "subuid")
	lockPath := file + ".lock"

	t.Run("take and release", func(t *testing.T) {
		l, err := lockFile(ctx, file, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(lockPath)
		if want := strconv.Itoa(os.Getpid()) + "\x00"; string(b) != want {
			t.Errorf("lock content %q, want %q (PID and NUL, as shadow-utils writes)", b, want)
		}
		if _, err := os.Stat(file + "." + strconv.Itoa(os.Getpid())); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("FILE.PID left behind")
		}
		// Held by us, a live process: a second taker waits, then gives up.
		if _, err := lockFile(ctx, file, 200*time.Millisecond); err == nil || !strings.Contains(err.Error(), "held by running process") {
			t.Errorf("second lock = %v", err)
		}
		if err := l.unlock(); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(lockPath); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("lock not removed")
		}
	})

	t.Run("held by another live process", func(t *testing.T) {
		sleep := exec.Command("sleep", "60")
		if err := sleep.Start(); err != nil {
			t.Skip("needs sleep(1): ", err)
		}
		t.Cleanup(func() { sleep.Process.Kill(); sleep.Wait() })
		content := strconv.Itoa(sleep.Process.Pid) + "\x00"
		writeLock(t, lockPath, content)
		start := time.Now()
		_, err := lockFile(ctx, file, 300*time.Millisecond)
		if err == nil || !strings.Contains(err.Error(), "held by running process "+strconv.Itoa(sleep.Process.Pid)) {
			t.Fatalf("lockFile = %v", err)
		}
		if time.Since(start) < 300*time.Millisecond {
			t.Errorf("gave up before the wait was over")
		}
		if b, _ := os.ReadFile(lockPath); string(b) != content {
			t.Errorf("someone else's lock was touched: %q", b)
		}
		// Released while we wait: we get it.
		go func() { time.Sleep(200 * time.Millisecond); os.Remove(lockPath) }()
		l, err := lockFile(ctx, file, 5*time.Second)
		if err != nil {
			t.Fatalf("lock after release: %v", err)
		}
		l.unlock()
	})

	t.Run("stale lock of a dead process", func(t *testing.T) {
		dead := exec.Command("true")
		if err := dead.Run(); err != nil {
			t.Skip("needs true(1): ", err)
		}
		writeLock(t, lockPath, strconv.Itoa(dead.Process.Pid)+"\x00")
		l, err := lockFile(ctx, file, time.Second)
		if err != nil {
			t.Fatalf("stale lock not taken over: %v", err)
		}
		if b, _ := os.ReadFile(lockPath); string(b) != strconv.Itoa(os.Getpid())+"\x00" {
			t.Errorf("lock content %q", b)
		}
		l.unlock()
	})

	t.Run("lock without a PID", func(t *testing.T) {
		for _, c := range []string{"", "garbage", "0\x00", "-1\x00"} {
			writeLock(t, lockPath, c)
			_, err := lockFile(ctx, file, time.Second)
			if err == nil || !strings.Contains(err.Error(), "without a valid PID") {
				t.Errorf("content %q: lockFile = %v", c, err)
			}
			if b, _ := os.ReadFile(lockPath); string(b) != c {
				t.Errorf("invalid lock %q was touched", c)
			}
		}
		os.Remove(lockPath)
	})

	t.Run("context cancelled while waiting", func(t *testing.T) {
		writeLock(t, lockPath, strconv.Itoa(os.Getpid())+"\x00")
		defer os.Remove(lockPath)
		cctx, cancel := context.WithCancel(ctx)
		go func() { time.Sleep(100 * time.Millisecond); cancel() }()
		_, err := lockFile(cctx, file, time.Minute)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("lockFile = %v, want context.Canceled", err)
		}
	})
}

func writeLock(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestApplyWaitsForHeldLock: a useradd running elsewhere holds subgid's
// lock; Apply gives up after LockWait, changes nothing, and releases the
// subuid lock it took.
func TestApplyWaitsForHeldLock(t *testing.T) {
	tr := baseTree(t)
	sleep := exec.Command("sleep", "60")
	if err := sleep.Start(); err != nil {
		t.Skip("needs sleep(1): ", err)
	}
	t.Cleanup(func() { sleep.Process.Kill(); sleep.Wait() })
	writeLock(t, filepath.Join(tr.root, "etc/subgid.lock"), strconv.Itoa(sleep.Process.Pid)+"\x00")
	m := newModule(t, dockremap())
	m.LockWait = 200 * time.Millisecond
	before := tr.snapshot(t)
	err := m.Apply(context.Background(), tr.env, moduletest.Plan(t, m, tr.env))
	if err == nil || !strings.Contains(err.Error(), "subgid.lock is held by running process") {
		t.Fatalf("Apply = %v", err)
	}
	if diff := cmp.Diff(before, tr.snapshot(t)); diff != "" {
		t.Errorf("tree changed:\n%s", diff)
	}
}

// BenchmarkPlanConverged is the no-op plan a converged host costs each run.
func BenchmarkPlanConverged(b *testing.B) {
	tr := baseTree(b)
	m := newModule(b, dockremap())
	if err := m.Apply(context.Background(), tr.env, moduletest.Plan(b, m, tr.env)); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		p, err := m.Plan(context.Background(), tr.env)
		if err != nil || !p.Empty() {
			b.Fatalf("%v %v", err, p)
		}
	}
}
