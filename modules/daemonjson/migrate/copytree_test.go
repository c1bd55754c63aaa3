package migrate

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// entry is what the test expects of one copied path.
type entry struct {
	mode     fs.FileMode
	uid, gid uint32
	content  string // regular files
	link     string // symlinks
}

// makeTree builds a volume-like tree with owners, special modes, links and
// attributes; it needs root (chown).
func makeTree(t *testing.T, root string) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	write := func(p, s string, mode fs.FileMode, uid, gid int) {
		must(os.WriteFile(filepath.Join(root, p), []byte(s), 0o600))
		must(os.Lchown(filepath.Join(root, p), uid, gid))
		must(os.Chmod(filepath.Join(root, p), mode))
	}
	must(os.Chmod(root, 0o755))
	must(os.Mkdir(filepath.Join(root, "u"), 0o700))
	must(os.Lchown(filepath.Join(root, "u"), 1000, 1000))
	must(os.Mkdir(filepath.Join(root, "shared"), 0o755))
	must(os.Chmod(filepath.Join(root, "shared"), 0o777|fs.ModeSticky|fs.ModeSetgid))
	write("root.txt", "root's\n", 0o640, 0, 0)
	write("u/f", "uid 1000's\n", 0o600, 1000, 1000)
	write("suid", "#!/bin/sh\n", 0o755|fs.ModeSetuid, 0, 0)
	write("far", "outside the range\n", 0o644, 70000, 50)
	must(os.Symlink("root.txt", filepath.Join(root, "link")))
	must(os.Lchown(filepath.Join(root, "link"), 1000, 1000))
	must(os.Symlink("/nonexistent/absolute", filepath.Join(root, "dangling")))
	must(os.Link(filepath.Join(root, "u/f"), filepath.Join(root, "hard")))
	must(unix.Mkfifo(filepath.Join(root, "fifo"), 0o620))
	must(os.Chmod(filepath.Join(root, "fifo"), 0o620)) // past the umask
	if err := unix.Setxattr(filepath.Join(root, "root.txt"), "user.note", []byte("kept"), 0); err != nil && !errors.Is(err, unix.ENOTSUP) {
		t.Fatal(err)
	}
	old := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	must(os.Chtimes(filepath.Join(root, "root.txt"), old, old))
	must(os.Chtimes(filepath.Join(root, "u"), old, old))
}

func TestCopyTree(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the tree has files of several owners")
	}
	enable := Shift{To: remap100k}
	tests := []struct {
		name  string
		shift Shift
		want  map[string]entry
	}{
		{"enable userns-remap", enable, map[string]entry{
			".":        {mode: fs.ModeDir | 0o755, uid: 100000, gid: 100000},
			"root.txt": {mode: 0o640, uid: 100000, gid: 100000, content: "root's\n"},
			"u":        {mode: fs.ModeDir | 0o700, uid: 101000, gid: 101000},
			"u/f":      {mode: 0o600, uid: 101000, gid: 101000, content: "uid 1000's\n"},
			"hard":     {mode: 0o600, uid: 101000, gid: 101000, content: "uid 1000's\n"},
			"suid":     {mode: 0o755 | fs.ModeSetuid, uid: 100000, gid: 100000, content: "#!/bin/sh\n"},
			"far":      {mode: 0o644, uid: 100000 + 65534, gid: 100050, content: "outside the range\n"},
			"shared":   {mode: fs.ModeDir | 0o777 | fs.ModeSticky | fs.ModeSetgid, uid: 100000, gid: 100000},
			"link":     {mode: fs.ModeSymlink | 0o777, uid: 101000, gid: 101000, link: "root.txt"},
			"dangling": {mode: fs.ModeSymlink | 0o777, uid: 100000, gid: 100000, link: "/nonexistent/absolute"},
			"fifo":     {mode: fs.ModeNamedPipe | 0o620, uid: 100000, gid: 100000},
		}},
		{"no shift keeps owners", Shift{}, map[string]entry{
			".":        {mode: fs.ModeDir | 0o755, uid: 0, gid: 0},
			"root.txt": {mode: 0o640, uid: 0, gid: 0, content: "root's\n"},
			"u/f":      {mode: 0o600, uid: 1000, gid: 1000, content: "uid 1000's\n"},
			"far":      {mode: 0o644, uid: 70000, gid: 50, content: "outside the range\n"},
			"link":     {mode: fs.ModeSymlink | 0o777, uid: 1000, gid: 1000, link: "root.txt"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, dst := t.TempDir(), filepath.Join(t.TempDir(), "_data")
			makeTree(t, src)
			st, err := CopyTree(t.Context(), src, dst, tt.shift)
			if err != nil {
				t.Fatal(err)
			}
			checkTree(t, dst, tt.want)
			if st.Files != 4 || st.Hardlinks != 1 || st.Symlinks != 2 || st.Specials != 1 || st.Dirs != 3 {
				t.Errorf("stats %+v: want 4 files, 1 hard link, 2 symlinks, 1 FIFO, 3 directories", st)
			}
			if tt.shift.To.Remapped() && st.Unmapped != 1 {
				t.Errorf("stats: %d unmapped, want 1 (far)", st.Unmapped)
			}
			var a, b syscall.Stat_t
			_ = syscall.Stat(filepath.Join(dst, "u/f"), &a)
			_ = syscall.Stat(filepath.Join(dst, "hard"), &b)
			if a.Ino != b.Ino {
				t.Error("the hard link was copied as a second file")
			}
			if v, err := getXattr(filepath.Join(dst, "root.txt"), "user.note"); err == nil && string(v) != "kept" {
				t.Errorf("user.note = %q", v)
			}
			fi, _ := os.Stat(filepath.Join(dst, "root.txt"))
			if want := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC); !fi.ModTime().Equal(want) {
				t.Errorf("root.txt mtime %v, want %v", fi.ModTime(), want)
			}
			fi, _ = os.Stat(filepath.Join(dst, "u"))
			if want := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC); !fi.ModTime().Equal(want) {
				t.Errorf("u mtime %v, want %v (set after its contents)", fi.ModTime(), want)
			}
			// The source is only read.
			checkTree(t, src, map[string]entry{"root.txt": {mode: 0o640, content: "root's\n"}, "u/f": {mode: 0o600, uid: 1000, gid: 1000, content: "uid 1000's\n"}})
		})
	}
}

