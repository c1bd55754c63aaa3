package agent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/dockward/dockward/agent/managedfile"
	"github.com/sirupsen/logrus"
)

// Lock is the run lock: an flock on StateDir/lock, so two runs never
// interleave and a dead process's lock is released by the kernel.
type Lock struct {
	f         *os.File
	exclusive bool
}

// ErrLockTimeout is returned when another run held the lock for too long.
var ErrLockTimeout = errors.New("another dockward run holds the lock")

// lockPoll is how often a held lock is tried again.
const lockPoll = 100 * time.Millisecond

// AcquireLock is AcquireLockIn on the live system.
func AcquireLock(ctx context.Context, stateDir string, exclusive bool, wait time.Duration, log *logrus.Entry) (*Lock, error) {
	return AcquireLockIn(ctx, "", stateDir, exclusive, wait, log)
}

// AcquireLockIn takes the run lock in stateDir (under --root root),
// exclusive for apply and shared for plan, waiting at most wait and saying
// that it waits. The state directory is checked first (managedfile.
// OpenStateDir). Apply creates the directory and the lock file; plan
// creates nothing: without a lock file there is no run to wait for, and it
// returns a Lock that holds nothing. The exclusive holder removes the temp
// files a run killed while it held the lock left in the state directory.
func AcquireLockIn(ctx context.Context, root, stateDir string, exclusive bool, wait time.Duration, log *logrus.Entry) (*Lock, error) {
	sd, err := managedfile.OpenStateDir(root, stateDir, exclusive)
	if !exclusive && errors.Is(err, fs.ErrNotExist) {
		return &Lock{}, nil
	}
	if err != nil {
		return nil, err
	}
	defer sd.Close()
	flag, how := os.O_RDONLY, syscall.LOCK_SH
	if exclusive {
		flag, how = os.O_RDWR|os.O_CREATE, syscall.LOCK_EX
	}
	path := sd.Path("lock")
	f, err := sd.OpenFile("lock", flag, 0o600)
	if !exclusive && errors.Is(err, fs.ErrNotExist) {
		return &Lock{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := flockWait(ctx, f, how, wait, path, log); err != nil {
		f.Close()
		return nil, err
	}
	if exclusive {
		// The holder's PID is in the lock file while it holds it, and
		// Release empties it: a PID found here is a run that was killed
		// holding the lock, and may have left temp files.
		if killed(f) {
			cleanState(sd, ".", 0, log)
		}
		if err := f.Truncate(0); err == nil {
			_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
		}
	}
	return &Lock{f: f, exclusive: exclusive}, nil
}

// killed reports whether the lock file names a holder: one that did not
// release it, so was killed.
func killed(f *os.File) bool {
	b := make([]byte, 32)
	n, _ := f.ReadAt(b, 0)
	return n > 0
}

func flockWait(ctx context.Context, f *os.File, how int, wait time.Duration, path string, log *logrus.Entry) error {
	try := func() (bool, error) {
		err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB)
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return false, nil
		}
		return err == nil, err
	}
	ok, err := try()
	if err != nil {
		return fmt.Errorf("lock %s: %w", path, err)
	}
	if ok {
		return nil
	}
	log.WithField("lock", path).Infof("another dockward run holds the lock; waiting up to %s", wait)
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	tick := time.NewTicker(lockPoll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("lock %s: %w", path, ctx.Err())
		case <-deadline.C:
			return fmt.Errorf("lock %s: %w (waited %s)", path, ErrLockTimeout, wait)
		case <-tick.C:
		}
		if ok, err := try(); err != nil {
			return fmt.Errorf("lock %s: %w", path, err)
		} else if ok {
			return nil
		}
	}
}

// cleanState removes the temp files of killed runs from the state
// directory and its module subdirectories (two levels, as modules keep it).
func cleanState(sd *managedfile.Root, dir string, depth int, log *logrus.Entry) {
	removed, rest, err := sd.CleanTemp(dir)
	for _, p := range removed {
		log.WithField("file", p).Info("removed a temp file an earlier, killed run left")
	}
	if err != nil {
		log.WithError(err).Warn("could not clean the state directory")
	}
	if depth >= 2 {
		return
	}
	for _, e := range rest {
		if e.IsDir() { // a link is not a directory here: not followed
			cleanState(sd, dir+"/"+e.Name(), depth+1, log)
		}
	}
}

// Release lets the next run go. The kernel releases the flock when the
// descriptor is closed, also when the process dies.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	if l.exclusive {
		_ = l.f.Truncate(0) // released, not killed (see AcquireLockIn)
	}
	return l.f.Close()
}
