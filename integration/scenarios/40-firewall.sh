# 40-firewall: the embedded default's firewall on real Docker bridges.
# Containers on the default bridge reach HTTP (80) outside but not 8080; the
# internal network "isolated" exists (create = true), and its containers
# cannot reach the host through the bridge's gateway address (which Docker's
# own --internal allows). plan is empty after apply; a deleted or edited
# table is drift that plan names and apply restores; Docker's own tables are
# never touched.
#
# "Outside" is a network namespace (dwwan, 198.51.100.1) joined to this host
# by a veth pair; busybox httpd serves in it. Everything made here is removed
# at the end, and the host is left converged.

converge
need "docker.service is active" systemctl is-active --quiet docker.service
need "busybox:local present" ensure_busybox
need "busybox has httpd" /bin/busybox httpd --help

wan=dwwan
httpd_pids=()
cleanup() {
	((${#httpd_pids[@]} > 0)) && kill "${httpd_pids[@]}" 2>/dev/null
	ip netns pids "$wan" 2>/dev/null | xargs -r kill 2>/dev/null
	ip netns del "$wan" 2>/dev/null
	ip link del dwwan0 2>/dev/null
	docker rm -f dw40-probe >/dev/null 2>&1
	rm -rf /tmp/dw40-www
}
trap cleanup EXIT
cleanup

mkdir -p /tmp/dw40-www && echo dockward-ok >/tmp/dw40-www/index.html
need "namespace $wan" ip netns add "$wan"
need "veth to $wan" ip link add dwwan0 type veth peer name eth0 netns "$wan"
ip addr add 198.51.100.2/24 dev dwwan0 && ip link set dwwan0 up
ip -n "$wan" addr add 198.51.100.1/24 dev eth0
ip -n "$wan" link set eth0 up
ip -n "$wan" link set lo up
for port in 80 8080; do
	ip netns exec "$wan" /bin/busybox httpd -f -p "$port" -h /tmp/dw40-www &
	httpd_pids+=("$!")
done
# A service on the host itself, on every address (the bridges' gateways too).
/bin/busybox httpd -f -p 8081 -h /tmp/dw40-www &
httpd_pids+=("$!")
need "the outside answers from the host" wait_for 10 "httpd in $wan" \
	bash -c '/bin/busybox wget -q -T 2 -O - http://198.51.100.1:8080/ | grep -q dockward-ok'

# fetch NETWORK URL: a container on NETWORK fetches URL (bounded).
fetch() { docker run --rm --network "$1" busybox:local timeout 5 wget -q -T 3 -O - "$2" 2>&1; }

expect_exit 0 dw plan
docker_tables() { nft -s list table ip filter 2>&1; nft -s list table ip nat 2>&1; }
docker0=$(docker_tables)

# The firewall is in place: what the default allows gets through, the rest not.
expect_contains "$(fetch bridge http://198.51.100.1/)" dockward-ok "default bridge reaches tcp/80 outside"
expect_not_contains "$(fetch bridge http://198.51.100.1:8080/)" dockward-ok "default bridge does not reach tcp/8080 outside"
check "network isolated was created" docker network inspect isolated
expect_eq "$(docker network inspect -f '{{.Internal}}' isolated)" true "network isolated is internal"
gw=$(docker network inspect -f '{{range .IPAM.Config}}{{.Gateway}}{{end}}' isolated)
need "isolated has a gateway address on the host" test -n "$gw"
expect_not_contains "$(fetch isolated "http://$gw:8081/")" dockward-ok "isolated does not reach the host at $gw"
expect_contains "$(fetch bridge "http://$(docker network inspect -f '{{range .IPAM.Config}}{{.Gateway}}{{end}}' bridge):8081/")" \
	dockward-ok "default bridge still reaches the host (not internal)"
table=$(nft list table inet dockward)
expect_match "$table" 'counter packets [1-9][0-9]* bytes [0-9]+ drop' "a drop counter counted the blocked packets"
expect_exit 0 dw plan

# Without dockward's table the same flows get through: the checks above
# tested the firewall, not the topology.
nft delete table inet dockward
expect_contains "$(fetch bridge http://198.51.100.1:8080/)" dockward-ok "without the table, tcp/8080 gets through"
expect_contains "$(fetch isolated "http://$gw:8081/")" dockward-ok "without the table, isolated reaches the host"

# A deleted table is drift.
expect_exit 2 dw plan
expect_contains "$OUT" "table inet dockward" "plan names the missing table"
expect_exit 2 dw apply
expect_exit 0 dw plan
expect_not_contains "$(fetch bridge http://198.51.100.1:8080/)" dockward-ok "after apply, tcp/8080 is blocked again"

# An edit inside the table is drift too, shown line by line.
nft insert rule inet dockward egress_bridge accept
expect_exit 2 dw plan
expect_contains "$OUT" "accept" "plan shows the foreign rule"
expect_exit 2 dw apply
expect_exit 0 dw plan

# Docker's tables, stateless (counters aside), are as Docker made them.
expect_eq "$(docker_tables)" "$docker0" "dockward left Docker's tables alone"
