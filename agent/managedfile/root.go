// Package managedfile is the one layer through which dockward reads and
// writes the files it owns on the host (daemon.json, subuid, subgid, ...) and
// its own state directory: paths resolved inside --root, reads that refuse
// links and special files and cap what they read, writes that are atomic and
// get a fixed mode and owner whatever the umask, mode/owner drift, the
// last-known-good copies that rollback restores, and the cleanup of what a
// killed run left behind. docs/managed-files.md describes it for module
// authors.
//
// Paths are always host paths ("/etc/subuid"). A Root maps them onto the
// live system or, under --root DIR, into DIR through an os.Root, so that no
// path, ".." or symbolic link resolves outside DIR.
package managedfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// Root is where host paths resolve: the live system, or --root DIR.
type Root struct {
	dir string   // "" for the live system; else the absolute --root or state directory
	r   *os.Root // nil for the live system
	// noLinks refuses a link anywhere inside, not only at a path's end
	// (the state directory: everything in it is dockward's own).
	noLinks bool
	// plain holds the directories of a noLinks Root found not to be links,
	// so that each is checked once while the Root is open (a Root is
	// opened for one operation or one run and used by one goroutine).
	plain map[string]bool
	// dirs holds the directories opened by in, until Close.
	dirs map[string]*os.Root
}

