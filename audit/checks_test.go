package audit

import (
	"errors"
	"io/fs"
	"net/netip"
	"testing"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/api/types/swarm"
)

// compliant is the recorded snapshot made to pass everything: one
// container, recorded dw-good with the limits a host with cgroup
// controllers keeps and an AppArmor profile; files owned and moded as
// the benchmark wants; audit rules for every path.
func compliant(t *testing.T) (*Snapshot, *Policy) {
	t.Helper()
	s := recorded(t)
	good := s.Containers[3]
	good.HostConfig.Memory, good.HostConfig.CPUShares = 64<<20, 512
	good.HostConfig.PidsLimit = new(int64(64))
	good.AppArmorProfile = "docker-default"
	s.Containers = []container.InspectResponse{good}
	s.Info.SecurityOptions = append(s.Info.SecurityOptions, "name=apparmor")
	s.Info.LoggingDriver = "journald" // forwarded off the host, and a local copy
	s.Info.Plugins.Authorization = []string{"opa-docker-authz"}
	s.DaemonJSON["default-ulimits"] = map[string]any{"nofile": map[string]any{"Name": "nofile", "Hard": 64000, "Soft": 64000}}
	s.Units = map[string]string{"docker.service": "/lib/systemd/system/docker.service", "docker.socket": "/lib/systemd/system/docker.socket"}
	file := FileStat{Exists: true, Mode: 0o644}
	for _, p := range []string{"/lib/systemd/system/docker.service", "/lib/systemd/system/docker.socket", "/etc/docker/daemon.json",
		"/etc/default/docker", "/etc/sysconfig/docker", "/etc/containerd/config.toml"} {
		s.Files[p] = file
	}
	s.Files["/etc/docker"] = FileStat{Exists: true, Mode: fs.ModeDir | 0o755}
	s.Files["/run/containerd"] = FileStat{Exists: true, Mode: fs.ModeDir | 0o711}
	s.Files["/var/lib/docker"] = FileStat{Exists: true, Mode: fs.ModeDir | 0o710}
	s.Files["/var/run/docker.sock"] = FileStat{Exists: true, GID: 995, Mode: fs.ModeSocket | 0o660}
	s.Files["/run/containerd/containerd.sock"] = FileStat{Exists: true, Mode: fs.ModeSocket | 0o660}
	s.CertFiles = []string{"/etc/docker/certs.d/registry:5000/ca.crt"}
	s.Files[s.CertFiles[0]] = FileStat{Exists: true, Mode: 0o444}
	s.DaemonJSON["tlscacert"], s.DaemonJSON["tlscert"], s.DaemonJSON["tlskey"] = "/etc/docker/ca.pem", "/etc/docker/cert.pem", "/etc/docker/key.pem"
	s.Files["/etc/docker/ca.pem"] = FileStat{Exists: true, Mode: 0o444}
	s.Files["/etc/docker/cert.pem"] = FileStat{Exists: true, Mode: 0o444}
	s.Files["/etc/docker/key.pem"] = FileStat{Exists: true, Mode: 0o400}
	s.Binaries = map[string][]string{}
	for _, p := range programs {
		s.Binaries[p] = []string{"/usr/bin/" + p}
	}
	s.AuditDir = true
	s.Auditd = "/usr/sbin/auditd"
	s.AuditRuleFiles = []string{"/etc/audit/rules.d/docker.rules"}
	for p := range s.Files {
		s.AuditWatches[p] = true
	}
	for _, bs := range s.Binaries {
		s.AuditWatches[bs[0]] = true
	}
	s.MountPoints["/var/lib/docker"] = true
	s.SubUID, s.SubGID = []byte("dockremap:100000:65536\n"), []byte("dockremap:100000:65536\n")
	s.FirewallSet = true
	s.ContentTrust = "1"
	pol := DefaultPolicy()
	pol.CapAdd = []string{"NET_BIND_SERVICE"}
	return s, pol
}

type checkCase struct {
	id     string
	what   string
	mutate func(s *Snapshot, p *Policy)
	want   Status
}

func ctr(s *Snapshot) *container.InspectResponse { return &s.Containers[0] }

