package audit

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/container"
)

// Policy is the runtime template running containers should follow (the
// container_policy block). Every rule is a predicate on fields of the
// container's configuration as POST /containers/create receives it
// (HostConfig.*, Config.*), so that the same block can later be enforced
// at creation by an authorization plugin without changing its language;
// today the audit evaluates it on running containers.
type Policy struct {
	Privileged      bool     // HostConfig.Privileged allowed (5.5)
	CapDrop         []string // HostConfig.CapDrop must hold these (5.4)
	CapAdd          []string // HostConfig.CapAdd may hold only these (5.4)
	NoNewPrivileges bool     // required (5.26)
	Seccomp         bool     // a seccomp profile required, not unconfined (5.22)
	AppArmor        bool     // an AppArmor profile required, not unconfined (5.2)
	ReadOnlyRootfs  bool     // required (5.13)
	MemoryLimit     bool     // required (5.11)
	CPULimit        bool     // required (5.12)
	PidsLimit       bool     // required (5.29)
	HostNamespaces  []string // host namespaces allowed: network, pid, ipc, uts, userns
	DockerSocket    bool     // mounting the Docker socket allowed (5.32)
	ForbiddenPaths  []string // host paths no bind mount may be at or below (5.6)
	LatestTag       bool     // images tagged latest (or untagged) allowed (5.28)
	HealthCheck     bool     // required (4.6, 5.27)
	NonRootUser     bool     // required (4.1)
	PrivilegedPorts bool     // host ports below 1024 allowed (5.8)
	MaxRestarts     int      // on-failure retries at most; always/unless-stopped not allowed (5.15)
	SharedPropagate bool     // shared mount propagation allowed (5.20)
	HostDevices     bool     // host devices allowed (5.18)
	CgroupParent    bool     // a custom cgroup parent allowed (5.25)
	AllInterfaces   bool     // published ports on every host address allowed (5.14)
}

// DefaultPolicy is the practice dockward stands for.
func DefaultPolicy() *Policy {
	return &Policy{
		CapDrop:         []string{"ALL"},
		CapAdd:          []string{},
		NoNewPrivileges: true,
		Seccomp:         true,
		AppArmor:        true,
		ReadOnlyRootfs:  true,
		MemoryLimit:     true,
		CPULimit:        true,
		PidsLimit:       true,
		HostNamespaces:  []string{},
		ForbiddenPaths:  []string{"/", "/boot", "/dev", "/etc", "/lib", "/proc", "/sys", "/usr"},
		HealthCheck:     true,
		NonRootUser:     true,
		MaxRestarts:     5,
	}
}

// relaxed is a policy attribute that turns a check off: findings become
// waived with the attribute as reason, never passed.
func relaxed(attr string) result {
	return result{status: Waived, reason: "container_policy." + attr + " allows it"}
}

// containerCheck makes a per-container check; judge returns the field at
// fault ("" when the container complies) and a detail.
func containerCheck(id, name, title string, judge func(e *judgeEnv, c *container.InspectResponse) result) Check {
	return Check{ID: id, Name: name, Title: title, run: func(e *judgeEnv) []result {
		switch {
		case e.s.Offline:
			return []result{{status: Skip, target: "containers", reason: "offline (--root): the Engine API is not asked"}}
		case e.s.ContainersErr != nil && len(e.s.Containers) == 0:
			return []result{{status: Skip, target: "containers", reason: "the Engine API did not answer: " + e.s.ContainersErr.Error()}}
		case len(e.s.Containers) == 0:
			return []result{{status: Skip, target: "containers", reason: "no running containers"}}
		}
		var out []result
		for i := range e.s.Containers {
			c := &e.s.Containers[i]
			var r result
			if c.HostConfig == nil {
				r = skip("the inspect document has no HostConfig")
			} else {
				if c.Config == nil {
					cc := *c
					cc.Config = &container.Config{}
					c = &cc
				}
				r = judge(e, c)
			}
			r.target = containerName(c)
			out = append(out, r)
		}
		return out
	}}
}

func containerName(c *container.InspectResponse) string {
	if n := strings.TrimPrefix(c.Name, "/"); n != "" {
		return n
	}
	return shortID(c.ID)
}

