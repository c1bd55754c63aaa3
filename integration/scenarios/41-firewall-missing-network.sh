# shellcheck shell=bash
# 41-firewall-missing-network: a firewall block that declares networks Docker
# does not have yet, as on a host provisioned before `docker compose up`.
#
# - "bridge" exists: its whitelist is in force (real packets) although the
#   others are missing; the firewall does not fail as a whole.
# - "dw41late" is resolved through Docker and does not exist: plan and apply
#   name it as pending (text and JSON, and a warning in the log), and it does
#   not fail the run: apply exits per what it changed (2, then 0).
# - "dw41named" declares its bridge (bridge = "br-dw41named"): its rules are
#   in the kernel before the network exists, and hold the moment Docker
#   creates it, with nothing applied in between.
# - With the agent (dockward run) running, `docker network create dw41late`
#   gets dw41late its rules from Docker's network event; the next plan is
#   empty and has nothing pending.
#
# "Outside" is a network namespace (dw41wan, 198.51.100.1) behind a veth
# pair, with busybox httpd on ports 80 and 8080. Everything made here is
# removed at the end, and the host is left converged.

converge
need "docker.service is active" systemctl is-active --quiet docker.service
need "busybox:local present" ensure_busybox
need "busybox has httpd" /bin/busybox httpd --help

