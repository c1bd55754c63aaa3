package migrate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// CopyStats counts what CopyTree did.
type CopyStats struct {
	Files, Dirs, Symlinks, Hardlinks, Specials int
	Bytes                                      int64
	// Unmapped counts entries whose owner had no place in one of the two
	// maps; they were given the container's nobody (see Shift.Owner).
	Unmapped int
	// XattrsSkipped counts extended attributes not copied: security.* and
	// system.* (POSIX ACLs, file capabilities) hold IDs or are the
	// kernel's, and would mean something else after the shift.
	XattrsSkipped int
	// Sockets counts sockets left out (they belong to a process, not the data).
	Sockets int
}

// CopyTree copies the tree at src into dst (which may exist: a volume's
// fresh _data), shifting each entry's owner with s so that a container's
// user still owns what it owned. It keeps modes (setuid, setgid and sticky
// included), modification times, symlinks as links, hard links as links,
// FIFOs and device nodes, and user.* and trusted.* extended attributes. An
// entry already at its place in dst is replaced, so a copy that stopped
// midway (ctx ended, an error) can be run again. src is only read.
func CopyTree(ctx context.Context, src, dst string, s Shift) (CopyStats, error) {
	var st CopyStats
	fi, err := os.Lstat(src)
	if err != nil {
		return st, fmt.Errorf("copy %s: %w", src, err)
	}
	if !fi.IsDir() {
		return st, fmt.Errorf("copy %s: not a directory", src)
	}
	type dirTimes struct {
		path string
		fi   fs.FileInfo
	}
	if err := os.MkdirAll(dst, 0o700); err != nil {
		return st, fmt.Errorf("copy %s: %w", src, err)
	}
	var dirs []dirTimes
	links := map[[2]uint64]string{} // (dev, inode) of a file with more than one link -> its copy
	err = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err // stopped between entries; a later run copies again
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		sys, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return fmt.Errorf("%s: no owner information", p)
		}
		uid, gid, mapped := s.Owner(sys.Uid, sys.Gid)
		if !mapped {
			st.Unmapped++
		}
		mode := fi.Mode()
		switch {
		case mode.IsDir():
			if rel != "." {
				if err := mkdirNoFollow(target); err != nil {
					return err
				}
			}
			st.Dirs++
			dirs = append(dirs, dirTimes{target, fi})
		case mode.IsRegular():
			key := [2]uint64{uint64(sys.Dev), sys.Ino}
			if sys.Nlink > 1 {
				if first, ok := links[key]; ok {
					if err := replace(target, func() error { return os.Link(first, target) }); err != nil {
						return err
					}
					st.Hardlinks++
					return nil
				}
				links[key] = target
			}
			n, err := copyFile(p, target)
			if err != nil {
				return err
			}
			st.Files++
			st.Bytes += n
		case mode&fs.ModeSymlink != 0:
			to, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if err := replace(target, func() error { return os.Symlink(to, target) }); err != nil {
				return err
			}
			st.Symlinks++
		case mode&fs.ModeSocket != 0:
			st.Sockets++
			return nil
		default: // FIFOs, character and block devices
			if err := replace(target, func() error { return unix.Mknod(target, sys.Mode, int(sys.Rdev)) }); err != nil {
				return err
			}
			st.Specials++
		}
		// Owner before mode: chown clears setuid and setgid.
		if err := os.Lchown(target, int(uid), int(gid)); err != nil {
			return err
		}
		if mode&fs.ModeSymlink == 0 {
			if err := os.Chmod(target, fsMode(mode)); err != nil {
				return err
			}
		}
		skipped, err := copyXattrs(p, target)
		st.XattrsSkipped += skipped
		if err != nil {
			return err
		}
		if !mode.IsDir() {
			return setTimes(target, sys)
		}
		return nil
	})
	if err != nil {
		return st, fmt.Errorf("copy %s to %s: %w", src, dst, err)
	}
	// Directory times last, deepest first: writing into a directory
	// changes its modification time.
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := setTimes(dirs[i].path, dirs[i].fi.Sys().(*syscall.Stat_t)); err != nil {
			return st, fmt.Errorf("copy %s to %s: %w", src, dst, err)
		}
	}
	return st, nil
}