// Open returns the Root for --root dir ("" is the live system). Close it.
func Open(dir string) (*Root, error) {
	if dir == "" {
		return &Root{}, nil
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	r, err := os.OpenRoot(abs)
	if err != nil {
		return nil, fmt.Errorf("open --root %s: %w", dir, err)
	}
	return &Root{dir: abs, r: r}, nil
}

// Close releases the directory a Root holds open.
func (r *Root) Close() error {
	if r == nil || r.r == nil {
		return nil
	}
	for _, d := range r.dirs {
		d.Close()
	}
	r.dirs = nil
	return r.r.Close()
}

// Live reports whether r is the live system.
func (r *Root) Live() bool { return r.r == nil }

// Join maps a host path under --root dir as the command line shows it: the
// path is cleaned as an absolute path first, so "/../../x" is "/x", as it is
// for a process chrooted into dir. It only joins strings; opening through a
// Root is what keeps links from leading out of dir.
func Join(dir, name string) string {
	name = filepath.Clean("/" + name)
	if dir == "" {
		return name
	}
	return filepath.Join(dir, name)
}

// Path is the path to show in messages for a host path name.
func (r *Root) Path(name string) string { return Join(r.dir, name) }

// rel is name relative to the os.Root, or the absolute path on the live system.
func (r *Root) rel(name string) string {
	if !strings.HasPrefix(name, "/") {
		name = "/" + name
	}
	c := filepath.Clean(name) // no allocation when already clean
	if r.r == nil {
		return c
	}
	if c == "/" {
		return "."
	}
	return c[1:]
}

// plainParents refuses, in a noLinks Root, a link among name's parent
// directories (os.Root would follow it while it stays inside).
func (r *Root) plainParents(name string) error {
	if !r.noLinks {
		return nil
	}
	rel := r.rel(name)
	for d := filepath.Dir(rel); d != "." && d != "/" && !r.plain[d]; d = filepath.Dir(d) {
		fi, err := r.r.Lstat(d)
		if err != nil {
			return nil // the operation itself reports it
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			return &LinkError{Path: r.Path(d), Target: r.readlink(d)}
		}
		if fi.IsDir() {
			if r.plain == nil {
				r.plain = map[string]bool{}
			}
			r.plain[d] = true
		}
	}
	return nil
}

// in resolves name's directory once per Root (an os.Root on it, kept until
// Close), so that each operation on the files of a directory is one system
// call instead of a walk from the top. On the live system it returns nil
// and the absolute path.
func (r *Root) in(name string) (*os.Root, string, error) {
	rel := r.rel(name)
	if r.r == nil {
		return nil, rel, nil
	}
	if err := r.plainParents(name); err != nil {
		return nil, "", err
	}
	dir, base := filepath.Dir(rel), filepath.Base(rel)
	if dir == "." {
		return r.r, rel, nil
	}
	if d := r.dirs[dir]; d != nil {
		return d, base, nil
	}
	d, err := r.r.OpenRoot(dir)
	if err != nil {
		return r.r, rel, nil // the walk from the top reports the error
	}
	if r.dirs == nil {
		r.dirs = map[string]*os.Root{}
	}
	r.dirs[dir] = d
	return d, base, nil
}

func (r *Root) lstat(name string) (fs.FileInfo, error) {
	d, n, err := r.in(name)
	if err != nil {
		return nil, err
	}
	if d == nil {
		return os.Lstat(n)
	}
	fi, err := d.Lstat(n)
	return fi, r.outside(err)
}

func (r *Root) openFile(name string, flag int, perm fs.FileMode) (*os.File, error) {
	d, n, err := r.in(name)
	if err != nil {
		return nil, err
	}
	if d == nil {
		return os.OpenFile(n, flag, perm)
	}
	f, err := d.OpenFile(n, flag, perm)
	if r.viaTop(d, err) {
		f, err = r.r.OpenFile(r.rel(name), flag, perm)
	}
	return f, r.outside(err)
}

// viaTop reports an operation that followed a link out of a directory's
// os.Root (in): the link may still stay inside the Root, so the operation
// is done again from the top.
func (r *Root) viaTop(d *os.Root, err error) bool { return d != r.r && isOutside(err) }

// two resolves two names for rename and link: in one directory's os.Root
// when they share it, else from the top.
func (r *Root) two(a, b string) (*os.Root, string, string, error) {
	da, na, err := r.in(a)
	if err != nil {
		return nil, "", "", err
	}
	db, nb, err := r.in(b)
	if err != nil {
		return nil, "", "", err
	}
	if da != db {
		return r.r, r.rel(a), r.rel(b), nil
	}
	return da, na, nb, nil
}

func (r *Root) rename(from, to string) error {
	d, nf, nt, err := r.two(from, to)
	if err != nil {
		return err
	}
	if d == nil {
		return os.Rename(nf, nt)
	}
	return r.outside(d.Rename(nf, nt))
}

func (r *Root) remove(name string) error {
	d, n, err := r.in(name)
	if err != nil {
		return err
	}
	if d == nil {
		return os.Remove(n)
	}
	return r.outside(d.Remove(n))
}

func (r *Root) mkdir(name string, perm fs.FileMode) error {
	d, n, err := r.in(name)
	if err != nil {
		return err
	}
	if d == nil {
		return os.Mkdir(n, perm)
	}
	return r.outside(d.Mkdir(n, perm))
}

// Link makes newname a hard link to oldname (shadow-utils' lock protocol).
func (r *Root) Link(oldname, newname string) error {
	d, no, nn, err := r.two(oldname, newname)
	if err != nil {
		return err
	}
	if d == nil {
		return os.Link(no, nn)
	}
	return r.outside(d.Link(no, nn))
}

// Lstat describes name without following a final link.
func (r *Root) Lstat(name string) (fs.FileInfo, error) { return r.lstat(name) }

// Exists reports whether name exists (as anything, a link included).
func (r *Root) Exists(name string) (bool, error) {
	_, err := r.lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

// Remove removes name; a missing name is no error.
func (r *Root) Remove(name string) error {
	err := r.remove(name)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", r.Path(name), err)
	}
	return nil
}

// OpenFile opens name with the given flags, never following a final link
// (O_NOFOLLOW: a link there is an error, ELOOP), for callers with their own
// protocol on a file (the shadow-utils lock files).
func (r *Root) OpenFile(name string, flag int, perm fs.FileMode) (*os.File, error) {
	return r.openNoFollow(name, flag, perm)
}

// openNoFollow opens name and makes sure that what it opened is the file
// at name itself, not what a link there points to: os.Root resolves links
// inside the root even with O_NOFOLLOW, so the check is done here, before
// (Lstat) and after (the opened file's device and inode against Lstat's).
func (r *Root) openNoFollow(name string, flag int, perm fs.FileMode) (*os.File, error) {
	fi, err := r.lstat(name)
	if err == nil && fi.Mode()&fs.ModeSymlink != 0 {
		return nil, &LinkError{Path: r.Path(name), Target: r.readlink(name)}
	}
	if err != nil {
		fi = nil // created by the open, or an error the open reports
	}
	return r.openSame(name, flag, perm, fi)
}

// openSame opens name and checks that the file opened is before, what an
// Lstat of name returned (or, when before is nil, what an Lstat returns
// after the open): a link or another file put in its place meanwhile is
// refused.
func (r *Root) openSame(name string, flag int, perm fs.FileMode, before fs.FileInfo) (*os.File, error) {
	f, err := r.openFile(name, flag|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, perm)
	if err != nil {
		return nil, refineLinkErr(r, name, err)
	}
	ofi, err := f.Stat()
	if err == nil && before == nil {
		before, err = r.lstat(name)
	}
	if err == nil && !os.SameFile(ofi, before) {
		err = fmt.Errorf("%s changed while it was opened (a link or another file put in its place)", r.Path(name))
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// MkdirAll creates name and its missing parents with mode perm, set by
// chmod so that the umask does not decide it. An existing component that is
// a link to a directory is followed on the live system (an operator's
// /etc/docker -> /srv/docker layout is theirs) and, under --root, only
// while it stays inside the root.
func (r *Root) MkdirAll(name string, perm fs.FileMode) error {
	c := filepath.Clean("/" + name)
	if c == "/" {
		return nil
	}
	if fi, err := r.stat(c); err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("mkdir %s: not a directory", r.Path(c))
		}
		return nil
	}
	if err := r.MkdirAll(filepath.Dir(c), perm); err != nil {
		return err
	}
	if err := r.mkdir(c, perm); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil
		}
		return fmt.Errorf("mkdir %s: %w", r.Path(c), err)
	}
	if err := r.chmod(c, perm); err != nil {
		return fmt.Errorf("mkdir %s: %w", r.Path(c), err)
	}
	return nil
}

