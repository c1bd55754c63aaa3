package subid

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"
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
type shadowLock struct{ lock string }

// lockFile takes file's shadow-utils lock, waiting at most wait for a live
// holder. The caller must call unlock on every path.
func lockFile(ctx context.Context, file string, wait time.Duration) (*shadowLock, error) {
	pid := os.Getpid()
	tmp := file + "." + strconv.Itoa(pid)
	lock := file + ".lock"
	if err := writePIDFile(tmp, pid); err != nil {
		return nil, fmt.Errorf("lock %s: %w", file, err)
	}
	defer os.Remove(tmp)

	deadline := time.Now().Add(wait)
	for {
		holder, err := tryLink(tmp, lock)
		if err != nil {
			return nil, fmt.Errorf("lock %s: %w", file, err)
		}
		if holder == 0 {
			return &shadowLock{lock: lock}, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("lock %s: %s is held by running process %d; gave up after %s (another useradd/usermod?)", file, lock, holder, wait)
		}
		t := time.NewTimer(lockPoll)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("lock %s: waiting for process %d: %w", file, holder, ctx.Err())
		case <-t.C:
		}
	}
}

func writePIDFile(path string, pid int) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
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
		os.Remove(path)
	}
	return err
}

// tryLink makes one attempt (with one retry after removing a stale lock).
// It returns 0 when the lock is ours, or the PID of the live holder.
func tryLink(tmp, lock string) (int, error) {
	for attempt := 0; ; attempt++ {
		err := os.Link(tmp, lock)
		if err == nil {
			return 0, checkLinkCount(tmp, lock)
		}
		if !errors.Is(err, os.ErrExist) {
			return 0, err
		}
		pid, err := readLockPID(lock)
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
		if err := os.Remove(lock); err != nil && !errors.Is(err, os.ErrNotExist) {
			return 0, fmt.Errorf("remove stale %s of process %d: %w", lock, pid, err)
		}
	}
}

// checkLinkCount is shadow-utils' guard against file systems where link
// "succeeds" without making a link (some NFS setups).
func checkLinkCount(tmp, lock string) error {
	var st syscall.Stat_t
	if err := syscall.Stat(tmp, &st); err != nil {
		return err
	}
	if st.Nlink != 2 {
		// Like shadow-utils, leave FILE.lock alone: it may not be ours.
		return fmt.Errorf("%s: lock file already used (link count %d)", lock, st.Nlink)
	}
	return nil
}

func readLockPID(lock string) (int, error) {
	b, err := os.ReadFile(lock)
	if err != nil {
		return 0, err
	}
	s := b
	if i := bytes.IndexByte(s, 0); i >= 0 {
		s = s[:i]
	}
	s = bytes.TrimSpace(s)
	pid, err := strconv.Atoi(string(s))
	// pid 0 or negative would make kill(pid, 0) address process groups.
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("existing lock file %s without a valid PID (%q); remove it if no useradd/usermod is running", lock, b)
	}
	return pid, nil
}

// alive is kill(pid, 0): EPERM still means the process exists.
func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// unlock releases the lock. Safe to call on nil.
func (l *shadowLock) unlock() error {
	if l == nil {
		return nil
	}
	if err := os.Remove(l.lock); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("unlock %s: %w", l.lock, err)
	}
	return nil
}
