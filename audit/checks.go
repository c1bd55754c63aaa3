package audit

import (
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/dockward/dockward/modules/subid"
)

// Check is one check of the catalogue.
type Check struct {
	// ID is the benchmark's number ("5.5"), or dockward.NAME for dockward's
	// own checks; waivers name it.
	ID string
	// Name is a stable short name (the report's "check" field).
	Name string
	// Title is the benchmark's title (without "(Automated)").
	Title string
	// target is the finding's target when a result names none.
	target string
	run    func(*judgeEnv) []result
}

// Section is the benchmark section a check belongs to.
func (c Check) Section() string {
	if strings.HasPrefix(c.ID, "dockward.") {
		return "dockward"
	}
	top, _, _ := strings.Cut(c.ID, ".")
	return map[string]string{
		"1": "1 Host Configuration", "2": "2 Docker daemon configuration",
		"3": "3 Docker daemon configuration files", "4": "4 Container Images and Build File",
		"5": "5 Container Runtime",
	}[top]
}

type result struct {
	target, detail, field, reason string
	status                        Status
}

func pass(detail string) result { return result{status: Pass, detail: detail} }
func fail(detail string) result { return result{status: Fail, detail: detail} }
func skip(reason string) result { return result{status: Skip, reason: reason} }
func verdict(ok bool, yes, no string) result {
	if ok {
		return pass(yes)
	}
	return fail(no)
}

// judgeEnv is what a check sees.
type judgeEnv struct {
	s         *Snapshot
	policy    *Policy
	remapUser string
}

// needInfo runs f on /info, or skips saying why it is missing.
func (e *judgeEnv) needInfo(f func() result) []result {
	switch {
	case e.s.Offline:
		return []result{skip("offline (--root): the Engine API is not asked")}
	case e.s.Info == nil:
		return []result{skip(fmt.Sprintf("the Engine API did not answer: %v", e.s.InfoErr))}
	}
	return []result{f()}
}

// Catalogue is every check, in the benchmark's order, dockward's own last.
var Catalogue = catalogue()

// CheckIDs lists the catalogue's IDs (for waivers' "Did you mean").
func CheckIDs() []string {
	out := make([]string, len(Catalogue))
	for i, c := range Catalogue {
		out[i] = c.ID
	}
	return out
}

func catalogue() []Check {
	var cs []Check
	cs = append(cs, sectionOne()...)
	cs = append(cs, sectionTwo()...)
	cs = append(cs, sectionThree()...)
	cs = append(cs, sectionFourFive()...)
	cs = append(cs, dockwardChecks()...)
	return cs
}

// ---- 1 Host Configuration ----

