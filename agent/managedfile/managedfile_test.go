package managedfile

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

func write(t *testing.T, path, data string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
}

// roots runs a test on the live system (paths in a temp dir, absolute) and
// under --root (host paths resolved inside the temp dir).
func roots(t *testing.T, f func(t *testing.T, r *Root, host func(string) string)) {
	t.Run("live", func(t *testing.T) {
		dir := t.TempDir()
		r, err := Open("")
		if err != nil {
			t.Fatal(err)
		}
		f(t, r, func(p string) string { return filepath.Join(dir, p) })
	})
	t.Run("root", func(t *testing.T) {
		dir := t.TempDir()
		r, err := Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		// Tests name files by host path; on disk they are under dir
		// (onDisk).
		f(t, r, func(p string) string { return p })
	})
}

// onDisk is where a host path of roots' test lies.
func onDisk(r *Root, p string) string { return r.Path(p) }

func TestReadRefusesLinksAndSpecialFiles(t *testing.T) {
	roots(t, func(t *testing.T, r *Root, host func(string) string) {
		file := host("/etc/subuid")
		write(t, onDisk(r, host("/srv/real")), "a:1:2\n", 0o644)
		os.MkdirAll(filepath.Dir(onDisk(r, file)), 0o755)
		if err := os.Symlink("../srv/real", onDisk(r, file)); err != nil {
			t.Fatal(err)
		}
		_, err := r.Read(file, DefaultLimit)
		var le *LinkError
		if !errors.As(err, &le) || !strings.Contains(err.Error(), "symbolic link to ../srv/real") {
			t.Fatalf("Read of a link = %v, want a LinkError", err)
		}
		// ReadInput follows it (passwd, group: only read).
		if f, err := r.ReadInput(file, DefaultLimit); err != nil || string(f.Data) != "a:1:2\n" {
			t.Fatalf("ReadInput = %v, %v", f, err)
		}
		// Writing over the link is refused too; the link stays.
		if err := r.WriteAtomic(file, []byte("x"), RootOwned(0o644)); !errors.As(err, &le) {
			t.Fatalf("WriteAtomic over a link = %v", err)
		}
		if fi, _ := os.Lstat(onDisk(r, file)); fi.Mode()&fs.ModeSymlink == 0 {
			t.Fatal("the link was replaced")
		}

		fifo := host("/etc/fifo")
		if err := syscall.Mkfifo(onDisk(r, fifo), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, read := range []func(string, int64) (*File, error){r.Read, r.ReadInput} {
			if _, err := read(fifo, DefaultLimit); err == nil || !strings.Contains(err.Error(), "not a regular file (a FIFO)") {
				t.Fatalf("read of a FIFO = %v", err)
			}
		}
		if _, err := r.Read(host("/etc/nothing"), DefaultLimit); err != nil {
			t.Fatalf("missing file: %v", err)
		}
		big := host("/etc/big")
		write(t, onDisk(r, big), strings.Repeat("x", 101), 0o644)
		var tl *TooLargeError
		if _, err := r.Read(big, 100); !errors.As(err, &tl) {
			t.Fatalf("Read over the limit = %v", err)
		}
		if f, err := r.Read(big, 101); err != nil || len(f.Data) != 101 || f.Mode != 0o644 {
			t.Fatalf("Read at the limit = %v, %v", f, err)
		}
	})
}

func TestReadRefusesDevices(t *testing.T) {
	r, _ := Open("")
	if _, err := r.Read("/dev/zero", DefaultLimit); err == nil || !strings.Contains(err.Error(), "character device") {
		t.Fatalf("Read(/dev/zero) = %v", err)
	}
	if _, err := r.ReadInput("/dev/zero", DefaultLimit); err == nil {
		t.Fatal("ReadInput(/dev/zero) read it")
	}
}

func TestRootContainsLinksAndDotDot(t *testing.T) {
	dir := t.TempDir()
	outside := t.TempDir()
	write(t, outside+"/daemon.json", "{}", 0o644)
	os.MkdirAll(dir+"/etc", 0o755)
	if err := os.Symlink(outside, dir+"/etc/docker"); err != nil {
		t.Fatal(err)
	}
	r, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.Read("/etc/docker/daemon.json", DefaultLimit); !errors.Is(err, ErrOutside) {
		t.Fatalf("Read through a link out of the root = %v, want ErrOutside", err)
	}
	if err := r.WriteAtomic("/etc/docker/daemon.json", []byte("x"), RootOwned(0o644)); !errors.Is(err, ErrOutside) {
		t.Fatalf("WriteAtomic through a link out of the root = %v", err)
	}
	if b, _ := os.ReadFile(outside + "/daemon.json"); string(b) != "{}" {
		t.Fatal("the file outside was written")
	}
	// ".." is cleaned as for a chrooted process: it stays in the root.
	if err := r.WriteAtomic("/../../../x", []byte("x"), RootOwned(0o644)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir + "/x"); err != nil {
		t.Fatalf("/../../../x not at the root's top: %v", err)
	}
	if got := Join(dir, "/../../etc/subuid"); got != dir+"/etc/subuid" {
		t.Fatalf("Join = %s", got)
	}
}

func TestWriteAtomicModeOwnerAndNoLitter(t *testing.T) {
	roots(t, func(t *testing.T, r *Root, host func(string) string) {
		p := host("/etc/docker/daemon.json")
		if err := r.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		write(t, onDisk(r, p), "old", 0o600)
		if err := r.WriteAtomic(p, []byte("new"), RootOwned(0o644)); err != nil {
			t.Fatal(err)
		}
		f, err := r.Read(p, DefaultLimit)
		if err != nil || string(f.Data) != "new" || f.Mode != 0o644 {
			t.Fatalf("after write: %+v %v", f, err)
		}
		if os.Geteuid() == 0 && (f.UID != 0 || f.GID != 0) {
			t.Errorf("owner %d:%d", f.UID, f.GID)
		}
		if _, _, ok := Drift(f, RootOwned(0o644)); ok {
			t.Error("drift after a write")
		}
		if old, want, ok := Drift(f, RootOwned(0o640)); !ok || old != "mode 0644" || want != "mode 0640" {
			t.Errorf("Drift = %q %q %v", old, want, ok)
		}
		entries, _ := os.ReadDir(filepath.Dir(onDisk(r, p)))
		if len(entries) != 1 {
			t.Errorf("directory holds %v, want only the file", entries)
		}
		// A failed write (the directory is gone) leaves nothing.
		if err := r.WriteAtomic(host("/nodir/f"), []byte("x"), RootOwned(0o644)); err == nil {
			t.Fatal("write into a missing directory succeeded")
		}
	})
}

func TestCleanTemp(t *testing.T) {
	roots(t, func(t *testing.T, r *Root, host func(string) string) {
		dir := host("/etc")
		os.MkdirAll(onDisk(r, dir), 0o755)
		dead := exec.Command("true")
		if err := dead.Run(); err != nil {
			t.Fatal(err)
		}
		pid := strconv.Itoa(dead.Process.Pid)
		litter := ".subuid.dockward-" + pid + "-abc.tmp"
		mine := TempName("subgid")
		// os.CreateTemp's names for dockerd --validate's candidate parse too.
		candidate := ".candidate.json.dockward-" + pid + "-123456.tmp"
		if p, ok := tempPID(candidate); !ok || strconv.Itoa(p) != pid {
			t.Fatalf("tempPID(%s) = %d %v", candidate, p, ok)
		}
		keep := []string{mine, ".subuid.swp", "subuid", ".subuid.dockward-x-1.tmp"}
		for _, n := range append([]string{litter}, keep...) {
			write(t, onDisk(r, dir+"/"+n), "x", 0o600)
		}
		removed, rest, err := r.CleanTemp(dir)
		if err != nil || len(removed) != 1 || !strings.HasSuffix(removed[0], litter) || len(rest) != len(keep) {
			t.Fatalf("CleanTemp = %v, %v, %v", removed, rest, err)
		}
		for _, n := range keep {
			if _, err := os.Stat(onDisk(r, dir+"/"+n)); err != nil {
				t.Errorf("%s removed: %v", n, err)
			}
		}
	})
}

func TestLastKnownGood(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	sd, err := OpenStateDir("", state, true)
	if err != nil {
		t.Fatal(err)
	}
	defer sd.Close()
	l := &LastKnownGood{State: sd, Copy: "m/lkg", Absent: "m/lkg.absent", Verified: "m/lkg.verified"}
	if _, _, err := l.Restore(); !errors.Is(err, ErrNoCopy) {
		t.Fatalf("Restore without a copy = %v", err)
	}
	if saved, err := l.Save(&File{Path: "/f"}); err != nil || !saved {
		t.Fatal(saved, err)
	}
	if _, existed, err := l.Restore(); err != nil || existed {
		t.Fatalf("Restore after saving a missing file: %v %v", existed, err)
	}
	if _, err := l.Save(&File{Path: "/f", Data: []byte("v1"), Exists: true}); err != nil {
		t.Fatal(err)
	}
	if data, existed, err := l.Restore(); err != nil || !existed || string(data) != "v1" {
		t.Fatalf("Restore = %q %v %v", data, existed, err)
	}
	if err := l.Commit(&File{Path: "/f", Data: []byte("good"), Exists: true}); err != nil {
		t.Fatal(err)
	}
	// The verified copy is kept by Save: what is found before a write may
	// be a bad edit.
	if saved, err := l.Save(&File{Path: "/f", Data: []byte("bad edit"), Exists: true}); err != nil || saved {
		t.Fatal(saved, err)
	}
	if data, _, _ := l.Restore(); string(data) != "good" {
		t.Fatalf("Restore = %q, want the verified copy", data)
	}
	fi, _ := os.Stat(filepath.Join(state, "m/lkg.verified"))
	if err := l.Commit(&File{Path: "/f", Data: []byte("good"), Exists: true}); err != nil {
		t.Fatal(err)
	}
	if fi2, _ := os.Stat(filepath.Join(state, "m/lkg.verified")); !os.SameFile(fi, fi2) {
		t.Error("committing the same content rewrote the marker")
	}
	if fi, _ := os.Stat(filepath.Join(state, "m/lkg")); fi.Mode().Perm() != 0o600 {
		t.Errorf("copy mode %v, want 0600", fi.Mode().Perm())
	}
}

func TestOpenStateDir(t *testing.T) {
	root := t.TempDir()
	state := Join(root, "/var/lib/dockward")
	if _, err := OpenStateDir(root, state, false); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("without create: %v", err)
	}
	if _, err := os.Stat(state); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("made the directory without create")
	}
	sd, err := OpenStateDir(root, state, true)
	if err != nil {
		t.Fatal(err)
	}
	sd.Close()
	if fi, _ := os.Stat(state); fi.Mode().Perm() != 0o700 {
		t.Errorf("created %v, want 0700", fi.Mode().Perm())
	}

	var se *StateDirError
	os.Chmod(state, 0o770)
	if _, err := OpenStateDir(root, state, false); !errors.As(err, &se) || !strings.Contains(err.Error(), "group- or world-writable") {
		t.Errorf("group-writable: %v", err)
	}
	os.Chmod(state, 0o700)
	if os.Geteuid() == 0 {
		os.Chown(state, 1234, 1234)
		if _, err := OpenStateDir(root, state, false); !errors.As(err, &se) || !strings.Contains(err.Error(), "owned by uid 1234") {
			t.Errorf("owned by another user: %v", err)
		}
		os.Chown(state, 0, 0)
	}

	link := Join(root, "/var/lib/link")
	os.Symlink("dockward", link)
	if _, err := OpenStateDir(root, link, true); !errors.As(err, &se) || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("link: %v", err)
	}
	outside := t.TempDir()
	os.Symlink(outside, Join(root, "/srv"))
	if _, err := OpenStateDir(root, Join(root, "/srv/state"), true); err == nil {
		t.Error("made a state directory through a link out of --root")
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Errorf("wrote outside --root: %v", entries)
	}
	if _, err := OpenStateDir(root, "/elsewhere", true); !errors.As(err, &se) {
		t.Errorf("a state directory outside --root: %v", err)
	}
}

// Nothing in the state directory is a link dockward made: one there, even
// pointing inside, was planted, and is not followed.
func TestStateDirFollowsNoLinks(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	sd, err := OpenStateDir("", state, true)
	if err != nil {
		t.Fatal(err)
	}
	defer sd.Close()
	write(t, state+"/other/owned.json", `{"planted":true}`, 0o600)
	if err := os.Symlink("other", state+"/docker_daemon"); err != nil {
		t.Fatal(err)
	}
	var le *LinkError
	if _, err := sd.Read("docker_daemon/owned.json", DefaultLimit); !errors.As(err, &le) {
		t.Errorf("Read through a link in the state directory = %v", err)
	}
	if err := sd.WriteAtomic("docker_daemon/owned.json", []byte("x"), RootOwned(0o600)); !errors.As(err, &le) {
		t.Errorf("WriteAtomic through a link in the state directory = %v", err)
	}
	if err := sd.MkdirAll("docker_daemon", 0o700); err == nil {
		t.Error("MkdirAll accepted a link as a directory")
	}
	if b, _ := os.ReadFile(state + "/other/owned.json"); string(b) != `{"planted":true}` {
		t.Errorf("written through the link: %s", b)
	}
}
