package audit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/system"
	"github.com/moby/moby/client"
)

// Snapshot is everything the checks judge, read once. Gather is the only
// I/O of the audit; the checks are pure functions over a Snapshot, so they
// are tested on recorded Engine API answers and file trees.
type Snapshot struct {
	// Offline is set under --root: the Engine API and /proc are not read,
	// and the checks that need them are skipped.
	Offline bool

	// Info is GET /info; nil with InfoErr when the Engine API did not answer.
	Info    *system.Info
	InfoErr error
	// Containers are the running containers' inspect documents (GET
	// /containers/json, then GET /containers/{id}/json for each).
	Containers    []container.InspectResponse
	ContainersErr error

	// DaemonJSON is /etc/docker/daemon.json decoded (empty when missing).
	DaemonJSON    map[string]any
	DaemonJSONErr error
	// DockerdArgs is the running dockerd's command line (nil when unknown),
	// which holds the flags the unit's environment files expanded into.
	DockerdArgs []string
	// Binaries maps a program name (dockerd, containerd, runc, ...) to the
	// paths it has on this host: the running daemon's executable, the
	// directories of PATH and the benchmark's literal /usr/bin path.
	Binaries map[string][]string

	// Files holds the owner and mode of every path a check looks at, keyed by
	// the host path ("" root prefix); a missing file has Exists false.
	Files map[string]FileStat
	// Units maps a unit name to its unit file, found in systemd's unit
	// search path order.
	Units map[string]string
	// CertFiles are the files under /etc/docker/certs.d.
	CertFiles []string

	// AuditWatches is every path an audit rule file watches (-w PATH,
	// -F path=PATH, -F dir=PATH), in /etc/audit/audit.rules and
	// /etc/audit/rules.d/*.rules, and each one's real path (the kernel
	// resolves a watch's directory: a watch on /usr/lib/x sees /lib/x);
	// AuditRuleFiles names the files read.
	AuditWatches   map[string]bool
	AuditRuleFiles []string
	AuditDir       bool // /etc/audit exists
	// Auditd is auditd's binary ("" when auditd is not installed).
	Auditd string

	// MountPoints are the mount points of the host (/proc/self/mountinfo).
	MountPoints    map[string]bool
	MountPointsErr error

	// Groups is /etc/group: name -> members and GID.
	Groups    map[string]Group
	GroupsErr error

	// SubUID and SubGID are /etc/subuid and /etc/subgid (nil when missing).
	SubUID, SubGID       []byte
	SubUIDErr, SubGIDErr error

	// SSHD maps a container ID to the PIDs of sshd processes in its cgroup.
	SSHD    map[string][]int
	SSHDErr error

	// ContentTrust is DOCKER_CONTENT_TRUST in the audit's environment.
	ContentTrust string

	// Firewall is the firewall module's plan against the live table
	// (empty: the table matches the configuration); FirewallErr when it
	// could not be read; neither when no firewall block is configured.
	Firewall    []string
	FirewallErr error
	FirewallSet bool
}

// FileStat is the owner and mode of one path.
type FileStat struct {
	Exists bool
	// Real is the path with every symbolic link resolved (/lib/x ->
	// /usr/lib/x on merged-/usr systems), "" when it does not resolve.
	Real     string
	UID, GID uint32
	Mode     fs.FileMode // permission bits and type
	Err      error       // other than not-existing
}

// Group is one /etc/group entry.
type Group struct {
	GID     uint32
	Members []string
}

// FirewallPlanner plans the firewall module read-only (its Plan); nil when
// no firewall block is configured.
type FirewallPlanner func(ctx context.Context) ([]string, error)

// gatherOptions say where to read.
type gatherOptions struct {
	root     string
	firewall FirewallPlanner
	engine   func() (*client.Client, error)
}

// unitDirs is systemd's unit search path for the system manager, highest
// precedence first (systemd.unit(5)). The audit cannot use the D-Bus
// adapter (modules/internal is the modules' own); FragmentPath would
// name the same file for units without a drop-in override of the path.
var unitDirs = []string{"/etc/systemd/system", "/run/systemd/system", "/usr/local/lib/systemd/system", "/lib/systemd/system", "/usr/lib/systemd/system"}

// binDirs is where programs are looked for besides the running daemon.
// /usr/bin comes first among the system directories: it is the
// benchmark's literal path, watched where it exists.
var binDirs = []string{"/usr/local/sbin", "/usr/local/bin", "/usr/bin", "/usr/sbin", "/sbin", "/bin"}

