# shellcheck shell=bash
# 16-cis-files: after `dockward apply` of the embedded default, the audit
# rules file (CIS 1.1.3 to 1.1.18) watches every path of the benchmark this
# host has, where systemd and PATH say it is, and Docker's files and sockets
# (CIS 3.1 to 3.24) are no looser than the benchmark's modes and owners. A
# loosened daemon.json and Docker socket are narrowed again by the next
# apply, and by the agent (dockward.service, in its sandbox) with nobody
# running apply.
# Where auditd runs (a real host, the VM), the kernel holds the rules; in
# the sandbox machine the kernel's audit is out of reach (TESTBED.md), so
# only the file is checked there.

here=${1:?run by run.sh}
rules=/etc/audit/rules.d/docker.rules
conf=/etc/dockward/scenario-16.hcl
dropin=/etc/systemd/system/dockward.service.d/scenario-16.conf
added=(/etc/dockward/scenario-16.hcl) # files this scenario put in place, removed at the end

cleanup() {
	systemctl stop dockward.service 2>/dev/null
	local f
	for f in "${added[@]}"; do rm -f "$f"; done
	rmdir /etc/systemd/system/dockward.service.d 2>/dev/null
	systemctl daemon-reload
	systemctl reset-failed dockward.service 2>/dev/null
	"$DOCKWARD" apply >/dev/null 2>&1
}
trap cleanup EXIT

converge
need "docker.service is active" systemctl is-active --quiet docker.service

# --- 1.1.x: the audit rules file ---------------------------------------
check "$rules exists" test -f "$rules"
check "$rules is 0640 root:root" test "$(stat -c '%a %U:%G' "$rules")" = "640 root:root"
svc_path="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin"
which_prog() { PATH=$svc_path command -v "$1"; }
unit_file() { systemctl show -p FragmentPath --value "$1"; }
paths=(
	"$(which_prog dockerd)" /run/containerd /var/lib/docker /etc/docker
	"$(unit_file docker.service)" /run/containerd/containerd.sock "$(unit_file docker.socket)"
	/etc/default/docker /etc/docker/daemon.json /etc/containerd/config.toml /etc/sysconfig/docker
	"$(which_prog containerd)" "$(which_prog containerd-shim)" "$(which_prog containerd-shim-runc-v1)"
	"$(which_prog containerd-shim-runc-v2)" "$(which_prog runc)"
	/usr/bin/dockerd /usr/bin/containerd /usr/bin/runc
)
auditd_active=false
systemctl is-active --quiet auditd.service && auditd_active=true
loaded=
$auditd_active && loaded=$(auditctl -l 2>&1)
for p in "${paths[@]}"; do
	[[ -n $p && -e $p ]] || continue
	check "$p is watched in $rules" grep -qxF -- "-w $p -p wa -k docker" "$rules"
	if $auditd_active; then
		expect_contains "$loaded" "$p" "the kernel watches $p"
	fi
done
# At boot auditd loads its rules before containerd makes /run/containerd:
# dockward's tmpfiles.d entry makes it first, as containerd would.
tmpfiles=/etc/tmpfiles.d/dockward-audit-rules.conf
if grep -q -- '-w /run/containerd/' "$rules"; then
	check "$tmpfiles makes /run/containerd as it is now" grep -qxF "d /run/containerd $(stat -c %04a /run/containerd) root root -" "$tmpfiles"
	check "systemd-tmpfiles takes $tmpfiles" systemd-tmpfiles --create "$tmpfiles"
fi
if ! $auditd_active; then
	note "auditd is not running here: the rules are in the file for auditd's start, not in a kernel"
	expect_exit 0 dw plan --only audit_rules
fi
# Another rule file is never touched.
check "no other file of rules.d holds dockward's rules" bash -c "! grep -l 'Written by dockward' /etc/audit/rules.d/* | grep -vxF '$rules'"