// checkCases make each check fail (or skip) by one change to the
// compliant snapshot.
var checkCases = []checkCase{
	{"1.1.1", "data root on the root file system", func(s *Snapshot, _ *Policy) { delete(s.MountPoints, "/var/lib/docker") }, Fail},
	{"1.1.1", "mount table unreadable", func(s *Snapshot, _ *Policy) { s.MountPointsErr = errors.New("EACCES") }, Skip},
	{"1.1.2", "a member in the docker group", func(s *Snapshot, _ *Policy) { s.Groups["docker"] = Group{GID: 995, Members: []string{"alice"}} }, Fail},
	{"1.1.3", "dockerd not watched", func(s *Snapshot, _ *Policy) { delete(s.AuditWatches, "/usr/bin/dockerd") }, Fail},
	{"1.1.4", "no auditd", func(s *Snapshot, _ *Policy) { s.AuditWatches = map[string]bool{}; s.AuditDir = false }, Fail},
	{"1.1.5", "not watched", func(s *Snapshot, _ *Policy) { delete(s.AuditWatches, "/var/lib/docker") }, Fail},
	{"1.1.6", "not watched", func(s *Snapshot, _ *Policy) { delete(s.AuditWatches, "/etc/docker") }, Fail},
	{"1.1.7", "not watched", func(s *Snapshot, _ *Policy) { delete(s.AuditWatches, "/lib/systemd/system/docker.service") }, Fail},
	{"1.1.8", "not watched", func(s *Snapshot, _ *Policy) { delete(s.AuditWatches, "/run/containerd/containerd.sock") }, Fail},
	{"1.1.9", "not watched", func(s *Snapshot, _ *Policy) { delete(s.AuditWatches, "/lib/systemd/system/docker.socket") }, Fail},
	{"1.1.10", "not watched", func(s *Snapshot, _ *Policy) { delete(s.AuditWatches, "/etc/default/docker") }, Fail},
	{"1.1.11", "not watched", func(s *Snapshot, _ *Policy) { delete(s.AuditWatches, "/etc/docker/daemon.json") }, Fail},
	{"1.1.12", "not watched", func(s *Snapshot, _ *Policy) { delete(s.AuditWatches, "/etc/containerd/config.toml") }, Fail},
	{"1.1.13", "not watched", func(s *Snapshot, _ *Policy) { delete(s.AuditWatches, "/etc/sysconfig/docker") }, Fail},
	{"1.1.13", "missing file", func(s *Snapshot, _ *Policy) { s.Files["/etc/sysconfig/docker"] = FileStat{} }, Skip},
	{"1.1.14", "not watched", func(s *Snapshot, _ *Policy) { delete(s.AuditWatches, "/usr/bin/containerd") }, Fail},
	{"1.1.15", "not watched", func(s *Snapshot, _ *Policy) { delete(s.AuditWatches, "/usr/bin/containerd-shim") }, Fail},
	{"1.1.15", "not installed", func(s *Snapshot, _ *Policy) { delete(s.Binaries, "containerd-shim") }, Skip},
	{"1.1.16", "not watched", func(s *Snapshot, _ *Policy) { delete(s.AuditWatches, "/usr/bin/containerd-shim-runc-v1") }, Fail},
	{"1.1.17", "not watched", func(s *Snapshot, _ *Policy) { delete(s.AuditWatches, "/usr/bin/containerd-shim-runc-v2") }, Fail},
	{"1.1.18", "not watched", func(s *Snapshot, _ *Policy) { delete(s.AuditWatches, "/usr/bin/runc") }, Fail},
	{"2.2", "icc on", func(s *Snapshot, _ *Policy) { delete(s.DaemonJSON, "icc") }, Fail},
	{"2.2", "flag wins over the file", func(s *Snapshot, _ *Policy) { s.DockerdArgs = append(s.DockerdArgs, "--icc=true") }, Fail},
	{"2.3", "debug", func(s *Snapshot, _ *Policy) { s.DockerdArgs = append(s.DockerdArgs, "-l", "debug") }, Fail},
	{"2.4", "iptables off", func(s *Snapshot, _ *Policy) { s.DaemonJSON["iptables"] = false }, Fail},
	{"2.5", "an insecure registry", func(s *Snapshot, _ *Policy) {
		s.Info.RegistryConfig.InsecureRegistryCIDRs = append(s.Info.RegistryConfig.InsecureRegistryCIDRs, netip.MustParsePrefix("10.0.0.0/8"))
	}, Fail},
	{"2.6", "aufs", func(s *Snapshot, _ *Policy) { s.Info.Driver = "aufs" }, Fail},
	{"2.6", "no /info", func(s *Snapshot, _ *Policy) { s.Info, s.InfoErr = nil, errors.New("refused") }, Skip},
	{"2.7", "tcp without tlsverify", func(s *Snapshot, _ *Policy) { s.DockerdArgs = append(s.DockerdArgs, "-H", "tcp://0.0.0.0:2375") }, Fail},
	{"2.8", "no default ulimits", func(s *Snapshot, _ *Policy) { delete(s.DaemonJSON, "default-ulimits") }, Fail},
	{"2.9", "no userns", func(s *Snapshot, _ *Policy) { s.Info.SecurityOptions = []string{"name=seccomp,profile=builtin"} }, Fail},
	{"2.10", "cgroup parent", func(s *Snapshot, _ *Policy) { s.DaemonJSON["cgroup-parent"] = "/docker" }, Fail},
	{"2.11", "dm.basesize", func(s *Snapshot, _ *Policy) { s.DaemonJSON["storage-opts"] = []any{"dm.basesize=20G"} }, Fail},
	{"2.12", "no authorization plugin", func(s *Snapshot, _ *Policy) { s.Info.Plugins.Authorization = nil }, Fail},
	{"2.13", "json-file", func(s *Snapshot, _ *Policy) { s.Info.LoggingDriver = "json-file" }, Fail},
	{"2.14", "no no-new-privileges", func(s *Snapshot, _ *Policy) { delete(s.DaemonJSON, "no-new-privileges") }, Fail},
	{"2.15", "live-restore off", func(s *Snapshot, _ *Policy) { s.Info.LiveRestoreEnabled = false }, Fail},
	{"2.15", "swarm", func(s *Snapshot, _ *Policy) { s.Info.Swarm.LocalNodeState = swarm.LocalNodeStateActive }, Skip},
	{"2.16", "userland proxy", func(s *Snapshot, _ *Policy) { delete(s.DaemonJSON, "userland-proxy") }, Fail},
	{"2.17", "seccomp unconfined", func(s *Snapshot, _ *Policy) { s.Info.SecurityOptions = []string{"name=seccomp,profile=unconfined"} }, Fail},
	{"2.18", "experimental", func(s *Snapshot, _ *Policy) { s.Info.ExperimentalBuild = true }, Fail},
	{"3.1", "owned by a user", func(s *Snapshot, _ *Policy) {
		s.Files["/lib/systemd/system/docker.service"] = FileStat{Exists: true, UID: 1000, Mode: 0o644}
	}, Fail},
	{"3.2", "group-writable", func(s *Snapshot, _ *Policy) {
		s.Files["/lib/systemd/system/docker.service"] = FileStat{Exists: true, Mode: 0o664}
	}, Fail},
	{"3.3", "owned by a group", func(s *Snapshot, _ *Policy) {
		s.Files["/lib/systemd/system/docker.socket"] = FileStat{Exists: true, GID: 5, Mode: 0o644}
	}, Fail},
	{"3.4", "world-writable", func(s *Snapshot, _ *Policy) {
		s.Files["/lib/systemd/system/docker.socket"] = FileStat{Exists: true, Mode: 0o646}
	}, Fail},
	{"3.4", "no unit", func(s *Snapshot, _ *Policy) { delete(s.Units, "docker.socket") }, Skip},
	{"3.5", "owned by a user", func(s *Snapshot, _ *Policy) {
		s.Files["/etc/docker"] = FileStat{Exists: true, UID: 1, Mode: fs.ModeDir | 0o755}
	}, Fail},
	{"3.6", "group-writable", func(s *Snapshot, _ *Policy) {
		s.Files["/etc/docker"] = FileStat{Exists: true, Mode: fs.ModeDir | 0o775}
	}, Fail},
	{"3.7", "owned by a user", func(s *Snapshot, _ *Policy) { s.Files[s.CertFiles[0]] = FileStat{Exists: true, UID: 1, Mode: 0o444} }, Fail},
	{"3.8", "writable", func(s *Snapshot, _ *Policy) { s.Files[s.CertFiles[0]] = FileStat{Exists: true, Mode: 0o644} }, Fail},
	{"3.8", "no certificates", func(s *Snapshot, _ *Policy) { s.CertFiles = nil }, Skip},
	{"3.9", "owned by a user", func(s *Snapshot, _ *Policy) {
		s.Files["/etc/docker/ca.pem"] = FileStat{Exists: true, UID: 1, Mode: 0o444}
	}, Fail},
	{"3.10", "writable", func(s *Snapshot, _ *Policy) { s.Files["/etc/docker/ca.pem"] = FileStat{Exists: true, Mode: 0o644} }, Fail},
	{"3.10", "no TLS", func(s *Snapshot, _ *Policy) { delete(s.DaemonJSON, "tlscacert") }, Skip},
	{"3.11", "owned by a user", func(s *Snapshot, _ *Policy) {
		s.Files["/etc/docker/cert.pem"] = FileStat{Exists: true, UID: 1, Mode: 0o444}
	}, Fail},
	{"3.12", "writable", func(s *Snapshot, _ *Policy) { s.Files["/etc/docker/cert.pem"] = FileStat{Exists: true, Mode: 0o644} }, Fail},
	{"3.13", "owned by a user", func(s *Snapshot, _ *Policy) {
		s.Files["/etc/docker/key.pem"] = FileStat{Exists: true, UID: 1, Mode: 0o400}
	}, Fail},
	{"3.14", "readable", func(s *Snapshot, _ *Policy) { s.Files["/etc/docker/key.pem"] = FileStat{Exists: true, Mode: 0o440} }, Fail},
	{"3.15", "group root", func(s *Snapshot, _ *Policy) {
		s.Files["/var/run/docker.sock"] = FileStat{Exists: true, Mode: fs.ModeSocket | 0o660}
	}, Fail},
	{"3.15", "no docker group", func(s *Snapshot, _ *Policy) { delete(s.Groups, "docker") }, Skip},
	{"3.16", "world access", func(s *Snapshot, _ *Policy) {
		s.Files["/var/run/docker.sock"] = FileStat{Exists: true, GID: 995, Mode: fs.ModeSocket | 0o666}
	}, Fail},
	{"3.17", "owned by a user", func(s *Snapshot, _ *Policy) {
		s.Files["/etc/docker/daemon.json"] = FileStat{Exists: true, UID: 1, Mode: 0o644}
	}, Fail},
	{"3.18", "group-writable", func(s *Snapshot, _ *Policy) { s.Files["/etc/docker/daemon.json"] = FileStat{Exists: true, Mode: 0o664} }, Fail},
	{"3.19", "owned by a user", func(s *Snapshot, _ *Policy) {
		s.Files["/etc/default/docker"] = FileStat{Exists: true, UID: 1, Mode: 0o644}
	}, Fail},
	{"3.20", "world-writable", func(s *Snapshot, _ *Policy) { s.Files["/etc/default/docker"] = FileStat{Exists: true, Mode: 0o666} }, Fail},
	{"3.21", "group-writable", func(s *Snapshot, _ *Policy) { s.Files["/etc/sysconfig/docker"] = FileStat{Exists: true, Mode: 0o664} }, Fail},
	{"3.22", "owned by a user", func(s *Snapshot, _ *Policy) {
		s.Files["/etc/sysconfig/docker"] = FileStat{Exists: true, UID: 1, Mode: 0o644}
	}, Fail},
	{"3.22", "missing", func(s *Snapshot, _ *Policy) { s.Files["/etc/sysconfig/docker"] = FileStat{} }, Skip},
	{"3.23", "owned by a group", func(s *Snapshot, _ *Policy) {
		s.Files["/run/containerd/containerd.sock"] = FileStat{Exists: true, GID: 995, Mode: fs.ModeSocket | 0o660}
	}, Fail},
	{"3.24", "world access", func(s *Snapshot, _ *Policy) {
		s.Files["/run/containerd/containerd.sock"] = FileStat{Exists: true, Mode: fs.ModeSocket | 0o666}
	}, Fail},
	{"4.1", "root user", func(s *Snapshot, _ *Policy) { ctr(s).Config.User = "0:0" }, Fail},
	{"4.1", "relaxed", func(s *Snapshot, p *Policy) { ctr(s).Config.User = ""; p.NonRootUser = false }, Waived},
	{"4.5", "no content trust", func(s *Snapshot, _ *Policy) { s.ContentTrust = "" }, Fail},
	{"4.6", "no health check", func(s *Snapshot, _ *Policy) {
		ctr(s).Config.Healthcheck = &container.HealthConfig{Test: []string{"NONE"}}
	}, Fail},
	{"5.1", "swarm", func(s *Snapshot, _ *Policy) { s.Info.Swarm.LocalNodeState = swarm.LocalNodeStateActive }, Fail},
	{"5.2", "unconfined", func(s *Snapshot, _ *Policy) { ctr(s).AppArmorProfile = "unconfined" }, Fail},
	{"5.2", "no AppArmor", func(s *Snapshot, _ *Policy) { s.Info.SecurityOptions = s.Info.SecurityOptions[:4] }, Skip},
	{"5.3", "SELinux without a label", func(s *Snapshot, _ *Policy) { s.Info.SecurityOptions = append(s.Info.SecurityOptions, "name=selinux") }, Fail},
	{"5.3", "no SELinux", func(s *Snapshot, _ *Policy) {}, Skip},
	{"5.4", "adds SYS_ADMIN", func(s *Snapshot, _ *Policy) { ctr(s).HostConfig.CapAdd = []string{"SYS_ADMIN"} }, Fail},
	{"5.4", "does not drop ALL", func(s *Snapshot, _ *Policy) { ctr(s).HostConfig.CapDrop = nil }, Fail},
	{"5.5", "privileged", func(s *Snapshot, _ *Policy) { ctr(s).HostConfig.Privileged = true }, Fail},
	{"5.5", "relaxed", func(s *Snapshot, p *Policy) { ctr(s).HostConfig.Privileged = true; p.Privileged = true }, Waived},
	{"5.6", "/etc mounted", func(s *Snapshot, _ *Policy) {
		ctr(s).Mounts = []container.MountPoint{{Type: mount.TypeBind, Source: "/etc", Destination: "/host-etc", RW: false}}
	}, Fail},
	{"5.6", "below /usr", func(s *Snapshot, _ *Policy) {
		ctr(s).Mounts = []container.MountPoint{{Type: mount.TypeBind, Source: "/usr/share", Destination: "/x", RW: true}}
	}, Fail},
	{"5.6", "a volume", func(s *Snapshot, _ *Policy) {
		ctr(s).Mounts = []container.MountPoint{{Type: mount.TypeVolume, Source: "/var/lib/docker/volumes/x/_data", Destination: "/x", RW: true}}
	}, Pass},
	{"5.7", "sshd", func(s *Snapshot, _ *Policy) { s.SSHD = map[string][]int{ctr(s).ID: {4242}} }, Fail},
	{"5.7", "/proc not read", func(s *Snapshot, _ *Policy) { s.SSHD = nil }, Skip},
	{"5.8", "port 80", func(s *Snapshot, _ *Policy) {
		ctr(s).NetworkSettings.Ports = network.PortMap{network.MustParsePort("8080/tcp"): {{HostPort: "80"}}}
	}, Fail},
	{"5.10", "host network", func(s *Snapshot, _ *Policy) { ctr(s).HostConfig.NetworkMode = "host" }, Fail},
	{"5.10", "allowed", func(s *Snapshot, p *Policy) {
		ctr(s).HostConfig.NetworkMode = "host"
		p.HostNamespaces = []string{"network"}
	}, Waived},
	{"5.11", "no memory limit", func(s *Snapshot, _ *Policy) { ctr(s).HostConfig.Memory = 0 }, Fail},
	{"5.11", "relaxed", func(s *Snapshot, p *Policy) { ctr(s).HostConfig.Memory = 0; p.MemoryLimit = false }, Waived},
	{"5.12", "no CPU shares", func(s *Snapshot, _ *Policy) { ctr(s).HostConfig.CPUShares = 1024 }, Fail},
	{"5.12", "NanoCpus instead", func(s *Snapshot, _ *Policy) { ctr(s).HostConfig.CPUShares, ctr(s).HostConfig.NanoCPUs = 0, 5e8 }, Pass},
	{"5.13", "writable root", func(s *Snapshot, _ *Policy) { ctr(s).HostConfig.ReadonlyRootfs = false }, Fail},
	{"5.14", "every address", func(s *Snapshot, _ *Policy) {
		ctr(s).HostConfig.PortBindings = network.PortMap{network.MustParsePort("8080/tcp"): {{HostPort: "8080"}}}
	}, Fail},
	{"5.14", "bound to one address", func(s *Snapshot, _ *Policy) {
		ctr(s).HostConfig.PortBindings = network.PortMap{network.MustParsePort("8080/tcp"): {{HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: "8080"}}}
	}, Pass},
	{"5.15", "always", func(s *Snapshot, _ *Policy) {
		ctr(s).HostConfig.RestartPolicy = container.RestartPolicy{Name: "always"}
	}, Fail},
	{"5.15", "on-failure:10", func(s *Snapshot, _ *Policy) {
		ctr(s).HostConfig.RestartPolicy = container.RestartPolicy{Name: "on-failure", MaximumRetryCount: 10}
	}, Fail},
	{"5.16", "host pid", func(s *Snapshot, _ *Policy) { ctr(s).HostConfig.PidMode = "host" }, Fail},
	{"5.17", "host ipc", func(s *Snapshot, _ *Policy) { ctr(s).HostConfig.IpcMode = "host" }, Fail},
	{"5.18", "a host device", func(s *Snapshot, _ *Policy) {
		ctr(s).HostConfig.Devices = []container.DeviceMapping{{PathOnHost: "/dev/kvm", PathInContainer: "/dev/kvm"}}
	}, Fail},
	{"5.20", "shared propagation", func(s *Snapshot, _ *Policy) {
		ctr(s).Mounts = []container.MountPoint{{Type: mount.TypeBind, Source: "/srv", Destination: "/srv", Propagation: mount.PropagationRShared}}
	}, Fail},
	{"5.21", "host uts", func(s *Snapshot, _ *Policy) { ctr(s).HostConfig.UTSMode = "host" }, Fail},
	{"5.22", "unconfined", func(s *Snapshot, _ *Policy) { ctr(s).HostConfig.SecurityOpt = []string{"seccomp=unconfined"} }, Fail},
	{"5.25", "cgroup parent", func(s *Snapshot, _ *Policy) { ctr(s).HostConfig.CgroupParent = "/custom" }, Fail},
	{"5.26", "explicitly off", func(s *Snapshot, _ *Policy) { ctr(s).HostConfig.SecurityOpt = []string{"no-new-privileges=false"} }, Fail},
	{"5.26", "neither container nor daemon", func(s *Snapshot, _ *Policy) {
		ctr(s).HostConfig.SecurityOpt = nil
		delete(s.DaemonJSON, "no-new-privileges")
		s.Info.SecurityOptions = []string{"name=seccomp,profile=builtin", "name=userns", "name=apparmor"}
	}, Fail},
	{"5.27", "no health", func(s *Snapshot, _ *Policy) { ctr(s).State.Health = nil }, Fail},
	{"5.28", "latest", func(s *Snapshot, _ *Policy) { ctr(s).Config.Image = "registry:5000/team/app:latest" }, Fail},
	{"5.28", "untagged", func(s *Snapshot, _ *Policy) { ctr(s).Config.Image = "registry:5000/team/app" }, Fail},
	{"5.28", "digest", func(s *Snapshot, _ *Policy) { ctr(s).Config.Image = "app@sha256:0123" }, Pass},
	{"5.29", "no pids limit", func(s *Snapshot, _ *Policy) { ctr(s).HostConfig.PidsLimit = new(int64(-1)) }, Fail},
	{"5.31", "host userns", func(s *Snapshot, _ *Policy) { ctr(s).HostConfig.UsernsMode = "host" }, Fail},
	{"5.32", "socket", func(s *Snapshot, _ *Policy) {
		ctr(s).Mounts = []container.MountPoint{{Type: mount.TypeBind, Source: "/var/run/docker.sock", Destination: "/var/run/docker.sock"}}
	}, Fail},
	{"5.32", "no containers", func(s *Snapshot, _ *Policy) { s.Containers = nil }, Skip},
	{"dockward.engine", "API down", func(s *Snapshot, _ *Policy) { s.Info, s.InfoErr = nil, errors.New("connection refused") }, Fail},
	{"dockward.log-driver", "none", func(s *Snapshot, _ *Policy) { s.Info.LoggingDriver = "none" }, Fail},
	{"dockward.log-caps", "created before the caps", func(s *Snapshot, _ *Policy) {
		ctr(s).HostConfig.LogConfig.Config = map[string]string{"max-size": "100m"}
	}, Fail},
	{"dockward.log-caps", "uncapped", func(s *Snapshot, _ *Policy) { ctr(s).HostConfig.LogConfig.Config = nil }, Fail},
	{"dockward.subid-remap", "too small", func(s *Snapshot, _ *Policy) { s.SubGID = []byte("dockremap:100000:1000\n") }, Fail},
	{"dockward.subid-overlap", "overlap", func(s *Snapshot, _ *Policy) { s.SubUID = []byte("dockremap:100000:65536\nalice:165000:65536\n") }, Fail},
	{"dockward.firewall", "drift", func(s *Snapshot, _ *Policy) { s.Firewall = []string{"create chain inet dockward forward"} }, Fail},
	{"dockward.firewall", "not configured", func(s *Snapshot, _ *Policy) { s.FirewallSet = false }, Skip},
}