// programs are the binaries section 1.1 audits.
var programs = []string{"dockerd", "containerd", "containerd-shim", "containerd-shim-runc-v1", "containerd-shim-runc-v2", "runc"}

// Gather reads the host once: the Engine API (one /info, one container list
// and an inspect per container, concurrently with the file reads) and the
// files and /proc entries the checks judge.
func gather(ctx context.Context, opt gatherOptions) *Snapshot {
	s := &Snapshot{Offline: opt.root != "", Files: map[string]FileStat{}, Units: map[string]string{}, Binaries: map[string][]string{}}
	var wg sync.WaitGroup
	if !s.Offline {
		wg.Go(func() { s.gatherEngine(ctx, opt.engine) })
		if opt.firewall != nil {
			s.FirewallSet = true
			wg.Go(func() { s.Firewall, s.FirewallErr = opt.firewall(ctx) })
		}
	}
	s.gatherFiles(opt.root)
	wg.Wait()
	if !s.Offline {
		s.SSHD, s.SSHDErr = findSSHD(s.Containers)
	}
	return s
}

func (s *Snapshot) gatherEngine(ctx context.Context, newClient func() (*client.Client, error)) {
	c, err := newClient()
	if err != nil {
		s.InfoErr, s.ContainersErr = err, err
		return
	}
	defer c.Close()
	var wg sync.WaitGroup
	wg.Go(func() {
		info, err := c.Info(ctx, client.InfoOptions{})
		if err != nil {
			s.InfoErr = fmt.Errorf("GET /info: %w", err)
			return
		}
		s.Info = &info.Info
	})
	list, err := c.ContainerList(ctx, client.ContainerListOptions{})
	if err != nil {
		s.ContainersErr = fmt.Errorf("GET /containers/json: %w", err)
		wg.Wait()
		return
	}
	out := make([]container.InspectResponse, len(list.Items))
	errs := make([]error, len(list.Items))
	sem := make(chan struct{}, 8)
	for i, it := range list.Items {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			res, err := c.ContainerInspect(ctx, it.ID, client.ContainerInspectOptions{})
			if err != nil {
				errs[i] = fmt.Errorf("GET /containers/%s/json: %w", shortID(it.ID), err)
				return
			}
			out[i] = res.Container
		})
	}
	wg.Wait()
	for i := range out {
		// A container that went away between list and inspect is not an
		// error: it is simply no longer running.
		if errs[i] != nil && !strings.Contains(errs[i].Error(), "No such container") {
			s.ContainersErr = errors.Join(s.ContainersErr, errs[i])
		}
		if out[i].ID != "" {
			s.Containers = append(s.Containers, out[i])
		}
	}
}

// sectionThreePaths are the fixed paths section 3 and 1.1 look at.
var fixedPaths = []string{
	"/etc/docker", "/etc/docker/daemon.json", "/etc/default/docker", "/etc/sysconfig/docker",
	"/var/run/docker.sock", "/run/containerd/containerd.sock", "/run/containerd",
	"/var/lib/docker", "/etc/containerd/config.toml",
}

