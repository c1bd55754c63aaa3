# dockward's default desired state for an Ubuntu 24.04 Docker host.
# Copy it to /etc/dockward/dockward.hcl (owned by root, mode 0600 or 0644)
# and edit; `dockward validate` checks your edits, `dockward plan` shows what
# they would change.

agent {
  # Restart journal, last-known-good copies and the last run report.
  state_dir = "/var/lib/dockward"
  # `dockward run` reconciles everything this often, plus a random share of
  # splay, even when no event arrived.
  interval = "5m"
  splay    = "30s"
  # React to changes of managed files, the firewall table, docker.service
  # and Docker networks as they happen.
  watch = true
  # node_exporter textfile collector path, e.g.
  # "/var/lib/prometheus/node-exporter/dockward.prom"; empty = no metrics.
  metrics_textfile = ""
}

# /etc/docker/daemon.json. Keys not named here are kept as they are.
docker_daemon {
  path = "/etc/docker/daemon.json"
  # Root in a container becomes an unprivileged high UID on the host.
  userns_remap = "default"
  # Capped local logs, kept for audit and forensics.
  log_driver = "json-file"
  log_opts   = { max-size = "10m", max-file = 3 }
  settings = {
    "no-new-privileges" = true  # setuid binaries cannot gain privileges
    "live-restore"      = true  # containers survive a dockerd restart
    "icc"               = false # no traffic between containers on docker0
    "userland-proxy"    = false # published ports through iptables, not a proxy
    "log-level"         = "info"  # CIS 2.x: neither debug's volume nor warn's silence
    # Not set on purpose (README, "CIS Docker Benchmark section 2"):
    # iptables stays Docker's default true, no insecure-registries, no
    # experimental, no seccomp-profile (Docker's default profile applies),
    # no default-ulimits (no value is safe on every host: a hard limit above
    # the host's own makes every container fail to start, a low one breaks
    # programs that need many files).
  }
  # Check the candidate file with `dockerd --validate` before writing it.
  validate = true
  # userns-remap moves Docker to another data root, hiding the containers,
  # images, networks and volumes made before it. "refuse": do not switch
  # when that would hide workloads; "leave_behind": switch anyway (they stay
  # on disk, switching back shows them); "migrate": move them across.
  on_data_root_switch = "refuse"
}

# The dockremap user's ranges in /etc/subuid and /etc/subgid, which
# userns-remap = "default" needs.
subordinate_ids "dockremap" {
  count       = 65536
  create_user = true
}

# Restart docker once when its configuration changed, check that it came
# back, and put the previous files back if it did not.
service "docker.service" {
  state      = "running"
  enabled    = true
  restart_on = [docker_daemon, subordinate_ids.dockremap]
  verify     = "docker"
  timeout    = "90s"
  rollback   = true
}

# Owner and mode of Docker's files no looser than CIS Docker Benchmark 3.1
# to 3.24 (unit files, /etc/docker, certificates, TLS files, the Docker and
# containerd sockets): the benchmark's table is built in; a file block
# overrides an entry or adds one, e.g.
#   file "/etc/docker/seccomp.json" { mode = "0644" }
docker_files {}

# Audit watch rules for CIS 1.1.3 to 1.1.18 in a file of their own, for the
# paths Docker has on this host; loaded when auditd runs (install auditd:
# dockward installs no packages).
audit_rules {
  path = "/etc/audit/rules.d/docker.rules"
  key  = "docker"
  load = true
}

# nftables whitelist, in its own table `inet dockward`.
firewall {
  table = "dockward"

  # Containers on the default bridge may reach DNS, HTTP and HTTPS only.
  network "bridge" {
    egress_allow {
      proto = "udp"
      ports = [53]
      to    = ["0.0.0.0/0", "::/0"]
    }
    egress_allow {
      proto = "tcp"
      ports = [53, 80, 443]
      to    = ["0.0.0.0/0", "::/0"]
    }
  }

  # For sensitive services: no way out, not even to the host.
  network "isolated" {
    internal = true
    create   = true
  }
}