# --- 3.x: owners and modes ---------------------------------------------
# at_most FILE MAXMODE OWNER: mode has no bit beyond MAXMODE, owner is OWNER.
at_most() {
	local f=$1 max=$2 owner=$3 mode
	mode=$(stat -L -c '%a' "$f") || return 1
	(((8#$mode & ~8#$max) == 0)) && [[ $(stat -L -c '%U:%G' "$f") == "$owner" ]]
}
files=(
	"$(unit_file docker.service):644:root:root" "$(unit_file docker.socket):644:root:root"
	/etc/docker:755:root:root /etc/docker/daemon.json:644:root:root /etc/default/docker:644:root:root
	/etc/sysconfig/docker:644:root:root /var/run/docker.sock:660:root:docker
	/run/containerd/containerd.sock:660:root:root
)
for spec in "${files[@]}"; do
	IFS=: read -r f max user group <<<"$spec"
	[[ -n $f && -e $f ]] || continue
	check "$f is at most $max $user:$group" at_most "$f" "$max" "$user:$group"
done
while IFS= read -r crt; do
	check "$crt is at most 444 root:root" at_most "$crt" 444 root:root
done < <(find /etc/docker/certs.d -type f 2>/dev/null)

# --- a loosened daemon.json and socket, corrected by apply ------------------
sum=$(sha256sum /etc/docker/daemon.json)
chmod 666 /etc/docker/daemon.json /run/docker.sock
expect_exit 2 dw plan
expect_contains "$OUT" "/etc/docker/daemon.json" "plan names the loosened daemon.json"
expect_contains "$OUT" "mode 0666" "plan shows the loose mode"
expect_exit 2 dw apply
check "daemon.json is 644 root:root again" test "$(stat -c '%a %U:%G' /etc/docker/daemon.json)" = "644 root:root"
check "docker.sock is 660 root:docker again" test "$(stat -L -c '%a %U:%G' /var/run/docker.sock)" = "660 root:docker"
expect_eq "$(sha256sum /etc/docker/daemon.json)" "$sum" "daemon.json's content is untouched"
check "docker answers on its socket" docker version
expect_exit 0 dw plan

# --- and by the agent, with nobody running apply ---------------------------
# The agent runs as the package runs it: dockward.service with its sandbox
# (read-only /usr, writable /etc and /run), from the installed unit or
# dist/dockward.service, with a configuration of this scenario's (a drop-in
# points it there). Mode changes are no file events (the run loop ignores
# inotify's attribute events), so the agent corrects them on its backstop
# interval: a short one here.
if ! systemctl cat dockward.service >/dev/null 2>&1; then
	dist=
	for d in "$here/dist" "$here/../../dist"; do [[ -f $d/dockward.service ]] && dist=$d && break; done
	need "dist/dockward.service to install" test -n "$dist"
	install -m 0644 "$dist/dockward.service" /etc/systemd/system/dockward.service
	added+=(/etc/systemd/system/dockward.service)
fi
if [[ ! -x /usr/bin/dockward ]]; then
	install -m 0755 "$(command -v "$DOCKWARD")" /usr/bin/dockward
	added+=(/usr/bin/dockward)
fi
mkdir -p /etc/dockward /etc/systemd/system/dockward.service.d
"$DOCKWARD" init | sed -e 's/^  interval = "5m"/  interval = "2s"/' -e 's/^  splay    = "30s"/  splay    = "1s"/' >"$conf"
chmod 600 "$conf"
need "the agent configuration has a 2s interval" grep -q 'interval = "2s"' "$conf"
expect_exit 0 dw validate -c "$conf"
printf '[Service]\nExecStartPre=\nExecStartPre=/usr/bin/dockward validate -c %s\nExecStart=\nExecStart=/usr/bin/dockward run -c %s\n' "$conf" "$conf" >"$dropin"
added+=("$dropin")
systemctl daemon-reload
check "dockward.service starts" timeout 150 systemctl start dockward.service
chmod 666 /etc/docker/daemon.json /run/docker.sock
check "the agent narrows daemon.json to 644" wait_for 60 "daemon.json 644" bash -c 'test "$(stat -c %a /etc/docker/daemon.json)" = 644'
check "the agent narrows docker.sock to 660, in its sandbox" wait_for 60 "docker.sock 660" bash -c 'test "$(stat -L -c %a /var/run/docker.sock)" = 660'
check "dockward.service is still active" systemctl is-active --quiet dockward.service
systemctl stop dockward.service
expect_exit 0 dw plan