func sectionOne() []Check {
	cs := []Check{
		{ID: "1.1.1", Name: "separate-partition", Title: "Ensure a separate partition for containers has been created", target: "host", run: func(e *judgeEnv) []result {
			if e.s.Offline {
				return []result{skip("offline (--root): the mount table is the running host's")}
			}
			if e.s.MountPointsErr != nil {
				return []result{skip("mount table unreadable: " + e.s.MountPointsErr.Error())}
			}
			dir := "/var/lib/docker"
			if e.s.Info != nil && e.s.Info.DockerRootDir != "" {
				dir = e.s.Info.DockerRootDir
				if hasSecOpt(e.s.Info.SecurityOptions, "userns") {
					dir = filepath.Dir(dir) // /var/lib/docker/100000.100000 -> /var/lib/docker
				}
			}
			return []result{verdict(e.s.MountPoints[dir], dir+" is a mount point of its own",
				dir+" is on the same file system as the rest of the host: a full disk of images or logs fills the host's")}
		}},
		{ID: "1.1.2", Name: "docker-group", Title: "Ensure only trusted users are allowed to control Docker daemon", target: "group docker", run: func(e *judgeEnv) []result {
			if e.s.GroupsErr != nil {
				return []result{skip("/etc/group unreadable: " + e.s.GroupsErr.Error())}
			}
			g, ok := e.s.Groups["docker"]
			if !ok || len(g.Members) == 0 {
				return []result{pass("the docker group has no members")}
			}
			return []result{fail("members " + strings.Join(g.Members, ", ") + " control dockerd, which is root on the host: waive with the reason they are trusted")}
		}},
	}
	type watch struct {
		id, what string
		paths    func(s *Snapshot) []string
	}
	file := func(p string) func(*Snapshot) []string {
		return func(s *Snapshot) []string {
			if s.Files[p].Exists {
				return []string{p}
			}
			return nil
		}
	}
	unit := func(u string) func(*Snapshot) []string {
		return func(s *Snapshot) []string {
			if p := s.Units[u]; p != "" {
				return []string{p}
			}
			return nil
		}
	}
	bin := func(b string) func(*Snapshot) []string { return func(s *Snapshot) []string { return s.Binaries[b] } }
	for _, w := range []watch{
		{"1.1.3", "the Docker daemon", bin("dockerd")},
		{"1.1.4", "Docker files and directories - /run/containerd", file("/run/containerd")},
		{"1.1.5", "Docker files and directories - /var/lib/docker", file("/var/lib/docker")},
		{"1.1.6", "Docker files and directories - /etc/docker", file("/etc/docker")},
		{"1.1.7", "Docker files and directories - docker.service", unit("docker.service")},
		{"1.1.8", "Docker files and directories - containerd.sock", file("/run/containerd/containerd.sock")},
		{"1.1.9", "Docker files and directories - docker.socket", unit("docker.socket")},
		{"1.1.10", "Docker files and directories - /etc/default/docker", file("/etc/default/docker")},
		{"1.1.11", "Docker files and directories - /etc/docker/daemon.json", file("/etc/docker/daemon.json")},
		{"1.1.12", "Docker files and directories - /etc/containerd/config.toml", file("/etc/containerd/config.toml")},
		{"1.1.13", "Docker files and directories - /etc/sysconfig/docker", file("/etc/sysconfig/docker")},
		{"1.1.14", "Docker files and directories - /usr/bin/containerd", bin("containerd")},
		{"1.1.15", "Docker files and directories - /usr/bin/containerd-shim", bin("containerd-shim")},
		{"1.1.16", "Docker files and directories - /usr/bin/containerd-shim-runc-v1", bin("containerd-shim-runc-v1")},
		{"1.1.17", "Docker files and directories - /usr/bin/containerd-shim-runc-v2", bin("containerd-shim-runc-v2")},
		{"1.1.18", "Docker files and directories - /usr/bin/runc", bin("runc")},
	} {
		w := w
		_, name, _ := strings.Cut(w.what, " - ")
		if name == "" {
			name = "dockerd"
		}
		slug := strings.ReplaceAll(strings.TrimPrefix(strings.TrimPrefix(name, "/usr/bin/"), "/"), "/", "-")
		cs = append(cs, Check{ID: w.id, Name: "audit-" + slug, Title: "Ensure auditing is configured for " + w.what, target: name, run: func(e *judgeEnv) []result {
			paths := w.paths(e.s)
			if len(paths) == 0 {
				return []result{skip(name + " does not exist on this host")}
			}
			var res []result
			for _, p := range paths {
				r := auditWatch(e.s, p)
				r.target = p
				res = append(res, r)
			}
			return res
		}})
	}
	return cs
}

// auditWatch judges whether audit rules watch path. It reads the rule
// files augenrules loads (the kernel's loaded rules are not readable in
// every container or machine; the files are what survives a reboot).
func auditWatch(s *Snapshot, path string) result {
	if s.AuditWatches[path] || s.Files[path].Real != "" && s.AuditWatches[s.Files[path].Real] {
		r := pass("watched by " + strings.Join(s.AuditRuleFiles, ", "))
		if s.Auditd == "" {
			// The rules are in place for auditd's first start; the finding
			// says that nothing applies them yet.
			r.detail += "; auditd is not installed: nothing loads the rules until it is"
		}
		return r
	}
	if !s.AuditDir {
		return fail("no audit rules (/etc/audit missing: auditd is not installed)")
	}
	return fail("no audit rule watches " + path)
}

