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

// StateDirError is a state directory dockward refuses to use. It drives
// root actions (rollback copies are restored into /etc, the owned-key
// record decides which keys are deleted), so it is checked as the
// configuration file is: owned by root, not group- or world-writable, not a
// link. The command line exits 1 on it.
type StateDirError struct {
	Path string
	Why  string
}

func (e *StateDirError) Error() string {
	return fmt.Sprintf("state directory %s: %s", e.Path, e.Why)
}

// OpenStateDir checks the state directory dir (absolute, already joined
// with --root root) and returns a Root inside it: every state file is then
// opened relative to it, and no link inside it is followed (everything in
// it is dockward's own, so a link there was planted). With
// create it is made (0700, parents 0755) when missing; without it, a
// missing directory is an error wrapping fs.ErrNotExist and nothing is
// made (plan changes nothing on disk).
func OpenStateDir(root, dir string, create bool) (*Root, error) {
	base, name := &Root{}, filepath.Clean(dir)
	if root != "" {
		var err error
		if base, err = Open(root); err != nil {
			return nil, err
		}
		defer base.Close()
		rel, err := filepath.Rel(base.dir, name)
		if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
			return nil, &StateDirError{Path: dir, Why: "outside --root " + root}
		}
		name = "/" + rel
	}
	fi, err := base.lstat(name)
	if errors.Is(err, fs.ErrNotExist) && create {
		if err := base.MkdirAll(filepath.Dir(name), 0o755); err != nil {
			return nil, fmt.Errorf("state directory: %w", err)
		}
		if err := base.mkdir(name, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("state directory: %w", err)
		}
		if err := base.chmod(name, 0o700); err != nil {
			return nil, fmt.Errorf("state directory: %w", err)
		}
		fi, err = base.lstat(name)
	}
	if err != nil {
		if errors.Is(err, ErrOutside) {
			return nil, &StateDirError{Path: dir, Why: "a link in its path leads outside --root " + root}
		}
		return nil, fmt.Errorf("state directory %s: %w", dir, err)
	}
	if err := checkStateDir(dir, fi); err != nil {
		return nil, err
	}
	var sd *os.Root
	if base.r != nil {
		sd, err = base.r.OpenRoot(base.rel(name))
	} else {
		sd, err = os.OpenRoot(name)
	}
	if err != nil {
		return nil, fmt.Errorf("state directory %s: %w", dir, err)
	}
	// What was opened must be what was checked.
	if ofi, err := sd.Stat("."); err != nil || !os.SameFile(ofi, fi) {
		sd.Close()
		return nil, &StateDirError{Path: dir, Why: "it changed while it was opened"}
	}
	return &Root{dir: dir, r: sd, noLinks: true}, nil
}

func checkStateDir(dir string, fi fs.FileInfo) error {
	if fi.Mode()&fs.ModeSymlink != 0 {
		return &StateDirError{Path: dir, Why: "it is a symbolic link; refusing it (dockward keeps root-only state there: rollback copies, the keys it owns, the lock); set agent.state_dir to the directory itself"}
	}
	if !fi.IsDir() {
		return &StateDirError{Path: dir, Why: "not a directory"}
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid != 0 && int(st.Uid) != os.Geteuid() {
		return &StateDirError{Path: dir, Why: fmt.Sprintf("owned by uid %d; it must be owned by root: chown root:root %s", st.Uid, dir)}
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return &StateDirError{Path: dir, Why: fmt.Sprintf("group- or world-writable (mode %04o); refusing it, others could plant rollback copies or owned-key records: chmod 0700 %s", fi.Mode().Perm(), dir)}
	}
	return nil
}