// mkdirNoFollow makes a directory, or keeps the one there; anything else
// in its place (a symlink above all: a container may have used the volume
// between two runs) is removed first, so nothing is ever written through a
// link to outside the volume.
func mkdirNoFollow(p string) error {
	fi, err := os.Lstat(p)
	switch {
	case err == nil && fi.IsDir():
		return nil
	case err == nil:
		if err := os.Remove(p); err != nil {
			return err
		}
	case !errors.Is(err, fs.ErrNotExist):
		return err
	}
	return os.Mkdir(p, 0o700)
}

// fsMode turns Go's mode bits into chmod's, setuid, setgid and sticky
// included.
func fsMode(m fs.FileMode) fs.FileMode {
	return m.Perm() | m&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky)
}

// replace runs create, first removing what is in the way (a file left by
// an earlier, interrupted copy).
func replace(target string, create func() error) error {
	err := create()
	if errors.Is(err, fs.ErrExist) {
		if rerr := os.Remove(target); rerr != nil {
			return rerr
		}
		err = create()
	}
	return err
}

func copyFile(src, dst string) (int64, error) {
	in, err := os.Open(src)
	if err != nil {
		return 0, err
	}
	defer in.Close()
	// O_TRUNC over O_EXCL: a file an interrupted copy left is rewritten; a
	// symlink in its place is not followed.
	if fi, err := os.Lstat(dst); err == nil && !fi.Mode().IsRegular() {
		if err := os.RemoveAll(dst); err != nil {
			return 0, err
		}
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(out, in) // copy_file_range where the kernel can
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return n, err
}

func setTimes(p string, sys *syscall.Stat_t) error {
	ts := []unix.Timespec{
		unix.NsecToTimespec(sys.Atim.Nano()),
		unix.NsecToTimespec(sys.Mtim.Nano()),
	}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &fs.PathError{Op: "utimes", Path: p, Err: err}
	}
	return nil
}

// copyXattrs copies the user.* and trusted.* attributes of src to dst and
// counts the others it left out.
func copyXattrs(src, dst string) (skipped int, err error) {
	names, err := listXattrs(src)
	if err != nil || len(names) == 0 {
		return 0, err
	}
	for _, name := range names {
		if !strings.HasPrefix(name, "user.") && !strings.HasPrefix(name, "trusted.") {
			skipped++
			continue
		}
		val, err := getXattr(src, name)
		if err != nil {
			return skipped, err
		}
		if err := unix.Lsetxattr(dst, name, val, 0); err != nil {
			if errors.Is(err, unix.EPERM) || errors.Is(err, unix.ENOTSUP) {
				skipped++ // user.* on a symlink, or a file system without them
				continue
			}
			return skipped, &fs.PathError{Op: "setxattr " + name, Path: dst, Err: err}
		}
	}
	return skipped, nil
}

func listXattrs(p string) ([]string, error) {
	for size := 256; ; size *= 4 {
		buf := make([]byte, size)
		n, err := unix.Llistxattr(p, buf)
		if errors.Is(err, unix.ERANGE) {
			continue
		}
		if errors.Is(err, unix.ENOTSUP) {
			return nil, nil
		}
		if err != nil {
			return nil, &fs.PathError{Op: "listxattr", Path: p, Err: err}
		}
		var names []string
		for _, s := range strings.Split(string(buf[:n]), "\x00") {
			if s != "" {
				names = append(names, s)
			}
		}
		return names, nil
	}
}

func getXattr(p, name string) ([]byte, error) {
	for size := 256; ; size *= 4 {
		buf := make([]byte, size)
		n, err := unix.Lgetxattr(p, name, buf)
		if errors.Is(err, unix.ERANGE) {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "getxattr " + name, Path: p, Err: err}
		}
		return buf[:n], nil
	}
}
