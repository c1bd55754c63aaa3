package config

import (
	"fmt"
	"os"
	"syscall"
)

// CheckOwnership refuses a configuration file that someone other than root
// could have written, as sshd's StrictModes does: it drives root actions.
// The file must be a regular file owned by root (or by the running user,
// for unprivileged test runs) and not group- or world-writable.
func CheckOwnership(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s: not a regular file", path)
	}
	return checkWriters(path, fi)
}

// checkWriters refuses a file or directory someone other than root (or
// the running user) could write.
func checkWriters(path string, fi os.FileInfo) error {
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("%s: refusing a configuration that is group- or world-writable (mode %04o); it drives root actions: chmod go-w %s", path, fi.Mode().Perm(), path)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if ok && st.Uid != 0 && int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("%s: refusing a configuration owned by uid %d; it must be owned by root", path, st.Uid)
	}
	return nil
}
