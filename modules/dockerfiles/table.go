package dockerfiles

// entry is one row of CIS Docker Benchmark section 3: the checks, how the
// file is found, and what it may be at most.
type entry struct {
	CIS  string // "3.17/3.18": the ownership and the mode check
	What string
	// Path is a literal path; Unit a unit whose file systemd names (and
	// the places docker-bench-security looks); TLS a daemon.json key
	// naming a file; Tree a directory whose regular files all get Spec.
	Path, Unit, TLS, Tree string
	Spec                  Spec
}

// table is the benchmark's values, the default. Modes are the most a file
// may allow: the benchmark says "644 or more restrictive" (3.14 says 400
// exactly for the TLS key; a stricter 0000 stays, dockward only tightens).
var table = []entry{
	{CIS: "3.1/3.2", What: "docker.service", Unit: "docker.service", Spec: Spec{"root", "root", 0o644}},
	{CIS: "3.3/3.4", What: "docker.socket", Unit: "docker.socket", Spec: Spec{"root", "root", 0o644}},
	{CIS: "3.5/3.6", What: "/etc/docker", Path: "/etc/docker", Spec: Spec{"root", "root", 0o755}},
	{CIS: "3.7/3.8", What: "registry certificates", Tree: "/etc/docker/certs.d", Spec: Spec{"root", "root", 0o444}},
	{CIS: "3.9/3.10", What: "TLS CA certificate", TLS: "tlscacert", Spec: Spec{"root", "root", 0o444}},
	{CIS: "3.11/3.12", What: "TLS server certificate", TLS: "tlscert", Spec: Spec{"root", "root", 0o444}},
	{CIS: "3.13/3.14", What: "TLS server key", TLS: "tlskey", Spec: Spec{"root", "root", 0o400}},
	{CIS: "3.15/3.16", What: "Docker socket", Path: "/var/run/docker.sock", Spec: Spec{"root", "docker", 0o660}},
	{CIS: "3.17/3.18", What: "daemon.json", Path: "/etc/docker/daemon.json", Spec: Spec{"root", "root", 0o644}},
	{CIS: "3.19/3.20", What: "/etc/default/docker", Path: "/etc/default/docker", Spec: Spec{"root", "root", 0o644}},
	{CIS: "3.21/3.22", What: "/etc/sysconfig/docker", Path: "/etc/sysconfig/docker", Spec: Spec{"root", "root", 0o644}},
	{CIS: "3.23/3.24", What: "containerd socket", Path: "/run/containerd/containerd.sock", Spec: Spec{"root", "root", 0o660}},
}

// builtinByPath returns the table's spec for a literal path, or root:root
// with no mode.
func builtinByPath(p string) (Spec, bool) {
	for _, e := range table {
		if e.Path == p {
			return e.Spec, true
		}
	}
	return Spec{Owner: "root", Group: "root"}, false
}

// unitDirs are where docker-bench-security looks for a unit file, besides
// systemd's FragmentPath.
var unitDirs = []string{"/etc/systemd/system", "/lib/systemd/system", "/usr/lib/systemd/system"}

// daemonJSON is where the TLS keys are read.
const daemonJSON = "/etc/docker/daemon.json"