// ---- 2 Docker daemon configuration ----

func sectionTwo() []Check {
	daemon := "dockerd"
	return []Check{
		{ID: "2.2", Name: "icc", Title: "Ensure network traffic is restricted between containers on the default bridge", target: daemon, run: func(e *judgeEnv) []result {
			v := e.s.DaemonSetting("icc")
			return []result{withField(verdict(v == "false", "icc is false", "icc is "+orDefault(v, "unset (true)")+": containers on docker0 reach each other"), "icc")}
		}},
		{ID: "2.3", Name: "log-level", Title: "Ensure the logging level is set to 'info'", target: daemon, run: func(e *judgeEnv) []result {
			v := e.s.DaemonSetting("log-level", "-l")
			return []result{withField(verdict(v == "" || v == "info", "log-level "+orDefault(v, "unset (info)"), "log-level "+v+": info keeps what an audit needs without debug noise"), "log-level")}
		}},
		{ID: "2.4", Name: "iptables", Title: "Ensure Docker is allowed to make changes to iptables", target: daemon, run: func(e *judgeEnv) []result {
			v := e.s.DaemonSetting("iptables")
			return []result{withField(verdict(v != "false", "iptables "+orDefault(v, "unset (true)"), "iptables is false: Docker's own isolation rules are not made"), "iptables")}
		}},
		{ID: "2.5", Name: "insecure-registries", Title: "Ensure insecure registries are not used", target: daemon, run: func(e *judgeEnv) []result {
			return e.needInfo(func() result {
				var bad []string
				if rc := e.s.Info.RegistryConfig; rc != nil {
					for _, c := range rc.InsecureRegistryCIDRs {
						if s := c.String(); s != "127.0.0.0/8" && s != "::1/128" {
							bad = append(bad, s)
						}
					}
					for name, ic := range rc.IndexConfigs {
						if ic != nil && !ic.Secure {
							bad = append(bad, name)
						}
					}
				}
				sort.Strings(bad)
				return withField(verdict(len(bad) == 0, "no insecure registries (loopback only)", "insecure registries "+strings.Join(bad, ", ")), "insecure-registries")
			})
		}},
		{ID: "2.6", Name: "no-aufs", Title: "Ensure aufs storage driver is not used", target: daemon, run: func(e *judgeEnv) []result {
			return e.needInfo(func() result {
				return withField(verdict(e.s.Info.Driver != "aufs", "storage driver "+e.s.Info.Driver, "storage driver aufs"), "storage-driver")
			})
		}},
		{ID: "2.7", Name: "tls-auth", Title: "Ensure TLS authentication for Docker daemon is configured", target: daemon, run: func(e *judgeEnv) []result {
			var tcp []string
			for _, h := range e.s.DaemonList("hosts", "-H", "--host") {
				if strings.HasPrefix(h, "tcp://") {
					tcp = append(tcp, h)
				}
			}
			if len(tcp) == 0 {
				return []result{pass("not listening on TCP")}
			}
			v := e.s.DaemonSetting("tlsverify")
			return []result{withField(verdict(v == "true", "TCP "+strings.Join(tcp, ", ")+" with tlsverify",
				"listening on "+strings.Join(tcp, ", ")+" without tlsverify: anyone who reaches it is root"), "tlsverify")}
		}},
		{ID: "2.8", Name: "default-ulimits", Title: "Ensure the default ulimit is configured appropriately", target: daemon, run: func(e *judgeEnv) []result {
			v := e.s.DaemonSetting("default-ulimits")
			set := v != "" && v != "{}" || len(flagValues(e.s.DockerdArgs, "--default-ulimit")) > 0
			return []result{withField(verdict(set, "default ulimits "+v, "no default-ulimits: containers get dockerd's own limits"), "default-ulimits")}
		}},
		{ID: "2.9", Name: "userns-remap", Title: "Enable user namespace support", target: daemon, run: func(e *judgeEnv) []result {
			return e.needInfo(func() result {
				ok := hasSecOpt(e.s.Info.SecurityOptions, "userns")
				return withField(verdict(ok, "root in containers is remapped", "containers' root is the host's root: set userns-remap"), "userns-remap")
			})
		}},
		{ID: "2.10", Name: "cgroup-parent", Title: "Ensure the default cgroup usage has been confirmed", target: daemon, run: func(e *judgeEnv) []result {
			v := e.s.DaemonSetting("cgroup-parent")
			return []result{withField(verdict(v == "", "default cgroup parent", "cgroup-parent "+v+": confirm it and waive this check with the reason"), "cgroup-parent")}
		}},
		{ID: "2.11", Name: "base-device-size", Title: "Ensure base device size is not changed until needed", target: daemon, run: func(e *judgeEnv) []result {
			var bad []string
			for _, o := range e.s.DaemonList("storage-opts", "--storage-opt") {
				if strings.Contains(o, "dm.basesize") {
					bad = append(bad, o)
				}
			}
			return []result{withField(verdict(len(bad) == 0, "dm.basesize not changed", "storage option "+strings.Join(bad, ", ")), "storage-opts")}
		}},
		{ID: "2.12", Name: "authorization-plugin", Title: "Ensure that authorization for Docker client commands is enabled", target: daemon, run: func(e *judgeEnv) []result {
			return e.needInfo(func() result {
				p := e.s.Info.Plugins.Authorization
				return withField(verdict(len(p) > 0, "authorization plugins "+strings.Join(p, ", "),
					"no authorization plugin: every client of the socket may do everything"), "authorization-plugins")
			})
		}},
		{ID: "2.13", Name: "remote-logging", Title: "Ensure centralized and remote logging is configured", target: daemon, run: func(e *judgeEnv) []result {
			return e.needInfo(func() result {
				d := e.s.Info.LoggingDriver
				local := d == "json-file" || d == "local" || d == "none"
				return withField(verdict(!local, "log driver "+d+" sends logs off the host", "log driver "+d+" keeps logs on this host only"), "log-driver")
			})
		}},
		{ID: "2.14", Name: "no-new-privileges", Title: "Ensure containers are restricted from acquiring new privileges", target: daemon, run: func(e *judgeEnv) []result {
			v := e.s.DaemonSetting("no-new-privileges")
			return []result{withField(verdict(v == "true", "no-new-privileges is the default for containers", "no-new-privileges is "+orDefault(v, "unset")+": setuid binaries in containers can gain privileges"), "no-new-privileges")}
		}},
		{ID: "2.15", Name: "live-restore", Title: "Ensure live restore is enabled", target: daemon, run: func(e *judgeEnv) []result {
			return e.needInfo(func() result {
				if e.s.Info.Swarm.LocalNodeState == "active" {
					return skip("swarm mode is active: live-restore does not apply")
				}
				return withField(verdict(e.s.Info.LiveRestoreEnabled, "containers survive a dockerd restart", "live-restore is off"), "live-restore")
			})
		}},
		{ID: "2.16", Name: "userland-proxy", Title: "Ensure Userland Proxy is Disabled", target: daemon, run: func(e *judgeEnv) []result {
			v := e.s.DaemonSetting("userland-proxy")
			return []result{withField(verdict(v == "false", "userland-proxy is false", "userland-proxy is "+orDefault(v, "unset (true)")+": a docker-proxy process per published port"), "userland-proxy")}
		}},
		{ID: "2.17", Name: "seccomp-profile", Title: "Ensure that a daemon-wide custom seccomp profile is applied if appropriate", target: daemon, run: func(e *judgeEnv) []result {
			return e.needInfo(func() result {
				for _, o := range e.s.Info.SecurityOptions {
					if strings.HasPrefix(o, "name=seccomp") {
						return withField(verdict(!strings.Contains(o, "profile=unconfined"), o, o+": containers run without seccomp by default"), "seccomp-profile")
					}
				}
				return withField(fail("seccomp is not enabled in dockerd"), "seccomp-profile")
			})
		}},
		{ID: "2.18", Name: "no-experimental", Title: "Ensure that experimental features are not implemented in production", target: daemon, run: func(e *judgeEnv) []result {
			return e.needInfo(func() result {
				return withField(verdict(!e.s.Info.ExperimentalBuild, "experimental features off", "experimental features on"), "experimental")
			})
		}},
	}
}

