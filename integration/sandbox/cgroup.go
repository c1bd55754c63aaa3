package sandbox

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Each machine's systemd takes the cgroup it starts in as its root. nspawn
// with --keep-unit --register=no starts it in the test's own cgroup, so two
// machines would share one tree: /system.slice/docker.service would be the
// same directory for both, and `systemctl kill docker.service` in one
// machine killed dockerd in every other (measured: a concurrent
// TestRealWatch made scenario 60 see an unexplained SIGKILL). So every
// machine starts in a cgroup of its own, in each hierarchy systemd uses
// (the cgroup2 one and, on hybrid hosts, name=systemd).

// machineCgroups makes the machine's cgroup directories and returns them.
func machineCgroups(name string) []string {
	var dirs []string
	for _, h := range cgroupHierarchies() {
		d := filepath.Join(h.mount, h.path, "dockward-sandbox-"+name)
		if err := os.MkdirAll(d, 0o755); err == nil {
			dirs = append(dirs, d)
		}
	}
	return dirs
}

// removeCgroups removes the machine's cgroups, deepest first (a cgroup
// directory can only be removed once its children are).
func removeCgroups(dirs []string) error {
	var errs []error
	for _, top := range dirs {
		var all []string
		_ = filepath.WalkDir(top, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				all = append(all, p)
			}
			return nil
		})
		slices.Reverse(all)
		for _, d := range all {
			if err := os.Remove(d); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

type hierarchy struct{ mount, path string }

// cgroupHierarchies lists where the cgroup2 hierarchy and the name=systemd
// hierarchy are mounted and this process's place in each.
func cgroupHierarchies() []hierarchy {
	own := map[string]string{} // "0::" or "name=systemd" -> path
	for _, l := range strings.Split(readFile("/proc/self/cgroup"), "\n") {
		parts := strings.SplitN(l, ":", 3)
		if len(parts) != 3 {
			continue
		}
		switch {
		case parts[0] == "0" && parts[1] == "":
			own["cgroup2"] = parts[2]
		case parts[1] == "name=systemd":
			own["systemd"] = parts[2]
		}
	}
	var out []hierarchy
	for _, l := range strings.Split(readFile("/proc/self/mountinfo"), "\n") {
		pre, post, ok := strings.Cut(l, " - ")
		if !ok {
			continue
		}
		f, pf := strings.Fields(pre), strings.Fields(post)
		if len(f) < 5 || len(pf) < 3 {
			continue
		}
		mount := f[4]
		switch {
		case pf[0] == "cgroup2" && own["cgroup2"] != "":
			out = append(out, hierarchy{mount, own["cgroup2"]})
		case pf[0] == "cgroup" && strings.Contains(pf[2], "name=systemd") && own["systemd"] != "":
			out = append(out, hierarchy{mount, own["systemd"]})
		}
	}
	return out
}