func (r *Root) stat(name string) (fs.FileInfo, error) {
	if r.noLinks {
		return r.lstat(name) // follows nothing
	}
	d, n, err := r.in(name)
	if err != nil {
		return nil, err
	}
	if d == nil {
		return os.Stat(n)
	}
	fi, err := d.Stat(n)
	if r.viaTop(d, err) {
		fi, err = r.r.Stat(r.rel(name))
	}
	return fi, r.outside(err)
}

func (r *Root) chmod(name string, perm fs.FileMode) error {
	d, n, err := r.in(name)
	if err != nil {
		return err
	}
	if d == nil {
		return os.Chmod(n, perm)
	}
	err = d.Chmod(n, perm)
	if r.viaTop(d, err) {
		err = r.r.Chmod(r.rel(name), perm)
	}
	return r.outside(err)
}

// SyncDir fsyncs the directory name so that a rename or removal inside it
// is durable.
func (r *Root) SyncDir(name string) error {
	d, err := r.openFile(name, os.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("fsync %s: %w", r.Path(name), err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", r.Path(name), err)
	}
	return nil
}

// ReadDir lists the directory name.
func (r *Root) ReadDir(name string) ([]fs.DirEntry, error) {
	d, err := r.openFile(name, os.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return d.ReadDir(-1)
}

// refineLinkErr turns the ELOOP of O_NOFOLLOW on a link into a LinkError.
func refineLinkErr(r *Root, name string, err error) error {
	fi, lerr := r.lstat(name)
	if lerr == nil && fi.Mode()&fs.ModeSymlink != 0 {
		return &LinkError{Path: r.Path(name), Target: r.readlink(name)}
	}
	return err
}

func (r *Root) readlink(name string) string {
	d, n, err := r.in(name)
	var t string
	if err == nil && d == nil {
		t, err = os.Readlink(n)
	} else if err == nil {
		t, err = d.Readlink(n)
	}
	if err != nil {
		return "?"
	}
	return t
}

// LinkError is a managed file that is a symbolic link. dockward refuses
// it on the live system and under --root alike: its atomic write renames a
// new file over the path, which would replace the link by a file and leave
// the link's target stale, and under --root the target may lie outside.
type LinkError struct {
	Path   string
	Target string
}

func (e *LinkError) Error() string {
	return fmt.Sprintf("%s: it is a symbolic link to %s; dockward manages the file itself, not a link (replace the link by the file, or set the path to it)", e.Path, e.Target)
}

// isOutside reports an os.Root error for a path leaving the root (os
// does not export it).
func isOutside(err error) bool {
	return err != nil && strings.Contains(err.Error(), "path escapes from parent")
}

// ErrOutside is a path that would resolve outside the root: a ".." or a
// link (absolute, or climbing out) in it.
var ErrOutside = errors.New("a link or \"..\" in the path leads outside the root")

// outside says so for os.Root's terse error.
func (r *Root) outside(err error) error {
	if isOutside(err) {
		return fmt.Errorf("%w %s; refusing to follow it", ErrOutside, r.dir)
	}
	return err
}
