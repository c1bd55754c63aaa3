package agent

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/google/renameio/v2"
)

// WriteFileAtomic replaces path with data so that a reader sees either the
// old or the new file, never a mix, and a crash leaves one of the two: a temp
// file in the same directory, fsync, chmod/chown, rename, fsync of the
// directory. On any error the old file is untouched and no temp file is left.
// Ownership is set to root:root when running as root (the files dockward
// manages are read by root daemons); unprivileged test runs keep their own.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	pf, err := renameio.NewPendingFile(path, renameio.WithTempDir(dir), renameio.WithPermissions(perm))
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer pf.Cleanup() //nolint:errcheck // removes the temp file when we did not rename it
	if _, err := pf.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if os.Geteuid() == 0 {
		if err := pf.Chown(0, 0); err != nil {
			return fmt.Errorf("write %s: chown: %w", path, err)
		}
	}
	// renameio fsyncs the file before the rename but not the directory after.
	if err := pf.CloseAtomicallyReplace(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := SyncDir(dir); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// SyncDir fsyncs a directory so that a rename inside it is durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}