func withField(r result, field string) result { r.field = field; return r }

func hasSecOpt(opts []string, name string) bool {
	return slices.ContainsFunc(opts, func(s string) bool { return s == "name="+name || strings.HasPrefix(s, "name="+name+",") })
}

// ---- 3 Docker daemon configuration files ----

type fileRule struct {
	id, name, what string
	owner          string // "root:root" or "root:docker"
	mode           fs.FileMode
	paths          func(*Snapshot) []string
}

func sectionThree() []Check {
	fixed := func(p string) func(*Snapshot) []string { return func(*Snapshot) []string { return []string{p} } }
	unit := func(u string) func(*Snapshot) []string {
		return func(s *Snapshot) []string {
			if p := s.Units[u]; p != "" {
				return []string{p}
			}
			return nil
		}
	}
	tls := func(k string) func(*Snapshot) []string {
		return func(s *Snapshot) []string {
			if v := s.DaemonSetting(k); v != "" {
				return []string{v}
			}
			return nil
		}
	}
	certs := func(s *Snapshot) []string { return s.CertFiles }
	rules := []fileRule{
		{"3.1", "docker.service", "docker.service file", "root:root", 0, unit("docker.service")},
		{"3.2", "docker.service", "docker.service file", "", 0o644, unit("docker.service")},
		{"3.3", "docker.socket", "docker.socket file", "root:root", 0, unit("docker.socket")},
		{"3.4", "docker.socket", "docker.socket file", "", 0o644, unit("docker.socket")},
		{"3.5", "etc-docker", "/etc/docker directory", "root:root", 0, fixed("/etc/docker")},
		{"3.6", "etc-docker", "/etc/docker directory", "", 0o755, fixed("/etc/docker")},
		{"3.7", "registry-certs", "registry certificate file", "root:root", 0, certs},
		{"3.8", "registry-certs", "registry certificate file", "", 0o444, certs},
		{"3.9", "tls-ca", "TLS CA certificate file", "root:root", 0, tls("tlscacert")},
		{"3.10", "tls-ca", "TLS CA certificate file", "", 0o444, tls("tlscacert")},
		{"3.11", "tls-cert", "Docker server certificate file", "root:root", 0, tls("tlscert")},
		{"3.12", "tls-cert", "Docker server certificate file", "", 0o444, tls("tlscert")},
		{"3.13", "tls-key", "Docker server certificate key file", "root:root", 0, tls("tlskey")},
		{"3.14", "tls-key", "Docker server certificate key file", "", 0o400, tls("tlskey")},
		{"3.15", "docker-sock", "Docker socket file", "root:docker", 0, fixed("/var/run/docker.sock")},
		{"3.16", "docker-sock", "Docker socket file", "", 0o660, fixed("/var/run/docker.sock")},
		{"3.17", "daemon-json", "daemon.json file", "root:root", 0, fixed("/etc/docker/daemon.json")},
		{"3.18", "daemon-json", "daemon.json file", "", 0o644, fixed("/etc/docker/daemon.json")},
		{"3.19", "etc-default-docker", "/etc/default/docker file", "root:root", 0, fixed("/etc/default/docker")},
		{"3.20", "etc-default-docker", "/etc/default/docker file", "", 0o644, fixed("/etc/default/docker")},
		{"3.21", "etc-sysconfig-docker", "/etc/sysconfig/docker file", "", 0o644, fixed("/etc/sysconfig/docker")},
		{"3.22", "etc-sysconfig-docker", "/etc/sysconfig/docker file", "root:root", 0, fixed("/etc/sysconfig/docker")},
		{"3.23", "containerd-sock", "Containerd socket file", "root:root", 0, fixed("/run/containerd/containerd.sock")},
		{"3.24", "containerd-sock", "Containerd socket file", "", 0o660, fixed("/run/containerd/containerd.sock")},
	}
	var cs []Check
	for _, r := range rules {
		r := r
		c := Check{ID: r.id, target: r.what}
		if r.owner != "" {
			c.Name = r.name + "-owner"
			c.Title = fmt.Sprintf("Ensure that %s ownership is set to %s", r.what, r.owner)
		} else {
			c.Name = r.name + "-mode"
			c.Title = fmt.Sprintf("Ensure that %s permissions are set to %o or more restrictively", r.what, r.mode)
		}
		c.run = func(e *judgeEnv) []result {
			paths := r.paths(e.s)
			if len(paths) == 0 {
				return []result{skip(r.what + " is not configured or does not exist on this host")}
			}
			var res []result
			for _, p := range paths {
				res = append(res, fileResult(e.s, p, r))
			}
			return res
		}
		cs = append(cs, c)
	}
	return cs
}

