package auditrules

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/dockward/dockward/agent/managedfile"
)

// Unit is what resolution reads of a systemd unit.
type Unit struct {
	// FragmentPath is the unit file systemd loaded it from.
	FragmentPath string
	// ExecStart holds each ExecStart= command line, argv[0] first.
	ExecStart [][]string
}

// Units reads units from systemd. A unit systemd does not know is (nil,
// nil); ErrNoSystemd means there is no systemd to ask (under --root, or no
// system bus), and resolution falls back to the places docker-bench-security
// looks.
type Units interface {
	Unit(ctx context.Context, name string) (*Unit, error)
}

// ErrNoSystemd is a Units without a systemd to ask.
var ErrNoSystemd = errors.New("no systemd to ask")

// Resolve finds, for every target, the paths on the host (root) that
// exist, the host's own first (systemd's unit file, the binary the unit
// runs, the flag's value, the program on PATH), then the benchmark's
// literal paths. A path whose file another watch already covers (the same
// device and inode: /lib/systemd/system/docker.service on merged /usr) is
// left out.
func Resolve(ctx context.Context, root *managedfile.Root, units Units) ([]Watch, error) {
	cache := map[string]*Unit{}
	unit := func(name string) (*Unit, error) {
		if u, ok := cache[name]; ok {
			return u, nil
		}
		u, err := units.Unit(ctx, name)
		if errors.Is(err, ErrNoSystemd) {
			u, err = nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("resolve the paths to watch: %w", err)
		}
		cache[name] = u
		return u, nil
	}
	var out []Watch
	seen := map[string]bool{}      // paths
	seenID := map[[2]uint64]bool{} // device, inode
	for _, t := range targets {
		var cands []string
		if t.Unit != "" {
			u, err := unit(t.Unit)
			if err != nil {
				return nil, err
			}
			if u != nil && u.FragmentPath != "" {
				cands = append(cands, u.FragmentPath)
			}
			for _, d := range unitDirs {
				cands = append(cands, filepath.Join(d, t.Unit))
			}
		}
		if t.ExecUnit != "" {
			u, err := unit(t.ExecUnit)
			if err != nil {
				return nil, err
			}
			if u != nil {
				for _, argv := range u.ExecStart {
					if len(argv) > 0 && filepath.Base(argv[0]) == t.Binary && filepath.IsAbs(argv[0]) {
						cands = append(cands, argv[0])
					}
				}
			}
		}
		if t.Flag != "" {
			u, err := unit("docker.service")
			if err != nil {
				return nil, err
			}
			if u != nil {
				cands = append(cands, flagValues(u.ExecStart, t.Flag)...)
			}
		}
		if t.Binary != "" {
			for _, d := range servicePath {
				cands = append(cands, filepath.Join(d, t.Binary))
			}
		}
		cands = append(cands, t.Paths...)
		for i := 0; i < len(cands); i++ {
			p := filepath.Clean(cands[i])
			if seen[p] {
				continue
			}
			fi, err := root.Lstat(p)
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("resolve %s (%s %s): %w", root.Path(p), t.CIS, t.What, err)
			}
			seen[p] = true
			if fi.Mode()&fs.ModeSymlink != 0 {
				// A watch on a link sees changes to the link, not to the
				// file it names (/usr/bin/runc -> ../sbin/runc): the
				// target is watched too, right after it.
				if target, ok := linkTarget(root, p); ok {
					cands = append(cands[:i+1], append([]string{target}, cands[i+1:]...)...)
				}
			}
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				id := [2]uint64{st.Dev, st.Ino}
				if seenID[id] {
					continue
				}
				seenID[id] = true
			}
			out = append(out, Watch{CIS: t.CIS, What: t.What, Path: p})
		}
	}
	return out, nil
}

// flagValues returns the absolute values of flag (--flag=V or --flag V) on
// the command lines.
func flagValues(lines [][]string, flag string) []string {
	var out []string
	for _, argv := range lines {
		for i, a := range argv {
			var v string
			switch {
			case strings.HasPrefix(a, flag+"="):
				v = strings.TrimPrefix(a, flag+"=")
			case a == flag && i+1 < len(argv):
				v = argv[i+1]
			}
			if filepath.IsAbs(v) {
				out = append(out, v)
			}
		}
	}
	return out
}

// linkTarget is the host path a link at p names (one hop; the next hop is
// resolved when the target is a candidate in its turn).
func linkTarget(root *managedfile.Root, p string) (string, bool) {
	t, err := os.Readlink(root.Path(p))
	if err != nil || t == "" {
		return "", false
	}
	if !filepath.IsAbs(t) {
		t = filepath.Join(filepath.Dir(p), t)
	}
	return filepath.Clean(t), true
}

// RuntimeDirs returns, with their mode and owner on the host, the
// directories below /run that the watches need at boot.
func RuntimeDirs(root *managedfile.Root, ws []Watch) ([]RuntimeDir, error) {
	var out []RuntimeDir
	for _, d := range runtimeParents(ws) {
		fi, err := root.Lstat(d)
		if err != nil {
			return nil, fmt.Errorf("resolve %s: %w", root.Path(d), err)
		}
		rd := RuntimeDir{Path: d, Mode: fi.Mode().Perm()}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			rd.UID, rd.GID = int(st.Uid), int(st.Gid)
		}
		out = append(out, rd)
	}
	return out, nil
}
