package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/gofrs/flock"
	"github.com/sirupsen/logrus"
)

// Lock is the run lock: an flock on StateDir/lock, so two runs never
// interleave and a dead process's lock is released by the kernel.
type Lock struct{ fl *flock.Flock }

// ErrLockTimeout is returned when another run held the lock for too long.
var ErrLockTimeout = errors.New("another dockward run holds the lock")

// AcquireLock takes the run lock, exclusive for apply and shared for plan,
// waiting at most wait and saying that it waits.
func AcquireLock(ctx context.Context, stateDir string, exclusive bool, wait time.Duration, log *logrus.Entry) (*Lock, error) {
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	path := filepath.Join(stateDir, "lock")
	fl := flock.New(path)
	try := fl.TryLock
	if !exclusive {
		try = fl.TryRLock
	}
	ok, err := try()
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if !ok {
		log.WithField("lock", path).Infof("another dockward run holds the lock; waiting up to %s", wait)
		wctx, cancel := context.WithTimeout(ctx, wait)
		defer cancel()
		lockCtx := fl.TryLockContext
		if !exclusive {
			lockCtx = fl.TryRLockContext
		}
		ok, err = lockCtx(wctx, 100*time.Millisecond)
		if !ok || err != nil {
			if errors.Is(err, context.DeadlineExceeded) || err == nil {
				return nil, fmt.Errorf("lock %s: %w (waited %s)", path, ErrLockTimeout, wait)
			}
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
	}
	return &Lock{fl: fl}, nil
}

// Release lets the next run go.
func (l *Lock) Release() error { return l.fl.Unlock() }