func fileResult(s *Snapshot, p string, r fileRule) result {
	st, ok := s.Files[p]
	res := result{target: p}
	switch {
	case !ok || !st.Exists && st.Err == nil:
		res.status, res.reason = Skip, p+" does not exist on this host"
		return res
	case st.Err != nil:
		res.status, res.reason = Skip, "stat "+p+": "+st.Err.Error()
		return res
	}
	if r.owner != "" {
		want := uint32(0)
		wantGroup := "root"
		if r.owner == "root:docker" {
			g, ok := s.Groups["docker"]
			if !ok {
				res.status, res.reason = Skip, "there is no docker group on this host"
				return res
			}
			want, wantGroup = g.GID, "docker"
		}
		ok := st.UID == 0 && st.GID == want
		res.status = map[bool]Status{true: Pass, false: Fail}[ok]
		res.detail = fmt.Sprintf("owner %d:%d, want root:%s", st.UID, st.GID, wantGroup)
		return res
	}
	perm := st.Mode.Perm()
	ok = perm&^r.mode == 0
	res.status = map[bool]Status{true: Pass, false: Fail}[ok]
	res.detail = fmt.Sprintf("mode %04o, want %04o or less", perm, r.mode)
	return res
}

// ---- dockward's own ----

func dockwardChecks() []Check {
	return []Check{
		{ID: "dockward.engine", Name: "engine-reachable", Title: "The Docker Engine API answers", target: "dockerd", run: func(e *judgeEnv) []result {
			if e.s.Offline {
				return []result{skip("offline (--root): the Engine API is not asked")}
			}
			if e.s.InfoErr != nil {
				return []result{fail(e.s.InfoErr.Error())}
			}
			if e.s.ContainersErr != nil {
				return []result{fail(e.s.ContainersErr.Error())}
			}
			return []result{pass(fmt.Sprintf("%d running containers", len(e.s.Containers)))}
		}},
		{ID: "dockward.log-driver", Name: "log-driver", Title: "Containers' logs are kept on the host for audit and forensics", target: "dockerd", run: func(e *judgeEnv) []result {
			return e.needInfo(func() result {
				d := e.s.Info.LoggingDriver
				ok := d == "json-file" || d == "local" || d == "journald"
				return withField(verdict(ok, "default log driver "+d, "default log driver "+d+" keeps no local copy"), "log-driver")
			})
		}},
		{ID: "dockward.log-caps", Name: "log-caps", Title: "Containers run with the daemon's current log caps (only recreating a container applies new ones)", run: checkLogCaps},
		{ID: "dockward.subid-remap", Name: "subordinate-ids", Title: "The remap user has the subordinate ID ranges userns-remap needs", run: func(e *judgeEnv) []result {
			if e.remapUser == "" {
				return []result{skip("no remap user configured")}
			}
			return []result{subIDRange(e, "/etc/subuid", e.s.SubUID, e.s.SubUIDErr), subIDRange(e, "/etc/subgid", e.s.SubGID, e.s.SubGIDErr)}
		}},
		{ID: "dockward.subid-overlap", Name: "subid-overlap", Title: "Subordinate ID ranges overlap nobody", run: func(e *judgeEnv) []result {
			return []result{subIDOverlap("/etc/subuid", e.s.SubUID, e.s.SubUIDErr), subIDOverlap("/etc/subgid", e.s.SubGID, e.s.SubGIDErr)}
		}},
		{ID: "dockward.firewall", Name: "firewall-table", Title: "The firewall table matches the configuration", target: "nftables", run: func(e *judgeEnv) []result {
			switch {
			case e.s.Offline:
				return []result{skip("offline (--root): the kernel's tables are not read")}
			case !e.s.FirewallSet:
				return []result{skip("no firewall block in the configuration")}
			case e.s.FirewallErr != nil:
				return []result{skip("the firewall could not be read: " + e.s.FirewallErr.Error())}
			}
			return []result{verdict(len(e.s.Firewall) == 0, "the table matches the configuration",
				fmt.Sprintf("%d differences (dockward plan shows them): %s", len(e.s.Firewall), strings.Join(firstN(e.s.Firewall, 3), "; ")))}
		}},
	}
}