func bad(field, detail string) result { return result{status: Fail, field: field, detail: detail} }
func good(detail string) result       { return result{status: Pass, detail: detail} }
func normCap(s string) string         { return strings.TrimPrefix(strings.ToUpper(s), "CAP_") }
func hostMode(s string) bool          { return s == "host" }
func secOpt(c *container.InspectResponse, key string) (string, bool) {
	for _, o := range c.HostConfig.SecurityOpt {
		k, v, found := strings.Cut(o, "=")
		if !found {
			k, v, found = strings.Cut(o, ":")
		}
		if k == key {
			if !found {
				v = "true"
			}
			return v, true
		}
	}
	return "", false
}

func hostNamespace(e *judgeEnv, c *container.InspectResponse, id, ns, field string, mode string) result {
	if !hostMode(mode) {
		return good(field + " " + orDefault(mode, "private"))
	}
	if slices.Contains(e.policy.HostNamespaces, ns) {
		return relaxed("host_namespaces")
	}
	return bad(field, "shares the host's "+ns+" namespace")
}

func sectionFourFive() []Check {
	return []Check{
		containerCheck("4.1", "non-root-user", "Ensure that a user for the container has been created", func(e *judgeEnv, c *container.InspectResponse) result {
			u := c.Config.User
			if u != "" && u != "0" && u != "root" && !strings.HasPrefix(u, "0:") && !strings.HasPrefix(u, "root:") {
				return good("runs as " + u)
			}
			if !e.policy.NonRootUser {
				return relaxed("non_root_user")
			}
			return bad("Config.User", "runs as root ("+orDefault(u, "no user set")+")")
		}),
		{ID: "4.5", Name: "content-trust", Title: "Ensure Content trust for Docker is Enabled", target: "DOCKER_CONTENT_TRUST", run: func(e *judgeEnv) []result {
			// As docker-bench: the environment the audit runs in, which is
			// where an operator's docker commands would read it.
			return []result{withField(verdict(e.s.ContentTrust == "1", "DOCKER_CONTENT_TRUST=1",
				"DOCKER_CONTENT_TRUST is "+orDefault(e.s.ContentTrust, "unset")+" in the audit's environment: a client setting, set it where docker pull runs"), "DOCKER_CONTENT_TRUST")}
		}},
		containerCheck("4.6", "image-healthcheck", "Ensure that HEALTHCHECK instructions have been added to container images", func(e *judgeEnv, c *container.InspectResponse) result {
			return healthCheck(e, c, "Config.Healthcheck")
		}),
		{ID: "5.1", Name: "swarm-mode", Title: "Ensure swarm mode is not Enabled, if not needed", target: "dockerd", run: func(e *judgeEnv) []result {
			return e.needInfo(func() result {
				st := string(e.s.Info.Swarm.LocalNodeState)
				return withField(verdict(st != "active", "swarm "+orDefault(st, "inactive"), "swarm mode is active: waive with the reason if it is needed"), "Swarm.LocalNodeState")
			})
		}},
		containerCheck("5.2", "apparmor", "Ensure that, if applicable, an AppArmor Profile is enabled", func(e *judgeEnv, c *container.InspectResponse) result {
			if e.s.Info != nil && !hasSecOpt(e.s.Info.SecurityOptions, "apparmor") {
				return skip("AppArmor is not enabled on this host (dockerd's security options lack it)")
			}
			p := c.AppArmorProfile
			if p != "" && p != "unconfined" {
				return good("AppArmor profile " + p)
			}
			if !e.policy.AppArmor {
				return relaxed("apparmor")
			}
			return bad("AppArmorProfile", "no AppArmor profile ("+orDefault(p, "none")+")")
		}),
		containerCheck("5.3", "selinux", "Ensure that, if applicable, SELinux security options are set", func(e *judgeEnv, c *container.InspectResponse) result {
			if e.s.Info == nil || !hasSecOpt(e.s.Info.SecurityOptions, "selinux") {
				return skip("SELinux is not enabled in dockerd")
			}
			if _, ok := secOpt(c, "label"); ok {
				return good("SELinux label set")
			}
			return bad("HostConfig.SecurityOpt", "no SELinux label option")
		}),
		containerCheck("5.4", "capabilities", "Ensure that Linux kernel capabilities are restricted within containers", func(e *judgeEnv, c *container.InspectResponse) result {
			hc := c.HostConfig
			var extra []string
			for _, cp := range hc.CapAdd {
				if !slices.ContainsFunc(e.policy.CapAdd, func(a string) bool { return normCap(a) == normCap(cp) }) {
					extra = append(extra, cp)
				}
			}
			if len(extra) > 0 {
				return bad("HostConfig.CapAdd", "adds "+strings.Join(extra, ", ")+", which the policy does not allow")
			}
			var missing []string
			for _, d := range e.policy.CapDrop {
				if !slices.ContainsFunc(hc.CapDrop, func(x string) bool { return normCap(x) == normCap(d) }) {
					missing = append(missing, d)
				}
			}
			if len(missing) > 0 {
				return bad("HostConfig.CapDrop", "does not drop "+strings.Join(missing, ", "))
			}
			return good(fmt.Sprintf("drops %s, adds %s", strings.Join(hc.CapDrop, ","), orDefault(strings.Join(hc.CapAdd, ","), "nothing")))
		}),
		containerCheck("5.5", "not-privileged", "Ensure that privileged containers are not used", func(e *judgeEnv, c *container.InspectResponse) result {
			if !c.HostConfig.Privileged {
				return good("not privileged")
			}
			if e.policy.Privileged {
				return relaxed("privileged")
			}
			return bad("HostConfig.Privileged", "runs --privileged: every device and capability of the host")
		}),
		containerCheck("5.6", "sensitive-mounts", "Ensure sensitive host system directories are not mounted on containers", func(e *judgeEnv, c *container.InspectResponse) result {
			var hits []string
			for _, m := range c.Mounts {
				if m.Type != "bind" && m.Type != "" {
					continue
				}
				for _, p := range e.policy.ForbiddenPaths {
					if m.Source == p || p != "/" && strings.HasPrefix(m.Source, p+"/") {
						hits = append(hits, fmt.Sprintf("%s (%s)", m.Source, pick(m.RW, "rw", "ro")))
						break
					}
				}
			}
			if len(hits) == 0 {
				return good("no sensitive host path mounted")
			}
			return bad("Mounts", "mounts "+strings.Join(hits, ", "))
		}),
		containerCheck("5.7", "no-sshd", "Ensure sshd is not run within containers", func(e *judgeEnv, c *container.InspectResponse) result {
			if e.s.SSHDErr != nil {
				return skip("/proc unreadable: " + e.s.SSHDErr.Error())
			}
			if e.s.SSHD == nil {
				return skip("processes not read")
			}
			if pids := e.s.SSHD[c.ID]; len(pids) > 0 {
				return bad("processes", fmt.Sprintf("runs sshd (PIDs %v)", pids))
			}
			return good("no sshd process")
		}),
		containerCheck("5.8", "privileged-ports", "Ensure privileged ports are not mapped within containers", func(e *judgeEnv, c *container.InspectResponse) result {
			var low []string
			for p, bs := range portMap(c) {
				for _, b := range bs {
					if n, err := strconv.Atoi(b.HostPort); err == nil && n > 0 && n < 1024 {
						low = append(low, b.HostPort+"->"+p)
					}
				}
			}
			if len(low) == 0 {
				return good("no host port below 1024")
			}
			if e.policy.PrivilegedPorts {
				return relaxed("privileged_ports")
			}
			slices.Sort(low)
			return bad("NetworkSettings.Ports", "maps host ports "+strings.Join(low, ", "))
		}),
		containerCheck("5.10", "no-host-network", "Ensure that the host's network namespace is not shared", func(e *judgeEnv, c *container.InspectResponse) result {
			return hostNamespace(e, c, "5.10", "network", "HostConfig.NetworkMode", string(c.HostConfig.NetworkMode))
		}),
		containerCheck("5.11", "memory-limit", "Ensure that the memory usage for containers is limited", func(e *judgeEnv, c *container.InspectResponse) result {
			if c.HostConfig.Memory > 0 {
				return good(fmt.Sprintf("memory limit %d bytes", c.HostConfig.Memory))
			}
			if !e.policy.MemoryLimit {
				return relaxed("memory_limit")
			}
			return bad("HostConfig.Memory", "no memory limit"+unsupported(e, "memory"))
		}),
		containerCheck("5.12", "cpu-limit", "Ensure that CPU priority is set appropriately on containers", func(e *judgeEnv, c *container.InspectResponse) result {
			hc := c.HostConfig
			if hc.CPUShares != 0 && hc.CPUShares != 1024 || hc.NanoCPUs > 0 || hc.CPUQuota > 0 {
				return good(fmt.Sprintf("cpu shares %d, nano CPUs %d, quota %d", hc.CPUShares, hc.NanoCPUs, hc.CPUQuota))
			}
			if !e.policy.CPULimit {
				return relaxed("cpu_limit")
			}
			return bad("HostConfig.CpuShares", "no CPU shares, quota or limit"+unsupported(e, "cpu"))
		}),
		containerCheck("5.13", "read-only-rootfs", "Ensure that the container's root filesystem is mounted as read only", func(e *judgeEnv, c *container.InspectResponse) result {
			if c.HostConfig.ReadonlyRootfs {
				return good("read-only root")
			}
			if !e.policy.ReadOnlyRootfs {
				return relaxed("read_only_rootfs")
			}
			return bad("HostConfig.ReadonlyRootfs", "writable root file system")
		}),
		containerCheck("5.14", "bound-host-interface", "Ensure that incoming container traffic is bound to a specific host interface", func(e *judgeEnv, c *container.InspectResponse) result {
			var any []string
			for p, bs := range c.HostConfig.PortBindings {
				for _, b := range bs {
					if !b.HostIP.IsValid() || b.HostIP.IsUnspecified() {
						any = append(any, p.String())
					}
				}
			}
			if len(any) == 0 {
				return good("no port published on every host address")
			}
			if e.policy.AllInterfaces {
				return relaxed("all_interfaces")
			}
			slices.Sort(any)
			return bad("HostConfig.PortBindings", "publishes "+strings.Join(any, ", ")+" on every host address")
		}),
		containerCheck("5.15", "restart-policy", "Ensure that the 'on-failure' container restart policy is set to '5'", func(e *judgeEnv, c *container.InspectResponse) result {
			rp := c.HostConfig.RestartPolicy
			switch rp.Name {
			case "", "no":
				return good("no restart policy")
			case "on-failure":
				if rp.MaximumRetryCount > 0 && rp.MaximumRetryCount <= e.policy.MaxRestarts {
					return good(fmt.Sprintf("on-failure:%d", rp.MaximumRetryCount))
				}
				return bad("HostConfig.RestartPolicy.MaximumRetryCount", fmt.Sprintf("on-failure:%d, more than %d", rp.MaximumRetryCount, e.policy.MaxRestarts))
			}
			return bad("HostConfig.RestartPolicy.Name", fmt.Sprintf("restart policy %s restarts forever", rp.Name))
		}),
		containerCheck("5.16", "no-host-pid", "Ensure that the host's process namespace is not shared", func(e *judgeEnv, c *container.InspectResponse) result {
			return hostNamespace(e, c, "5.16", "pid", "HostConfig.PidMode", string(c.HostConfig.PidMode))
		}),
		containerCheck("5.17", "no-host-ipc", "Ensure that the host's IPC namespace is not shared", func(e *judgeEnv, c *container.InspectResponse) result {
			return hostNamespace(e, c, "5.17", "ipc", "HostConfig.IpcMode", string(c.HostConfig.IpcMode))
		}),
		containerCheck("5.18", "no-host-devices", "Ensure that host devices are not directly exposed to containers", func(e *judgeEnv, c *container.InspectResponse) result {
			var devs []string
			for _, d := range c.HostConfig.Devices {
				devs = append(devs, d.PathOnHost)
			}
			if len(devs) == 0 {
				return good("no host device")
			}
			if e.policy.HostDevices {
				return relaxed("host_devices")
			}
			return bad("HostConfig.Devices", "host devices "+strings.Join(devs, ", "))
		}),
		containerCheck("5.20", "mount-propagation", "Ensure mount propagation mode is not set to shared", func(e *judgeEnv, c *container.InspectResponse) result {
			var shared []string
			for _, m := range c.Mounts {
				if m.Propagation == "shared" || m.Propagation == "rshared" {
					shared = append(shared, m.Destination)
				}
			}
			if len(shared) == 0 {
				return good("no shared mount propagation")
			}
			if e.policy.SharedPropagate {
				return relaxed("shared_propagation")
			}
			return bad("Mounts.Propagation", "shared propagation on "+strings.Join(shared, ", "))
		}),
		containerCheck("5.21", "no-host-uts", "Ensure that the host's UTS namespace is not shared", func(e *judgeEnv, c *container.InspectResponse) result {
			return hostNamespace(e, c, "5.21", "uts", "HostConfig.UTSMode", string(c.HostConfig.UTSMode))
		}),
		containerCheck("5.22", "seccomp", "Ensure the default seccomp profile is not Disabled", func(e *judgeEnv, c *container.InspectResponse) result {
			if v, _ := secOpt(c, "seccomp"); v == "unconfined" {
				if !e.policy.Seccomp {
					return relaxed("seccomp")
				}
				return bad("HostConfig.SecurityOpt", "seccomp=unconfined")
			}
			if c.HostConfig.Privileged {
				if !e.policy.Seccomp {
					return relaxed("seccomp")
				}
				return bad("HostConfig.Privileged", "privileged containers run without seccomp")
			}
			return good("seccomp profile applies")
		}),
		containerCheck("5.25", "container-cgroup-parent", "Ensure that cgroup usage is confirmed", func(e *judgeEnv, c *container.InspectResponse) result {
			if c.HostConfig.CgroupParent == "" {
				return good("default cgroup parent")
			}
			if e.policy.CgroupParent {
				return relaxed("cgroup_parent")
			}
			return bad("HostConfig.CgroupParent", "cgroup parent "+c.HostConfig.CgroupParent)
		}),
		containerCheck("5.26", "container-no-new-privileges", "Ensure that the container is restricted from acquiring additional privileges", func(e *judgeEnv, c *container.InspectResponse) result {
			v, set := secOpt(c, "no-new-privileges")
			daemon := e.s.Info != nil && hasSecOpt(e.s.Info.SecurityOptions, "no-new-privileges") || e.s.DaemonSetting("no-new-privileges") == "true"
			on := set && v != "false" || !set && daemon
			if on {
				return good(pick(set, "no-new-privileges in its security options", "no-new-privileges from the daemon's default"))
			}
			if !e.policy.NoNewPrivileges {
				return relaxed("no_new_privileges")
			}
			return bad("HostConfig.SecurityOpt", "can gain privileges through setuid binaries")
		}),
		containerCheck("5.27", "healthcheck", "Ensure that container health is checked at runtime", func(e *judgeEnv, c *container.InspectResponse) result {
			return healthCheck(e, c, "State.Health")
		}),
		containerCheck("5.28", "no-latest-tag", "Ensure that Docker commands always make use of the latest version of their image", func(e *judgeEnv, c *container.InspectResponse) result {
			img := c.Config.Image
			ref := img
			if i := strings.LastIndex(ref, "@"); i >= 0 {
				return good("pinned by digest " + ref[i+1:])
			}
			name := ref[strings.LastIndex(ref, "/")+1:]
			_, tag, hasTag := strings.Cut(name, ":")
			if hasTag && tag != "latest" {
				return good("image " + img)
			}
			if e.policy.LatestTag {
				return relaxed("latest_tag")
			}
			return bad("Config.Image", "image "+img+" is :latest (or untagged): what runs depends on when it was pulled")
		}),
		containerCheck("5.29", "pids-limit", "Ensure that the PIDs cgroup limit is used", func(e *judgeEnv, c *container.InspectResponse) result {
			if p := c.HostConfig.PidsLimit; p != nil && *p > 0 {
				return good(fmt.Sprintf("pids limit %d", *p))
			}
			if !e.policy.PidsLimit {
				return relaxed("pids_limit")
			}
			return bad("HostConfig.PidsLimit", "no PIDs limit: a fork bomb takes the host"+unsupported(e, "pids"))
		}),
		containerCheck("5.31", "userns-not-disabled", "Ensure that the host's user namespaces are not shared", func(e *judgeEnv, c *container.InspectResponse) result {
			return hostNamespace(e, c, "5.31", "userns", "HostConfig.UsernsMode", string(c.HostConfig.UsernsMode))
		}),
		containerCheck("5.32", "no-docker-socket", "Ensure that the Docker socket is not mounted inside any containers", func(e *judgeEnv, c *container.InspectResponse) result {
			var sock []string
			for _, m := range c.Mounts {
				if strings.HasSuffix(m.Source, "/docker.sock") {
					sock = append(sock, m.Source)
				}
			}
			if len(sock) == 0 {
				return good("no Docker socket mounted")
			}
			if e.policy.DockerSocket {
				return relaxed("docker_socket")
			}
			return bad("Mounts", "mounts "+strings.Join(sock, ", ")+": it can control the host")
		}),
	}
}