func (s *Snapshot) gatherFiles(root string) {
	at := func(p string) string { return filepath.Join(root, p) }
	for _, p := range fixedPaths {
		s.Files[p] = statFile(at(p))
	}
	for _, u := range []string{"docker.service", "docker.socket"} {
		for _, d := range unitDirs {
			p := filepath.Join(d, u)
			if st := statFile(at(p)); st.Exists {
				s.Units[u] = p
				s.Files[p] = st
				break
			}
		}
	}
	s.DaemonJSON = map[string]any{}
	if b, err := os.ReadFile(at("/etc/docker/daemon.json")); err == nil {
		if err := json.Unmarshal(b, &s.DaemonJSON); err != nil {
			s.DaemonJSONErr = fmt.Errorf("/etc/docker/daemon.json: %w", err)
		}
	} else if !os.IsNotExist(err) {
		s.DaemonJSONErr = err
	}
	// TLS files the daemon is configured with (2.7, 3.9 to 3.14).
	for _, k := range []string{"tlscacert", "tlscert", "tlskey"} {
		if v := s.DaemonSetting(k); v != "" {
			s.Files[v] = statFile(at(v))
		}
	}
	_ = filepath.WalkDir(at("/etc/docker/certs.d"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		hp := strings.TrimPrefix(p, root)
		s.CertFiles = append(s.CertFiles, hp)
		s.Files[hp] = statFile(p)
		return nil
	})

	if root == "" {
		s.DockerdArgs, s.Binaries["dockerd"] = runningDockerd()
	}
	// One path per file: /bin is /usr/bin on merged-/usr systems, so
	// candidates are told apart by where they resolve to.
	for _, prog := range programs {
		seen := map[string]bool{}
		for _, p := range s.Binaries[prog] {
			if real, err := filepath.EvalSymlinks(at(p)); err == nil {
				seen[real] = true
			}
		}
		for _, d := range binDirs {
			p := filepath.Join(d, prog)
			real, err := filepath.EvalSymlinks(at(p))
			if err != nil || seen[real] || slices.Contains(s.Binaries[prog], p) {
				continue
			}
			seen[real] = true
			s.Binaries[prog] = append(s.Binaries[prog], p)
		}
		for _, p := range s.Binaries[prog] {
			s.Files[p] = statFile(at(p))
		}
	}
	for p, st := range s.Files {
		if st.Exists {
			st.Real = realPath(root, p)
			s.Files[p] = st
		}
	}

	s.AuditWatches = map[string]bool{}
	if st := statFile(at("/etc/audit")); st.Exists {
		s.AuditDir = true
	}
	for _, p := range []string{"/usr/sbin/auditd", "/sbin/auditd"} {
		if statFile(at(p)).Exists {
			s.Auditd = p
			break
		}
	}
	files, _ := filepath.Glob(at("/etc/audit/rules.d/*.rules"))
	files = append([]string{at("/etc/audit/audit.rules")}, files...)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		s.AuditRuleFiles = append(s.AuditRuleFiles, strings.TrimPrefix(f, root))
		for p := range parseAuditWatches(b) {
			s.AuditWatches[p] = true
			if real := realPath(root, p); real != "" {
				s.AuditWatches[real] = true
			}
		}
	}

	if root == "" {
		s.MountPoints, s.MountPointsErr = readMountPoints("/proc/self/mountinfo")
	}
	if b, err := os.ReadFile(at("/etc/group")); err == nil {
		s.Groups = parseGroups(b)
	} else {
		s.GroupsErr = err
	}
	s.SubUID, s.SubUIDErr = os.ReadFile(at("/etc/subuid"))
	s.SubGID, s.SubGIDErr = os.ReadFile(at("/etc/subgid"))
	s.ContentTrust = os.Getenv("DOCKER_CONTENT_TRUST")
}

// realPath resolves the symbolic links of a host path under root ("" when
// it does not resolve).
func realPath(root, p string) string {
	real, err := filepath.EvalSymlinks(filepath.Join(root, p))
	if err != nil {
		return ""
	}
	if root == "" {
		return real
	}
	rootReal, err := filepath.EvalSymlinks(root)
	if err != nil {
		return ""
	}
	rel, err := filepath.Rel(rootReal, real)
	if err != nil || strings.HasPrefix(rel, "..") {
		return ""
	}
	return "/" + rel
}

func statFile(p string) FileStat {
	fi, err := os.Lstat(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return FileStat{}
		}
		return FileStat{Err: err}
	}
	st := FileStat{Exists: true, Mode: fi.Mode()}
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		st.UID, st.GID = sys.Uid, sys.Gid
	}
	return st
}

// runningDockerd reads the running daemon's command line and executable
// through its PID file.
func runningDockerd() ([]string, []string) {
	b, err := os.ReadFile("/var/run/docker.pid")
	if err != nil {
		return nil, nil
	}
	pid := strings.TrimSpace(string(b))
	if _, err := strconv.Atoi(pid); err != nil {
		return nil, nil
	}
	cmd, err := os.ReadFile("/proc/" + pid + "/cmdline")
	if err != nil || len(cmd) == 0 {
		return nil, nil
	}
	args := strings.Split(strings.TrimRight(string(cmd), "\x00"), "\x00")
	var bins []string
	if exe, err := os.Readlink("/proc/" + pid + "/exe"); err == nil {
		bins = append(bins, strings.TrimSuffix(exe, " (deleted)"))
	}
	return args, bins
}

