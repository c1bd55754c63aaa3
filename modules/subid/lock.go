package subid

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/dockward/dockward/agent/managedfile"
)

// The shadow-utils lock convention (lib/commonio.c, do_lock_file), which
// useradd, usermod and the other shadow-utils tools (dockerd itself runs
// useradd or adduser for dockremap) honour for /etc/subuid and /etc/subgid:
//
//  1. write the PID, NUL-terminated, to FILE.PID and fdatasync it;
//  2. link(FILE.PID, FILE.lock); success, with FILE.PID's link count 2,
//     means we hold the lock;
//  3. if FILE.lock exists, read the PID in it; a live process holds it
//     (kill(pid, 0) succeeds), a dead one left it stale: unlink it and link
//     again, once;
//  4. unlink FILE.PID in every case; unlock is unlink(FILE.lock).
//
// A lock file without a valid PID is an error, as in shadow-utils: it is
// never half-written (link publishes a complete file), so it is not ours to
// remove. shadow-utils also takes glibc's lckpwdf (/etc/.pwd.lock) on the
// live system; we do not, because every shadow tool that writes subuid
// takes FILE.lock too, and useradd takes lckpwdf while we hold our locks
// (see Apply): holding it would make useradd wait on us.

// lockPoll is how often a held lock is tried again. shadow-utils sleeps a
// second between its 15 tries; a shorter poll gives the same bound with
// less waiting after the holder is done.
const lockPoll = 100 * time.Millisecond

// shadowLock is a held FILE.lock.
type shadowLock struct {
	root *managedfile.Root
	lock string
}

// lockFile takes file's shadow-utils lock on the live system (lockFileIn).
func lockFile(ctx context.Context, file string, wait time.Duration) (*shadowLock, error) {
	root, err := managedfile.Open("")
	if err != nil {
		return nil, err
	}
	return lockFileIn(ctx, root, file, wait)
}

// lockFileIn takes file's shadow-utils lock, waiting at most wait for a live
// holder. Every path is opened through root (under --root inside it), and
// never through a link. The caller must call unlock on every path.
func lockFileIn(ctx context.Context, root *managedfile.Root, file string, wait time.Duration) (*shadowLock, error) {
	pid := os.Getpid()
	tmp := file + "." + strconv.Itoa(pid)
	lock := file + ".lock"
	if err := writePIDFile(root, tmp, pid); err != nil {
		return nil, fmt.Errorf("lock %s: %w", root.Path(file), err)
	}
	defer root.Remove(tmp) //nolint:errcheck // litter a later run's cleanLitter takes

	deadline := time.Now().Add(wait)
	for {
		holder, err := tryLink(root, tmp, lock)
		if err != nil {
			return nil, fmt.Errorf("lock %s: %w", root.Path(file), err)
		}
		if holder == 0 {
			return &shadowLock{root: root, lock: lock}, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("lock %s: %s is held by running process %d; gave up after %s (another useradd/usermod?)", root.Path(file), root.Path(lock), holder, wait)
		}
		t := time.NewTimer(lockPoll)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("lock %s: waiting for process %d: %w", root.Path(file), holder, ctx.Err())
		case <-t.C:
		}
	}
}

func writePIDFile(root *managedfile.Root, path string, pid int) error {
	f, err := root.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	// shadow-utils writes strlen+1 bytes: the PID and its NUL.
	_, err = f.Write(append(strconv.AppendInt(nil, int64(pid), 10), 0))
	if err == nil {
		err = syscall.Fdatasync(int(f.Fd()))
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		root.Remove(path) //nolint:errcheck // err is what matters
	}
	return err
}