func portMap(c *container.InspectResponse) map[string][]struct{ HostPort string } {
	out := map[string][]struct{ HostPort string }{}
	if c.NetworkSettings == nil {
		return out
	}
	for p, bs := range c.NetworkSettings.Ports {
		for _, b := range bs {
			out[p.String()] = append(out[p.String()], struct{ HostPort string }{b.HostPort})
		}
	}
	return out
}

// unsupported explains a missing limit the daemon cannot set on this host.
func unsupported(e *judgeEnv, what string) string {
	if e.s.Info == nil {
		return ""
	}
	i := e.s.Info
	if what == "memory" && !i.MemoryLimit || what == "pids" && !i.PidsLimit || what == "cpu" && !i.CPUShares {
		return " (dockerd reports no " + what + " limit support on this host: the kernel's cgroup controller is missing, so no limit can take effect)"
	}
	return ""
}

func healthCheck(e *judgeEnv, c *container.InspectResponse, field string) result {
	hc := c.Config.Healthcheck
	has := hc != nil && len(hc.Test) > 0 && hc.Test[0] != "NONE"
	if field == "State.Health" {
		has = c.State != nil && c.State.Health != nil
	}
	if has {
		return good("health check " + pick(hc != nil && len(hc.Test) > 0, strings.Join(hc.Test, " "), "configured"))
	}
	if !e.policy.HealthCheck {
		return relaxed("health_check")
	}
	return bad(field, "no health check")
}