// TestCopyTreeAgain copies over an interrupted copy: what is there is
// replaced, whatever kind it was.
func TestCopyTreeAgain(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the tree has files of several owners")
	}
	src, dst := t.TempDir(), t.TempDir()
	makeTree(t, src)
	// Leftovers: a half-written file, a file where a symlink belongs, a
	// symlink where a file belongs (it must not be followed), a FIFO.
	outside := filepath.Join(t.TempDir(), "outside")
	if err := os.WriteFile(outside, []byte("not to be written\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_ = os.WriteFile(filepath.Join(dst, "root.txt"), []byte("ro"), 0o600)
	_ = os.WriteFile(filepath.Join(dst, "link"), []byte("x"), 0o600)
	_ = os.Symlink(outside, filepath.Join(dst, "suid"))
	_ = unix.Mkfifo(filepath.Join(dst, "fifo"), 0o600)
	// A directory replaced by a link to outside: u/f must not land there.
	outsideDir := t.TempDir()
	_ = os.Symlink(outsideDir, filepath.Join(dst, "u"))
	if _, err := CopyTree(t.Context(), src, dst, Shift{To: remap100k}); err != nil {
		t.Fatal(err)
	}
	checkTree(t, dst, map[string]entry{
		"root.txt": {mode: 0o640, uid: 100000, gid: 100000, content: "root's\n"},
		"link":     {mode: fs.ModeSymlink | 0o777, uid: 101000, gid: 101000, link: "root.txt"},
		"suid":     {mode: 0o755 | fs.ModeSetuid, uid: 100000, gid: 100000, content: "#!/bin/sh\n"},
		"fifo":     {mode: fs.ModeNamedPipe | 0o620, uid: 100000, gid: 100000},
	})
	checkTree(t, dst, map[string]entry{
		"u":   {mode: fs.ModeDir | 0o700, uid: 101000, gid: 101000},
		"u/f": {mode: 0o600, uid: 101000, gid: 101000, content: "uid 1000's\n"},
	})
	if ents, _ := os.ReadDir(outsideDir); len(ents) != 0 {
		t.Errorf("the copy wrote through a symlinked directory: %v", ents)
	}
	if b, _ := os.ReadFile(outside); string(b) != "not to be written\n" {
		t.Errorf("a symlink left in the target was followed: %q", b)
	}
}

func TestCopyTreeErrors(t *testing.T) {
	d := t.TempDir()
	f := filepath.Join(d, "file")
	_ = os.WriteFile(f, nil, 0o600)
	if _, err := CopyTree(t.Context(), filepath.Join(d, "missing"), filepath.Join(d, "out"), Shift{}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing source: %v", err)
	}
	if _, err := CopyTree(t.Context(), f, filepath.Join(d, "out"), Shift{}); err == nil {
		t.Error("a file as source: no error")
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := CopyTree(ctx, d, filepath.Join(t.TempDir(), "out"), Shift{}); !errors.Is(err, context.Canceled) {
		t.Errorf("a copy with its context ended: %v", err)
	}
}

func checkTree(t *testing.T, root string, want map[string]entry) {
	t.Helper()
	for p, w := range want {
		full := filepath.Join(root, p)
		fi, err := os.Lstat(full)
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Mode() != w.mode || st.Uid != w.uid || st.Gid != w.gid {
			t.Errorf("%s: %v %d:%d, want %v %d:%d", p, fi.Mode(), st.Uid, st.Gid, w.mode, w.uid, w.gid)
		}
		if w.content != "" {
			if b, err := os.ReadFile(full); err != nil || string(b) != w.content {
				t.Errorf("%s: content %q %v, want %q", p, b, err, w.content)
			}
		}
		if w.link != "" {
			if l, err := os.Readlink(full); err != nil || l != w.link {
				t.Errorf("%s: link %q %v, want %q", p, l, err, w.link)
			}
		}
	}
}