// parseAuditWatches returns the paths audit rules watch: "-w PATH" and the
// path= and dir= fields of syscall rules. Comments and blank lines are
// skipped.
func parseAuditWatches(b []byte) map[string]bool {
	out := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		for i := 0; i < len(f)-1; i++ {
			switch f[i] {
			case "-w":
				out[f[i+1]] = true
			case "-F":
				if v, ok := strings.CutPrefix(f[i+1], "path="); ok {
					out[v] = true
				} else if v, ok := strings.CutPrefix(f[i+1], "dir="); ok {
					out[v] = true
				}
			}
		}
	}
	return out
}

// readMountPoints reads the mount points of /proc/self/mountinfo (field 5,
// octal escapes decoded).
func readMountPoints(path string) (map[string]bool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseMountPoints(b), nil
}

func parseMountPoints(b []byte) map[string]bool {
	out := map[string]bool{}
	for line := range strings.SplitSeq(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		out[unescapeMount(f[4])] = true
	}
	return out
}

func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func parseGroups(b []byte) map[string]Group {
	out := map[string]Group{}
	for line := range strings.SplitSeq(string(b), "\n") {
		f := strings.Split(line, ":")
		if len(f) < 4 || strings.HasPrefix(f[0], "#") {
			continue
		}
		gid, err := strconv.ParseUint(f[2], 10, 32)
		if err != nil {
			continue
		}
		g := Group{GID: uint32(gid)}
		for m := range strings.SplitSeq(f[3], ",") {
			if m = strings.TrimSpace(m); m != "" {
				g.Members = append(g.Members, m)
			}
		}
		out[f[0]] = g
	}
	return out
}

// findSSHD finds sshd processes and the container whose cgroup holds each
// (5.7), reading /proc: only the comm of every process, and the cgroup of
// the sshd ones.
func findSSHD(cs []container.InspectResponse) (map[string][]int, error) {
	out := map[string][]int{}
	if len(cs) == 0 {
		return out, nil
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, err := os.ReadFile("/proc/" + e.Name() + "/comm")
		if err != nil || strings.TrimSpace(string(comm)) != "sshd" {
			continue
		}
		cg, err := os.ReadFile("/proc/" + e.Name() + "/cgroup")
		if err != nil {
			continue
		}
		for _, c := range cs {
			if c.ID != "" && strings.Contains(string(cg), c.ID) {
				out[c.ID] = append(out[c.ID], pid)
			}
		}
	}
	return out, nil
}

// DaemonSetting is a daemon setting as dockerd runs with it: the running
// daemon's flag (--key=value or --key value) when given, else daemon.json's
// key, as text ("" when neither sets it).
func (s *Snapshot) DaemonSetting(key string, flags ...string) string {
	if vs := flagValues(s.DockerdArgs, append(flags, "--"+key)...); len(vs) > 0 {
		return vs[len(vs)-1]
	}
	v, ok := s.DaemonJSON[key]
	if !ok || v == nil {
		return ""
	}
	switch t := v.(type) {
	case string:
		return t
	case bool:
		return strconv.FormatBool(t)
	default:
		b, _ := json.Marshal(t)
		return string(b)
	}
}

// DaemonList is a list setting: every flag value and daemon.json's array.
func (s *Snapshot) DaemonList(key string, flags ...string) []string {
	out := flagValues(s.DockerdArgs, flags...)
	if arr, ok := s.DaemonJSON[key].([]any); ok {
		for _, v := range arr {
			out = append(out, fmt.Sprint(v))
		}
	}
	return out
}

// flagValues returns the values of the named flags on a command line. A
// flag with no value (the next argument is another flag, or none) is
// "true".
func flagValues(args []string, names ...string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		for _, n := range names {
			if v, ok := strings.CutPrefix(a, n+"="); ok {
				out = append(out, v)
			} else if a == n {
				if i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") && len(n) > 2 && !isBoolFlag(n) {
					out = append(out, args[i+1])
					i++
				} else if i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") && len(n) == 2 {
					out = append(out, args[i+1])
					i++
				} else {
					out = append(out, "true")
				}
			}
		}
	}
	return out
}

// isBoolFlag names dockerd's boolean flags among those the checks read:
// pflag takes no separate value for them.
func isBoolFlag(n string) bool {
	switch n {
	case "--icc", "--iptables", "--live-restore", "--userland-proxy", "--no-new-privileges", "--tls", "--tlsverify", "--experimental":
		return true
	}
	return false
}

func shortID(id string) string { return id[:min(12, len(id))] }
