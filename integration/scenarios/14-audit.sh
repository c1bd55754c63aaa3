# 14-audit: `dockward audit` reads the live host and its containers and
# changes nothing: on a converged host with a container that follows the
# container policy, no check fails (exit 0); a privileged container with the
# Docker socket mounted fails it (exit 4), named in the report.
#
# The audit reads a configuration of its own: the embedded default with
# waivers, each with its reason, for what this test host cannot have (a
# separate partition where there is none, an authorization plugin, content
# trust, which is a client setting, default ulimits, which the default
# leaves to the operator, and audit rules until the audit_rules module is
# in the default), and a container policy without limits where the kernel
# has no cgroup controller to enforce them (the sandbox machine).

converge
wait_docker_active
ensure_busybox

files=(/etc/docker/daemon.json /etc/subuid /etc/subgid)
sums0=$(checksums "${files[@]}")
inv0=$(invocation_id)

cfg=$(mktemp --suffix=.hcl)
chmod 600 "$cfg"
{
	dw init | awk '/^(container_policy|audit) \{/ { skip = 1 } !skip { print } skip && /^\}/ { skip = 0 }'
	echo 'audit {'
	echo '  waive "2.12" { reason = "test host: no authorization plugin" }'
	echo '  waive "2.13" { reason = "json-file kept on purpose" }'
	mountpoint -q /var/lib/docker || echo '  waive "1.1.1" { reason = "test host: /var/lib/docker has no partition of its own" }'
	echo '  waive "4.5" { reason = "content trust is set where images are pulled, not here" }'
	if ! dw init | grep -q '^audit_rules'; then
		for id in 1.1.3 1.1.4 1.1.5 1.1.6 1.1.7 1.1.8 1.1.9 1.1.10 1.1.11 1.1.12 1.1.13 1.1.14 1.1.15 1.1.16 1.1.17 1.1.18; do
			echo "  waive \"$id\" { reason = \"this build's default has no audit_rules module\" }"
		done
	fi
	echo '  waive "2.8" { reason = "no default-ulimits value suits every host: the default sets none" }'
	echo '}'
	echo 'container_policy {'
	if [[ $(docker info --format '{{.MemoryLimit}} {{.PidsLimit}} {{.CPUShares}}') != "true true true" ]]; then
		echo '  memory_limit = false'
		echo '  pids_limit   = false'
		echo '  cpu_limit    = false'
		limits=()
	else
		limits=(--memory 64m --pids-limit 64 --cpu-shares 512)
	fi
	echo '}'
} >"$cfg"
need "the audit configuration is valid" dw validate -c "$cfg"

docker rm -f dw-audit-good dw-audit-bad >/dev/null 2>&1
need "a hardened container runs" docker run -d --name dw-audit-good --cap-drop ALL --security-opt no-new-privileges \
	--read-only --health-cmd true --user 1000:1000 --restart on-failure:3 "${limits[@]}" busybox:local sleep 600
expect_exit 0 dw audit -c "$cfg"
expect_contains "$OUT" "PASS  userns-remap" "audit sees userns-remap in effect"
expect_contains "$OUT" "PASS  log-caps             dw-audit-good" "audit sees the container's json-file caps"

need "a privileged container runs" docker run -d --name dw-audit-bad --privileged --userns=host \
	-v /run/docker.sock:/var/run/docker.sock busybox:local sleep 600
expect_exit 4 dw audit -c "$cfg" --format json
expect_contains "$OUT" '"format_version": "1"' "audit json carries format_version"
expect_match "$OUT" '"check": "not-privileged"' "audit json names the failed check"
expect_contains "$OUT" '"target": "dw-audit-bad"' "audit json names the container"

docker rm -f dw-audit-good dw-audit-bad >/dev/null 2>&1
rm -f "$cfg"
expect_eq "$(checksums "${files[@]}")" "$sums0" "audit changed no file"
expect_eq "$(invocation_id)" "$inv0" "audit restarted nothing"