// checkLogCaps finds containers whose log configuration is not the
// daemon's current one: their LogConfig was fixed when they were created,
// and only recreating them applies new caps.
func checkLogCaps(e *judgeEnv) []result {
	drv := e.s.DaemonSetting("log-driver")
	opts, _ := e.s.DaemonJSON["log-opts"].(map[string]any)
	return containerCheck("dockward.log-caps", "log-caps", "", func(e *judgeEnv, c *container.InspectResponse) result {
		lc := c.HostConfig.LogConfig
		detail := "log driver " + lc.Type
		switch lc.Type {
		case "json-file", "local":
			if lc.Config["max-size"] == "" && lc.Type == "json-file" {
				return bad("HostConfig.LogConfig", detail+" without max-size: its log grows without bound; recreate it to apply the daemon's caps")
			}
			detail += fmt.Sprintf(", max-size %s, max-file %s", orDefault(lc.Config["max-size"], "default"), orDefault(lc.Config["max-file"], "default"))
		case "none":
			return bad("HostConfig.LogConfig", detail+": no logs kept for audit")
		}
		if drv != "" && lc.Type == drv {
			for k, v := range opts {
				if (k == "max-size" || k == "max-file") && lc.Config[k] != fmt.Sprint(v) {
					return bad("HostConfig.LogConfig.Config", fmt.Sprintf("%s; created before the current %s %v: only recreating the container applies it", detail, k, v))
				}
			}
		}
		return good(detail)
	}).run(e)
}
