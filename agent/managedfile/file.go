package managedfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Perm is the mode and owner a managed file must have. The owner is only
// set, and only compared, when dockward runs as root: unprivileged test
// runs keep their own.
type Perm struct {
	Mode     fs.FileMode
	UID, GID int
}

// RootOwned is mode with owner root:root, what every file dockward manages
// so far wants: root daemons read them, only root writes them.
func RootOwned(mode fs.FileMode) Perm { return Perm{Mode: mode} }

// File is a managed file as read.
type File struct {
	Path     string // as messages show it (under --root: joined with it)
	Data     []byte
	Exists   bool
	Mode     fs.FileMode // permission bits
	UID, GID int
}

// DefaultLimit caps what Read reads of a configuration-sized file: far
// above any real daemon.json or subuid, far below harm.
const DefaultLimit = 4 << 20

// TooLargeError is a file larger than what its reader accepts.
type TooLargeError struct {
	Path  string
	Limit int64
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("read %s: larger than %d bytes, more than such a file ever holds; refusing it", e.Path, e.Limit)
}

// Read reads the managed file name, at most limit bytes. A missing file is
// no error (File.Exists is false). It refuses a symbolic link (LinkError)
// and anything but a regular file: a FIFO would block the read forever and
// a device never end, so the file is checked before it is opened, opened
// non-blocking, and checked again through the open descriptor.
func (r *Root) Read(name string, limit int64) (*File, error) {
	f := &File{Path: r.Path(name)}
	fi, err := r.lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return f, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", f.Path, err)
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		return nil, &LinkError{Path: f.Path, Target: r.readlink(name)}
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("read %s: not a regular file (%s)", f.Path, kind(fi.Mode()))
	}
	fd, err := r.openSame(name, os.O_RDONLY|syscall.O_NONBLOCK, 0, fi)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", f.Path, err)
	}
	defer fd.Close()
	return f, readOpen(f, fd, limit)
}

// ReadInput reads a file dockward only reads (/etc/passwd, /etc/group):
// as Read, but a link is followed (under --root only inside the root).
func (r *Root) ReadInput(name string, limit int64) (*File, error) {
	f := &File{Path: r.Path(name)}
	fi, err := r.stat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return f, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", f.Path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("read %s: not a regular file (%s)", f.Path, kind(fi.Mode()))
	}
	fd, err := r.openFile(name, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", f.Path, err)
	}
	defer fd.Close()
	return f, readOpen(f, fd, limit)
}

func readOpen(f *File, fd *os.File, limit int64) error {
	fi, err := fd.Stat()
	if err != nil {
		return fmt.Errorf("read %s: %w", f.Path, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("read %s: not a regular file (%s)", f.Path, kind(fi.Mode()))
	}
	if fi.Size() > limit {
		return &TooLargeError{Path: f.Path, Limit: limit}
	}
	// As os.ReadFile: one buffer of the size fstat gave (plus one byte to
	// see the end), grown only if the file grew meanwhile, up to limit.
	data := make([]byte, 0, fi.Size()+1)
	for {
		if len(data) == cap(data) {
			data = append(data, 0)[:len(data)]
		}
		n, err := fd.Read(data[len(data):cap(data)])
		data = data[:len(data)+n]
		if int64(len(data)) > limit {
			return &TooLargeError{Path: f.Path, Limit: limit}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", f.Path, err)
		}
	}
	f.Data, f.Exists, f.Mode = data, true, fi.Mode().Perm()
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		f.UID, f.GID = int(st.Uid), int(st.Gid)
	}
	return nil
}

func kind(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m.IsDir():
		return "a directory"
	}
	return m.Type().String()
}

// Drift compares a file's mode and owner with p. It returns what is and
// what should be, for a plan's change, or ok false when they agree or the
// file does not exist.
func Drift(f *File, p Perm) (old, want string, ok bool) {
	if f == nil || !f.Exists {
		return "", "", false
	}
	var o, w []string
	if f.Mode != p.Mode.Perm() {
		o = append(o, fmt.Sprintf("mode %04o", f.Mode))
		w = append(w, fmt.Sprintf("mode %04o", p.Mode.Perm()))
	}
	if os.Geteuid() == 0 && (f.UID != p.UID || f.GID != p.GID) {
		o = append(o, fmt.Sprintf("owner %d:%d", f.UID, f.GID))
		w = append(w, fmt.Sprintf("owner %d:%d", p.UID, p.GID))
	}
	if len(o) == 0 {
		return "", "", false
	}
	return strings.Join(o, ", "), strings.Join(w, ", "), true
}