func TestCompliantPassesEveryCheck(t *testing.T) {
	s, pol := compliant(t)
	rep := Judge(s, Options{Policy: pol, RemapUser: "dockremap"})
	for _, f := range rep.Findings {
		// SELinux and AppArmor exclude each other: 5.3 is not applicable.
		if f.Status != Pass && !(f.ID == "5.3" && f.Status == Skip) {
			t.Errorf("%s %s: %s %s %s %s", f.ID, f.Target, f.Status, f.Field, f.Detail, f.Reason)
		}
	}
	if rep.Checks != len(Catalogue) {
		t.Errorf("%d checks ran, the catalogue has %d", rep.Checks, len(Catalogue))
	}
}

func TestEveryCheck(t *testing.T) {
	failing := map[string]bool{}
	for _, tc := range checkCases {
		t.Run(tc.id+"/"+tc.what, func(t *testing.T) {
			s, pol := compliant(t)
			tc.mutate(s, pol)
			rep := Judge(s, Options{Policy: pol, RemapUser: "dockremap", Only: []string{tc.id}})
			if len(rep.Findings) == 0 {
				t.Fatalf("no finding")
			}
			got := map[Status]int{}
			for _, f := range rep.Findings {
				got[f.Status]++
				if f.Status == Fail && f.Detail == "" || f.Status == Skip && f.Reason == "" {
					t.Errorf("%s without detail or reason: %+v", f.Status, f)
				}
				if f.Status == Fail && f.Section[0] == '5' && f.Field == "" {
					t.Errorf("container failure names no field: %+v", f)
				}
			}
			if got[tc.want] == 0 || tc.want == Pass && len(got) > 1 {
				t.Errorf("got %v, want %s: %+v", got, tc.want, rep.Findings)
			}
			if tc.want == Fail {
				failing[tc.id] = true
			}
		})
	}
	for _, c := range Catalogue {
		if !failing[c.ID] {
			t.Errorf("no case makes %s (%s) fail", c.ID, c.Name)
		}
	}
}
