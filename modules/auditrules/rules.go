package auditrules

import (
	"bytes"
	"fmt"
	"io/fs"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// A target is one check of CIS Docker Benchmark 1.1.3 to 1.1.18: what it
// watches, and where that is found. Where it is depends on the host
// (Debian's docker.io has /usr/sbin/dockerd, Docker's packages
// /usr/bin/dockerd; unit files live in /usr/lib or /etc), so each target
// names how to find it; docker-bench-security looks for the benchmark's
// literal paths, which are watched too where they exist.
type target struct {
	CIS  string // "1.1.3"
	What string // "dockerd"
	// Unit: a unit file, systemd's FragmentPath of this unit, and the
	// places docker-bench-security looks for it.
	Unit string
	// Binary: the program, from ExecUnit's ExecStart when it runs it, and
	// on systemd's service PATH.
	Binary   string
	ExecUnit string
	// Flag: a path dockerd is given on docker.service's command line
	// (--containerd=PATH, --config-file=PATH).
	Flag string
	// Paths are the benchmark's literal paths.
	Paths []string
}

// targets are the benchmark's checks 1.1.3 to 1.1.18, in its order.
var targets = []target{
	{CIS: "1.1.3", What: "dockerd", Binary: "dockerd", ExecUnit: "docker.service", Paths: []string{"/usr/bin/dockerd"}},
	{CIS: "1.1.4", What: "/run/containerd", Paths: []string{"/run/containerd"}},
	{CIS: "1.1.5", What: "/var/lib/docker", Paths: []string{"/var/lib/docker"}},
	{CIS: "1.1.6", What: "/etc/docker", Paths: []string{"/etc/docker"}},
	{CIS: "1.1.7", What: "docker.service", Unit: "docker.service"},
	{CIS: "1.1.8", What: "containerd.sock", Flag: "--containerd", Paths: []string{"/run/containerd/containerd.sock"}},
	{CIS: "1.1.9", What: "docker.socket", Unit: "docker.socket"},
	{CIS: "1.1.10", What: "/etc/default/docker", Paths: []string{"/etc/default/docker"}},
	{CIS: "1.1.11", What: "daemon.json", Flag: "--config-file", Paths: []string{"/etc/docker/daemon.json"}},
	{CIS: "1.1.12", What: "/etc/containerd/config.toml", Paths: []string{"/etc/containerd/config.toml"}},
	{CIS: "1.1.13", What: "/etc/sysconfig/docker", Paths: []string{"/etc/sysconfig/docker"}},
	{CIS: "1.1.14", What: "containerd", Binary: "containerd", ExecUnit: "containerd.service", Paths: []string{"/usr/bin/containerd"}},
	{CIS: "1.1.15", What: "containerd-shim", Binary: "containerd-shim", Paths: []string{"/usr/bin/containerd-shim"}},
	{CIS: "1.1.16", What: "containerd-shim-runc-v1", Binary: "containerd-shim-runc-v1", Paths: []string{"/usr/bin/containerd-shim-runc-v1"}},
	{CIS: "1.1.17", What: "containerd-shim-runc-v2", Binary: "containerd-shim-runc-v2", Paths: []string{"/usr/bin/containerd-shim-runc-v2"}},
	{CIS: "1.1.18", What: "runc", Binary: "runc", Paths: []string{"/usr/bin/runc"}},
}

// unitDirs are where docker-bench-security looks for a unit file
// (get_service_file), besides systemd's answer.
var unitDirs = []string{"/etc/systemd/system", "/lib/systemd/system", "/usr/lib/systemd/system"}

// servicePath is the PATH systemd gives services, plus /sbin and /bin for
// hosts without merged /usr: where a program named without a directory is
// found.
var servicePath = []string{"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"}

// Watch is one rule: a path that exists on the host and the check it
// serves.
type Watch struct {
	CIS  string
	What string
	Path string
}

// runtime reports a path on the /run tmpfs below /run itself
// (/run/containerd/containerd.sock): it exists only while containerd runs.
func runtime(p string) bool {
	return strings.HasPrefix(p, "/run/") && strings.Count(p, "/") > 2 ||
		strings.HasPrefix(p, "/var/run/") && strings.Count(p, "/") > 3
}

// Render is the rules file for the watches, with key: one `-w PATH -p wa
// -k KEY` per path (writes and attribute changes; reads would flood the
// log), each after a comment naming its check. Rules for paths below /run
// come last: at boot auditd loads the rules before containerd has made
// /run/containerd, the kernel refuses a watch whose directory does not
// exist, and auditctl stops at the first rule it cannot load. The tmpfiles
// entry (RenderTmpfiles) makes those directories before auditd starts;
// should it be missing, such a rule, last, costs no other rule of the file.
func Render(key string, ws []Watch) []byte {
	ordered := append([]Watch(nil), ws...)
	sort.SliceStable(ordered, func(i, j int) bool { return !runtime(ordered[i].Path) && runtime(ordered[j].Path) })
	var b bytes.Buffer
	b.WriteString("## Written by dockward (audit_rules): CIS Docker Benchmark 1.1.3 to 1.1.18.\n")
	b.WriteString("## dockward rewrites this file when Docker's paths change and reverts edits;\n")
	b.WriteString("## keep your own rules in another file of this directory.\n")
	runtimeSeen := false
	for _, w := range ordered {
		if runtime(w.Path) && !runtimeSeen {
			runtimeSeen = true
			b.WriteString("## Paths below /run last: they exist only while containerd runs.\n")
		}
		fmt.Fprintf(&b, "# %s %s\n-w %s -p wa -k %s\n", w.CIS, w.What, w.Path, key)
	}
	return b.Bytes()
}

// ParseRules returns the paths watched with key in audit rules as auditctl
// -l prints them or a rules file holds them: `-w PATH ... -k KEY` and
// `-a ... -F path=PATH|dir=PATH ... -F key=KEY` (or -k). A trailing slash
// (auditctl prints directories so) is dropped.
func ParseRules(text []byte, key string) map[string]bool {
	out := map[string]bool{}
	for line := range strings.Lines(string(text)) {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		var path, k string
		for i := 0; i < len(f); i++ {
			switch {
			case f[i] == "-w" && i+1 < len(f):
				path = f[i+1]
				i++
			case f[i] == "-k" && i+1 < len(f):
				k = f[i+1]
				i++
			case f[i] == "-F" && i+1 < len(f):
				name, val, _ := strings.Cut(f[i+1], "=")
				switch name {
				case "path", "dir":
					path = val
				case "key":
					k = val
				}
				i++
			}
		}
		if path != "" && k == key {
			if len(path) > 1 {
				path = strings.TrimSuffix(path, "/")
			}
			out[path] = true
		}
	}
	return out
}

func sortStrings(s []string) { sort.Strings(s) }

// TmpfilesPath is the tmpfiles.d entry that makes, at boot, the
// directories below /run that watches need (RenderTmpfiles).
const TmpfilesPath = "/etc/tmpfiles.d/dockward-audit-rules.conf"

// RuntimeDir is a directory below /run that a watch needs to exist when
// auditd loads the rules at boot (/run/containerd for containerd.sock),
// with the mode and owner its program gives it.
type RuntimeDir struct {
	Path     string
	Mode     fs.FileMode
	UID, GID int
}

// runtimeParents lists the directories strictly between /run and each
// runtime watch's path, parents first, once each.
func runtimeParents(ws []Watch) []string {
	var out []string
	seen := map[string]bool{}
	for _, w := range ws {
		if !runtime(w.Path) {
			continue
		}
		var chain []string
		for d := filepath.Dir(w.Path); d != "/run" && d != "/var/run" && d != "/" && d != "/var"; d = filepath.Dir(d) {
			chain = append([]string{d}, chain...)
		}
		for _, d := range chain {
			if !seen[d] {
				seen[d] = true
				out = append(out, d)
			}
		}
	}
	return out
}

// RenderTmpfiles is the tmpfiles.d entry for dirs: one `d` line each, so
// that systemd-tmpfiles-setup.service, which auditd.service starts after,
// makes them at boot as their program would. Empty when there are none
// (the entry is then removed).
func RenderTmpfiles(dirs []RuntimeDir) []byte {
	if len(dirs) == 0 {
		return nil
	}
	var b bytes.Buffer
	b.WriteString("# Written by dockward (audit_rules): directories below /run that audit watches\n")
	b.WriteString("# need at boot, when auditd loads its rules before containerd runs.\n")
	for _, d := range dirs {
		p := d.Path
		if rest, ok := strings.CutPrefix(p, "/var/run/"); ok {
			p = "/run/" + rest
		}
		fmt.Fprintf(&b, "d %s %04o %s %s -\n", p, d.Mode.Perm(), idName(d.UID), idName(d.GID))
	}
	return b.Bytes()
}

func idName(id int) string {
	if id == 0 {
		return "root"
	}
	return strconv.Itoa(id)
}