// tryLink makes one attempt (with one retry after removing a stale lock).
// It returns 0 when the lock is ours, or the PID of the live holder.
func tryLink(root *managedfile.Root, tmp, lock string) (int, error) {
	for attempt := 0; ; attempt++ {
		err := root.Link(tmp, lock)
		if err == nil {
			return 0, checkLinkCount(root, tmp, lock)
		}
		if !errors.Is(err, os.ErrExist) {
			return 0, err
		}
		pid, err := readLockPID(root, lock)
		if errors.Is(err, os.ErrNotExist) {
			continue // released between our link and our read
		}
		if err != nil {
			return 0, err
		}
		if alive(pid) {
			return pid, nil
		}
		if attempt > 0 {
			// shadow-utils gives up after one removal too: someone else is
			// racing for the same stale lock.
			return pid, nil
		}
		if err := root.Remove(lock); err != nil {
			return 0, fmt.Errorf("remove stale lock of process %d: %w", pid, err)
		}
	}
}

// checkLinkCount is shadow-utils' guard against file systems where link
// "succeeds" without making a link (some NFS setups).
func checkLinkCount(root *managedfile.Root, tmp, lock string) error {
	fi, err := root.Lstat(tmp)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if ok && st.Nlink != 2 {
		// Like shadow-utils, leave FILE.lock alone: it may not be ours.
		return fmt.Errorf("%s: lock file already used (link count %d)", root.Path(lock), st.Nlink)
	}
	return nil
}

// lockFileLimit caps a lock file as read: a PID and a NUL.
const lockFileLimit = 64

func readLockPID(root *managedfile.Root, lock string) (int, error) {
	f, err := root.Read(lock, lockFileLimit)
	if err != nil {
		return 0, err
	}
	if !f.Exists {
		return 0, os.ErrNotExist
	}
	b := f.Data
	s := b
	if i := bytes.IndexByte(s, 0); i >= 0 {
		s = s[:i]
	}
	s = bytes.TrimSpace(s)
	pid, err := strconv.Atoi(string(s))
	// pid 0 or negative would make kill(pid, 0) address process groups.
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("existing lock file %s without a valid PID (%q); remove it if no useradd/usermod is running", root.Path(lock), b)
	}
	return pid, nil
}

// alive is kill(pid, 0): EPERM still means the process exists.
func alive(pid int) bool { return managedfile.Alive(pid) }

// unlock releases the lock. Safe to call on nil.
func (l *shadowLock) unlock() error {
	if l == nil {
		return nil
	}
	if err := l.root.Remove(l.lock); err != nil {
		return fmt.Errorf("unlock: %w", err)
	}
	return nil
}

// cleanStaleLock removes what a killed holder of file's lock left: FILE.lock
// naming a process that is gone (taken and released through the protocol,
// so a live taker's lock is never removed) and FILE.PID files of processes
// that are gone. A run that was killed while useradd ran left its locks
// behind, and a later run with nothing to write never takes them; a PID
// reused by another process would then make shadow-utils wait for it.
//
// entries is the listing of file's directory.
func cleanStaleLock(root *managedfile.Root, file string, entries []fs.DirEntry) error {
	var errs []error
	dir, base := filepath.Dir(file), filepath.Base(file)
	for _, e := range entries {
		if e.Name() != base+".lock" {
			continue
		}
		if pid, err := readLockPID(root, file+".lock"); err == nil && !alive(pid) {
			l, err := lockFileIn(context.Background(), root, file, 0)
			if err == nil {
				err = l.unlock()
			}
			errs = append(errs, err)
		}
	}
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), base+".")
		if !ok || !e.Type().IsRegular() {
			continue
		}
		pid, err := strconv.Atoi(rest)
		if err != nil || pid <= 0 || pid == os.Getpid() || alive(pid) {
			continue
		}
		name := filepath.Join(dir, e.Name())
		// Only a file the protocol wrote: the PID and its NUL.
		if f, err := root.Read(name, lockFileLimit); err != nil || string(f.Data) != rest+"\x00" {
			continue
		}
		errs = append(errs, root.Remove(name))
	}
	return errors.Join(errs...)
}