wan=dw41wan
conf=
agent_pid=
agent_log=$(mktemp /tmp/dw41-agent.XXXXXX)
httpd_pids=()
cleanup() {
	if [[ -n $agent_pid ]]; then
		kill "$agent_pid" 2>/dev/null
		wait "$agent_pid" 2>/dev/null
	fi
	((${#httpd_pids[@]} > 0)) && kill "${httpd_pids[@]}" 2>/dev/null
	ip netns pids "$wan" 2>/dev/null | xargs -r kill 2>/dev/null
	ip netns del "$wan" 2>/dev/null
	ip link del dw41w0 2>/dev/null
	docker network rm dw41late dw41named >/dev/null 2>&1
	rm -rf /tmp/dw41-www "$agent_log"
	[[ -n $conf ]] && rm -f "$conf"
	# Leave the host converged, with the configuration the others use.
	"$DOCKWARD" apply >/dev/null 2>&1
}
trap cleanup EXIT
docker network rm dw41late dw41named >/dev/null 2>&1

mkdir -p /tmp/dw41-www && echo dockward-ok >/tmp/dw41-www/index.html
need "namespace $wan" ip netns add "$wan"
need "veth to $wan" ip link add dw41w0 type veth peer name eth0 netns "$wan"
ip addr add 198.51.100.2/24 dev dw41w0 && ip link set dw41w0 up
ip -n "$wan" addr add 198.51.100.1/24 dev eth0
ip -n "$wan" link set eth0 up
ip -n "$wan" link set lo up
for port in 80 8080; do
	ip netns exec "$wan" /bin/busybox httpd -f -p "$port" -h /tmp/dw41-www &
	httpd_pids+=("$!")
done
need "the outside answers from the host" wait_for 10 "httpd in $wan" \
	bash -c '/bin/busybox wget -q -T 2 -O - http://198.51.100.1:8080/ | grep -q dockward-ok'

# fetch NETWORK URL: a container on NETWORK fetches URL (bounded).
fetch() { docker run --rm --network "$1" busybox:local timeout 5 wget -q -T 3 -O - "$2" 2>&1; }

conf=$(mktemp --suffix=.hcl /root/dw41.XXXXXX)
chmod 0600 "$conf"
cat >"$conf" <<'EOF'
firewall {
  network "bridge" {
    egress_allow {
      ports = [80]
      to    = ["198.51.100.0/24"]
    }
  }
  network "dw41late" {
    egress_allow {
      ports = [80]
      to    = ["198.51.100.0/24"]
    }
  }
  network "dw41named" {
    bridge = "br-dw41named"
    egress_allow {
      ports = [80]
      to    = ["198.51.100.0/24"]
    }
  }
}
EOF
need "the scenario's configuration is valid" dw validate -c "$conf"

# --- plan and apply with two of three networks missing
expect_exit 2 dw plan -c "$conf"
expect_contains "$OUT" "pending: docker network dw41late" "plan names the missing network as pending"
expect_not_contains "$OUT" "pending: docker network dw41named" "a network with a declared bridge is not pending"
expect_exit 2 dw apply -c "$conf" --format json
expect_match "$OUT" '"id": "firewall"' "the JSON report has the firewall"
expect_match "$OUT" '"status": "changed"' "the firewall changed: the missing network did not fail it"
expect_contains "$OUT" '"target": "docker network dw41late"' "the JSON report lists the missing network"
expect_contains "$OUT" 'level=warning' "a warning is logged..."
expect_contains "$OUT" 'docker network \"dw41late\"' "...naming the missing network"
report=$(cat /var/lib/dockward/last-report.json)
expect_contains "$report" '"pending": [' "last-report.json has the pending list"
expect_contains "$report" '"target": "docker network dw41late"' "...naming the missing network"

forward=$(nft list chain inet dockward forward)
expect_contains "$forward" 'iifname "docker0" jump egress_bridge' "the existing network's rules are in the kernel"
expect_contains "$forward" 'iifname "br-dw41named" jump egress_dw41named' "the declared bridge's rules are in the kernel before it exists"
expect_not_contains "$forward" 'dw41late' "the missing network has no rules"
check_not "br-dw41named does not exist yet" ip link show br-dw41named

# Real packets: the existing network is firewalled.
expect_contains "$(fetch bridge http://198.51.100.1/)" dockward-ok "default bridge reaches tcp/80 outside"
expect_not_contains "$(fetch bridge http://198.51.100.1:8080/)" dockward-ok "default bridge does not reach tcp/8080 outside"

# Converged but for the pending network: nothing to do, nothing failed.
expect_exit 0 dw plan -c "$conf"
expect_contains "$OUT" "pending: docker network dw41late" "the converged plan still shows it pending"
expect_exit 0 dw apply -c "$conf"
expect_contains "$OUT" "Nothing changed" "apply changes nothing while it is missing"

# --- the declared bridge appears: its rules hold with no apply in between
table=$(nft -s list table inet dockward)
need "network dw41named created" docker network create -o com.docker.network.bridge.name=br-dw41named dw41named
expect_contains "$(fetch dw41named http://198.51.100.1/)" dockward-ok "dw41named reaches tcp/80 outside at once"
expect_not_contains "$(fetch dw41named http://198.51.100.1:8080/)" dockward-ok "dw41named does not reach tcp/8080 outside, at once"
expect_eq "$(nft -s list table inet dockward)" "$table" "nothing was applied for it: the rules were there before"

# --- the agent: dw41late created later gets its rules from Docker's event
"$DOCKWARD" --log-level debug run -c "$conf" >"$agent_log" 2>&1 &
agent_pid=$!
need "the agent's start converge" wait_for 60 "agent start" grep -q 'trigger=start' "$agent_log"
expect_contains "$(cat "$agent_log")" 'docker network \"dw41late\"' "the agent warns about the missing network"
need "network dw41late created" docker network create dw41late
created=$(date +%s.%N)
bridge=br-$(docker network inspect -f '{{.Id}}' dw41late | cut -c1-12)
check "the agent applies dw41late's rules (bounded wait)" \
	wait_for 30 "rules for $bridge" bash -c 'nft list chain inet dockward forward | grep -qF "iifname \"$0\" jump egress_dw41late"' "$bridge"
# A figure, not an assertion: polled every 0.2 s, so an upper bound.
note "dw41late's rules were in force $(awk -v a="$created" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }') s after docker network create returned"
# The converge's own log line comes after the table is in: wait for it too.
check "...in a converge set off by Docker's network event" \
	wait_for 30 "the converge's log line" grep -qF "event: firewall (docker: network dw41late: create)" "$agent_log"
expect_contains "$(fetch dw41late http://198.51.100.1/)" dockward-ok "dw41late reaches tcp/80 outside"
expect_not_contains "$(fetch dw41late http://198.51.100.1:8080/)" dockward-ok "dw41late does not reach tcp/8080 outside"
expect_exit 0 dw plan -c "$conf"
expect_not_contains "$OUT" "pending:" "nothing is pending any more"
check "the agent is still running" kill -0 "$agent_pid"
