package managedfile

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
)

// LastKnownGood keeps, in the state directory, a copy of a managed file as
// it was before dockward wrote it, for rollback: the copy, or a marker that
// there was no file. Commit marks the copy as verified: one taken after a
// run in which nothing failed (a restart that depends on the file was
// verified). A verified copy is not replaced by the file found before the
// next write, which may be a bad hand edit that the write corrects; rollback
// then goes back to the state the host was known to run with.
type LastKnownGood struct {
	// State is the state directory (OpenStateDir).
	State *Root
	// Copy, Absent and Verified are names inside it: the copy, the marker
	// that there was no file, the marker that the copy is verified.
	Copy, Absent, Verified string
	// Limit caps the copy as read back (DefaultLimit when 0).
	Limit int64
	// Along, when set, is called each time the copy is taken, before it is
	// marked verified: for state kept with the copy (daemon_json keeps its
	// owned-key record as it was, so that rollback restores both).
	Along func() error
}

// ErrNoCopy is a rollback without a last-known-good copy.
var ErrNoCopy = errors.New("no last-known-good copy")

// copyPerm: copies hold what root daemons read, kept for root only.
var copyPerm = RootOwned(0o600)

func (l *LastKnownGood) limit() int64 {
	if l.Limit > 0 {
		return l.Limit
	}
	return DefaultLimit
}

// IsVerified reports whether a verified copy is kept.
func (l *LastKnownGood) IsVerified() (bool, error) { return l.State.Exists(l.Verified) }

// Save keeps cur (the file before a write) as the last-known-good copy,
// unless a verified copy is kept. The other form (copy or absent marker) is
// removed first: after a crash in between there is no copy, which Restore
// reports, rather than a stale one. It reports whether it saved.
func (l *LastKnownGood) Save(cur *File) (bool, error) {
	if v, err := l.IsVerified(); err != nil || v {
		return false, err
	}
	return true, l.save(cur)
}

func (l *LastKnownGood) save(cur *File) error {
	if err := l.State.MkdirAll(filepath.Dir("/"+l.Copy), 0o700); err != nil {
		return err
	}
	if cur.Exists {
		if err := l.State.Remove(l.Absent); err != nil {
			return err
		}
		if err := l.State.WriteAtomic(l.Copy, cur.Data, copyPerm); err != nil {
			return err
		}
	} else {
		if err := l.State.Remove(l.Copy); err != nil {
			return err
		}
		if err := l.State.WriteAtomic(l.Absent, []byte("there was no "+filepath.Base(cur.Path)+" before dockward wrote it\n"), copyPerm); err != nil {
			return err
		}
	}
	if l.Along != nil {
		return l.Along()
	}
	return nil
}

// Commit makes cur, the file after a run in which nothing failed, the
// verified last-known-good copy. Committing what is already the verified
// copy writes nothing, so that runs with nothing to do stay cheap.
func (l *LastKnownGood) Commit(cur *File) error {
	if v, err := l.IsVerified(); err != nil {
		return err
	} else if v {
		if cur.Exists {
			kept, err := l.State.Read(l.Copy, l.limit())
			if err == nil && kept.Exists && bytes.Equal(kept.Data, cur.Data) {
				return nil
			}
		} else if absent, _ := l.State.Exists(l.Absent); absent {
			return nil
		}
	}
	if err := l.State.Remove(l.Verified); err != nil {
		return err
	}
	if err := l.save(cur); err != nil {
		return err
	}
	return l.State.WriteAtomic(l.Verified, []byte("the last-known-good copy is from a run in which nothing failed\n"), copyPerm)
}

// Restore returns the last-known-good content: the copy, or existed false
// when there was no file. ErrNoCopy when neither is kept.
func (l *LastKnownGood) Restore() (data []byte, existed bool, err error) {
	if absent, err := l.State.Exists(l.Absent); err != nil {
		return nil, false, err
	} else if absent {
		return nil, false, nil
	}
	f, err := l.State.Read(l.Copy, l.limit())
	if err != nil {
		return nil, false, err
	}
	if !f.Exists {
		return nil, false, fmt.Errorf("%w in %s", ErrNoCopy, l.State.Path(filepath.Dir("/"+l.Copy)))
	}
	return f.Data, true, nil
}