func firstN(s []string, n int) []string { return s[:min(n, len(s))] }

// parseSubIDs parses a subuid or subgid file for a check; a read error is
// readErr's verdict (Fail for the remap user's ranges, Skip for overlap).
func parseSubIDs(path string, data []byte, err error, readErr Status) (*subid.File, result) {
	res := result{target: path}
	if err != nil {
		res.status = readErr
		if readErr == Skip {
			res.reason = err.Error()
		} else {
			res.detail = err.Error()
		}
		return nil, res
	}
	f, err := subid.Parse(path, data)
	if err != nil {
		res.status, res.detail = Fail, err.Error()
		return nil, res
	}
	return f, res
}

func subIDRange(e *judgeEnv, path string, data []byte, err error) result {
	f, res := parseSubIDs(path, data, err, Fail)
	if f == nil {
		return res
	}
	var total uint64
	for _, l := range f.Lines {
		if l.Kind == subid.Entry && l.Owner == e.remapUser {
			total += l.Range.Count
		}
	}
	res.status = map[bool]Status{true: Pass, false: Fail}[total >= 65536]
	res.detail = fmt.Sprintf("%s has %d subordinate IDs (65536 needed for userns-remap)", e.remapUser, total)
	return res
}

func subIDOverlap(path string, data []byte, err error) result {
	f, res := parseSubIDs(path, data, err, Skip)
	if f == nil {
		return res
	}
	var entries []subid.Line
	for _, l := range f.Lines {
		if l.Kind == subid.Entry {
			entries = append(entries, l)
		}
	}
	var bad []string
	for i, a := range entries {
		for _, b := range entries[i+1:] {
			if a.Owner != b.Owner && a.Range.Overlaps(b.Range) {
				bad = append(bad, fmt.Sprintf("%s %s overlaps %s %s", a.Owner, a.Range, b.Owner, b.Range))
			}
		}
	}
	res.status = map[bool]Status{true: Pass, false: Fail}[len(bad) == 0]
	res.detail = pick(len(bad) == 0, fmt.Sprintf("%d ranges, none overlapping another user's", len(entries)), strings.Join(bad, "; "))
	return res
}

func pick(ok bool, yes, no string) string {
	if ok {
		return yes
	}
	return no
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