// FixPerm sets the mode and owner of the managed file name in place,
// through its descriptor (never through a link).
func (r *Root) FixPerm(name string, p Perm) error {
	f, err := r.openNoFollow(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return fmt.Errorf("chmod %s: %w", r.Path(name), err)
	}
	defer f.Close()
	if err := f.Chmod(p.Mode.Perm()); err != nil {
		return fmt.Errorf("chmod %s: %w", r.Path(name), err)
	}
	if os.Geteuid() == 0 {
		if err := f.Chown(p.UID, p.GID); err != nil {
			return fmt.Errorf("chown %s: %w", r.Path(name), err)
		}
	}
	return nil
}

// WriteAtomic replaces the managed file name by data, so that a reader sees
// the old or the new file, never a mix, and a crash leaves one of the two:
// a temp file in the same directory (TempName), written, given p's mode
// (fchmod, so the umask does not decide it) and owner, fsynced, renamed
// over name, and the directory fsynced. On any error the old file is
// untouched and the temp file removed. A link or a non-regular file at
// name is refused: the rename would replace it.
func (r *Root) WriteAtomic(name string, data []byte, p Perm) error {
	c := filepath.Clean("/" + name)
	path := r.Path(c)
	if fi, err := r.lstat(c); err == nil {
		if fi.Mode()&fs.ModeSymlink != 0 {
			return fmt.Errorf("write %w", &LinkError{Path: path, Target: r.readlink(c)})
		}
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("write %s: not a regular file (%s)", path, kind(fi.Mode()))
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("write %s: %w", path, err)
	}
	dir := filepath.Dir(c)
	tmp := filepath.Join(dir, TempName(filepath.Base(c)))
	if err := r.writeTemp(tmp, data, p); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := r.rename(tmp, c); err != nil {
		r.remove(tmp) //nolint:errcheck // best effort; CleanTemp takes what is left
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := r.SyncDir(dir); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func (r *Root) writeTemp(tmp string, data []byte, p Perm) (err error) {
	f, err := r.openFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			r.remove(tmp) //nolint:errcheck // the error that matters is err
		}
	}()
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Chmod(p.Mode.Perm()); err != nil {
		return err
	}
	if os.Geteuid() == 0 {
		if err := f.Chown(p.UID, p.GID); err != nil {
			return fmt.Errorf("chown: %w", err)
		}
	}
	return f.Sync()
}

// Temp files are named ".BASE.dockward-PID-RANDOM.tmp": hidden, next to the
// file they replace, recognisably dockward's, and naming the process that
// made them, so that CleanTemp can tell litter of a killed run (its PID is
// gone) from a write in progress.
const (
	tempMark   = ".dockward-"
	tempSuffix = ".tmp"
)

// TempName is the name of a temp file for base, made by this process.
func TempName(base string) string {
	return "." + base + tempMark + strconv.Itoa(os.Getpid()) + "-" + strconv.FormatUint(rand.Uint64(), 36) + tempSuffix
}

// tempPID returns the PID in a TempName, or false for other names.
func tempPID(name string) (int, bool) {
	if !strings.HasPrefix(name, ".") || !strings.HasSuffix(name, tempSuffix) {
		return 0, false
	}
	i := strings.LastIndex(name, tempMark)
	if i < 0 {
		return 0, false
	}
	rest := strings.TrimSuffix(name[i+len(tempMark):], tempSuffix)
	pidStr, _, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, false
	}
	pid, err := strconv.Atoi(pidStr)
	if err != nil || pid <= 0 {
		return 0, false
	}
	return pid, true
}

// Alive reports whether process pid exists (kill(pid, 0); EPERM means it
// does, owned by someone else).
func Alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// CleanTemp removes from directory dir the temp files of atomic writes
// whose process is gone: what a killed run left. A temp file of a live
// process (a write in progress) and every other file stay. A missing
// directory is no error. It returns the paths removed, and the entries
// left (for callers that look for litter of their own in the same listing).
func (r *Root) CleanTemp(dir string) (removed []string, rest []fs.DirEntry, err error) {
	entries, err := r.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("clean %s: %w", r.Path(dir), err)
	}
	var errs []error
	for _, e := range entries {
		pid, ok := tempPID(e.Name())
		if !ok || !e.Type().IsRegular() || Alive(pid) {
			rest = append(rest, e)
			continue
		}
		name := filepath.Join(filepath.Clean("/"+dir), e.Name())
		if err := r.remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove %s: %w", r.Path(name), err))
			continue
		}
		removed = append(removed, r.Path(name))
	}
	return removed, rest, errors.Join(errs...)
}
